"""Collections with an embedder, embedded and over gRPC: documents in, text queries, the
Embed RPC, and the errors of each."""

import numpy as np
import pytest

import embed
import vdb
from llm.errors import ModelNotFoundError, TokenizerError

DOCS = {
    "cat": "The cat sat on the mat.",
    "market": "Stock markets fell sharply on Monday.",
    "kitten": "A kitten is sleeping on a warm rug.",
    "rain": "Heavy rain is expected in the north tomorrow.",
}


@pytest.fixture
def model(minilm):
    return embed.Embedder(minilm["q8_0"], name=str(minilm["q8_0"]))


def _fill(col):
    col.upsert(list(DOCS), documents=list(DOCS.values()), payloads=[{"n": i} for i in range(4)])


def test_embedded_collection_embeds_documents_and_queries(tmp_path, model):
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("docs", embedder=model)
        assert col.dim == 384 and col.embedder is model
        _fill(col)
        hits = col.search("a small cat resting", k=2)
        assert {h.id for h in hits} == {"cat", "kitten"}
        assert [h[0].id for h in col.search(["stock prices dropped", "weather forecast"], k=1)] == [
            "market",
            "rain",
        ]
        expected = model.embed([DOCS["rain"]])[0]
        np.testing.assert_allclose(col.get("rain").vector, expected, atol=1e-6)
        assert col.search("umbrella weather", k=1, filter={"n": {"$lt": 3}})[0].id != "rain"
        col.upsert(["x"], [expected])  # vectors still work
    with vdb.open(tmp_path / "db") as db:  # the model name was recorded: embeds after a reopen
        col = db.get_collection("docs")
        assert col.config.embedder == str(model.path)
        assert col.search("feline", k=1)[0].id in ("cat", "kitten")


def test_embedding_errors(tmp_path, model):
    with vdb.open(tmp_path / "db") as db:
        plain = db.create_collection("plain", 384)
        with pytest.raises(vdb.InvalidArgumentError, match="no embedder"):
            plain.upsert(["a"], documents=["text"])
        with pytest.raises(vdb.InvalidArgumentError, match="no embedder"):
            plain.search("text")
        with pytest.raises(vdb.InvalidArgumentError, match="dim is required"):
            db.create_collection("nodim")
        with pytest.raises(vdb.DimensionError):
            db.create_collection("wrong", 10, embedder=model)
        col = db.create_collection("docs", embedder=model)
        with pytest.raises(vdb.InvalidArgumentError, match="vectors are required"):
            col.upsert(["a"])
        with pytest.raises(vdb.InvalidArgumentError, match="document 1 is None"):
            col.upsert(["a", "b"], documents=["text", None])
        with pytest.raises(vdb.InvalidArgumentError):
            col.upsert(["a", "b"], documents=["only one"])
        with pytest.raises(ModelNotFoundError):
            db.create_collection("ghost", embedder="no-such-model")
        assert col.count() == 0 and db.list_collections() == ["docs", "plain"]


def test_remote_collection_with_server_side_embedder(tmp_path, server, remote, minilm):
    # the server resolves names in its model cache: put the q8_0 file there
    from embed.models import models_dir

    models_dir().mkdir(parents=True, exist_ok=True)
    target = models_dir() / "test-minilm.q8_0.gguf"
    if not target.exists():
        target.write_bytes(minilm["q8_0"].read_bytes())
    col = remote.create_collection("docs", embedder="test-minilm:q8_0")
    assert col.dim == 384 and col.info()["embedder"] == "test-minilm:q8_0"
    _fill(col)
    local_db = vdb.open(tmp_path / "local")
    local = local_db.create_collection("docs", embedder="test-minilm:q8_0")
    _fill(local)
    for query in ("a small cat resting", ["stock prices dropped", "weather forecast"]):
        ours, theirs = col.search(query, k=3), local.search(query, k=3)
        if not isinstance(query, str):
            ours, theirs = [h for hs in ours for h in hs], [h for hs in theirs for h in hs]
        assert [h.id for h in ours] == [h.id for h in theirs]
        for a, b in zip(ours, theirs, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-6)
    vectors = remote.embed(["hello", "world"], model="test-minilm:q8_0")
    np.testing.assert_allclose(vectors, local_db.embed(["hello", "world"], "test-minilm:q8_0"))
    assert col.embedder.embed(["hello"]).shape == (1, 384)
    for bad, error in (
        (lambda: remote.create_collection("p", embedder="/etc/passwd"), ModelNotFoundError),
        (lambda: remote.create_collection("q", embedder="nope"), ModelNotFoundError),
        (lambda: remote.embed([]), TokenizerError),
        (lambda: remote.embed(["a", 3]), TokenizerError),
        (lambda: col.upsert(["a"], documents=[None]), vdb.InvalidArgumentError),
        (lambda: remote.create_collection("r", 8).search("text"), vdb.InvalidArgumentError),
    ):
        with pytest.raises(error):
            bad()
    local_db.close()
