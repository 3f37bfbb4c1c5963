"""Answers from a collection of ingested chunks: hybrid retrieval, then either a generated
answer that cites numbered sources, or, with no generation model, an extractive one.

search() is the collection's hybrid query: its dense search fused with BM25 over its
keyword index (Collection.search(text=...); by default a convex combination of normalized
scores, chosen by bench/eval_retrieval.py). The keyword index is the store's, kept in step
with every write; a collection made without one gets it on first use (enable_text). Local
and remote collections are used through the same methods: a remote one runs the hybrid query,
and answers without a model of this process, in the server.
"""

import re
import warnings
from dataclasses import asdict, dataclass, field

from vdb.errors import InvalidArgumentError, ReadOnlyError
from vdb.openai_compatible import OpenAICompatible  # noqa: F401  (rag.ask(..., llm=...))
from vdb.text import analyzer as analyzers
from vdb.text import extract, hybrid

POOL = 100  # candidates from each retriever before fusion
SYSTEM = (
    "Answer the question using only the numbered sources below. Cite the sources you use "
    "as [1], [2]. If the sources do not hold the answer, say that you do not know."
)
# A model without a chat template (a base model) continues a document: worked answers set
# the pattern, each opening with the number of its source (a small model keeps a citation
# there, where at the end it drops it), and one without an answer in its sources.
FEW_SHOT = (
    "Answer each question from its numbered sources only; an answer starts with the number "
    "of its source, as [1]. When the sources do not hold the answer, the answer is: I do not "
    "know.\n\n"
    "Sources:\n\n[1] (handbook > Backups)\nBackups run every night at 02:00 and are kept for "
    "30 days.\n\n[2] (handbook > Holidays)\nThe office is closed on public holidays.\n\n"
    "Question: How long are backups kept?\nAnswer: [1] Backups are kept for 30 days.\n\n"
    "Sources:\n\n[1] (faq)\nThe cafeteria opens at 8:00 on weekdays.\n\n[2] (faq > Parking)\n"
    "Visitors park in lot B, next to the main entrance.\n\n"
    "Question: Where do visitors park?\nAnswer: [2] Visitors park in lot B, next to the main "
    "entrance.\n\n"
    "Sources:\n\n[1] (notes.md > Errors)\nError E-17 means the printer is out of paper. Refill "
    "tray 2.\n\n[2] (notes.md > Network)\nThe guest network is called Lobby.\n\n"
    "Question: What does error E-17 mean?\nAnswer: [1] Error E-17 means the printer is out of "
    "paper.\n\n"
    "Sources:\n\n[1] (faq)\nThe cafeteria opens at 8:00 on weekdays.\n\n"
    "Question: Who founded the company?\nAnswer: I do not know.\n\n"
)
FEW_SHOT_STOP = ("\n\n", "\nQuestion:", "\nSources:")  # the end of one answer


@dataclass
class Source:
    number: int  # as cited in the prompt and the answer: [number]
    id: int | str
    score: float
    text: str
    file: str | None
    source: str | None
    headings: list
    start: int | None
    end: int | None
    payload: dict = field(default_factory=dict)  # the chunk's whole payload


@dataclass
class Answer:
    question: str
    text: str
    extractive: bool  # True: a sentence quoted from the best source, no model involved
    sources: list[Source] = field(default_factory=list)  # what the answer was built from
    cited: list[int] = field(default_factory=list)  # numbers of the sources it cites
    span: tuple[int, int] | None = None  # extractive: the span in the cited source's text

    def as_dict(self) -> dict:
        return asdict(self)


