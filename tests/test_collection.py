"""The embedded API: upsert, search, get, delete, count, scroll, reopen, snapshot."""

import numpy as np
import pytest

import vdb
from tests.reference import assert_hits_exact


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_search_is_exact_and_ordered(db, rng, metric):
    col = db.create_collection("c", dim=16, metric=metric)
    X = rng.standard_normal((500, 16)).astype(np.float32)
    ids = [f"p{i}" for i in range(500)]
    col.upsert(ids, X, payloads=[{"i": i, "even": i % 2 == 0} for i in range(500)])
    Q = rng.standard_normal((6, 16)).astype(np.float32)
    batch = col.search(Q, k=10)
    assert len(batch) == 6
    for q, hits in zip(Q, batch, strict=True):
        assert_hits_exact(hits, ids, X, q, metric, 10)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=(metric != "l2"))
    single = col.search(Q[0], k=3, filter={"even": True})
    assert_hits_exact(single, ids, X, Q[0], metric, 3, allowed=[i % 2 == 0 for i in range(500)])
    assert all(h.payload["even"] for h in single)


def test_fewer_hits_than_k_and_empty_collection(db):
    col = db.create_collection("c", dim=2)
    assert col.search([1, 0], k=5) == []
    assert col.search([[1, 0], [0, 1]], k=5) == [[], []]
    col.upsert([1, 2, 3], [[1, 0], [0, 1], [1, 1]], payloads=[{"t": "x"}, {"t": "y"}, {"t": "x"}])
    assert len(col.search([1, 0], k=100)) == 3
    assert [h.id for h in col.search([1, 0], k=100, filter={"t": "x"})] == [1, 3]
    assert col.search([1, 0], k=5, filter={"t": "nope"}) == []


def test_upsert_replaces_and_get(db):
    col = db.create_collection("c", dim=3, metric="l2")
    col.upsert(["a", 7], [[1, 2, 3], [4, 5, 6]], payloads=[{"v": 1}, None], documents=["A", None])
    col.upsert("a", [0, 0, 1], payloads={"v": 2}, documents="A2")
    assert col.count() == 2
    rec = col.get("a")
    assert rec.payload == {"v": 2} and rec.document == "A2"
    np.testing.assert_array_equal(rec.vector, np.array([0, 0, 1], np.float32))
    assert [r.id for r in col.get([7, "missing", "a"])] == [7, "a"]
    with pytest.raises(vdb.PointNotFoundError):
        col.get("missing")
    assert col.count({"v": 1}) == 0 and col.count({"v": 2}) == 1
    hit = col.search([0, 0, 1], k=1, with_vectors=True)[0]
    assert hit.id == "a" and hit.score == pytest.approx(0.0) and hit.vector is not None


def test_cosine_returns_original_vectors(db):
    col = db.create_collection("c", dim=2)
    col.upsert(1, [3, 4])
    np.testing.assert_array_equal(col.get(1).vector, [3, 4])
    assert col.search([3, 4], k=1)[0].score == pytest.approx(1.0)


def test_delete_by_ids_and_filter_and_slot_reuse(db, rng):
    col = db.create_collection("c", dim=4, metric="dot")
    X = rng.standard_normal((50, 4)).astype(np.float32)
    col.upsert(list(range(50)), X, payloads=[{"g": i % 5} for i in range(50)])
    assert col.delete(ids=[0, 1, 999]).count == 2
    assert col.delete(filter={"g": 4}).count == 10
    assert col.count() == 38
    remaining = [i for i in range(2, 50) if i % 5 != 4]
    hits = col.search(X[0], k=50)
    assert sorted(h.id for h in hits) == remaining
    col.upsert([100, 101], X[:2])
    assert col.count() == 40
    assert {h.id for h in col.search(X[0], k=50)} == set(remaining) | {100, 101}
    with pytest.raises(vdb.InvalidArgumentError):
        col.delete()
    with pytest.raises(vdb.InvalidArgumentError):
        col.delete(ids=[1], filter={"g": 1})


def test_scroll_pages_through_everything(db, rng):
    col = db.create_collection("c", dim=2)
    ids = list(range(25)) + [f"s{i:02d}" for i in range(10)]
    col.upsert(ids, rng.random((35, 2)) + 0.1, payloads=[{"odd": i % 2 == 1} for i in range(35)])
    seen, after = [], None
    while True:
        page, after = col.scroll(limit=7, after=after)
        seen += [r.id for r in page]
        if after is None:
            break
    assert seen == ids
    odd, after = col.scroll(filter={"odd": True}, limit=100)
    assert [r.id for r in odd] == [i for n, i in enumerate(ids) if n % 2 == 1] and after is None


def test_reopen_restores_everything(tmp_path, rng):
    path = tmp_path / "db"
    X = rng.standard_normal((100, 8)).astype(np.float32)
    with vdb.open(path) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        col.upsert(list(range(100)), X, payloads=[{"i": i} for i in range(100)])
        col.delete(ids=list(range(10)))
        before = col.search(X[:3], k=5, filter={"i": {"$lt": 50}})
        db.create_collection("other", dim=3)
    with vdb.open(path) as db:
        assert db.list_collections() == ["c", "other"]
        col = db.get_collection("c")
        assert col.count() == 90 and col.lsn == 2
        after = col.search(X[:3], k=5, filter={"i": {"$lt": 50}})
        assert [[h.id for h in r] for r in after] == [[h.id for h in r] for r in before]


