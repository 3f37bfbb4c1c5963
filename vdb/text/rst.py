"""reStructuredText's blocks through docutils: section titles (underlined or overlined, at
their nesting depth), paragraphs, literal blocks, list items, field and definition lists and
table rows, rendered as plain text. Sphinx's own roles (:func:`x`) read as their text, its
code directives as code, its notes as paragraphs; directives that only build the site
(toctree, autodoc) and docutils' own complaints leave nothing."""

from vdb.text.blocks import CODE, HEADING, ITEM, PARA, ROW, Block, join

_ROLES = (
    "ref doc func class meth attr mod data const exc obj term envvar option program file samp "
    "kbd abbr guilabel menuselection command dfn any keyword mailheader makevar mimetype "
    "newsgroup regexp numref download pep rfc"
).split()
_CODE_DIRECTIVES = ("code-block", "sourcecode", "doctest", "testcode", "testoutput")
_PROSE_DIRECTIVES = (
    "versionadded versionchanged deprecated seealso centered hlist glossary productionlist "
    "tab tabs only ifconfig"
).split()
_SILENT_DIRECTIVES = (
    "toctree autosummary automodule autoclass autofunction automethod autoattribute autodata "
    "autoexception currentmodule module index highlight literalinclude sectionauthor "
    "codeauthor moduleauthor"
).split()
# Sphinx's object descriptions: the signature, then the hand-written text under it
_DESCRIPTIONS = (
    "function class method attribute data exception decorator decoratormethod classmethod "
    "staticmethod property module describe object envvar option program confval setting"
).split()
_LABELS = {
    "versionadded": "New in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}
_registered = False


def render(text: str) -> tuple[str, list[Block]]:
    """(text, blocks) of a reStructuredText document rendered to plain text."""
    from docutils.core import publish_doctree

    _register()
    settings = {
        "report_level": 5,
        "halt_level": 5,
        "warning_stream": False,
        "file_insertion_enabled": False,
        "raw_enabled": False,
        "syntax_highlight": "none",
        "doctitle_xform": False,
        "sectsubtitle_xform": False,
    }
    tree = publish_doctree(text, settings_overrides=settings)
    parts: list[tuple[str, str, int]] = []
    _walk(tree, 0, parts)
    return join(parts)


def _walk(node, depth: int, parts: list) -> None:
    from docutils import nodes

    for child in node.children:
        if isinstance(child, nodes.system_message | nodes.comment | nodes.substitution_definition):
            continue
        if isinstance(child, nodes.title):
            parts.append((HEADING, child.astext(), max(depth, 1)))
        elif isinstance(child, nodes.section | nodes.topic | nodes.sidebar):
            _walk(child, depth + 1, parts)
        elif isinstance(child, nodes.literal_block | nodes.doctest_block):
            parts.append((CODE, child.astext(), 0))
        elif isinstance(child, nodes.paragraph | nodes.line_block | nodes.rubric):
            parts.append((PARA, _text(child), 0))
        elif isinstance(child, nodes.list_item):
            _item(child, depth, parts, "- ")
        elif isinstance(child, nodes.field):
            name, body = child.children[0].astext(), child.children[1]
            _item(body, depth, parts, f"{name}: ")
        elif isinstance(child, nodes.definition_list_item):
            terms = " ".join(c.astext() for c in child.children if isinstance(c, nodes.term))
            for c in child.children:
                if isinstance(c, nodes.definition):
                    _item(c, depth, parts, f"{terms}: ")
        elif isinstance(child, nodes.row):
            cells = [" ".join(e.astext().split()) for e in child.children]
            parts.append((ROW, " | ".join(cells), 0))
        elif isinstance(child, nodes.Admonition):
            label = child.tagname.replace("_", " ").capitalize()
            if isinstance(child, nodes.admonition) and child.children:
                label = child.children[0].astext()
            inner: list = []
            _walk(child, depth, inner)
            if inner and inner[0][0] in (PARA, ITEM):
                inner[0] = (inner[0][0], f"{label}: {inner[0][1]}", 0)
            parts.extend(p for p in inner if not (p[0] == HEADING and p[1] == label))
        elif isinstance(child, nodes.Element):
            _walk(child, depth, parts)


def _item(node, depth: int, parts: list, marker: str) -> None:
    """A list item (or a field's or a term's body): its first paragraph with the marker as
    one item, what follows (nested lists, code) as blocks of their own."""
    inner: list = []
    _walk(node, depth, inner)
    if inner and inner[0][0] == PARA:
        inner[0] = (ITEM, marker + inner[0][1], 0)
    elif not inner and node.astext().strip():
        inner = [(ITEM, marker + node.astext(), 0)]
    parts.extend(inner)


def _text(node) -> str:
    return " ".join(node.astext().split())


def _register() -> None:
    """Sphinx's roles and directives, known to docutils once (module state of its own)."""
    global _registered
    if _registered:
        return
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives, roles

    def literal_role(name, rawtext, text, lineno, inliner, options=None, content=None):
        shown = text.split("<", 1)[0].strip() if "<" in text and text.endswith(">") else text
        return [nodes.literal(rawtext, shown.lstrip("~!"))], []

    class AnyOptions(dict):
        """Every option accepted, as its text."""

        def __contains__(self, key):
            return True

        def __missing__(self, key):
            return directives.unchanged

        def __bool__(self):
            return True

    for name in _ROLES:
        roles.register_local_role(name, literal_role)
        roles.register_local_role(f"py:{name}", literal_role)

    class Code(Directive):
        optional_arguments, final_argument_whitespace, has_content = 1, True, True
        option_spec = AnyOptions()

        def run(self):
            return [nodes.literal_block("\n".join(self.content), "\n".join(self.content))]

    class Prose(Directive):
        optional_arguments, final_argument_whitespace, has_content = 1, True, True
        option_spec = AnyOptions()

        def run(self):
            from docutils.statemachine import StringList

            label = _LABELS.get(self.name, "")
            lead = " ".join(self.arguments)
            if label:
                version, *rest = lead.split(None, 1) or [""]
                lead = f"{label} {version}: {' '.join(rest)}".strip()
            lines = StringList([lead, *self.content] if lead else list(self.content))
            node = nodes.container()
            self.state.nested_parse(lines, self.content_offset, node)
            return [node]

    class Silent(Directive):
        optional_arguments, final_argument_whitespace, has_content = 1, True, True
        option_spec = AnyOptions()

        def run(self):
            return []

    class Description(Directive):
        required_arguments, optional_arguments = 0, 1
        final_argument_whitespace, has_content = True, True
        option_spec = AnyOptions()

        def run(self):
            node = nodes.container()
            signature = " ".join(" ".join(self.arguments).split())
            body = nodes.container()
            self.state.nested_parse(self.content, self.content_offset, body)
            first = body.children[0] if body.children else None
            if signature and isinstance(first, nodes.paragraph):
                first.insert(0, nodes.Text(f"{signature}: "))  # the name beside its text
            elif signature:
                node += nodes.paragraph(text=signature)
            node += body.children
            return [node]

    for name in _DESCRIPTIONS:
        directives.register_directive(name, Description)
        directives.register_directive(f"py:{name}", Description)
    for name in _CODE_DIRECTIVES:
        directives.register_directive(name, Code)
    for name in _PROSE_DIRECTIVES:
        directives.register_directive(name, Prose)
    for name in _SILENT_DIRECTIVES:
        directives.register_directive(name, Silent)
    _registered = True
