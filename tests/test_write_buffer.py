"""The write buffer in front of HNSW: acknowledged points are searched exactly until the linker
adds them to the graph, through checkpoints, reopening and concurrent searches."""

import threading

import numpy as np
import pytest

import vdb
from tests.test_hnsw import clustered
from vdb.index.hnsw import HnswConfig, HnswIndex, _merged

DIM = 16


def _exact_top1(col, X, ids):
    """Every point is its own nearest neighbour (l2, distinct points)."""
    hits = col.search(X, k=1, with_payload=False, with_document=False, ef=400)
    assert hits.ids[:, 0].tolist() == list(ids)


def test_buffered_points_are_found_before_they_are_linked(tmp_path):
    X = clustered(3000, DIM, seed=1)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index="hnsw")
        col.upsert(list(range(2000)), X[:2000])
        col._linker.wait()
        assert col.info()["buffered"] == 0
        index = col._index
        with index.paused():  # the linker cannot link while the test holds the graph
            col.upsert(list(range(2000, 3000)), X[2000:])
            assert col.info()["buffered"] == 1000
            assert (index.levels[2000:3000] < 0).all()  # not in the graph
            _exact_top1(col, X, range(3000))
            exact = col.search(X[2500] + 0.01, k=10, ef=10)
        col._linker.wait()
        assert col.info()["buffered"] == 0
        assert (index.levels[:3000] >= 0).all()
        _exact_top1(col, X, range(3000))
        brute = np.argsort(((X - (X[2500] + 0.01)) ** 2).sum(axis=1))[:10]
        assert [h.id for h in exact] == brute.tolist()


def test_rewritten_and_deleted_buffered_points(tmp_path):
    X = clustered(1500, DIM, seed=2)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM, metric="cosine", index="hnsw")
        col.upsert(list(range(1000)), X[:1000])
        col._linker.wait()
        with col._index.paused():
            col.upsert(list(range(1000, 1500)), X[1000:])
            col.upsert([5, 1200], [X[1300], X[7]])  # a linked point moved, a buffered one too
            col.delete(ids=[1201, 6])
            hits = col.search([X[1300], X[7]], k=2, with_payload=False)
            assert set(hits.ids[0].tolist()) == {5, 1300}
            assert set(hits.ids[1].tolist()) == {7, 1200}
        col._linker.wait()
        assert col.info()["buffered"] == 0
        assert col.count() == 1498
        hits = col.search([X[1300], X[7]], k=2, with_payload=False)
        assert set(hits.ids[0].tolist()) == {5, 1300}
        assert set(hits.ids[1].tolist()) == {7, 1200}
        assert 1201 not in [h.id for h in col.search(X[1201], k=5, with_payload=False)]


def test_buffer_survives_checkpoint_and_reopen(tmp_path):
    X = clustered(2000, DIM, seed=3)
    path = tmp_path / "db"
    with vdb.open(path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index="hnsw")
        col.upsert(list(range(1000)), X[:1000])
        col._linker.wait()
        col._linker.stop()  # nothing more is linked in this process
        col.upsert(list(range(1000, 2000)), X[1000:])
        assert col.info()["buffered"] == 1000
        col.checkpoint()
    with vdb.open(path) as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint"
        _exact_top1(col, X, range(2000))
        col._linker.wait()
        assert col.info()["buffered"] == 0
        assert (col._index.levels[:2000] >= 0).all()
        _exact_top1(col, X, range(2000))


def test_index_state_keeps_the_buffer():
    X = clustered(600, DIM, seed=4)
    index = HnswIndex(DIM, "l2", HnswConfig(M=8, ef_construction=32))
    index.set(np.arange(400), X[:400])
    index.set(np.arange(400, 600), X[400:], link=False)
    meta, arrays = index.state()
    copy = HnswIndex.restore(meta, {name: a.copy() for name, a in arrays.items()})
    assert copy.n_buffered == 200 and copy.buffer[400:].all() and not copy.buffer[:400].any()
    old = {name: a for name, a in arrays.items() if name != "buffer"}  # an older checkpoint
    assert HnswIndex.restore(meta, old).n_buffered == 200
    assert copy.link_pending(limit=150) == 150
    assert copy.n_buffered == 50
    while copy.link_pending():
        pass
    assert copy.n_buffered == 0 and (copy.levels[:600] >= 0).all()


def test_merged_keeps_each_id_once():
    a = (np.array([[0.9, 0.5, 0.1]], np.float32), np.array([[3, 1, 2]]))
    b = (np.array([[0.95, 0.9, -1.0]], np.float32), np.array([[7, 3, -1]]))
    scores, ids = _merged(a, b, 3, lower_better=False)
    assert ids.tolist() == [[7, 3, 1]]
    np.testing.assert_allclose(scores, [[0.95, 0.9, 0.5]])
    scores, ids = _merged(a, b, 5, lower_better=False)
    assert ids.tolist() == [[7, 3, 1, 2, -1]]
    scores, ids = _merged(
        (np.array([[0.1, 0.4]], np.float32), np.array([[4, 5]])),
        (np.array([[0.2]], np.float32), np.array([[5]])),
        2,
        lower_better=True,
    )
    assert ids.tolist() == [[4, 5]]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_acknowledged_points_are_found_while_the_linker_runs(tmp_path, metric):
    """A writer thread upserts batches; after each acknowledgement, a reader finds every
    acknowledged point as its own nearest neighbour, whatever the linker is doing."""
    X = clustered(6000, DIM, seed=5)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM, metric=metric, index="hnsw")
        acked = [0]
        failures = []
        done = threading.Event()

        def write():
            for s in range(0, 6000, 500):
                col.upsert(list(range(s, s + 500)), X[s : s + 500])
                acked[0] = s + 500
            done.set()

        def read():
            while not done.is_set() or col.info()["buffered"]:
                n = acked[0]
                if not n:
                    continue
                sample = np.random.default_rng(n).integers(0, n, 64)
                got = col.search(X[sample], k=1, with_payload=False, ef=400).ids[:, 0]
                if not (got == sample).all():
                    failures.append((n, sample[got != sample].tolist()))

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        assert col.info()["buffered"] == 0


def test_close_saves_what_was_linked_since_the_last_checkpoint(tmp_path):
    """A checkpoint taken while points were buffered is written again on close once they are
    linked, so the next open does not link them again."""
    X = clustered(1500, DIM, seed=6)
    path = tmp_path / "db"
    with vdb.open(path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index="hnsw")
        with col._index.paused():
            col.upsert(list(range(1500)), X)
            col.checkpoint()  # holds 1,500 buffered points
        col._linker.wait()
        assert col.info()["buffered"] == 0
    with vdb.open(path) as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint"
        assert col.info()["buffered"] == 0
        _exact_top1(col, X, range(1500))
