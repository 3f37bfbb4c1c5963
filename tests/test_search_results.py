"""Search results from the id array and the column path against the record-by-record path they
replace (the reference twin below): same ids, scores, payloads, documents and order, for flat
and HNSW, integer, string and mixed ids, filters, deletes, compaction, replay after a crash,
a checkpoint written before checkpoints held ids, and a schema-1 database."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import vdb
from vdb.index import checkpoint
from vdb.results import Hit, SearchResults
from vdb.storage import keys

FIXTURE = Path(__file__).parent / "fixtures" / "db-schema1"
DIM = 8


def reference(col, queries, k, flt=None, with_vectors=False, ef=None):
    """The old read path: the index's rows, then every record read and decoded."""
    _, q, k, node, ef = col._query(queries, k, flt, ef)
    with col._lock.read():
        scores, rows = col._top(q, k, node, ef)
        with col._store.read() as txn:
            records = {
                r: col._record(txn, r, with_vectors)
                for r in np.unique(rows[rows >= 0]).tolist()
                if txn.get(keys.record_key(col.config.cid, r), db=col._store.records) is not None
            }
    return [
        [
            Hit(rec.id, float(s), rec.payload, rec.document, rec.vector)
            for s, r in zip(srow, rrow, strict=True)
            if r >= 0 and (rec := records.get(int(r))) is not None
        ]
        for srow, rrow in zip(scores, rows, strict=True)
    ]


def settle(col):
    """Wait for the linker, so that two searches see the same graph."""
    col._linker.wait()


def check(col, Q, k=5, flt=None):
    settle(col)
    want = reference(col, Q, k, flt, ef=64)
    got = col.search(Q, k=k, filter=flt, ef=64)
    assert isinstance(got, SearchResults)
    assert got == want and list(got) == want
    counts = [len(hits) for hits in want]
    assert got.counts.tolist() == counts
    for q, hits in enumerate(want):
        assert got.ids[q, : counts[q]].tolist() == [h.id for h in hits]
        np.testing.assert_array_equal(got.scores[q, : counts[q]], [h.score for h in hits])
        assert np.isnan(got.scores[q, counts[q] :]).all()
    bare = col.search(Q, k=k, filter=flt, ef=64, with_payload=False, with_document=False)
    assert [[(h.id, h.score, h.payload, h.document) for h in r] for r in bare] == [
        [(h.id, h.score, None, None) for h in r] for r in want
    ]
    np.testing.assert_array_equal(bare.scores, got.scores)
    assert (bare.ids == got.ids).all()
    keys = col.search(Q, k=k, filter=flt, ef=64, with_payload=["g", "none"], with_document=False)
    assert [[h.payload for h in r] for r in keys] == [
        [
            None if h.payload is None else {n: h.payload[n] for n in ("g",) if n in h.payload}
            for h in r
        ]
        for r in want
    ]
    with_vectors = col.search(Q, k=k, filter=flt, ef=64, with_vectors=True)
    vec_want = reference(col, Q, k, flt, with_vectors=True, ef=64)
    for a, b in zip(with_vectors, vec_want, strict=True):
        for x, y in zip(a, b, strict=True):
            assert (x.id, x.payload, x.document) == (y.id, y.payload, y.document)
            np.testing.assert_array_equal(x.vector, y.vector)
    one = reference(col, Q[:1], k, flt, ef=64)[0]  # one query (kernels block queries by 4)
    assert col.search(Q[0], k=k, filter=flt, ef=64) == one
    assert col.search(Q[0], k=k, filter=flt, ef=64, with_payload=False, with_document=False) == [
        Hit(h.id, h.score, None, None) for h in one
    ]


def ids_for(kind, n):
    if kind == "int":
        return [i * 7 - 50 for i in range(n)]
    if kind == "str":
        return [f"p-{i}-\u00e9" * (1 + i % 3) for i in range(n)]
    return [i if i % 2 else f"s{i}" for i in range(n)]


