"""Answers from a collection of ingested chunks: hybrid retrieval, then either a generated
answer that cites numbered sources, or, with no generation model, an extractive one.

search() fuses the collection's dense search with BM25 over its documents (vdb.text.hybrid:
a convex combination of normalized scores, chosen by bench/eval_retrieval.py). The BM25
index is built from the collection's documents on first use and rebuilt when the
collection's sequence number has moved (any write), so it is always in step with upserts and
deletes; rebuilding costs a scan of the documents (2 s for 20,000 chunks of 120 words
here).
"""

import re
import threading
import weakref
from dataclasses import asdict, dataclass, field

from vdb.collection import scan
from vdb.errors import InvalidArgumentError
from vdb.results import Hit
from vdb.text import bm25, extract, hybrid

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


_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # collection -> index
_cache_lock = threading.Lock()


def _bm25(col):
    """(ids, Bm25Index) over the collection's documents, rebuilt after any write."""
    lsn = col.info()["lsn"]
    with _cache_lock:
        hit = _cache.get(col)
        if hit is not None and hit[0] == lsn:
            return hit[1], hit[2]
    ids, docs = [], []
    for r in scan(col, page=2000):
        if r.document:
            ids.append(r.id)
            docs.append(r.document)
    index = bm25.Bm25Index(docs)
    with _cache_lock:
        _cache[col] = (lsn, ids, index)
    return ids, index


def search(col, query: str, k: int = 10, filter=None, dense_weight: float = hybrid.DENSE_WEIGHT):
    """Hybrid search of a collection with an embedder and documents: Hits best first, the
    score being the fused score in [0, 1]. A remote collection searches in the server."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgumentError("the query must be a non-empty text")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if not 0 <= dense_weight <= 1:
        raise InvalidArgumentError(f"dense_weight must be in [0, 1], got {dense_weight}")
    remote = _remote(col, None)
    if remote is not None:
        from vdb.rpc import retrieval_client

        return retrieval_client.hybrid_search(remote, col.name, query, k, filter, dense_weight)
    dense_hits = col.search(query, k=POOL, filter=filter)
    ids, index = _bm25(col)
    sparse = [(ids[i], s) for i, s in index.search(query, POOL)]
    if filter is not None and sparse:
        allowed = {r.id for r in scan(col, filter, page=5000)}
        sparse = [(i, s) for i, s in sparse if i in allowed]
    sign = -1.0 if col.config.metric == "l2" else 1.0  # l2 scores are distances
    dense = [(h.id, sign * h.score) for h in dense_hits]
    fused = hybrid.convex(dense, sparse, dense_weight)[:k]
    known = {h.id: h for h in dense_hits}
    missing = [i for i, _ in fused if i not in known]
    if missing:
        for r in col.get(missing, with_vectors=False):
            known[r.id] = Hit(r.id, 0.0, r.payload, r.document)
    return [Hit(i, float(s), known[i].payload, known[i].document) for i, s in fused if i in known]


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
    **sampler,
) -> Answer:
    """Answer question from col. With model (an llm model, local or remote) the answer is
    generated from the numbered sources that fit its context; on_piece(text) receives it as
    it streams. Without one, the answer is the best sentence of the best source, labelled
    extractive. On a remote collection, with no model or the server's own model, the server
    does the work (the Ask RPC). memory: a block the generated answer may also draw on, such
    as an agent's Memory.context(question) (extractive answers leave it aside)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if not isinstance(question, str) or not question.strip():
        raise InvalidArgumentError("the question must be a non-empty text")
    if memory is not None and not isinstance(memory, str):
        raise InvalidArgumentError(f"memory must be a text, got {type(memory).__name__}")
    remote = _remote(col, model)
    if remote is not None:
        from vdb.rpc import retrieval_client

        return retrieval_client.ask(
            remote,
            col.name,
            question,
            model is not None,
            k,
            filter,
            max_tokens,
            on_piece,
            sampler,
            memory,
        )
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
    terms = _bm25(col)[1].tokenize  # the collection's index, built by the search before
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


def _remote(col, model):
    """The remote client that should run this ask in the server, or None."""
    from vdb.rpc.client import RemoteCollection
    from vdb.rpc.model_client import RemoteModel

    if not isinstance(col, RemoteCollection):
        return None
    if model is None or (isinstance(model, RemoteModel) and model.address == col._db.address):
        return col._db
    return None


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
    return len(model.tokenize(completion_prompt(question, sources, memory)))


def _context(model) -> int:
    n = getattr(model, "n_ctx", None)
    return int(n if n is not None else model.info()["context_length"])


def _count(model, messages) -> int:
    if hasattr(model, "chat_prompt"):
        return len(model.tokenize(model.chat_prompt(messages), special=True))
    text = "\n\n".join(m["content"] for m in messages)
    return len(model.tokenize(text)) + 32  # remote: the template's own tokens, roughly
