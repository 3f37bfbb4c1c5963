"""Token-budgeted chunks of a document that prefer its own boundaries.

A document is cut into units: its blocks when its loader gives them (vdb.text.blocks:
headings, paragraphs, code, list items, table rows), else headings (Markdown `#` lines) and
paragraphs (blank-line separated). A unit over the budget is cut further: code at line
ends, prose at sentence ends, and a sentence or line over the budget into runs of words.
Units are packed greedily into chunks of at most max_tokens tokens as the embedding model
counts them; a heading starts a new chunk, and each chunk after the first of a section
begins with the last units of the previous one, up to overlap tokens, so a sentence cut at a
chunk's end is whole in the next. A chunk is then counted whole (its units' counts can sum
to less than the joined text's) and cut again where it is over. Each chunk knows its
character span in the document, its heading path and its index.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from vdb.errors import InvalidArgumentError
from vdb.text import blocks as B

# The loaders' and the chunker's version: files ingested by another are chunked again
VERSION = "3"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character span in the document's text
    end: int
    headings: tuple[str, ...]  # the heading path the chunk sits under
    index: int


@dataclass
class _Unit:
    start: int
    end: int
    headings: tuple[str, ...]
    heading: bool = False
    tokens: int = 0
    code: bool = False


def chunk(
    text: str,
    count: Callable[[list[str]], list[int]],
    max_tokens: int = 254,
    overlap: int = 32,
    blocks: list[B.Block] | None = None,
) -> list[Chunk]:
    """Chunks of text. count(texts) gives each text's token count (without special tokens);
    max_tokens bounds every chunk (a single word longer than that is the only exception);
    overlap: tokens repeated from the end of a chunk at the start of the next; blocks: the
    document's structure, when its loader gives one."""
    check(max_tokens, overlap)
    units = _units(text) if blocks is None else _block_units(blocks)
    if not units:
        return []
    _count(text, units, count)
    units = _split_long(text, units, count, max_tokens)
    return _fit(text, _pack(text, units, max_tokens, overlap), count, max_tokens, overlap)


def check(max_tokens: int, overlap: int) -> None:
    """InvalidArgumentError unless 8 <= max_tokens and 0 <= overlap <= max_tokens / 2."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 8:
        raise InvalidArgumentError(f"chunk tokens must be an integer >= 8, got {max_tokens!r}")
    if not isinstance(overlap, int) or isinstance(overlap, bool):
        raise InvalidArgumentError(f"overlap must be an integer, got {overlap!r}")
    if not 0 <= overlap <= max_tokens // 2:
        raise InvalidArgumentError(
            f"overlap must be between 0 and half the chunk ({max_tokens // 2}), got {overlap}"
        )


def _units(text: str) -> list[_Unit]:
    """Headings and paragraphs, with the heading path each sits under."""
    units, path = [], []
    pos, para = 0, None
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        match = HEADING.match(line.strip())
        if match or not line.strip():
            if para is not None:
                units.append(para)
                para = None
            if match:
                level = len(match.group(1))
                path = [*path[: level - 1], match.group(2)]
                units.append(_Unit(start, end, tuple(path), heading=True))
            continue
        if para is None:
            para = _Unit(start + len(line) - len(line.lstrip()), end, tuple(path))
        else:
            para.end = end
    if para is not None:
        units.append(para)
    return units


def _block_units(blocks: list[B.Block]) -> list[_Unit]:
    """Units of a loader's blocks, with the heading path each sits under."""
    units, path = [], []
    for b in blocks:
        if b.kind == B.HEADING:
            level = max(1, b.level)
            above = path[: level - 1]
            path = [*above, *[""] * (level - 1 - len(above)), b.title]  # a skipped level: ""
            units.append(_Unit(b.start, b.end, tuple(h for h in path if h), heading=True))
        else:
            headings = tuple(h for h in path if h)
            units.append(_Unit(b.start, b.end, headings, code=b.kind == B.CODE))
    return units


