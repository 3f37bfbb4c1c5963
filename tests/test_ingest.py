"""Loaders, chunking and the ingestion pipeline: budgets, spans, heading paths, re-runs that
skip unchanged chunks, changed and vanished files, a server as the sink, and a run killed
with -9 that the next run completes."""

import json
import textwrap

import pytest
from click.testing import CliRunner

import vdb
from tests.helpers.kill import kill_when_counted
from vdb.cli.main import main as cli
from vdb.ingest import discover, ingest
from vdb.text import chunking, loaders

DOC = (
    """# Guide

Intro paragraph. It explains the guide.

## Install

Run the installer. Then restart.

## Use

"""
    + " ".join(f"Sentence number {i} says something about item {i}." for i in range(60))
    + """

Final short paragraph.
"""
)


def test_chunks_keep_budget_spans_and_headings(token_count):
    chunks = chunking.chunk(DOC, token_count, max_tokens=64, overlap=16)
    assert len(chunks) > 4
    for i, c in enumerate(chunks):
        assert c.index == i and DOC[c.start : c.end] == c.text
        assert token_count([c.text])[0] <= 64 + 2  # the sum of the units' counts, within a token
    assert chunks[0].headings == ("Guide",) and chunks[0].text.startswith("# Guide")
    install = [c for c in chunks if "installer" in c.text]
    assert install[0].headings == ("Guide", "Install") and "Intro" not in install[0].text
    use = [c for c in chunks if c.headings == ("Guide", "Use")]
    assert len(use) >= 3
    # a long paragraph is cut at sentence ends, and consecutive chunks of it overlap
    for a, b in zip(use, use[1:], strict=False):
        assert b.start < a.end
        assert a.text.rstrip().endswith(".")
    assert any("Final short paragraph." in c.text for c in chunks)


def test_a_heading_with_nothing_under_it_makes_no_chunk(token_count):
    chunks = chunking.chunk("# A\n\n## B\n\ntext here\n\n# C\n", token_count, max_tokens=64)
    assert [c.text for c in chunks] == ["## B\n\ntext here"]
    assert chunks[0].headings == ("A", "B")


def test_sync_from_the_current_directory(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    with vdb.open(tmp_path / "db") as db:
        ingest(db, ["."], "docs", ignore=["*.json*", "*.pdf", "*.html", "latin1.txt"])
        (corpus / "sub" / "moon.txt").unlink()
        report = ingest(db, ["."], "docs", sync=True, ignore=["*.json*", "*.pdf", "*.html"])
        assert report.deleted == 1


def test_a_sentence_longer_than_the_budget_is_cut_at_words(token_count):
    text = "word " * 300
    chunks = chunking.chunk(text, token_count, max_tokens=50, overlap=0)
    assert len(chunks) >= 6 and all(token_count([c.text])[0] <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()
    with pytest.raises(ValueError):
        chunking.chunk(text, token_count, max_tokens=50, overlap=26)
    assert chunking.chunk("\n\n  \n", token_count) == []


def _pdf(text: str) -> bytes:
    """A one-page PDF showing text in Helvetica, with its cross-reference table."""
    stream = f"BT /F1 18 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]/Contents 4 0 R"
        b"/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length %d>>stream\n%s\nendstream" % (len(stream), stream),
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "guide.md").write_text(DOC)
    (root / "sub" / "moon.txt").write_text("The moon orbits the earth every 27 days.\n")
    (root / "page.html").write_text(
        "<html><head><script>var secret = 1;</script></head><body><h2>Cats</h2>"
        "<p>Cats sleep a lot.</p><div>They purr.</div></body></html>"
    )
    (root / "records.jsonl").write_text(
        json.dumps({"body": "Mars is red.", "lang": "en"}) + "\n" + json.dumps({"x": 1}) + "\n"
    )
    (root / "paper.pdf").write_bytes(_pdf("Hello from a PDF"))
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / ".hidden" / "skip.md").write_text("hidden")
    (root / "image.png").write_bytes(b"\x89PNG")
    return root


def test_loaders(corpus):
    (html,) = loaders.load(corpus / "page.html")
    assert html.text == "## Cats\n\nCats sleep a lot.\n\nThey purr." and "secret" not in html.text
    (rec,) = loaders.load(corpus / "records.jsonl", text_field="body")
    assert (rec.text, rec.metadata, rec.source) == (
        "Mars is red.",
        {"lang": "en"},
        f"{corpus / 'records.jsonl'}#0",
    )
    assert loaders.load(corpus / "paper.pdf")[0].text == "Hello from a PDF"
    with pytest.raises(loaders.LoaderError, match="not UTF-8"):
        loaders.load(corpus / "latin1.txt")
    (corpus / "bad.json").write_text("{oops")
    with pytest.raises(loaders.LoaderError):
        loaders.load(corpus / "bad.json")
    found = {p.name for p in discover([corpus])}
    assert found == {
        "guide.md",
        "moon.txt",
        "page.html",
        "records.jsonl",
        "paper.pdf",
        "latin1.txt",
        "bad.json",
    }
    assert {p.name for p in discover([corpus], ignore=["sub", "*.json"])} == found - {
        "moon.txt",
        "bad.json",
    }
    assert [p.name for p in discover([str(corpus / "*.md")])] == ["guide.md"]
    assert {p.name for p in discover([str(corpus / "**" / "*.txt")])} == {"moon.txt", "latin1.txt"}
    with pytest.raises(ValueError, match="no such file"):
        discover([corpus / "missing"])


