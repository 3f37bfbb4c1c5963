"""Extractive answers: the span of the best sources that answers a question.

best_sentence (one passage, its sentences) scores each sentence by the embedding model's
cosine with the question plus the share of the question's terms the sentence holds (question
and answer sentence share their rare words far more often than the embedding alone credits).

best_span goes further, for documentation: its candidates are the sentences, list items and
table rows of the top few sources, and each sentence joined with the next one of its
paragraph (the value a question asks for often follows the sentence that echoes it); code is
a candidate only when the question asks for code. Besides cosine and term share, a candidate
gains for the terms it adds to the question's (a sentence that only echoes the question
holds no answer) and for a name or a value (a literal, a number, an identifier) the question
lacks when it asks for one, and loses a little for a lower-ranked source and for being a
pair.
"""

import re
import warnings
from dataclasses import dataclass

from vdb.text.chunking import HEADING

TERM_WEIGHT = 1.0
NOVELTY_WEIGHT = 0.3  # times min(new terms, NOVELTY_CAP) / NOVELTY_CAP
NOVELTY_CAP = 3
RANK_PENALTY = 0.06  # per place below the first source
PAIR_PENALTY = 0.12
SPECIFIC_WEIGHT = 0.35  # a name or a value, when the question asks for one
SOURCES = 3  # best_span's candidates come from this many sources at most

SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
FENCE = re.compile(r"^\s*(```|~~~)")
ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
CODE_LINE = re.compile(r"^(?: {4}|\t|>>> |\$ |\.\.\. )")
ASKS_NAME = re.compile(
    r"^\s*(which|what|how (many|much|long|large)|when)\b|\b(default|name|called|variable|"
    r"option|setting|value|port|version|limit|maximum|minimum|size|number)\b",
    re.I,
)
# a literal in backticks, a number, or an identifier: snake_case, CONSTANT, dotted.name, --flag
NAMED = re.compile(
    r"`[^`]+`|\b\d+(?:\.\d+)*\b|\b[A-Za-z]+_[A-Za-z0-9_]+\b|\b[A-Z]{2,}[A-Z0-9]*\b|"
    r"\b[a-z_]\w*\.[a-z_]\w*\b|(?<!\w)--?[a-z][\w-]*"
)
ASKS_CODE = re.compile(
    r"\b(code|example|snippet|syntax|command|commands|write|import|decorator|call it)\b", re.I
)


@dataclass(frozen=True)
class Candidate:
    passage: int  # index of the source
    start: int
    end: int
    kind: str  # "sentence", "pair", "item", "row" or "code"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of text, whitespace trimmed. Paragraphs (blank-line
    separated) end sentences too; Markdown heading lines are not sentences."""
    spans = []
    for block in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", text):
        base, body = block.start(), block.group()
        lines, pos = [], 0
        for line in body.split("\n"):  # drop heading lines, keep offsets
            if not HEADING.match(line.strip()):
                lines.append((pos, pos + len(line)))
            pos += len(line) + 1
        if not lines:
            continue
        start, end = lines[0][0], lines[-1][1]
        spans.extend(_sentences(body[start:end], base + start))
    return spans


def _sentences(piece: str, at: int) -> list[tuple[int, int]]:
    """Sentence spans of piece, which starts at offset at."""
    out = []
    cuts = [0, *(m.end() for m in SENTENCE.finditer(piece)), len(piece)]
    for a, b in zip(cuts, cuts[1:], strict=False):
        seg = piece[a:b]
        lead = len(seg) - len(seg.lstrip())
        trimmed = seg.strip()
        if trimmed and re.search(r"\w", trimmed) and not HEADING.match(trimmed):
            out.append((at + a + lead, at + a + lead + len(trimmed)))
    return out


def best_sentence(question: str, passage: str, model, terms) -> tuple[str, int, int, float]:
    """(sentence, start, end, score) of passage's best sentence for question; model embeds,
    terms(text) gives a text's search terms (as BM25 sees them)."""
    spans = sentence_spans(passage) or [(0, len(passage))]
    texts = [passage[a:b] for a, b in spans]
    vectors = model.embed([question, *texts])
    cosine = vectors[1:] @ vectors[0]
    asked = set(terms(question))
    best, best_score = 0, float("-inf")
    for i, text in enumerate(texts):
        share = len(asked & set(terms(text))) / len(asked) if asked else 0.0
        score = float(cosine[i]) + TERM_WEIGHT * share
        if score > best_score:
            best, best_score = i, score
    a, b = spans[best]
    return passage[a:b], a, b, best_score