def _fit(text, chunks: list[Chunk], count, max_tokens, overlap) -> list[Chunk]:
    """chunks, each counted whole; one over max_tokens (its units' counts summed to less) is
    chunked again with a budget smaller by its excess, until it fits."""
    sizes = count([c.text for c in chunks])
    if all(n <= max_tokens for n in sizes):
        return chunks
    out: list[Chunk] = []
    for c, n in zip(chunks, sizes, strict=True):
        if n <= max_tokens:
            out.append(c)
            continue
        budget = max(8, max_tokens - (n - max_tokens) - 1)
        unit = _Unit(c.start, c.end, c.headings)
        _count(text, [unit], count)
        pieces = _split_long(text, [unit], count, budget)
        inner = _pack(text, pieces, budget, min(overlap, budget // 2))
        if budget == 8 or (len(inner) == 1 and inner[0].text == c.text):
            out.extend(inner)  # as small as words allow (one word may be over)
        else:
            out.extend(_fit(text, inner, count, max_tokens, overlap))
    return [Chunk(c.text, c.start, c.end, c.headings, i) for i, c in enumerate(out)]


def _count(text, units, count) -> None:
    for unit, n in zip(units, count([text[u.start : u.end] for u in units]), strict=True):
        unit.tokens = n


def _split_long(text, units, count, max_tokens) -> list[_Unit]:
    out = []
    for unit in units:
        if unit.tokens <= max_tokens:
            out.append(unit)
            continue
        pieces = _lines(text, unit) if unit.code else _sentences(text, unit)
        _count(text, pieces, count)
        for piece in pieces:
            if piece.tokens <= max_tokens:
                out.append(piece)
            else:
                out.extend(_words(text, piece, count, max_tokens))
    return out


def _sentences(text, unit) -> list[_Unit]:
    body = text[unit.start : unit.end]
    cuts = [0, *(m.end() for m in SENTENCE_END.finditer(body)), len(body)]
    pieces = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        seg = body[a:b]
        stripped = seg.rstrip()
        if stripped:
            pieces.append(_Unit(unit.start + a, unit.start + a + len(stripped), unit.headings))
    return pieces


def _lines(text, unit) -> list[_Unit]:
    """A code block's lines, as units (blank lines dropped)."""
    pieces, pos = [], unit.start
    for line in text[unit.start : unit.end].split("\n"):
        if line.strip():
            pieces.append(_Unit(pos, pos + len(line.rstrip()), unit.headings, code=True))
        pos += len(line) + 1
    return pieces


def _words(text, unit, count, max_tokens) -> list[_Unit]:
    """Runs of whole words of at most max_tokens tokens."""
    words = [
        (unit.start + m.start(), unit.start + m.end())
        for m in re.finditer(r"\S+", text[unit.start : unit.end])
    ]
    sizes = count([text[a:b] for a, b in words])
    pieces, start, total, prev_end = [], None, 0, unit.start
    for (a, b), n in zip(words, sizes, strict=True):
        if start is not None and total + n > max_tokens:
            pieces.append(_Unit(start, prev_end, unit.headings, tokens=total))
            start, total = None, 0
        if start is None:
            start = a
        total += n
        prev_end = b
    if start is not None:
        pieces.append(_Unit(start, prev_end, unit.headings, tokens=total))
    return pieces


def _pack(text, units, max_tokens, overlap) -> list[Chunk]:
    chunks: list[Chunk] = []
    current: list[_Unit] = []
    tokens = 0
    fresh = 0  # units of current that are not overlap from the previous chunk

    def emit():
        nonlocal current, tokens, fresh
        body = [u for u in current if not u.heading]
        if fresh and body:  # a heading with nothing under it makes no chunk
            start, end = current[0].start, current[-1].end
            chunks.append(Chunk(text[start:end], start, end, body[0].headings, len(chunks)))
        tail, kept = [], 0
        for u in reversed(current):
            if u.heading or kept + u.tokens > overlap:
                break
            tail.insert(0, u)
            kept += u.tokens
        current, tokens, fresh = (tail if fresh else []), (kept if fresh else 0), 0

    for unit in units:
        if unit.heading and current:
            emit()
            current, tokens = [], 0  # a new section: no overlap across headings
        elif current and tokens + unit.tokens > max_tokens:
            emit()
            while current and tokens + unit.tokens > max_tokens:
                tokens -= current.pop(0).tokens
        current.append(unit)
        tokens += unit.tokens
        fresh += 1
    if current:
        emit()
    return chunks
