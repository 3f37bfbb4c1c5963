"""A document's structure as blocks: headings, paragraphs, code, list items and table rows,
each a span of the document's text. Structured loaders (Markdown, reStructuredText, HTML)
give them to the chunker, which keeps a block whole where it fits and never takes a `#` line
inside code for a heading."""

from dataclasses import dataclass

HEADING, PARA, CODE, ITEM, ROW = "heading", "para", "code", "item", "row"
KINDS = (HEADING, PARA, CODE, ITEM, ROW)


@dataclass(frozen=True)
class Block:
    kind: str  # one of KINDS
    start: int  # character span in the document's text
    end: int
    level: int = 0  # a heading's depth, from 1
    title: str = ""  # a heading's text


def join(parts: list[tuple[str, str, int]]) -> tuple[str, list[Block]]:
    """(text, blocks) of rendered parts (kind, text, level), blank-line separated. A heading's
    text is written as a Markdown `#` line (so that chunks read as the document does) and its
    title kept apart; code is fenced as in Markdown, so that answers and readers tell it from
    prose."""
    pieces, blocks, pos = [], [], 0
    for kind, body, level in parts:
        body = body.strip("\n")
        if not body.strip():
            continue
        if kind == HEADING:
            title = " ".join(body.split())
            body = f"{'#' * min(max(level, 1), 6)} {title}"
        else:
            title = ""
        if kind == CODE and not body.lstrip().startswith(("```", "~~~")):
            fence = "````" if "```" in body else "```"
            body = f"{fence}\n{body}\n{fence}"  # read as code wherever the text goes
        if pieces:
            pieces.append("\n\n")
            pos += 2
        blocks.append(Block(kind, pos, pos + len(body), level if kind == HEADING else 0, title))
        pieces.append(body)
        pos += len(body)
    return "".join(pieces), blocks