def candidates(text: str, passage: int = 0, code: bool = False) -> list[Candidate]:
    """The answer candidates of one passage: sentences of its prose and pairs of adjacent
    ones, its list items and table rows whole, and (code: True) its code blocks."""
    out: list[Candidate] = []
    for kind, a, b in _blocks(text):
        if kind == "code":
            if code:
                out.append(Candidate(passage, a, b, "code"))
        elif kind in ("item", "row"):
            if re.search(r"\w", text[a:b]):  # a table's |---| line is not a row
                out.append(Candidate(passage, a, b, kind))
        else:
            spans = _sentences(text[a:b], a)
            out.extend(Candidate(passage, s, e, "sentence") for s, e in spans)
            for (s, _), (_, e) in zip(spans, spans[1:], strict=False):
                out.append(Candidate(passage, s, e, "pair"))
    return out


def _blocks(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of text's prose paragraphs, list items, table rows and code (fenced,
    or a block of indented lines or of Python or shell session lines). Headings are left
    out."""
    found: list[tuple[str, int, int]] = []
    current: list = []  # [kind, start, end] of the block being read
    fenced, pos = False, 0
    for line in text.split("\n"):
        start, end = pos, pos + len(line.rstrip())
        pos += len(line) + 1
        stripped = line.strip()
        if FENCE.match(line):
            fenced = not fenced
            if fenced:
                if current:
                    found.append(tuple(current))
                current = ["code", start, end]
            else:
                current[2] = end
                found.append(tuple(current))
                current = []
            continue
        if fenced:
            current[2] = end
            continue
        if not stripped or HEADING.match(stripped):
            kind = None
        elif CODE_LINE.match(line) and (not current or current[0] == "code"):
            kind = "code"
        elif stripped.startswith("|"):
            kind = "row"
        elif ITEM.match(line):
            kind = "item"
        elif current and current[0] in ("item", "prose", "code"):
            kind = current[0]  # a continuation line
        else:
            kind = "prose"
        if current and (
            kind != current[0] or (kind == "row") or (kind == "item" and ITEM.match(line))
        ):
            found.append(tuple(current))
            current = []
        if kind is None:
            continue
        if current:
            current[2] = end
        else:
            current = [kind, start + len(line) - len(line.lstrip()), end]
    if current:
        found.append(tuple(current))
    return [b for b in found if b[2] > b[1]]


def _names(text: str) -> set[str]:
    return {m.group().strip("`").lower() for m in NAMED.finditer(text)}


def best_span(question: str, passages: list[str], model, terms) -> tuple[Candidate, str, float]:
    """(candidate, its text, score) of the best answer to question among the first SOURCES
    passages (in rank order). model embeds; terms(text) gives a text's search terms."""
    code = bool(ASKS_CODE.search(question))
    named = bool(ASKS_NAME.search(question))
    pool = [c for i, p in enumerate(passages[:SOURCES]) for c in candidates(p, i, code)]
    if not pool:  # nothing but headings or code: the best passage whole
        text = passages[0].strip()
        start = passages[0].find(text)
        return Candidate(0, start, start + len(text), "sentence"), text, 0.0
    texts = [passages[c.passage][c.start : c.end] for c in pool]
    with warnings.catch_warnings():  # a long pair is scored on its first 256 tokens
        warnings.simplefilter("ignore")
        vectors = model.embed([question, *texts])
    cosine = vectors[1:] @ vectors[0]
    asked = set(terms(question))
    asked_names = _names(question)
    best, best_score = 0, float("-inf")
    for i, (c, text) in enumerate(zip(pool, texts, strict=True)):
        held = set(terms(text))
        share = len(asked & held) / len(asked) if asked else 0.0
        novelty = min(len(held - asked), NOVELTY_CAP) / NOVELTY_CAP
        score = float(cosine[i]) + TERM_WEIGHT * share + NOVELTY_WEIGHT * novelty
        if named and _names(text) - asked_names:  # it holds a name the question lacks
            score += SPECIFIC_WEIGHT
        score -= RANK_PENALTY * c.passage + (PAIR_PENALTY if c.kind == "pair" else 0.0)
        if score > best_score:
            best, best_score = i, score
    return pool[best], texts[best], best_score
