"""Hybrid search and answers over an ingested corpus: BM25 kept in step with writes,
filters, extractive answers with their spans, generated answers within the model's context,
a remote collection, and the CLI."""

import json

import pytest
from click.testing import CliRunner

import llm
import vdb
from tests.conftest import fixture_file
from vdb import rag
from vdb.cli.main import main as cli
from vdb.ingest import ingest

NOTES = {
    "zebra.md": "# Zebras\n\nZebras have black and white stripes. Each pattern is unique.\n",
    "code.md": "# Errors\n\nThe error code XK-4471 means the disk is full. Free some space.\n",
    "moon.txt": "The moon orbits the earth in about 27 days. It has no air.\n",
    "tea.txt": "Green tea is made from unoxidized leaves. It is popular in Japan.\n",
}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "notes"
    root.mkdir()
    for name, text in NOTES.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def col(tmp_path, corpus):
    with vdb.open(tmp_path / "db") as db:
        ingest(db, [corpus], "notes")
        yield db.get_collection("notes")


def test_hybrid_search_finds_words_and_meanings(col, corpus):
    hits = rag.search(col, "XK-4471", k=2)  # a code only BM25 can match
    assert hits[0].payload["file"] == str(corpus / "code.md") and hits[0].score == 1.0
    hits = rag.search(col, "which satellite circles our planet", k=4)
    assert hits[0].payload["file"] == str(corpus / "moon.txt")
    assert all(0 <= h.score <= 1 for h in hits) and len(hits) == 4
    only = rag.search(col, "XK-4471", k=4, filter={"file": str(corpus / "tea.txt")})
    assert [h.payload["file"] for h in only] == [str(corpus / "tea.txt")]
    for bad in ("", "   "):
        with pytest.raises(ValueError):
            rag.search(col, bad)
    with pytest.raises(ValueError):
        rag.search(col, "moon", k=0)


def test_bm25_follows_writes_and_deletes(col, corpus):
    assert rag.search(col, "XK-4471", k=1)[0].payload["file"] == str(corpus / "code.md")
    col.delete(filter={"file": str(corpus / "code.md")})
    assert all(h.payload["file"] != str(corpus / "code.md") for h in rag.search(col, "XK-4471"))
    col.upsert(["new"], documents=["Report XK-4471 to the administrator."], payloads=[{}])
    assert rag.search(col, "XK-4471", k=1)[0].id == "new"


def test_extractive_answer(col, corpus, tmp_path):
    answer = rag.ask(col, "What does error code XK-4471 mean?")
    assert answer.extractive and answer.cited == [1]
    assert answer.text == "The error code XK-4471 means the disk is full."
    top = answer.sources[0]
    assert top.file == str(corpus / "code.md") and top.headings == ["Errors"]
    assert top.text[answer.span[0] : answer.span[1]] == answer.text
    with vdb.open(tmp_path / "empty") as db:
        db.create_collection("none", embedder="all-MiniLM-L6-v2")
        empty = rag.ask(db.get_collection("none"), "anything?")
        assert empty.sources == [] and "No source" in empty.text


def test_generated_answer_fits_the_context(col):
    model = llm.load(fixture_file("models", "stories260K.gguf"))
    pieces = []
    answer = rag.ask(
        col, "What is green tea?", model, k=4, max_tokens=24, temperature=0, on_piece=pieces.append
    )
    assert not answer.extractive and answer.text == "".join(pieces) and answer.text
    assert 1 <= len(answer.sources) <= 4
    assert set(answer.cited) <= {s.number for s in answer.sources}
    # a model without a chat template continues the few-shot document
    assert model.chat_template is None
    used = rag.prompt_tokens(model, "What is green tea?", answer.sources)
    assert used == len(model.tokenize(rag.completion_prompt("What is green tea?", answer.sources)))
    assert used <= model.n_ctx - 24
    # a smaller context holds fewer sources, and none at all raises
    small = llm.load(fixture_file("models", "stories260K.gguf"), n_ctx=used)
    fewer = rag.ask(col, "What is green tea?", small, k=4, max_tokens=24, temperature=0)
    assert len(fewer.sources) < len(answer.sources) or len(answer.sources) == 1
    with pytest.raises(ValueError, match="not even one source"):
        rag.ask(col, "What is green tea?", model, max_tokens=model.n_ctx - 10)


def test_remote_collection(tmp_path, corpus, server):
    with vdb.connect(server[1]) as remote:
        ingest(remote, [corpus], "notes")
        hits = rag.search(remote.get_collection("notes"), "XK-4471", k=1)
        assert hits[0].payload["file"] == str(corpus / "code.md")
        answer = rag.ask(remote.get_collection("notes"), "What does XK-4471 mean?")
        assert answer.text == "The error code XK-4471 means the disk is full."


