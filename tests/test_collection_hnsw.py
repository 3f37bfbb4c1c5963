"""Collections on HNSW: the switch from exact search is invisible apart from speed."""

import numpy as np
import pytest

import vdb
from tests.test_hnsw import clustered, recall


def hit_ids(batch):
    return np.array([[h.id for h in hits] for hits in batch])


def test_auto_switches_to_hnsw_and_keeps_answers(db, monkeypatch):
    from vdb.index.hnsw import HnswIndex

    walks = []
    walk = HnswIndex._graph_search
    monkeypatch.setattr(
        HnswIndex, "_graph_search", lambda self, *a: walks.append(1) or walk(self, *a)
    )
    n = 12_000  # past the size where a scan is cheaper than the walk
    X = clustered(n, 16, seed=5)
    Q = clustered(50, 16, seed=6)
    col = db.create_collection("c", dim=16, metric="l2", index={"hnsw_threshold": 8000})
    col.upsert(list(range(6000)), X[:6000], payloads=[{"g": i % 4} for i in range(6000)])
    assert col.info()["index_in_use"] == "flat"
    col.upsert(list(range(6000, n)), X[6000:], payloads=[{"g": i % 4} for i in range(6000, n)])
    assert col.info()["index_in_use"] == "hnsw"
    flat = vdb.open(db.path.parent / "flat")
    ref = flat.create_collection("c", dim=16, metric="l2", index="flat")
    ref.upsert(list(range(n)), X, payloads=[{"g": i % 4} for i in range(n)])
    assert recall(hit_ids(col.search(Q, k=10)), hit_ids(ref.search(Q, k=10))) >= 0.95
    assert walks, "the search did not walk the graph"
    got = col.search(Q, k=10, filter={"g": 1}, ef=128)
    assert all(len(h) == 10 and all(x.payload["g"] == 1 for x in h) for h in got)
    assert recall(hit_ids(got), hit_ids(ref.search(Q, k=10, filter={"g": 1}))) >= 0.95
    col.delete(filter={"g": 2})
    assert all(x.payload["g"] != 2 for h in col.search(Q, k=10) for x in h)
    flat.close()


def test_hnsw_collection_reopens(tmp_path):
    X = clustered(3000, 8, seed=1)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=8, index={"kind": "hnsw", "M": 8, "ef_search": 40})
        col.upsert(list(range(3000)), X)
        before = hit_ids(col.search(X[:20], k=5))
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.config.index.hnsw.M == 8 and col.info()["index_in_use"] == "hnsw"
        assert recall(hit_ids(col.search(X[:20], k=5)), before) >= 0.95


@pytest.mark.parametrize(
    "index, fragment",
    [
        ("ivf", "unknown index kind"),
        ({"M": 1}, "M must be"),
        ({"ef_search": 0}, "ef_search"),
        ({"hnsw_threshold": -1}, "hnsw_threshold"),
        ({"colour": "red"}, "colour"),
        (5, "index must be"),
    ],
)
def test_bad_index_options(db, index, fragment):
    with pytest.raises(vdb.InvalidArgumentError, match=fragment):
        db.create_collection("c", dim=4, index=index)
    assert db.list_collections() == []


def test_bad_ef(db):
    col = db.create_collection("c", dim=2, index="hnsw")
    with pytest.raises(vdb.InvalidArgumentError, match="ef must be"):
        col.search([1, 0], ef=0)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_payload_only_upsert_leaves_the_graph_alone(tmp_path, monkeypatch, metric):
    from vdb.index.hnsw import HnswIndex

    X = clustered(2000, 8, seed=3)
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=8, metric=metric, index="hnsw")
        col.upsert(list(range(2000)), X, payloads=[{"g": 0}] * 2000)
        col._linker.wait()
        linked = []
        link = HnswIndex._link
        monkeypatch.setattr(HnswIndex, "_link", lambda self, n: linked.append(n) or link(self, n))
        stored = col.get([5, 6, 7], with_vectors=True)
        col.upsert([5, 6, 7], [p.vector for p in stored], payloads=[{"g": 1}] * 3)
        col._linker.wait()
        assert not linked  # the same vectors: only the payloads changed
        hits = col.search(X[5], k=3, filter={"g": 1})
        assert sorted(h.id for h in hits) == [5, 6, 7]
        col.upsert([5, 8], [X[6], X[8] + 1], payloads=[{"g": 2}] * 2)  # moved: relinked
        col._linker.wait()
        assert len(np.concatenate(linked)) == 2
        assert col.search(X[6], k=1, filter={"g": 2})[0].id == 5
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert sorted(h.id for h in col.search(X[5], k=10, filter={"g": 1})) == [6, 7]