def search(
    col,
    query: str,
    k: int = 10,
    filter=None,
    dense_weight: float | None = None,
    fusion: str = "convex",
):
    """Hybrid search of a collection with an embedder and documents: Hits best first, the
    score being the fused score (see Collection.search for fusion and dense_weight)."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgumentError("the query must be a non-empty text")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    fusion, dense_weight = hybrid.checked(fusion, dense_weight)
    if not _keyword_index(col):
        return col.search(query, k=k, filter=filter)
    return col.search(
        query, k=k, filter=filter, text=query, fusion=fusion, dense_weight=dense_weight
    )


def _keyword_index(col) -> bool:
    """Whether col has a keyword index, building one over its documents (the analyzer "en")
    when it has none; a handle that may not write searches densely then, with a warning."""
    if col.config.text is not None:
        return True
    try:
        col.enable_text()
    except ReadOnlyError:
        warnings.warn(
            f"collection {col.name!r} has no keyword index and this handle may not build one "
            "(enable_text); searching by vectors only",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


def as_sources(hits) -> list[Source]:
    out = []
    for n, h in enumerate(hits, 1):
        p = h.payload or {}
        out.append(
            Source(
                n,
                h.id,
                h.score,
                h.document or "",
                p.get("file"),
                p.get("source"),
                list(p.get("headings") or []),
                p.get("start"),
                p.get("end"),
                p,
            )
        )
    return out


def ask(
    col,
    question: str,
    model=None,
    k: int = 5,
    filter=None,
    max_tokens: int = 256,
    on_piece=None,
    memory: str | None = None,
    llm=None,
    **sampler,
) -> Answer:
    """Answer question from col. With model (an llm model, local or remote) the answer is
    generated from the numbered sources that fit its context; on_piece(text) receives it as
    it streams. Without one, the answer is the best sentence of the best source, labelled
    extractive. On a remote collection, with no model or the server's own model, the server
    does the work (the Ask RPC). memory: a block the generated answer may also draw on, such
    as an agent's Memory.context(question) (extractive answers leave it aside).
    llm: the generator, as model (either one): such as OpenAICompatible(url), any server of
    the OpenAI API answering from the same prompt."""
    if llm is not None:
        if model is not None:
            raise InvalidArgumentError("give model or llm, not both")
        model = llm
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if not isinstance(question, str) or not question.strip():
        raise InvalidArgumentError("the question must be a non-empty text")
    if memory is not None and not isinstance(memory, str):
        raise InvalidArgumentError(f"memory must be a text, got {type(memory).__name__}")
    answer = col.ask_in_server(question, model, k, filter, max_tokens, on_piece, sampler, memory)
    if answer is not None:  # a remote collection's server answered
        return answer
    sources = as_sources(search(col, question, k=k, filter=filter))
    if not sources:
        text = NO_SOURCE
        if on_piece:
            on_piece(text)
        return Answer(question, text, model is None, [])
    if model is None:
        answer = extractive(col, question, sources)
        if on_piece:
            on_piece(answer.text)
        return answer
    used, stream = start_answer(model, question, sources, max_tokens, memory, **sampler)
    pieces = []
    for piece in stream:
        if not pieces:
            piece = piece.lstrip()  # after "Answer:"
            if not piece:
                continue
        pieces.append(piece)
        if on_piece:
            on_piece(piece)
    text = "".join(pieces)
    return Answer(question, text, False, used, citations(text, used))


NO_SOURCE = "No source in the collection matches the question."


def extractive(col, question: str, sources: list[Source]) -> Answer:
    """The span of the best sources that best answers question (extract.best_span): a
    sentence, two adjacent ones, a list item or a table row, quoted with its source."""
    import embed

    embedder = embed.load(col.config.embedder)
    text = col.config.text
    terms = analyzers.get(text.analyzer if text is not None else "en").terms
    best, text, _ = extract.best_span(question, [s.text for s in sources], embedder, terms)
    source = sources[best.passage]
    return Answer(question, text, True, sources, [source.number], (best.start, best.end))


def start_answer(
    model, question: str, sources: list[Source], max_tokens: int, memory=None, **kwargs
):
    """(the sources used, the streaming generation of the answer) within model's context.
    A model with a chat template answers a system and a user message; one without (a base
    model) continues a few-shot document of sources, questions and answers. kwargs go to
    model.chat or model.generate (sampler settings, cancel, prefill_chunk)."""
    if has_template(model):
        used, messages = prompt_messages(model, question, sources, max_tokens, memory)
        return used, model.chat(messages, max_tokens, stream=True, **kwargs)
    used = _fit(model, question, sources, max_tokens, memory, chat=False)
    prompt = completion_prompt(question, used, memory)
    return used, model.generate(prompt, max_tokens, FEW_SHOT_STOP, stream=True, **kwargs)


def has_template(model) -> bool:
    """Whether model (local, or a server's) has a chat template."""
    if hasattr(model, "chat_prompt"):
        return bool(model.chat_template)
    return bool(model.info()["chat_template"])


def prompt_messages(
    model, question: str, sources: list[Source], max_tokens: int, memory: str | None = None
):
    """(the sources used, chat messages) for a generated answer within model's context."""
    used = _fit(model, question, sources, max_tokens, memory)
    return used, _messages(question, used, memory)


def completion_prompt(question: str, sources: list[Source], memory: str | None = None) -> str:
    """The few-shot document a base model continues with its answer."""
    return FEW_SHOT + _prompt(question, sources, memory) + "\nAnswer:"


def _messages(question: str, sources: list[Source], memory: str | None) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _prompt(question, sources, memory)},
    ]