def test_collections_lifecycle(db):
    db.create_collection("a", dim=2)
    with pytest.raises(vdb.CollectionExistsError):
        db.create_collection("a", dim=2)
    assert db.get_or_create_collection("a", dim=2).dim == 2
    with pytest.raises(vdb.InvalidArgumentError):
        db.get_or_create_collection("a", dim=3)
    col = db.get_collection("a")
    col.upsert(1, [1, 2])
    db.drop_collection("a")
    assert db.list_collections() == []
    with pytest.raises(vdb.CollectionNotFoundError):
        db.get_collection("a")
    with pytest.raises(vdb.ClosedError):
        col.search([1, 2])
    fresh = db.create_collection("a", dim=2)
    assert fresh.count() == 0 and fresh.search([1, 2]) == []


def test_snapshot_gives_same_results(tmp_path, rng):
    X = rng.standard_normal((200, 8)).astype(np.float32)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=8)
        col.upsert(list(range(200)), X, payloads=[{"i": i} for i in range(200)])
        db.snapshot(tmp_path / "snap")
        expected = [[h.id for h in r] for r in col.search(X[:5], k=7, filter={"i": {"$gt": 20}})]
        col.upsert(999, X[0])
        with pytest.raises(vdb.InvalidArgumentError):
            db.snapshot(tmp_path / "snap")
    with vdb.open(tmp_path / "snap") as copy:
        col = copy.get_collection("c")
        assert col.count() == 200
        got = [[h.id for h in r] for r in col.search(X[:5], k=7, filter={"i": {"$gt": 20}})]
        assert got == expected


def test_read_only_open_sees_writes_and_refuses_writes(tmp_path):
    path = tmp_path / "db"
    with vdb.open(path) as db:
        db.create_collection("c", dim=2).upsert([1, 2], [[1, 0], [0, 1]])
    with vdb.open(path, read_only=True) as ro:
        col = ro.get_collection("c")
        assert col.count() == 2
        with pytest.raises(vdb.ReadOnlyError):
            col.upsert(3, [1, 1])
        with pytest.raises(vdb.ReadOnlyError):
            ro.create_collection("d", dim=2)
    with pytest.raises(vdb.DatabaseNotFoundError):
        vdb.open(tmp_path / "nothing", read_only=True)


def test_second_open_in_process_is_refused(tmp_path):
    with vdb.open(tmp_path / "db"):
        with pytest.raises(vdb.DatabaseLockedError):
            vdb.open(tmp_path / "db")
    vdb.open(tmp_path / "db").close()


def test_map_grows_when_full(tmp_path, rng):
    with vdb.open(tmp_path / "db", map_size=1 << 20) as db:
        col = db.create_collection("c", dim=256)
        X = rng.standard_normal((3000, 256)).astype(np.float32)
        for start in range(0, 3000, 500):
            col.upsert(list(range(start, start + 500)), X[start : start + 500])
        assert col.count() == 3000
    with vdb.open(tmp_path / "db") as db:
        assert db.get_collection("c").count() == 3000


def test_snapshot_while_writing_holds_whole_batches(tmp_path, rng):
    import threading

    X = rng.standard_normal((20, 4)).astype(np.float32)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=4)
        done = threading.Event()

        def write():
            for b in range(200):
                col.upsert([f"{b}-{i}" for i in range(20)], X, payloads=[{"b": b}] * 20)
                col.delete(filter={"b": b - 3})
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        db.snapshot(tmp_path / "snap")
        thread.join()
        assert done.is_set() and col.count() == 60
    with vdb.open(tmp_path / "snap") as copy:
        col = copy.get_collection("c")
        page, _ = col.scroll(limit=10_000)
        batches = {r.payload["b"] for r in page}
        assert len(page) == 20 * len(batches)
        for b in batches:
            assert col.count({"b": b}) == 20
        assert len(col.search(X[0], k=100)) == len(page)


def test_map_full_retry_gives_back_free_slots(tmp_path, rng):
    with vdb.open(tmp_path / "db", map_size=1 << 20) as db:
        col = db.create_collection("c", dim=128)
        X = rng.standard_normal((600, 128)).astype(np.float32)
        col.upsert(list(range(600)), X)
        col.delete(ids=list(range(0, 600, 2)))
        for start in range(1000, 4000, 500):  # grows the map while reusing free slots
            col.upsert(list(range(start, start + 500)), rng.standard_normal((500, 128)))
        assert col.count() == 3300
        free = np.array(col._free, dtype=np.int64)
        assert len(set(col._free)) == len(free)
        assert not col._index.alive[free[free < col._index.size]].any()
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.count() == 3300 and len(col.scroll(limit=10_000)[0]) == 3300


def test_bulk_upsert_batch_without_ids(db):
    col = db.create_collection("b", 2)
    with pytest.raises(vdb.InvalidArgumentError, match="ids"):
        col.bulk_upsert([{"vectors": [[1, 0]]}])
