"""Files to documents: plain text, Markdown (markdown-it-py), reStructuredText (docutils),
HTML (BeautifulSoup), PDF (pypdf), and JSON or JSON Lines records with a chosen text field.

The structured formats also give their blocks (vdb.text.blocks: headings, paragraphs, code,
list items, table rows), which the chunker follows; plain text is cut at blank lines and
Markdown-style `#` lines.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from vdb.errors import InvalidArgumentError
from vdb.text import html, markdown, rst
from vdb.text.blocks import Block

TEXT_SUFFIXES = (".txt", ".text", ".log")
MARKDOWN_SUFFIXES = (".md", ".markdown")
RST_SUFFIXES = (".rst", ".rest")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
SUFFIXES = (
    *TEXT_SUFFIXES,
    *MARKDOWN_SUFFIXES,
    *RST_SUFFIXES,
    *HTML_SUFFIXES,
    ".pdf",
    ".json",
    ".jsonl",
)


class LoaderError(InvalidArgumentError):
    """A file cannot be read as its type says (not UTF-8, malformed JSON, broken PDF...)."""


@dataclass
class Document:
    text: str
    source: str  # the file path, with "#N" for the N-th record of a JSON file
    metadata: dict = field(default_factory=dict)
    blocks: list[Block] | None = None  # the structure, for formats that have one


def load(path, text_field: str = "text") -> list[Document]:
    """The documents in one file, by its suffix; LoaderError when it cannot be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in HTML_SUFFIXES:
            text, blocks = html.render(path.read_bytes())
            return [Document(text, str(path), blocks=blocks)]
        if suffix in MARKDOWN_SUFFIXES:
            text = _read(path)
            return [Document(text, str(path), blocks=markdown.blocks(text))]
        if suffix in RST_SUFFIXES:
            text, blocks = rst.render(_read(path))
            return [Document(text, str(path), blocks=blocks)]
        if suffix == ".pdf":
            return [Document(_pdf(path), str(path))]
        if suffix == ".json":
            return _records(path, _json_records(_read(path)), text_field)
        if suffix == ".jsonl":
            return _records(path, _jsonl_records(_read(path)), text_field)
        return [Document(_read(path), str(path))]
    except LoaderError:
        raise
    except OSError as exc:
        raise LoaderError(f"{path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a parser's own error: the file is at fault
        raise LoaderError(f"{path}: cannot be read as {suffix or 'text'}: {exc}") from None


def _read(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoaderError(f"{path}: not UTF-8 (byte {exc.start})") from None


def _pdf(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    return _tidy("\n\n".join(page.extract_text() or "" for page in reader.pages))


def _tidy(text: str) -> str:
    """Lines stripped, runs of blank lines reduced to one."""
    out, blank = [], False
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            out.append(line)
            blank = False
        elif not blank and out:
            out.append("")
            blank = True
    return "\n".join(out).strip()


def _json_records(text: str):
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def _jsonl_records(text: str):
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise LoaderError(f"line {n}: {exc}") from None


def _records(path: Path, records, text_field: str) -> list[Document]:
    docs = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise LoaderError(f"{path}: record {i} is a {type(record).__name__}, not an object")
        text = record.get(text_field)
        if text is None:
            continue  # records without the field carry nothing to index
        if not isinstance(text, str):
            raise LoaderError(f"{path}: record {i} has a non-text {text_field!r}")
        meta = {k: v for k, v in record.items() if k != text_field and _scalar(v)}
        docs.append(Document(text, f"{path}#{i}", meta))
    return docs


def _scalar(value) -> bool:
    return isinstance(value, str | int | float | bool) or value is None