def test_ingest_reruns_changes_and_sync(tmp_path, corpus):
    with vdb.open(tmp_path / "db") as db:
        first = ingest(db, [corpus], "docs", text_field="body", chunk_tokens=64)
        assert first.files == 6 and [f for f, _ in first.failed] == [str(corpus / "latin1.txt")]
        col = db.get_collection("docs")
        assert col.count() == first.chunks == first.embedded
        hit = col.search("How often does the moon go around the earth?", k=1)[0]
        assert hit.payload["file"] == str(corpus / "sub" / "moon.txt")
        assert hit.document.startswith("The moon")
        (rec,) = col.search("red planet", k=1, filter={"meta.lang": "en"})
        assert rec.payload["source"].endswith("records.jsonl#0")
        again = ingest(db, [corpus], "docs", text_field="body", chunk_tokens=64)
        assert (again.unchanged_files, again.embedded, again.deleted) == (5, 0, 0)
        # a changed file: only its new chunk is embedded, its vanished one deleted
        (corpus / "guide.md").write_text(DOC.replace("Then restart.", "Then reboot twice."))
        changed = ingest(db, [corpus], "docs", text_field="body", chunk_tokens=64)
        assert changed.unchanged_files == 4 and changed.embedded == 1 and changed.deleted == 1
        assert col.count() == changed.chunks
        texts = [r.document for r in col.scroll(limit=1000)[0]]
        assert any("reboot twice" in t for t in texts) and not any("restart" in t for t in texts)
        # a vanished file goes with --sync only
        (corpus / "sub" / "moon.txt").unlink()
        kept = ingest(db, [corpus], "docs", text_field="body", chunk_tokens=64)
        assert kept.deleted == 0 and col.count({"file": str(corpus / "sub" / "moon.txt")}) == 1
        synced = ingest(db, [corpus], "docs", text_field="body", chunk_tokens=64, sync=True)
        assert synced.deleted == 1 and col.count({"file": str(corpus / "sub" / "moon.txt")}) == 0
        with pytest.raises(ValueError):
            ingest(db, [corpus], "docs", batch_size=0)
        with pytest.raises(ValueError, match="chunk tokens"):
            ingest(db, [corpus], "docs", chunk_tokens=0)
        db.create_collection("plain", dim=3)
        with pytest.raises(ValueError, match="no embedder"):
            ingest(db, [corpus], "plain")


def test_ingest_into_a_server(tmp_path, corpus, server):
    with vdb.connect(server[1]) as remote:
        report = ingest(remote, [corpus / "guide.md"], "docs", chunk_tokens=64)
        assert report.embedded == remote.get_collection("docs").count() > 4
        again = ingest(remote, [corpus / "guide.md"], "docs", chunk_tokens=64)
        assert again.unchanged_files == 1 and again.embedded == 0


def test_cli(tmp_path, corpus):
    runner = CliRunner()
    args = ["--data", str(tmp_path / "db"), "ingest", str(corpus), "-c", "docs", "--json"]
    out = runner.invoke(cli, [*args, "--text-field", "body"])
    assert out.exit_code == 3, out.output  # latin1.txt failed, the others were ingested
    summary = json.loads(out.output)
    assert summary["files"] == 6 and summary["embedded"] == summary["chunks"] > 5
    assert summary["failed"][0]["file"].endswith("latin1.txt")
    again = ["--data", str(tmp_path / "db"), "ingest", str(corpus), "-c", "docs"]
    out = runner.invoke(cli, [*again, "--text-field", "body"])
    assert out.exit_code == 3 and "6 files (5 unchanged, 1 failed)" in out.output
    # other chunking settings redo the chunks of unchanged files
    out = runner.invoke(cli, [*again, "--text-field", "body", "--chunk-tokens", "80"])
    assert out.exit_code == 3 and "6 files (0 unchanged, 1 failed)" in out.output
    out = runner.invoke(cli, ["--data", str(tmp_path / "db"), "ingest", "nowhere", "-c", "docs"])
    assert out.exit_code == 1 and "no such file" in out.output


KILLED_RUN = textwrap.dedent(
    """
    import sys
    import vdb
    from vdb.ingest import ingest

    def progress(report, done, total):
        print(report.embedded, flush=True)

    with vdb.open(sys.argv[1]) as db:
        ingest(db, [sys.argv[2]], "docs", batch_size=4, progress=progress)
    print("done", flush=True)
    """
)


def test_a_killed_ingestion_completes_on_the_next_run(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(120):
        (root / f"note{i:03d}.md").write_text(f"# Note {i}\n\nThis is note number {i}.\n")
    kill_when_counted(KILLED_RUN, [str(tmp_path / "db"), str(root)], 20)
    with vdb.open(tmp_path / "db") as db:
        partial = db.get_collection("docs").count()
        assert 20 <= partial < 120
        report = ingest(db, [root], "docs")
        assert report.embedded == 120 - partial
        col = db.get_collection("docs")
        assert col.count() == 120
        files = {r.payload["file"] for r in col.scroll(limit=1000)[0]}
        assert len(files) == 120
        assert ingest(db, [root], "docs").unchanged_files == 120
