"""Loaders that follow the document (Markdown through markdown-it-py, reStructuredText
through docutils, HTML's main content) and chunks that keep its blocks: code fences whose `#`
lines are code, underlined titles, nested lists, tables, page furniture left out, and no
chunk over the embedder's window, counted whole with its tokenizer."""

import os
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vdb
from vdb.ingest import discover, ingest
from vdb.text import blocks, chunking, html, loaders, markdown, rst

MARKDOWN = textwrap.dedent(
    """\
    ---
    title: front matter
    ---
    # Guide

    Intro paragraph.

    ```sh
    # install it
    pip install thing
    ```

    Options
    -------

    - `timeout`: how long to wait,
      in seconds.
    - `retries`: how often to retry
      - nested: once more

    | option | default |
    |---|---|
    | timeout | 30 |
    | retries | 3 |
    """
)


def _spans(text, found):
    return [(b.kind, text[b.start : b.end]) for b in found]


def test_markdown_blocks_follow_commonmark():
    found = markdown.blocks(MARKDOWN)
    got = _spans(MARKDOWN, found)
    assert got[0] == ("heading", "# Guide") and found[0].title == "Guide"
    assert ("code", "```sh\n# install it\npip install thing\n```") in got
    assert [t for k, t in got if k == "heading"] == ["# Guide", "Options\n-------"]
    assert ("item", "- `timeout`: how long to wait,\n  in seconds.") in got
    assert ("item", "- nested: once more") in got
    assert [t for k, t in got if k == "row"] == [
        "| option | default |",
        "| timeout | 30 |",
        "| retries | 3 |",
    ]
    assert not any("front matter" in t for _, t in got)


def test_markdown_chunks_keep_code_whole_and_never_take_its_comments_for_headings(token_count):
    chunks = chunking.chunk(MARKDOWN, token_count, 64, 8, markdown.blocks(MARKDOWN))
    assert all(c.headings[0] == "Guide" for c in chunks)
    assert {c.headings for c in chunks} == {("Guide",), ("Guide", "Options")}
    code = [c for c in chunks if "pip install" in c.text]
    assert len(code) == 1 and "```sh\n# install it\npip install thing\n```" in code[0].text
    rows = [c for c in chunks if "| retries | 3 |" in c.text]
    assert rows and all(c.headings == ("Guide", "Options") for c in rows)
    # a long code block is cut at line ends, each line whole
    long_code = "# Code\n\n```\n" + "\n".join(f"value_{i} = {i} * {i}" for i in range(80))
    long_code += "\n```\n"
    pieces = chunking.chunk(long_code, token_count, 48, 0, markdown.blocks(long_code))
    assert len(pieces) > 2
    for c in pieces:
        assert token_count([c.text])[0] <= 48
        for line in filter(None, c.text.splitlines()):
            assert line.startswith(("value_", "```", "# Code")), line


RST = textwrap.dedent(
    """\
    =====
    Guide
    =====

    Call :func:`thing.run` with :class:`~thing.Options`.

    Install
    -------

    Run it::

        # not a title
        pip install thing

    :param timeout: how long to wait
    :returns: the result

    * first item
    * second item

      * nested item

    .. note:: Read the notes.

    .. toctree::

       api

    Details
    ~~~~~~~

    +---------+---------+
    | option  | default |
    +=========+=========+
    | timeout | 30      |
    +---------+---------+
    """
)


def test_rst_titles_literals_fields_and_sphinx_roles():
    text, found = rst.render(RST)
    got = _spans(text, found)
    heads = [(b.title, b.level) for b in found if b.kind == "heading"]
    assert heads == [("Guide", 1), ("Install", 2), ("Details", 3)]
    assert ("para", "Call thing.run with thing.Options.") in got
    assert ("code", "```\n# not a title\npip install thing\n```") in got
    assert ("item", "param timeout: how long to wait") in got
    assert ("item", "- nested item") in got
    assert ("para", "Note: Read the notes.") in got
    assert ("row", "timeout | 30") in got
    assert "api" not in text  # the toctree builds the site, it is not content


