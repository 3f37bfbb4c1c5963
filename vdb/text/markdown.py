"""Markdown's blocks through a CommonMark parser (markdown-it-py): headings (ATX and setext),
paragraphs, fenced and indented code, list items and table rows, as spans of the source
itself, so chunks keep the author's Markdown. Front matter (a leading `---` block) is left
out."""

import re

from vdb.text.blocks import CODE, HEADING, ITEM, PARA, ROW, Block

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def blocks(text: str) -> list[Block]:
    """The blocks of a Markdown document, in order, as spans of text."""
    from markdown_it import MarkdownIt

    front = FRONT_MATTER.match(text)
    source = text
    if front:  # blanked, not cut, so that line numbers stay the source's
        source = re.sub(r"[^\n]", " ", front.group()) + text[front.end() :]
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    starts = _line_starts(text)
    out: list[Block] = []
    items: list[int] = []  # first line of each open list item, innermost last
    for i, tok in enumerate(tokens):
        if tok.type == "list_item_open":
            items.append(tok.map[0])
        elif tok.type == "list_item_close":
            items.pop()
        elif tok.type == "heading_open":
            title = tokens[i + 1].content if i + 1 < len(tokens) else ""
            out.append(_span(text, starts, tok.map, HEADING, int(tok.tag[1:]), title))
        elif tok.type in ("fence", "code_block"):
            out.append(_span(text, starts, tok.map, CODE))
        elif tok.type == "tr_open":
            out.append(_span(text, starts, tok.map, ROW))
        elif tok.type in ("paragraph_open", "html_block") and tok.map:
            lines = tok.map
            if items and tok.level and tokens[i - 1].type == "list_item_open":
                lines = [items[-1], lines[1]]  # the item's first paragraph, with its marker
            out.append(_span(text, starts, lines, ITEM if items else PARA))
    return [b for b in out if b.end > b.start]


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer(r"\n", text):
        starts.append(m.end())
    starts.append(len(text))
    return starts


def _span(text, starts, lines, kind, level=0, title="") -> Block:
    """The block over source lines [a, b), whitespace trimmed at both ends."""
    a, b = lines
    start, end = starts[min(a, len(starts) - 1)], starts[min(b, len(starts) - 1)]
    body = text[start:end]
    lead = len(body) - len(body.lstrip())
    return Block(kind, start + lead, start + len(body.rstrip()), level, title.strip())