@pytest.mark.parametrize("index", ["flat", "hnsw"])
@pytest.mark.parametrize("kind", ["int", "str", "mixed"])
def test_results_match_the_record_path(tmp_path, index, kind):
    rng = np.random.default_rng(0)
    n = 600
    X = rng.standard_normal((n, DIM)).astype(np.float32)
    Q = rng.standard_normal((7, DIM)).astype(np.float32)
    ids = ids_for(kind, n)
    payloads = [{"g": i % 5, "name": f"n{i}"} if i % 9 else None for i in range(n)]
    documents = [f"doc {i}" if i % 4 else None for i in range(n)]
    path = tmp_path / "db"
    db = vdb.open(path)
    col = db.create_collection("c", dim=DIM, metric="cosine", index=index)
    col.upsert(ids, X, payloads, documents)
    check(col, Q)
    check(col, Q, k=50, flt={"g": {"$in": [1, 3]}})
    check(col, Q, k=700)  # more than the collection holds
    col.delete(ids=ids[::3])
    col.upsert(ids[1:30], X[200:229], [{"g": 9}] * 29)  # moved points, reused slots
    col.upsert([ids[0], ids[3]], X[:2] + 0.5)  # deleted ids come back
    check(col, Q, k=20)
    check(col, Q, k=20, flt={"g": 9})
    col.compact()
    check(col, Q, k=20)
    # a crash: no closing checkpoint, the op log is replayed over the last checkpoint
    col.checkpoint()
    col.delete(filter={"g": 1})
    col.upsert(ids[600 - 40 :], X[:40])
    for c in db._collections.values():
        c._closed = True
    db._collections.clear()
    db._store.close()
    db = vdb.open(path)
    col = db.get_collection("c")
    assert col.info()["loaded_from"] == "checkpoint"
    check(col, Q, k=20)
    check(col, Q, k=20, flt={"g": {"$in": [0, 9]}})
    db.close()
    with vdb.open(path) as db:  # from the closing checkpoint
        col = db.get_collection("c")
        check(col, Q, k=10)
    with vdb.open(path, read_only=True) as db:
        check(db.get_collection("c"), Q, k=10)


def test_a_checkpoint_without_ids_fills_them_from_the_id_map(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, DIM)).astype(np.float32)
    path = tmp_path / "db"
    with vdb.open(path) as db:
        col = db.create_collection("c", dim=DIM, index="hnsw")
        col.upsert(ids_for("mixed", 300), X, [{"g": i % 3} for i in range(300)])
        col.delete(ids=[1, "s2"])
        settle(col)
        taken = checkpoint.snapshot

        def without_ids(*args):
            meta, sections = taken(*args)
            return meta, {n: s for n, s in sections.items() if not n.startswith("id_")}

        monkeypatch.setattr(checkpoint, "snapshot", without_ids)
    monkeypatch.undo()
    with vdb.open(path) as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint"
        check(col, X[:6], k=8)
        assert col._ids.n_str == 149


def test_a_schema_1_database_searches_the_same(tmp_path):
    path = tmp_path / "db"
    shutil.copytree(FIXTURE, path)
    with vdb.open(path) as db:
        for name in ("notes", "graph"):
            col = db.get_collection(name)
            Q = np.random.default_rng(2).standard_normal((5, col.dim)).astype(np.float32)
            check(col, Q, k=6)
            check(col, Q, k=100)


def test_bad_selections_are_refused(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=2)
        col.upsert([1], [[1.0, 0.0]], [{"a": 1}])
        for bad in ("a", 1, None, ["a", 2], {"a": True}, [b"a"]):
            with pytest.raises(ValueError, match="with_payload"):
                col.search([1.0, 0.0], with_payload=bad)
        for name in ("with_document", "with_vectors"):
            with pytest.raises(ValueError, match=name):
                col.search([1.0, 0.0], **{name: "yes"})
        assert col.search([1.0, 0.0], with_payload=("a",))[0].payload == {"a": 1}
        assert col.search([1.0, 0.0], with_payload=[])[0].payload is None


def test_hits_whose_record_is_gone_are_left_out(tmp_path):
    """A read-only handle behind its writer may find a record gone: its hit is dropped and the
    columns close up, hits first."""
    from vdb.results import Selection

    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, DIM)).astype(np.float32)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM)
        col.upsert([f"p{i}" for i in range(20)], X, [{"i": i} for i in range(20)])
        _, q, k, node, ef = col._query(X[:3], 5, None, None)
        scores, rows = col._top(q, k, node, ef)
        raws, missing = col._read_rows(rows)
        assert not missing
        gone = int(rows[0, 1])
        del raws[gone]
        res = col._results(rows, col._ids.lookup(rows), scores, raws, True, Selection.parse())
        assert res.counts.tolist() == [4 if gone in r else 5 for r in rows.tolist()]
        assert res.ids[0, :4].tolist() == [f"p{r}" for r in rows[0].tolist() if r != gone]
        assert res.ids[0, 4] is None and np.isnan(res.scores[0, 4])
        assert [h.payload["i"] for h in res[0]] == [r for r in rows[0].tolist() if r != gone]


