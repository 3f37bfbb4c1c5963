"""Derived files are verified whole before they are trusted: every header field of an index
checkpoint corrupted (raw, and rewritten with a valid header checksum), bit flips, truncation,
a file from another collection or database; then open and compare everything with the same
database rebuilt from LMDB."""

import json
import shutil
import struct
import warnings
import zlib

import numpy as np
import pytest

import vdb
from tests.test_hnsw import clustered
from vdb.index import checkpoint

DIM = 8
N = 600


def build(path, kind="hnsw", close=True):
    """A collection with a checkpoint at LSN 2 and two more batches in the op log."""
    db = vdb.open(path)
    col = db.create_collection("c", dim=DIM, metric="l2", index=kind)
    X = clustered(N, DIM, seed=3)
    col.upsert(list(range(N)), X, payloads=[{"g": i % 5} for i in range(N)])
    col.delete(filter={"g": 4})
    col.checkpoint()
    col.upsert(list(range(N, N + 50)), X[:50] + 0.25, payloads=[{"g": 7}] * 50)
    col.upsert(list(range(50)), X[:50], payloads=[{"g": 8}] * 50)  # payloads only
    if close:
        for c in db._collections.values():  # no closing checkpoint: keep the op log
            c._closed = True
        db._collections.clear()
        db._store.close()
    return X


def state(col, X):
    """Everything a user can observe, for comparing two openings of one database."""
    ids = [r.id for r in vdb.collection.scan(col)]
    records = {r.id: (r.payload, r.vector.tobytes()) for r in col.get(ids)}
    top = [hits[0].id for hits in col.search(X[:200], k=1, ef=400)]
    counts = [col.count({"g": g}) for g in range(9)]
    return col.count(), counts, records, top


def truth(path, X):
    """The state of a copy of the database opened without its checkpoint (from LMDB)."""
    copy = path.parent / f"{path.name}-truth"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    checkpoint.remove(copy / "index", 1)
    with vdb.open(copy, read_only=True) as db:
        col = db.get_collection("c")
        assert col.info()["loaded_from"] == "records"
        return state(col, X)


def header(path):
    raw = path.read_bytes()
    length, _ = struct.unpack_from("<QI", raw, 8)
    return raw, json.loads(raw[20 : 20 + length]), length


def rewrite(path, head: dict, length: int, raw: bytes, fix_crc: bool):
    """Put a changed header back: the same length (padded with spaces, as JSON allows), and a
    header checksum that is recomputed (a consistent forgery) or left stale (damage)."""
    text = json.dumps(head, separators=(",", ":")).encode()
    assert len(text) <= length, "the edit made the header longer"
    text = text.ljust(length)
    crc = zlib.crc32(text) if fix_crc else struct.unpack_from("<QI", raw, 8)[1]
    path.write_bytes(raw[:8] + struct.pack("<QI", length, crc) + text + raw[20 + length :])


