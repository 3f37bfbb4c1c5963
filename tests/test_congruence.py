"""The remote client against the embedded API: the same operations on both backends give the
same results and raise the same exceptions, step after step."""

import inspect
import math
import shutil
import tempfile

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

import vdb
from tests import strategies
from tests.rpc import serving
from vdb.results import SearchResults
from vdb.rpc import convert
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc.client import RemoteCollection, RemoteDatabase

DIM = 4
point_ids = st.one_of(st.integers(-3, 12), st.sampled_from(["a", "b", "c", "é"]))
finite = st.floats(-1, 1, width=32, allow_nan=False).filter(lambda v: abs(v) > 1e-3)
vectors = st.lists(finite, min_size=DIM, max_size=DIM)
# Bad input on purpose: wrong dimensions, NaN, infinities, zero vectors (under cosine).
bad_vectors = st.one_of(
    st.lists(finite, min_size=DIM + 1, max_size=DIM + 1),
    st.just([math.nan] * DIM),
    st.just([math.inf, 0, 0, 0]),
    st.just([0.0] * DIM),
)
bad_filters = st.sampled_from(
    [[1], {"a": {"$gt": [1]}}, {"$or": []}, {"a": {"$bogus": 1}}, {"a": {"b": 1}}, {1: 2}]
)
bad_ids = st.sampled_from([None, 1.5, True, "", [1, 1], 1 << 70, {"a": 1}])
payload_selections = st.one_of(
    st.booleans(), st.lists(st.sampled_from(strategies.KEYS + ["n", "zz"]), max_size=3)
)
BAD_SELECTIONS = [
    {"with_payload": "a"},
    {"with_payload": 1},
    {"with_payload": ["a", 2]},
    {"with_payload": None},
    {"with_payload": {"a"}},
    {"with_document": "yes"},
    {"with_document": None},
    {"with_vectors": 1},
]
documents = st.one_of(st.none(), st.text(max_size=12))


def outcome(fn):
    """("ok", result) or ("error", class name, message)."""
    try:
        return ("ok", fn())
    except vdb.VdbError as exc:
        return ("error", type(exc).__name__, str(exc))