def test_rst_chunks_carry_their_title_path(tmp_path, token_count):
    path = tmp_path / "guide.rst"
    path.write_text(RST)
    (doc,) = loaders.load(path)
    chunks = chunking.chunk(doc.text, token_count, 64, 8, doc.blocks)
    assert {c.headings for c in chunks} >= {("Guide",), ("Guide", "Install")}
    assert any(c.headings == ("Guide", "Install", "Details") for c in chunks)


PAGE = """<html><head><title>pickle</title></head><body>
<div class="related" role="navigation"><h3>Navigation</h3><ul><li>Previous topic</li>
<li>Next topic</li></ul></div>
<div class="document"><div class="body" role="main">
<section id="p"><h1>pickle &#8212; serialization<a class="headerlink" href="#p">&#182;</a></h1>
<p>Currently the default protocol is 4.</p>
<pre># a comment in code
import pickle</pre>
<ul><li>Protocol 0 is the original.<ul><li>nested item</li></ul></li></ul>
<table><tr><th>name</th><th>value</th></tr><tr><td>DEFAULT</td><td>4</td></tr></table>
</section></div></div>
<div class="sphinxsidebar"><h3>This Page</h3><ul><li>Show Source</li></ul></div>
<div class="footer">Copyright</div></body></html>"""


def test_html_keeps_the_main_content_and_drops_the_furniture():
    text, found = html.render(PAGE.encode())
    got = _spans(text, found)
    assert got[0] == ("heading", "# pickle \u2014 serialization")
    assert "\u00b6" not in text
    for furniture in ("Navigation", "Previous topic", "This Page", "Show Source", "Copyright"):
        assert furniture not in text
    assert ("code", "```\n# a comment in code\nimport pickle\n```") in got
    assert [b.title for b in found if b.kind == "heading"] == ["pickle \u2014 serialization"]
    assert ("item", "- Protocol 0 is the original.") in got
    assert ("item", "- nested item") in got
    assert ("row", "DEFAULT | 4") in got


def test_blocks_join_renders_headings_as_markdown_lines():
    text, found = blocks.join([("heading", "A  title", 2), ("para", "Body.", 0)])
    assert text == "## A title\n\nBody."
    assert found[0].title == "A title" and text[found[1].start : found[1].end] == "Body."


