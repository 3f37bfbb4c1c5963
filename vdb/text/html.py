"""HTML's blocks through BeautifulSoup: the page's main content only (Sphinx's
div[role=main], else <main>, else <article>, else the body), without navigation, sidebars,
headers, footers, tables of contents or heading anchors ("¶"); headings, paragraphs,
preformatted code (whose `#` lines stay code), list items and table rows."""

from vdb.text.blocks import CODE, HEADING, ITEM, PARA, ROW, Block, join

_DROP = ["script", "style", "noscript", "template", "head", "nav", "aside", "header", "footer"]
_FURNITURE = (
    "a.headerlink, .sphinxsidebar, .related, .toctree-wrapper, .contents, .topic.contents, "
    "[role=navigation], [role=search], .breadcrumbs, .footer, .prev-next-area, .bd-sidebar, "
    "#searchbox, .wy-nav-side, .rst-footer-buttons"
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_TEXT_BLOCKS = {"p", "dt", "dd", "blockquote", "figcaption", "caption", "summary", "address"}
_CONTAINERS = {"div", "section", "article", "main", "ul", "ol", "dl", "table", "thead", "tbody"}
_BLOCK_TAGS = (
    set(_HEADINGS) | _TEXT_BLOCKS | _CONTAINERS | {"pre", "li", "tr", "form", "details", "hr"}
)


def render(data: bytes) -> tuple[str, list[Block]]:
    """(text, blocks) of an HTML page's main content."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(_DROP):
        tag.decompose()
    for tag in soup.select(_FURNITURE):
        tag.decompose()
    main = (
        soup.select_one("div[role=main]")
        or soup.find("main")
        or soup.find("article")
        or soup.body
        or soup
    )
    parts: list[tuple[str, str, int]] = []
    _walk(main, parts)
    return join(parts)


def _walk(node, parts: list) -> None:
    from bs4 import NavigableString, Tag

    loose: list[str] = []  # inline content between blocks: a paragraph of its own

    def flush():
        text = " ".join(" ".join(loose).split())
        if text:
            parts.append((PARA, text, 0))
        loose.clear()

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # not a comment or a doctype
                loose.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name not in _BLOCK_TAGS:
            loose.append(child.get_text(" "))
            continue
        flush()
        if name in _HEADINGS:
            parts.append((HEADING, child.get_text(" ", strip=True), _HEADINGS[name]))
        elif name == "pre":
            parts.append((CODE, child.get_text(), 0))
        elif name == "tr":
            cells = [" ".join(c.get_text(" ").split()) for c in child.find_all(["td", "th"])]
            parts.append((ROW, " | ".join(c for c in cells), 0))
        elif name == "li":
            _item(child, parts)
        elif name in _TEXT_BLOCKS and not _has_blocks(child):
            parts.append((PARA, " ".join(child.get_text(" ").split()), 0))
        else:
            _walk(child, parts)
    flush()


def _item(li, parts: list) -> None:
    """A list item: its own text (up to a nested list or block) as one item, the rest as
    blocks of their own."""
    from bs4 import NavigableString, Tag

    head: list[str] = []
    rest = []
    for child in li.children:
        if isinstance(child, Tag) and child.name in _BLOCK_TAGS and child.name != "p":
            rest.append(child)
        elif rest:
            rest.append(child)
        elif isinstance(child, Tag):
            head.append(child.get_text(" "))
        elif type(child) is NavigableString:
            head.append(str(child))
    text = " ".join(" ".join(head).split())
    if text:
        parts.append((ITEM, f"- {text}", 0))
    holder = li.__class__(name="div")
    for child in rest:
        holder.append(child.extract() if isinstance(child, Tag) else child)
    if rest:
        _walk(holder, parts)


def _has_blocks(tag) -> bool:
    return any(getattr(c, "name", None) in _BLOCK_TAGS for c in tag.children)