def test_results_after_kill_9_of_an_hnsw_writer(tmp_path):
    """A writer process killed mid-stream (checkpoints every 90 points, so the kill lands
    inside linking, checkpoints and compactions): on reopen the results match the record
    path, and every acknowledged point not deleted is found as its own nearest neighbour."""
    import random

    from tests.helpers.writer import batch_ids, batch_vectors
    from tests.test_durability import crash_once

    path = tmp_path / "db"
    rnd = random.Random(5)
    start = 0
    acked, deleted = set(), set()
    for attempt in range(8):
        a, d = crash_once(path, start, rnd, extra=["hnsw", "90"])
        acked |= a
        deleted |= d
        start = max(acked | {start}) + 1
        if attempt >= 1 and len(acked - deleted) >= 3:
            break
    with vdb.open(path) as db:
        col = db.get_collection("c")
        present = {b for b in acked - deleted if col.get(batch_ids(b)[:1])}
        assert present
        for b in sorted(present)[-8:]:
            hits = col.search(batch_vectors(b), k=1, ef=400, with_payload=False)
            assert hits.ids[:, 0].tolist() == batch_ids(b)
        Q = np.random.default_rng(6).standard_normal((6, 16)).astype(np.float32)
        check(col, Q, k=10)
        check(col, Q, k=10, flt={"batch": {"$in": sorted(present)[:5]}})


def test_a_damaged_record_found_by_a_search_raises_when_read(tmp_path):
    """The records a search reads are checked when their hits are built: damage raises
    DataCorruptedError (and is listed), never a wrong payload or document."""
    path = tmp_path / "db"
    with vdb.open(path) as db:
        col = db.create_collection("c", dim=3)
        col.upsert(["a", "b", "c"], np.eye(3), documents=["alpha text", "bravo text", "charlie"])
    data = path / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[raw.find(b"bravo text") + 2] ^= 0x10
    data.write_bytes(bytes(raw))
    with vdb.open(path) as db:  # from the checkpoint: no record is read on open
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint" and not col.info()["damage"]
        bare = col.search(np.eye(3), k=1, with_payload=False, with_document=False)
        assert bare.ids[:, 0].tolist() == ["a", "b", "c"]
        results = col.search(np.eye(3), k=1)
        assert results[0][0].document == "alpha text"
        with pytest.raises(vdb.DataCorruptedError, match="fails its checksum"):
            results[1]
        assert len(col.info()["damage"]) == 1
        with pytest.raises(vdb.DataCorruptedError, match="fails its checksum"):
            col.search(np.eye(3)[1], k=1)


def test_one_bare_query_checks_its_arguments_like_any_search(tmp_path):
    """One vector with ids and scores only takes a short path; its arguments are refused the
    same way as on the general one, and a closed collection still says so."""
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM, metric="cosine", index="hnsw")
        X = np.random.default_rng(3).standard_normal((50, DIM)).astype(np.float32)
        col.upsert(list(range(50)), X)
        bare = dict(with_payload=False, with_document=False)
        for bad in (
            dict(k=0),
            dict(k=True),
            dict(k=3.0),
            dict(ef=0),
            dict(ef=10**9),
            dict(ef=False),
        ):
            with pytest.raises(ValueError):
                col.search(X[0], **bare, **bad)
        for bad_vector in (np.zeros(DIM, np.float32), np.full(DIM, np.nan, np.float32)):
            with pytest.raises(ValueError):
                col.search(bad_vector, **bare)
        with pytest.raises(ValueError):
            col.search(X[0, :3], **bare)
        hits = col.search(X[0], k=100, **bare)
        assert [h.id for h in hits] == [h.id for h in col.search(X[:1], k=100, **bare)[0]]
        assert len(hits) == 50 and hits[0].id == 0
    with pytest.raises(vdb.errors.ClosedError):
        col.search(X[0], **bare)
