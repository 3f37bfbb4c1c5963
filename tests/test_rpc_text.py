"""Keyword and hybrid queries over gRPC, through a real server on 127.0.0.1 port 0: the remote
client gives what the embedded API gives; collections are created with a keyword index or get
one later; bad input is INVALID_ARGUMENT (and the same ValueError subclass in the client)."""

import grpc
import numpy as np
import pytest

import vdb
from tests.rpc import Stubs
from vdb.errors import InvalidArgumentError
from vdb.rpc import convert
from vdb.rpc._gen import collections_pb2 as cpb
from vdb.rpc._gen import points_pb2 as ppb

Code = grpc.StatusCode
DOCS = [
    "the river runs under the old stone bridge",
    "a forest of tall pines by the river",
    "engine signal lost over the harbor",
    "stone walls and copper roofs",
    "rivers and bridges of the north",
] * 8
QUERIES = ["river bridge", "stone", "signal harbor engine", "copper copper roof", "nothing here"]


def fill(col):
    rng = np.random.default_rng(7)
    n = len(DOCS)
    pays = [{"g": i % 3, "title": DOCS[(i + 1) % n]} for i in range(n)]
    col.upsert(list(range(n)), rng.standard_normal((n, 4)), payloads=pays, documents=DOCS)


@pytest.fixture
def pair(remote, tmp_path):
    """(remote collection, embedded twin) holding the same points."""
    with vdb.open(tmp_path / "local") as db:
        cols = [
            d.create_collection("t", 4, index={"kind": "flat"}, text="en") for d in (remote, db)
        ]
        for c in cols:
            fill(c)
        yield cols


def same(a, b):
    if isinstance(a, list):
        assert [(h.id, h.score, h.payload, h.document) for h in a] == [
            (h.id, h.score, h.payload, h.document) for h in b
        ]
    else:
        assert [len(x) for x in a] == [len(x) for x in b]
        for x, y in zip(a, b, strict=True):
            same(x, y)


def test_keyword_and_hybrid_queries_are_congruent(pair):
    rc, lc = pair
    assert rc.config.text == lc.config.text and rc.info()["text"] == {
        "analyzer": "en",
        "field": None,
    }
    q = np.array([0.3, -1, 0.5, 2], np.float32)
    for text in QUERIES:
        for kwargs in ({}, {"filter": {"g": 1}}, {"k": 3, "with_payload": ["g"]}):
            same(rc.search(text=text, **kwargs), lc.search(text=text, **kwargs))
            for fusion, weight in (("convex", None), ("convex", 0.7), ("rrf", None), ("dbsf", 0.2)):
                args = dict(text=text, fusion=fusion, dense_weight=weight, **kwargs)
                same(rc.search(q, **args), lc.search(q, **args))
    batch = dict(text=QUERIES[:2], k=4, filter={"g": {"$in": [0, 2]}})
    same(rc.search(**batch), lc.search(**batch))
    same(rc.search([q, -q], **batch), lc.search([q, -q], **batch))
    bare = rc.search(text="river", k=5, with_payload=False, with_document=False)
    assert len(bare) == 5 and all(h.payload is None for h in bare)


def test_filtered_queries_return_k_hits_over_grpc(pair):
    rc, _ = pair
    assert len(rc.search(text="river", k=8, filter={"g": 0})) == 8
    q = np.ones(4, np.float32)
    assert len(rc.search(q, text="zzz", k=13, filter={"g": 0})) == 13  # 14 points match


def test_text_index_set_at_creation_or_later(remote):
    col = remote.create_collection("f", 2, text={"analyzer": "simple", "field": "title"})
    assert col.config.text.field == "title" and col.info()["text"]["analyzer"] == "simple"
    col.upsert([1, 2], [[1, 0], [0, 1]], payloads=[{"title": "The Cats"}, {"title": "dogs"}])
    assert [h.id for h in col.search(text="the")] == [1]  # "simple" keeps stop words
    plain = remote.create_collection("p", 2)
    plain.upsert([1, 2], [[1, 0], [0, 1]], documents=["red foxes", "blue whales"])
    with pytest.raises(InvalidArgumentError, match="no keyword index"):
        plain.search(text="fox")
    plain.enable_text()
    assert [h.id for h in plain.search(text="fox")] == [1]
    assert remote.get_collection("p").config.text is not None
    same_col = remote.get_or_create_collection("p", 2, text="en")
    assert same_col.config.text.analyzer == "en"
    with pytest.raises(InvalidArgumentError):
        remote.get_or_create_collection("p", 2, text="fr")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(text=""), "non-empty"),
        (dict(text=["ok", " "]), "non-empty"),
        (dict(text="river", fusion="max"), "unknown fusion"),
        (dict(text="river", dense_weight=2.0), "dense_weight"),
        (dict(text="river", fusion="rrf", dense_weight=0.5), "rrf"),
    ],
)
def test_bad_queries_in_the_client(pair, kwargs, fragment):
    rc, lc = pair
    for col in (rc, lc):
        with pytest.raises(InvalidArgumentError, match=fragment):
            col.search(np.ones(4, np.float32), **kwargs)


def test_bad_input_is_invalid_argument(pair, server):
    stubs = Stubs(server[1])
    try:
        q = convert.pack(np.ones((1, 4), np.float32))
        two = convert.pack(np.ones((2, 4), np.float32))

        def search(**fields):
            return stubs.code(stubs.points.Search, ppb.SearchRequest(collection="t", **fields))

        assert search(text=["river"]) == Code.OK
        assert search(queries=q, text=["river"], fusion="dbsf", dense_weight=0.3) == Code.OK
        assert search(text=[""]) == Code.INVALID_ARGUMENT
        assert search(text=["  "], queries=q) == Code.INVALID_ARGUMENT
        assert search(text=["river"], fusion="max") == Code.INVALID_ARGUMENT
        assert search(text=["river"], dense_weight=1.5) == Code.INVALID_ARGUMENT
        assert search(text=["river"], dense_weight=-1) == Code.INVALID_ARGUMENT
        assert search(text=["river"], fusion="rrf", dense_weight=0.5) == Code.INVALID_ARGUMENT
        assert search(queries=q, fusion="rrf") == Code.INVALID_ARGUMENT  # fusion without text
        assert search(text=["a", "b"]) == Code.INVALID_ARGUMENT  # Search takes one
        batch = ppb.SearchRequest(collection="t", queries=two, text=["river"])
        assert stubs.code(stubs.points.SearchBatch, batch) == Code.INVALID_ARGUMENT
        stubs.collections.Create(cpb.CreateCollectionRequest(name="plain", dim=4))
        plain = ppb.SearchRequest(collection="plain", text=["river"])
        assert stubs.code(stubs.points.Search, plain) == Code.INVALID_ARGUMENT
        bad = cpb.CreateCollectionRequest(name="x", dim=2, text=cpb.TextParams(analyzer="xx"))
        assert stubs.code(stubs.collections.Create, bad) == Code.INVALID_ARGUMENT
        bad = cpb.EnableTextRequest(name="plain", text=cpb.TextParams(analyzer="klingon"))
        assert stubs.code(stubs.collections.EnableText, bad) == Code.INVALID_ARGUMENT
        bad = cpb.EnableTextRequest(name="plain", text=cpb.TextParams(field="a..b"))
        assert stubs.code(stubs.collections.EnableText, bad) == Code.INVALID_ARGUMENT
    finally:
        stubs.close()