def test_cli(tmp_path, corpus):
    runner = CliRunner()
    data = ["--data", str(tmp_path / "db")]
    assert runner.invoke(cli, [*data, "ingest", str(corpus), "-c", "notes"]).exit_code == 0
    out = runner.invoke(cli, [*data, "ask", "What does XK-4471 mean?", "-c", "notes"])
    assert out.exit_code == 0, out.output
    assert "Extractive answer" in out.output and "disk is full" in out.output
    assert f"from [1] {corpus / 'code.md'} > Errors" in out.output
    out = runner.invoke(cli, [*data, "ask", "What does XK-4471 mean?", "-c", "notes", "--json"])
    data_json = json.loads(out.output)
    assert data_json["extractive"] and data_json["sources"][0]["headings"] == ["Errors"]
    out = runner.invoke(cli, [*data, "search", "zebra stripes", "-c", "notes", "-k", "1"])
    assert out.exit_code == 0 and "zebra.md > Zebras" in out.output
    out = runner.invoke(cli, [*data, "ask", "x", "-c", "missing"])
    assert out.exit_code == 1 and "CollectionNotFoundError" in out.output


def test_cli_generates_with_a_model_by_name(tmp_path, corpus):
    """`vdb ask --model NAME`: a model pulled into the cache, named instead of its path."""
    from vdb import models

    name = f"stories-ask-{tmp_path.name}"
    models.pull(str(fixture_file("models", "stories260K.gguf")), name=name, progress=False)
    try:
        runner = CliRunner()
        data = ["--data", str(tmp_path / "db")]
        assert runner.invoke(cli, [*data, "ingest", str(corpus), "-c", "notes"]).exit_code == 0
        args = [*data, "ask", "What is green tea?", "-c", "notes", "-n", "8", "-t", "0"]
        out = runner.invoke(cli, [*args, "--model", name])
        assert out.exit_code == 0, out.output
        assert "Extractive answer" not in out.output and "Sources" in out.output
        out = runner.invoke(cli, [*args, "--model", "no-such-model"])
        assert out.exit_code == 1 and "ModelNotFoundError" in out.output
    finally:
        models.remove(name)


def test_sentences_span_wrapped_lines_but_not_headings():
    from vdb.text.extract import sentence_spans

    text = "## Head\n\nFirst line of a sentence\nthat wraps. Second one!\n\nNew para: here."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "First line of a sentence\nthat wraps.",
        "Second one!",
        "New para: here.",
    ]


def test_ask_rpc_generates_with_the_servers_model(tmp_path, corpus):
    import grpc

    from tests.rpc import serving
    from vdb.rpc._gen import retrieval_pb2 as rpb
    from vdb.rpc._gen import retrieval_pb2_grpc as rgrpc

    model_file = fixture_file("models", "stories260K.gguf")
    with serving(tmp_path / "db", model=str(model_file)) as (_, address):
        with vdb.connect(address) as remote, vdb.connect_model(address) as model:
            ingest(remote, [corpus], "notes")
            col = remote.get_collection("notes")
            pieces = []
            answer = rag.ask(
                col,
                "What is green tea?",
                model,
                k=2,
                max_tokens=16,
                temperature=0,
                on_piece=pieces.append,
            )
            assert not answer.extractive and answer.text == "".join(pieces) and answer.text
            assert 1 <= len(answer.sources) <= 2 and answer.sources[0].file
            local = llm.load(model_file)
            same = rag.ask(col, "What is green tea?", local, k=2, max_tokens=16, temperature=0)
            assert same.text == answer.text  # the server's model, the client's: one answer
            stub = rgrpc.RetrievalStub(grpc.insecure_channel(address))

            def code(method, request):
                try:
                    r = method(request, timeout=30)
                    list(r) if not hasattr(r, "hits") else None
                except grpc.RpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

            C = grpc.StatusCode
            assert code(stub.HybridSearch, rpb.HybridSearchRequest(collection="notes")) == (
                C.INVALID_ARGUMENT
            )
            assert code(stub.HybridSearch, rpb.HybridSearchRequest(collection="x", query="a")) == (
                C.NOT_FOUND
            )
            assert code(stub.Ask, rpb.AskRequest(collection="notes", question=" ")) == (
                C.INVALID_ARGUMENT
            )
            ok = rpb.AskRequest(collection="notes", question="tea?", generate=True, max_tokens=4)
            assert code(stub.Ask, ok) == C.OK
    with serving(tmp_path / "db2") as (_, address):
        with vdb.connect(address) as remote:
            ingest(remote, [corpus], "notes")
            stub = rgrpc.RetrievalStub(grpc.insecure_channel(address))
            request = rpb.AskRequest(collection="notes", question="tea?", generate=True)
            assert code(stub.Ask, request) == C.FAILED_PRECONDITION


def test_hybrid_search_on_an_l2_collection(tmp_path, corpus):
    with vdb.open(tmp_path / "db") as db:
        db.create_collection("l2", metric="l2", embedder="all-MiniLM-L6-v2")
        ingest(db, [corpus], "l2")
        hits = rag.search(db.get_collection("l2"), "which satellite circles our planet", k=2)
        assert hits[0].payload["file"] == str(corpus / "moon.txt")