WORDS = st.sampled_from(
    "the a timeout option value returns configuration pickle protocol serialization "
    "unbelievably internationalization Python3.11 x=1 {'key': [1, 2]} http://example.com/path "
    "naïve café 東京 ß".split()
)
SENTENCE = st.lists(WORDS, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
BLOCK = st.one_of(
    st.lists(SENTENCE, min_size=1, max_size=12).map(" ".join),
    st.lists(WORDS, min_size=1, max_size=6).map(lambda ws: "## " + " ".join(ws)),
    st.lists(st.lists(WORDS, max_size=30).map(" ".join), min_size=1, max_size=30).map(
        lambda lines: "```\n# " + "\n".join(lines) + "\n```"
    ),
    st.lists(SENTENCE, min_size=1, max_size=6).map(lambda s: "\n".join("- " + x for x in s)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(BLOCK, min_size=1, max_size=12), st.integers(16, 96))
def test_no_chunk_exceeds_the_window(token_count, parts, budget):
    text = "\n\n".join(parts) + "\n"
    for structure in (None, markdown.blocks(text)):
        for c in chunking.chunk(text, token_count, budget, budget // 4, structure):
            assert text[c.start : c.end] == c.text
            assert token_count([c.text])[0] <= budget or len(c.text.split()) == 1, c.text


def test_a_file_named_two_ways_is_one_file(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text about the first file.\n")
    monkeypatch.chdir(tmp_path)
    named = discover(["docs/a.md", str(docs / "a.md"), "docs", os.path.join("docs", "..", "docs")])
    assert named == [(docs / "a.md").resolve()]
    db = vdb.open(tmp_path / "db")
    ingest(db, ["docs/a.md"], "d")
    monkeypatch.chdir(docs)
    ingest(db, ["a.md"], "d")
    ingest(db, [str(docs / "a.md")], "d")
    assert db.get_collection("d").count() == 1
    db.close()


@pytest.fixture(scope="module")
def terms():
    from vdb.text.bm25 import Bm25Index

    return Bm25Index(["a placeholder text"]).tokenize


def _answer(question, passages, embedder, terms):
    from vdb.text import extract

    best, text, _ = extract.best_span(question, passages, embedder, terms)
    return best, text


def test_the_answer_is_the_sentence_that_states_the_value(embedder, terms):
    passage = (
        "The protocol version used for pickling can be chosen with the protocol argument. "
        "Currently the default protocol is 4. Protocol 5 was added in Python 3.8."
    )
    _, text = _answer("What is the default pickle protocol?", [passage], embedder, terms)
    assert "default protocol is 4" in text


def test_the_answer_can_be_a_list_item_and_skips_code_unless_asked(embedder, terms):
    passage = textwrap.dedent(
        """\
        The command line reads a few environment variables.

        ```sh
        # FLASK_APP tells the command where the app is
        export FLASK_APP=hello
        ```

        - `FLASK_APP`: where to find the application.
        - `FLASK_DEBUG`: turns on the debugger and the reloader.
        """
    )
    best, text = _answer("What does FLASK_DEBUG turn on?", [passage], embedder, terms)
    assert best.kind == "item" and "the debugger and the reloader" in text
    best, text = _answer(
        "Show an example command to export the app variable", [passage], embedder, terms
    )
    assert best.kind == "code" and "export FLASK_APP=hello" in text  # asked for: code
    from vdb.text import extract

    assert all(c.kind != "code" for c in extract.candidates(passage, code=False))
    assert any(c.kind == "code" for c in extract.candidates(passage, code=True))


def test_the_answer_may_come_from_the_second_source(embedder, terms):
    first = "Logging is configured with dictConfig. Handlers write records to streams."
    second = "The development server listens on port 5000 by default."
    best, text = _answer(
        "Which port does the development server listen on by default?",
        [first, second],
        embedder,
        terms,
    )
    assert best.passage == 1 and "5000" in text


def test_rst_object_descriptions_keep_their_text():
    text, _ = rst.render(
        textwrap.dedent(
            """\
            .. py:data:: SESSION_COOKIE_NAME

                The name of the session cookie.

                Default: ``'session'``

            .. function:: url_for(endpoint, **values)
               :noindex:

               Generates a URL to the given endpoint.

            .. versionadded:: 2.1
               The ``foo`` option.
            """
        )
    )
    assert "SESSION_COOKIE_NAME: The name of the session cookie." in text
    assert "Default: 'session'" in text
    assert "url_for(endpoint, **values): Generates a URL to the given endpoint." in text
    assert "New in version 2.1: The foo option." in text


def test_chunks_stored_under_a_relative_name_are_not_duplicated(tmp_path, monkeypatch):
    """Earlier versions stored a file by the name it was given; the next ingestion takes
    those chunks as the file's own."""
    from vdb.collection import scan

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nFirst part of the file.\n\n# B\n\nSecond part.\n")
    monkeypatch.chdir(tmp_path)
    db = vdb.open(tmp_path / "db")
    ingest(db, ["docs"], "d")
    col = db.get_collection("d")
    records = list(scan(col, with_vectors=True))
    chunks = len(records)
    assert chunks == 2
    col.delete(ids=[r.id for r in records])
    col.upsert(
        [f"old{i}" for i in range(chunks)],
        [r.vector for r in records],
        [{**r.payload, "file": "docs/a.md", "settings": "older"} for r in records],
        [r.document for r in records],
    )
    assert col.count() == chunks
    ingest(db, ["docs"], "d")
    names = {r.payload["file"] for r in scan(col)}
    assert col.count() == chunks and names == {str((docs / "a.md").resolve())}
    db.close()