def citations(text: str, used: list[Source]) -> list[int]:
    """The source numbers text cites as [n], among those it was given."""
    numbers = {s.number for s in used}
    return sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)} & numbers)


def _label(s: Source) -> str:
    where = s.source or s.file or str(s.id)
    if s.headings:
        where += " > " + " > ".join(s.headings)
    return where


def _prompt(question: str, sources: list[Source], memory: str | None = None) -> str:
    blocks = [f"[{s.number}] ({_label(s)})\n{s.text}" for s in sources]
    head = f"What you remember (not citable):\n{memory}\n\n" if memory else ""
    return head + "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def _fit(
    model,
    question: str,
    sources: list[Source],
    max_tokens: int,
    memory: str | None = None,
    chat: bool = True,
) -> list[Source]:
    """The best sources whose prompt (chat messages, or the few-shot document) fits the
    model's context with max_tokens to spare, counted by the model's own tokenizer."""
    budget = _context(model) - max_tokens
    used = []
    for s in sources:
        trial = [*used, s]
        if prompt_tokens(model, question, trial, memory, chat) > budget:
            continue
        used = trial
    if not used:
        raise InvalidArgumentError(
            f"not even one source fits the model's context of {_context(model)} tokens with "
            f"{max_tokens} to generate{' and the memory block' if memory else ''}; lower "
            "max_tokens" + (" or the memory budget" if memory else "")
        )
    return used


def prompt_tokens(model, question, sources, memory=None, chat: bool | None = None) -> int:
    """Tokens of the prompt an answer from sources starts from (chat messages when the model
    has a chat template, else the few-shot document), by the model's own tokenizer."""
    if chat is None:
        chat = has_template(model)
    if chat:
        return _count(model, _messages(question, sources, memory))
    return _tokens(model, completion_prompt(question, sources, memory))


def _context(model) -> int:
    n = getattr(model, "n_ctx", None)
    return int(n if n is not None else model.info()["context_length"])


def _count(model, messages) -> int:
    if hasattr(model, "chat_prompt"):
        return len(model.tokenize(model.chat_prompt(messages), special=True))
    text = "\n\n".join(m["content"] for m in messages)
    return _tokens(model, text) + 32  # remote: the template's own tokens, roughly


def _tokens(model, text: str) -> int:
    """Tokens of text by model's tokenizer, or its estimate when it has none (a server of the
    OpenAI API)."""
    if hasattr(model, "count_tokens"):
        return model.count_tokens(text)
    return len(model.tokenize(text))
