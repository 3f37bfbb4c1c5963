"""Schema migrations: a schema-1 database (tests/fixtures/db-schema1, written by the vdb of
tests/fixtures/make_db_schema1.py) opens, is upgraded in one transaction to checksummed
values, and holds exactly what was written."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import vdb
from vdb.storage import keys

FIXTURE = Path(__file__).parent / "fixtures" / "db-schema1"


@pytest.fixture
def old(tmp_path):
    path = tmp_path / "db"
    shutil.copytree(FIXTURE, path)
    return path


def written():
    """What make_db_schema1.py wrote: {collection: {id: (vector, payload, document)}}."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    ids = [f"n{i}" for i in range(30)] + list(range(30))
    notes = {
        pid: (
            X[i],
            {"i": i, "tag": ["x", "y"][i % 2], "nested": {"k": i % 3}},
            f"document number {i} \u00e9" if i % 4 else None,
        )
        for i, pid in enumerate(ids)
    }
    for gone in ("n3", 7, "n0", "n1"):
        del notes[gone]
    notes["late"] = (X[0] + 1, {"i": 99}, "after the checkpoint")
    G = rng.standard_normal((40, 3)).astype(np.float32)
    graph = {i: (G[i], None, None) for i in range(40) if i != 5}
    return {"notes": notes, "graph": graph, "empty": {}}


def test_a_schema_1_database_is_upgraded_and_reads_back(old):
    with pytest.raises(vdb.StorageError, match="open it once for writing"):
        vdb.open(old, read_only=True)
    with vdb.open(old) as db:
        assert sorted(db.list_collections()) == ["empty", "graph", "notes"]
        for name, points in written().items():
            col = db.get_collection(name)
            assert col.count() == len(points) and not col.info()["damage"]
            records = {r.id: r for r in col.get(list(points), with_vectors=True)}
            assert set(records) == set(points)
            for pid, (vector, payload, document) in points.items():
                rec = records[pid]
                np.testing.assert_array_equal(rec.vector, vector)
                assert (rec.payload, rec.document) == (payload, document)
        notes = db.get_collection("notes")
        assert notes.count({"tag": "x"}) == sum(
            1 for _, p, _ in written()["notes"].values() if p.get("tag") == "x"
        )
        assert notes.search(written()["notes"]["late"][0], k=1)[0].id == "late"
        db.get_collection("graph").upsert([100], [[1.0, 2.0, 3.0]])
    with vdb.open(old, read_only=True) as db:  # now current: read-only opens work
        assert db.get_collection("graph").count() == 40
        assert db.get_collection("notes").info()["loaded_from"] == "checkpoint"
        with db._store.read() as txn:
            assert txn.get(keys.KEY_SCHEMA, db=db._store.meta)[:1] == b"2"
    assert vdb.check(old).ok


def test_the_upgrade_is_all_or_nothing(old, monkeypatch):
    from vdb.storage import migrations

    def fail_midway(txn, store):
        migrations._rewrite(txn, store.records, lambda key, raw: b"half-written")
        raise RuntimeError("power cut")

    monkeypatch.setitem(migrations.MIGRATIONS, 1, fail_midway)
    with pytest.raises(RuntimeError, match="power cut"):
        vdb.open(old)
    monkeypatch.undo()
    with vdb.open(old) as db:
        assert db.get_collection("notes").get("late").document == "after the checkpoint"
