"""Index checkpoints: round trip without a rebuild, op-log replay, damaged files, kill -9."""

import random

import numpy as np
import pytest

import vdb
from tests.test_durability import check, crash_once
from tests.test_hnsw import clustered
from vdb.index import checkpoint

DIM = 8


def fill(col, n=3000, seed=0):
    X = clustered(n, DIM, seed=seed)
    col.upsert(list(range(n)), X, payloads=[{"g": i % 5, "tag": f"t{i % 3}"} for i in range(n)])
    return X


def ids(batch):
    return [[h.id for h in hits] for hits in batch]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_round_trip_loads_without_rebuild(tmp_path, kind):
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=kind)
        X = fill(col)
        col.delete(filter={"g": 4})
        before = ids(col.search(X[:20], k=5, filter={"tag": "t1"}))
        count = col.count()
    ckpt = checkpoint.path_for(tmp_path / "db" / "index", 1)
    assert ckpt.exists()
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        info = col.info()
        assert info["loaded_from"] == "checkpoint" and info["index_in_use"] == kind
        assert col.count() == count and col.count({"g": 4}) == 0
        assert ids(col.search(X[:20], k=5, filter={"tag": "t1"})) == before
        col.upsert(10_000, X[0], payloads={"g": 9})  # the mapped arrays take writes
        assert col.search(X[0], k=1, filter={"g": 9})[0].id == 10_000


def test_newer_writes_are_replayed_from_the_log(tmp_path):
    db = vdb.open(tmp_path / "db")
    col = db.create_collection("c", dim=DIM, metric="l2", index="hnsw")
    X = fill(col)
    lsn = col.checkpoint()
    col.upsert([5000, 5001], X[:2] + 0.5, payloads=[{"g": 7}, {"g": 7}])
    col.delete(ids=[0, 1, 2])
    col.upsert(3, X[3], payloads={"g": 8})
    for c in db._collections.values():  # drop the handle without the closing checkpoint
        c._closed = True
    db._collections.clear()
    db._store.close()
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "checkpoint" and col.lsn == lsn + 3
        assert col.count() == 3000 - 3 + 2
        assert col.count({"g": 7}) == 2 and col.get(3).payload == {"g": 8}
        assert not {h.id for hits in col.search(X[:3], k=10) for h in hits} & {0, 1, 2}


def test_checkpoint_truncates_the_log(tmp_path):
    from vdb.storage import oplog

    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM)
        fill(col, 500)
        col.upsert(9999, np.ones(DIM))
        lsn = col.checkpoint()
        with db._store.read() as txn:
            assert list(oplog.read_since(txn, db._store.oplog, 1, 0)) == []
        col.upsert(10_000, np.ones(DIM))
        with db._store.read() as txn:
            assert [e[0] for e in oplog.read_since(txn, db._store.oplog, 1, 0)] == [lsn + 1]


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "missing"])
def test_damaged_or_missing_checkpoint_is_rebuilt(tmp_path, damage):
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index="hnsw")
        X = fill(col)
        before = ids(col.search(X[:10], k=5))
    ckpt = checkpoint.path_for(tmp_path / "db" / "index", 1)
    raw = bytearray(ckpt.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        ckpt.write_bytes(bytes(raw))
    elif damage == "truncate":
        ckpt.write_bytes(bytes(raw[: len(raw) // 3]))
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint at all")
    else:
        ckpt.unlink()
    with vdb.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "records"
        assert col.count() == 3000
        got = ids(col.search(X[:10], k=5))
        assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, before, strict=True)]) > 0.9


def test_drop_removes_the_checkpoint(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=DIM)
        fill(col, 100)
        col.checkpoint()
        db.drop_collection("c")
        assert not list((tmp_path / "db" / "index").glob("c1.ckpt*"))


@pytest.mark.parametrize("trials", [pytest.param(3), pytest.param(25, marks=pytest.mark.slow)])
def test_kill_9_during_builds_and_checkpoints(tmp_path, trials):
    """A writer on an HNSW collection that checkpoints every few batches is killed at random
    moments; every reopen must load (from a checkpoint or the records) with nothing lost."""
    rnd = random.Random(11)
    path = tmp_path / "db"
    start, acked_all, deleted_all = 0, set(), set()
    for _ in range(trials):
        acked, deleted = crash_once(path, start, rnd, extra=["hnsw", "90"])
        acked_all |= acked
        deleted_all |= deleted
        start, unacked_deletes = check(path, acked_all, deleted_all, max(acked, default=-10))
        deleted_all |= unacked_deletes
    assert not list((path / "index").glob("*.tmp-*")), "stale temporary checkpoint files"


def test_failed_checkpoint_never_fails_an_acknowledged_write(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with vdb.open(tmp_path / "db", checkpoint_every=100) as db:
        col = db.create_collection("c", dim=DIM)
        monkeypatch.setattr(checkpoint, "save", disk_full)
        with pytest.warns(RuntimeWarning, match="No space left"):
            assert col.upsert(list(range(150)), np.ones((150, DIM))).count == 150
            col._ckpt_thread.join()  # automatic checkpoints run on a thread of their own
        assert col.count() == 150
        monkeypatch.undo()
    with vdb.open(tmp_path / "db") as db:
        assert db.get_collection("c").count() == 150