def same(a, b) -> None:
    """Deep equality of results: SearchResults (their columns too), Hits, Records,
    WriteResults, lists, tuples, arrays."""
    if isinstance(a, SearchResults):
        assert isinstance(b, SearchResults)
        assert (a.ids.dtype, a.scores.dtype, a.counts.dtype) == (
            b.ids.dtype,
            b.scores.dtype,
            b.counts.dtype,
        )
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6, atol=1e-6)
        same(list(a), list(b))
    elif isinstance(a, vdb.Hit):
        assert isinstance(b, vdb.Hit)
        assert (a.id, a.payload, a.document) == (b.id, b.payload, b.document)
        assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-6)
        same(a.vector, b.vector)
    elif isinstance(a, vdb.Record):
        assert a == b
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), (a, b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    else:
        assert a == b, (a, b)


class Congruence(RuleBasedStateMachine):
    @initialize(
        metric=st.sampled_from(["cosine", "dot", "l2"]), index=st.sampled_from(["flat", "hnsw"])
    )
    def open_both(self, metric, index):
        self.tmp = tempfile.mkdtemp()
        self.local = vdb.open(f"{self.tmp}/local")
        self._serving = serving(f"{self.tmp}/served")
        _, address = self._serving.__enter__()
        self.remote = vdb.connect(address)
        self.cols = [
            db.create_collection("c", DIM, metric, index=index) for db in (self.local, self.remote)
        ]

    def both(self, op):
        """Run op(collection) on both backends; the outcomes must agree."""
        a, b = (outcome(lambda c=c: op(c)) for c in self.cols)
        assert a[0] == b[0], (a, b)
        if a[0] == "error":
            assert a[1:] == b[1:]
        else:
            same(a[1], b[1])
        return a

    @rule(
        batch=st.lists(
            st.tuples(point_ids, vectors, strategies.payloads, documents),
            max_size=6,
            unique_by=lambda t: t[0],
        )
    )
    def upsert(self, batch):
        ids = [b[0] for b in batch]
        vecs = np.array([b[1] for b in batch], np.float32).reshape(len(batch), DIM)
        pays, docs = [b[2] for b in batch], [b[3] for b in batch]
        self.both(lambda c: c.upsert(ids, vecs, pays, docs))

    @rule(ids=st.lists(point_ids, max_size=3), vec=bad_vectors)
    def upsert_bad_vector(self, ids, vec):
        self.both(lambda c: c.upsert(ids[:1] or [0], [vec]))

    @rule(pid=bad_ids)
    def upsert_bad_id(self, pid):
        self.both(lambda c: c.upsert([pid] if not isinstance(pid, list) else pid, [[1] * DIM]))

    @rule(payload=st.sampled_from([[1], "x", {"a": math.nan}, {1: 2}, {"a": {1, 2}}]))
    def upsert_bad_payload(self, payload):
        self.both(lambda c: c.upsert([1], [[1] * DIM], [payload]))

    @rule(
        batches=st.lists(
            st.lists(st.tuples(point_ids, vectors), max_size=4, unique_by=lambda t: t[0]),
            max_size=3,
        )
    )
    def bulk_upsert(self, batches):
        def run(col):
            acks = []
            result = col.bulk_upsert(
                (
                    ([p for p, _ in b], np.array([v for _, v in b], np.float32).reshape(-1, DIM))
                    for b in batches
                ),
                on_batch=lambda i, r: acks.append((i, r)),
            )
            return result, acks

        self.both(run)

    @rule(ids=st.lists(point_ids, max_size=4))
    def delete_ids(self, ids):
        self.both(lambda c: c.delete(ids=ids))

    @rule(flt=st.one_of(strategies.filters, bad_filters))
    def delete_filter(self, flt):
        self.both(lambda c: c.delete(filter=flt))

    @rule()
    def delete_neither(self):
        self.both(lambda c: c.delete())

    @rule(
        queries=st.one_of(vectors, st.lists(vectors, max_size=3), bad_vectors),
        k=st.integers(1, 8),
        flt=st.one_of(st.none(), strategies.filters, bad_filters),
        with_vectors=st.booleans(),
        with_payload=payload_selections,
        with_document=st.booleans(),
    )
    def search(self, queries, k, flt, with_vectors, with_payload, with_document):
        q = np.array(queries, np.float32)
        self.both(
            lambda c: c.search(
                q,
                k=k,
                filter=flt,
                with_vectors=with_vectors,
                with_payload=with_payload,
                with_document=with_document,
            )
        )

    @rule(bad=st.sampled_from(BAD_SELECTIONS), batch=st.booleans())
    def search_bad_selection(self, bad, batch):
        q = [[1] * DIM] * 2 if batch else [1] * DIM
        self.both(lambda c: c.search(q, k=2, **bad))

    @rule(k=st.sampled_from([0, -1, 1.5, None]))
    def search_bad_k(self, k):
        self.both(lambda c: c.search([1] * DIM, k=k))

    @rule(flt=st.one_of(st.none(), strategies.filters, bad_filters))
    def count(self, flt):
        self.both(lambda c: c.count(flt))

    @rule(
        ids=st.one_of(point_ids, st.lists(point_ids, max_size=4), bad_ids),
        with_vectors=st.booleans(),
    )
    def get(self, ids, with_vectors):
        self.both(lambda c: c.get(ids, with_vectors=with_vectors))

    @rule(
        flt=st.one_of(st.none(), strategies.filters),
        limit=st.integers(1, 5),
        with_vectors=st.booleans(),
    )
    def scroll_all(self, flt, limit, with_vectors):
        def pages(col):
            out, after = [], None
            while True:
                records, after = col.scroll(flt, limit, after, with_vectors)
                out.append((records, after))
                if after is None:
                    return out

        self.both(pages)

    @rule()
    def info(self):
        a, b = (c.info() for c in self.cols)
        assert set(a) == set(b)  # the same keys; buffered counts depend on each linker's pace
        for key in ("name", "dim", "metric", "index", "count", "lsn", "index_in_use"):
            assert a[key] == b[key], key
        assert len(self.cols[0]) == len(self.cols[1])
        assert self.cols[0].lsn == self.cols[1].lsn

    @rule()
    def compact_and_checkpoint(self):
        self.both(lambda c: c.compact())
        self.both(lambda c: c.checkpoint())

    def teardown(self):
        if hasattr(self, "remote"):
            self.remote.close()
            self._serving.__exit__(None, None, None)
            self.local.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


Congruence.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCongruence = Congruence.TestCase


def test_database_operations_agree(db, remote):
    """Collection management and errors, on both backends."""
    for handle in (db, remote):
        handle.create_collection("x", 3, "l2", index={"kind": "hnsw", "M": 8})
    for op in (
        lambda d: d.create_collection("x", 3),
        lambda d: d.create_collection("bad name!", 3),
        lambda d: d.create_collection("y", 0),
        lambda d: d.create_collection("y", 3, "hamming"),
        lambda d: d.create_collection("y", 3, index={"kind": "hnsw", "M": 1}),
        lambda d: d.get_collection("nope"),
        lambda d: d.get_collection(3),
        lambda d: d.drop_collection("nope"),
        lambda d: d.get_or_create_collection("x", 4),
        lambda d: d.get_or_create_collection("x", 3, "l2").info()["index"],
        lambda d: d.get_or_create_collection("z", 2).dim,
        lambda d: d.has_collection("z"),
        lambda d: d.list_collections(),
        lambda d: d.drop_collection("z"),
        lambda d: d.has_collection("z"),
        lambda d: d.list_collections(),
    ):
        a, b = outcome(lambda op=op: op(db)), outcome(lambda op=op: op(remote))
        assert a == b


def test_dropped_collection_handle_is_closed(db, remote):
    for handle in (db, remote):
        col = handle.create_collection("gone", 2)
        handle.drop_collection("gone")
        with pytest.raises(vdb.ClosedError):
            col.count()


def _public(cls) -> dict:
    return {
        name: list(inspect.signature(member).parameters.values()) if callable(member) else "prop"
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") or name in ("__len__", "__enter__", "__exit__")
    }


def test_same_methods_and_signatures():
    """The remote classes have exactly the public methods of the embedded ones."""
    local_db, remote_db = _public(vdb.Database), _public(RemoteDatabase)
    assert set(local_db) - {"path"} == set(remote_db)
    for name, sig in local_db.items():
        if name != "path":
            assert sig == remote_db[name], name
    assert _public(vdb.Collection) == _public(RemoteCollection)


# ---------------------------------------------------------------- what a search returns

SELECTIONS = [
    {"with_payload": payload, "with_document": document, "with_vectors": vectors}
    for payload in (True, False, ["a"], ["b", "zz", "b"], [])
    for document in (True, False)
    for vectors in (False, True)
]
ID_KINDS = {
    "int": [3 * i - 7 for i in range(12)],
    "str": [f"p{i}" for i in range(12)],
    "mixed": [i if i % 3 else f"p{i}" for i in range(12)],
}


def _twin_collections(db, remote, ids, index):
    """The same 12 points, some without payload or document, in a local and a remote
    collection; and an empty collection on each side."""
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    payloads = [None if i % 4 == 0 else {"a": i, "b": [i, "x"], "n": {"x": i}} for i in range(12)]
    documents = [None if i % 5 == 0 else f"doc {i}" for i in range(12)]
    cols, empties = [], []
    for handle in (db, remote):
        col = handle.create_collection("s", DIM, "l2", index=index)
        col.upsert(ids, vecs, payloads, documents)
        cols.append(col)
        empties.append(handle.create_collection("e", DIM, index=index))
    return cols, empties, rng.standard_normal((3, DIM)).astype(np.float32)


@pytest.mark.parametrize("kind", list(ID_KINDS))
@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_every_selection_agrees(db, remote, kind, index):
    """Every with_payload / with_document / with_vectors combination, single and batch, with
    and without a filter, k below and above the collection's size, and an empty collection:
    the same Hits and the same ids, scores and counts arrays on both backends."""
    cols, empties, queries = _twin_collections(db, remote, ID_KINDS[kind], index)
    for want in SELECTIONS:
        for flt in (None, {"a": {"$gte": 5}}):
            for k in (3, 20):
                for q in (queries, queries[0]):
                    a, b = (c.search(q, k=k, filter=flt, **want) for c in cols)
                    same(a, b)
        for q in (queries, queries[0]):
            a, b = (c.search(q, k=4, **want) for c in empties)
            same(a, b)
            assert len(a) == (3 if q.ndim == 2 else 0)
    results = cols[1].search(queries, k=20, with_payload=False, with_document=False)
    assert results.ids.shape == results.scores.shape == (3, 12)
    assert results.ids.dtype == (np.int64 if kind == "int" else object)
    assert results.counts.tolist() == [12, 12, 12]
    assert set(results.ids[0].tolist()) == set(ID_KINDS[kind])
    assert all(h.payload is None and h.document is None for h in results[0])
    keys = cols[1].search(queries[0], k=20, with_payload=["a", "zz"], with_document=False)
    by_id = {h.id: h for h in keys}
    assert [by_id[i].payload for i in ID_KINDS[kind]] == [
        None if i % 4 == 0 else {"a": i} for i in range(12)
    ]
    assert all(h.document is None and h.vector is None for h in keys)


def test_bad_selections_are_refused_alike(db, remote, server):
    """A with_payload that is not a bool or a list of strings (and a with_document or
    with_vectors that is not a bool): the same InvalidArgumentError (a ValueError) embedded and
    remote, from the client's own check; a raw request that says it is refused with
    INVALID_ARGUMENT and a message naming the field."""
    cols = [h.create_collection("c", DIM) for h in (db, remote)]
    for col in cols:
        col.upsert([1, "b"], np.eye(2, DIM, dtype=np.float32), [{"a": 1}, None])
    for bad in BAD_SELECTIONS:
        for q in ([1] * DIM, [[1] * DIM] * 2):
            a, b = (outcome(lambda c=c, q=q, bad=bad: c.search(q, k=2, **bad)) for c in cols)
            assert a == b and a[:2] == ("error", "InvalidArgumentError"), (bad, a, b)
            with pytest.raises(ValueError):
                cols[1].search(q, k=2, **bad)
    channel = grpc.insecure_channel(server[1])
    search = channel.unary_unary("/vdb.v1.Points/SearchBatch")
    base = ppb.SearchRequest(collection="c", queries=convert.pack(np.ones((1, DIM))), k=2)
    assert _status(search, base.SerializeToString())[0] == grpc.StatusCode.OK
    contradiction = ppb.SearchRequest()
    contradiction.CopyFrom(base)
    contradiction.with_payload = False
    contradiction.payload_keys.append("a")
    for body, field in [
        (contradiction.SerializeToString(), "payload_keys"),
        (base.SerializeToString() + b"\x42\x03yes", "with_payload (field 8)"),  # a string
        (base.SerializeToString() + b"\x48\x05", "payload_keys (field 9)"),  # a number
        (base.SerializeToString() + b"\x52\x01x", "with_document (field 10)"),
        (base.SerializeToString() + b"\x2a\x01x", "with_vectors (field 5)"),
    ]:
        code, details = _status(search, body)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details, (code, details)
    channel.close()


def _status(call, body: bytes):
    try:
        call(body, timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""
