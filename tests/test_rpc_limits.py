"""Bounded work per request: limits on queries, k, results and texts to embed refused with
RESOURCE_EXHAUSTED before the work (by the client too, from the limits the server reports);
responses built a record at a time and refused as soon as they would pass the message limit;
long requests stop at their deadline; results built in chunks equal the embedded API's."""

import time

import grpc
import numpy as np
import pytest

import vdb
from tests.rpc import ServerProcess, Stubs, serving
from vdb.rpc import convert
from vdb.rpc._gen import embeddings_pb2 as epb
from vdb.rpc._gen import embeddings_pb2_grpc as egrpc
from vdb.rpc._gen import generation_pb2 as gpb
from vdb.rpc._gen import generation_pb2_grpc as ggrpc
from vdb.rpc._gen import memory_pb2 as mpb
from vdb.rpc._gen import memory_pb2_grpc as mgrpc
from vdb.rpc._gen import points_pb2 as ppb

Code = grpc.StatusCode
LIMITS = dict(
    max_batch_queries=100, max_k=50, max_results=1000, max_embed_texts=8, max_text_bytes=1000
)


@pytest.fixture
def limited(tmp_path):
    with serving(tmp_path / "db", max_message_bytes=1 << 20, **LIMITS) as served:
        yield served


def _vectors(n, dim, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_limits_are_refused_before_the_work(limited):
    _, address = limited
    with vdb.connect(address) as db:
        assert db.info()["limits"] == {
            "max_batch_queries": 100,
            "max_k": 50,
            "max_results": 1000,
            "max_texts": 8,
            "max_text_bytes": 1000,
        }
        col = db.create_collection("c", 4)
        col.upsert(list(range(20)), _vectors(20, 4))
        for queries, k, match in [
            (_vectors(101, 4), 1, "101 queries in one batch"),
            (_vectors(1, 4)[0], 51, "k=51 is above"),
            (_vectors(21, 4), 50, "21 queries x k=50 asks for 1050 results"),
        ]:
            with pytest.raises(vdb.LimitExceededError, match=match) as info:
                col.search(queries, k=k)
            assert isinstance(info.value, ValueError)
        with pytest.raises(vdb.LimitExceededError, match="9 texts to embed"):
            db.embed(["a"] * 9)
        assert len(col.search(_vectors(20, 4), k=50)) == 20  # at the limit: served
    # the server checks as well, for clients that do not
    stubs = Stubs(address)
    points = stubs.points
    for request in [
        ppb.SearchRequest(collection="c", queries=convert.pack(_vectors(101, 4)), k=1),
        ppb.SearchRequest(collection="c", queries=convert.pack(_vectors(1, 4)), k=51),
        ppb.SearchRequest(collection="c", queries=convert.pack(_vectors(1, 4)), ef=51),
        ppb.SearchRequest(collection="c", queries=convert.pack(_vectors(21, 4)), k=50),
    ]:
        assert stubs.code(points.SearchBatch, request) == Code.RESOURCE_EXHAUSTED
    embed = egrpc.EmbeddingsStub(stubs.channel).Embed
    assert stubs.code(embed, epb.EmbedRequest(texts=["a"] * 9)) == Code.RESOURCE_EXHAUSTED
    memory = mgrpc.MemoryStub(stubs.channel)
    items = [mpb.MemoryItem(text=f"fact {i}") for i in range(9)]
    remember = mpb.RememberRequest(agent="a", items=items)
    assert stubs.code(memory.Remember, remember) == Code.RESOURCE_EXHAUSTED
    recall = mpb.RecallRequest(agent="a", text="fact", k=51)
    assert stubs.code(memory.Recall, recall) == Code.RESOURCE_EXHAUSTED
    # texts tokenized whole: at most 1000 bytes (500 two-byte characters)
    for text, code in (("\u00e9" * 500, Code.OK), ("\u00e9" * 501, Code.RESOURCE_EXHAUSTED)):
        count = mpb.CountTokensRequest(agent="a", text=text)
        assert stubs.code(memory.CountTokens, count) == code
        turn = mpb.AddTurnRequest(agent="a", role="user", text=text, session_id="s")
        assert stubs.code(memory.AddTurn, turn) == code
    tokenize = ggrpc.GenerationStub(stubs.channel).Tokenize
    long = gpb.TokenizeRequest(text="x" * 1001)
    assert stubs.code(tokenize, long) == Code.RESOURCE_EXHAUSTED  # before the model is sought
    stubs.close()


def test_payload_heavy_responses_are_refused_as_they_grow(limited):
    """One 300 KB payload near every query: a response of 100 copies would be 30 MB; the
    server stops at its 1 MB limit (MessageTooLargeError), the same request without payloads
    is answered, and so are single copies."""
    _, address = limited
    with vdb.connect(address) as db:
        col = db.create_collection("p", 4, "l2", index="flat")
        vectors = _vectors(50, 4)
        big = {"blob": "x" * (300 << 10)}
        col.upsert(list(range(50)), vectors, payloads=[big] + [{"i": i} for i in range(1, 50)])
        queries = np.repeat(vectors[:1], 10, axis=0)  # 10 queries whose best hit is point 0
        with pytest.raises(vdb.MessageTooLargeError, match="larger than max 1048576 bytes"):
            col.search(queries, k=5)
        assert col.search(queries[0], k=5)[0].payload == big
        with pytest.raises(vdb.MessageTooLargeError):
            col.get([0, 0, 0, 0, 0])
        assert [r.id for r in col.get([0, 1, 2])] == [0, 1, 2]
        with pytest.raises(vdb.MessageTooLargeError):
            col.search(np.repeat(vectors[:1], 4, axis=0), k=1)
        page, after = col.scroll(limit=3)
        assert [r.id for r in page] == [0, 1, 2] and after == 2
        assert col.count() == 50  # nothing written, the server serves on


def test_chunked_results_equal_the_embedded_ones(tmp_path):
    """SearchBatch runs a chunk of queries at a time and Get and Scroll read in pieces; the
    results are those of one embedded call."""
    vectors = _vectors(3000, 8, seed=3)
    queries = _vectors(2500, 8, seed=4)
    with vdb.open(tmp_path / "local") as local:
        col = local.create_collection("c", 8, index="flat")
        col.upsert(list(range(3000)), vectors, payloads=[{"i": i} for i in range(3000)])
        want = col.search(queries, k=10)
        want_get = col.get(list(range(0, 3000, 2)))
        want_page = col.scroll(limit=2000, after=5)
    with serving(tmp_path / "served", cache=False) as (_, address), vdb.connect(address) as db:
        remote = db.create_collection("c", 8, index="flat")
        remote.upsert(list(range(3000)), vectors, payloads=[{"i": i} for i in range(3000)])
        got = remote.search(queries, k=10)  # 2500 queries: chunks of 1638
        assert [[h.id for h in hits] for hits in got] == [[h.id for h in hits] for hits in want]
        for g, w in zip(got[::97], want[::97], strict=True):
            assert [h.payload for h in g] == [h.payload for h in w]
            np.testing.assert_allclose([h.score for h in g], [h.score for h in w], rtol=1e-6)
        assert remote.get(list(range(0, 3000, 2))) == want_get
        assert remote.scroll(limit=2000, after=5) == want_page


def test_a_long_embed_stops_at_its_deadline(tmp_path):
    """20,000 texts (allowed by a raised limit) with a one-second deadline: the client gets
    DEADLINE_EXCEEDED and the server's handler stops at its next batch instead of embedding
    them all."""
    with serving(tmp_path / "db", max_embed_texts=50_000) as (server, address):
        with vdb.connect(address) as warm:
            warm.embed(["load the model first"])
        with vdb.connect(address, timeout=1.0) as db:
            with pytest.raises(vdb.DeadlineExceededError):
                db.embed([f"text number {i} of many" for i in range(20_000)])
        deadline = time.monotonic() + 60  # all 20,000 would take minutes on a busy machine
        while server.core.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.core.in_flight == 0


# ---------------------------------------------------------------- the issue's requests


@pytest.fixture(scope="module")
def heavy_data(tmp_path_factory):
    """Collections "h" and "hb" of the same 20,000 points of dimension 16; "hb" holds one
    more, with a 10 MB payload (id "big", next to point 0)."""
    path = tmp_path_factory.mktemp("heavy") / "db"
    vectors = _vectors(20_000, 16, seed=9)
    with vdb.open(path) as db:
        for name in ("h", "hb"):
            col = db.create_collection(name, 16, index="flat")
            for start in range(0, 20_000, 5_000):
                col.upsert(list(range(start, start + 5_000)), vectors[start : start + 5_000])
        col.upsert(["big"], vectors[:1] * 1.001, payloads=[{"blob": "y" * (10 << 20)}])
    return path, vectors


PEAK = 1 << 30  # bytes of resident memory the server may reach, all requests included


def test_oversized_requests_from_the_issue_are_refused_early(heavy_data):
    """The requests that took 5-10 GB: 20,000 queries x k=500, 100 queries x k=500 near a
    10 MB payload, an Embed of 20,000 texts. Each is refused (RESOURCE_EXHAUSTED) and the
    server's peak resident memory stays under 1 GiB."""
    path, vectors = heavy_data
    server = ServerProcess(path)
    try:
        with vdb.connect(server.address) as db:
            col = db.get_collection("h")
            stubs = Stubs(server.address)
            batch = ppb.SearchRequest(collection="h", queries=convert.pack(vectors), k=500)
            assert batch.ByteSize() > 1_280_000  # the 1.28 MB request of the issue
            assert stubs.code(stubs.points.SearchBatch, batch) == Code.RESOURCE_EXHAUSTED
            near = np.repeat(vectors[:1], 100, axis=0)  # 6.4 KB
            with pytest.raises(vdb.MessageTooLargeError):
                db.get_collection("hb").search(near, k=500)
            embed = egrpc.EmbeddingsStub(stubs.channel).Embed
            texts = epb.EmbedRequest(texts=[f"text {i}" for i in range(20_000)])
            assert stubs.code(embed, texts) == Code.RESOURCE_EXHAUSTED
            stubs.close()
            assert col.search(vectors[5], k=1)[0].id == 5  # serving on
            assert server.peak_rss() < PEAK, server.peak_rss()
    finally:
        server.close()


@pytest.mark.slow
def test_largest_allowed_batch_is_served_within_the_memory_bound(heavy_data):
    """At the limits: 2,000 queries x k=500 = 1,000,000 results (about 20 MB on the wire) is
    answered, built a chunk at a time, under the same memory bound."""
    path, vectors = heavy_data
    server = ServerProcess(path)
    try:
        with vdb.connect(server.address) as db:
            hits = db.get_collection("h").search(vectors[:2000], k=500)
            assert len(hits) == 2000 and all(len(h) == 500 for h in hits)
            assert [h[0].id for h in hits[1:50]] == list(range(1, 50))
            assert server.peak_rss() < PEAK, server.peak_rss()
    finally:
        server.close()