def edit(field: str):
    """Functions that change one header field."""

    def section(name, key, value):
        def go(h):
            for s in h["sections"]:
                if s["name"] == name:
                    s[key] = value(s[key])

        return go

    def meta(key, value):
        def go(h):
            h["fields"]["meta"][key] = value(h["fields"]["meta"][key])

        return go

    def top(key, value):
        def go(h):
            h["fields"][key] = value(h["fields"][key])

        return go

    return {
        "lsn+1": top("lsn", lambda v: v + 1),
        "lsn+9": top("lsn", lambda v: v + 9),
        "lsn-1": top("lsn", lambda v: v - 1),
        "cid": top("cid", lambda v: v + 1),
        "db_id": top("db_id", lambda v: "0" * len(v)),
        "created_at": top("created_at", lambda v: v - 1),
        "dim": top("dim", lambda v: v + 1),
        "metric": top("metric", lambda v: "dot"),
        "meta.count": meta("count", lambda v: v + 1),
        "meta.size": meta("size", lambda v: v + 100),
        "meta.entry": meta("entry", lambda v: 10**6),
        "meta.top_level": meta("top_level", lambda v: v + 1),
        "meta.n_upper": meta("n_upper", lambda v: v + 1),
        "meta.kind": meta("kind", lambda v: "flat"),
        "vectors.dtype": section("a.vectors", "dtype", lambda v: "<i4"),
        "vectors.shape": section("a.vectors", "shape", lambda v: [v[0] // 2, v[1] * 2]),
        "vectors.offset": section("a.vectors", "offset", lambda v: v + 64),
        "vectors.crc32": section("a.vectors", "crc32", lambda v: v ^ 1),
        "links0.nbytes": section("a.links0", "nbytes", lambda v: v - 64),
        "payloads.crc32": section("payloads", "crc32", lambda v: v ^ 1),
    }[field]


FIELDS = [
    "lsn+1",
    "lsn+9",
    "lsn-1",
    "cid",
    "db_id",
    "created_at",
    "dim",
    "metric",
    "meta.count",
    "meta.size",
    "meta.entry",
    "meta.top_level",
    "meta.n_upper",
    "meta.kind",
    "vectors.dtype",
    "vectors.shape",
    "vectors.offset",
    "vectors.crc32",
    "links0.nbytes",
    "payloads.crc32",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("integrity") / "db"
    X = build(path)
    return path, X, truth(path, X)


def reopened(path, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with vdb.open(path) as db:
            col = db.get_collection("c")
            got = state(col, X), col.info()["loaded_from"]
    return got, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("fix_crc", [False, True], ids=["damaged", "forged"])
@pytest.mark.parametrize("field", FIELDS)
def test_a_corrupted_header_field_means_a_rebuild(built, tmp_path, field, fix_crc):
    source, X, expected = built
    path = tmp_path / "db"
    shutil.copytree(source, path)
    ckpt = checkpoint.path_for(path / "index", 1)
    raw, head, length = header(ckpt)
    edit(field)(head)
    rewrite(ckpt, head, length, raw, fix_crc)
    (got, loaded_from), warned = reopened(path, X)
    assert got == expected
    assert loaded_from == "records", f"{field} was trusted"
    assert any("was not used" in w for w in warned)


def test_an_unchanged_checkpoint_is_used_and_agrees(built, tmp_path):
    source, X, expected = built
    path = tmp_path / "db"
    shutil.copytree(source, path)
    (got, loaded_from), warned = reopened(path, X)
    assert loaded_from == "checkpoint" and not warned
    assert got == expected


@pytest.mark.parametrize("seed", range(12))
def test_bit_flips_and_truncations_anywhere(built, tmp_path, seed):
    source, X, expected = built
    path = tmp_path / "db"
    shutil.copytree(source, path)
    ckpt = checkpoint.path_for(path / "index", 1)
    raw = bytearray(ckpt.read_bytes())
    rng = np.random.default_rng(seed)
    if seed % 3 == 2:
        raw = raw[: int(rng.integers(1, len(raw)))]
    else:
        for pos in rng.integers(0, len(raw), size=1 + seed % 3):
            raw[pos] ^= 1 << int(rng.integers(8))
    ckpt.write_bytes(bytes(raw))
    (got, _), _ = reopened(path, X)
    assert got == expected


@pytest.mark.parametrize("other", ["collection", "database"])
def test_a_checkpoint_of_another_collection_or_database_is_refused(built, tmp_path, other):
    source, X, expected = built
    path = tmp_path / "db"
    shutil.copytree(source, path)
    donor = tmp_path / "donor"
    if other == "database":  # the same history in another database: same cid, dim, metric
        build(donor)
        donor_ckpt = checkpoint.path_for(donor / "index", 1)
    else:  # collection 2 of the same database, with the same dim and metric
        with vdb.open(path) as db:
            col2 = db.create_collection("d", dim=DIM, metric="l2", index="hnsw")
            col2.upsert(list(range(N)), clustered(N, DIM, seed=3))
        donor_ckpt = checkpoint.path_for(path / "index", 2)
    shutil.copy(donor_ckpt, checkpoint.path_for(path / "index", 1))
    (got, loaded_from), warned = reopened(path, X)
    assert loaded_from == "records" and got == expected
    assert any("was not used" in w for w in warned)


def test_a_replay_that_fails_means_a_rebuild_not_an_unopenable_database(built, tmp_path):
    source, X, expected = built
    path = tmp_path / "db"
    shutil.copytree(source, path)

    def broken(self, txn, op, iids):
        raise IndexError("index 3100 is out of bounds for axis 0 with size 3000")

    original = vdb.Collection._replay
    vdb.Collection._replay = broken
    try:
        with pytest.warns(RuntimeWarning, match="replaying the op log over it failed"):
            db = vdb.open(path)
            col = db.get_collection("c")
    finally:
        vdb.Collection._replay = original
    try:
        assert col.info()["loaded_from"] == "records"
        assert state(col, X) == expected
    finally:
        db.close()
