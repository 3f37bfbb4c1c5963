"""Damaged data files: truncated, zero-filled and bit-flipped data.mdb, read in a subprocess.
Each copy gives back exactly what was written, or a documented error (StorageError /
DataCorruptedError, or damage listed by the database): never a signal, never a wrong record,
never points silently missing. `vdb check` finds every copy that did not read back whole."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vdb
from vdb.checker import check
from vdb.storage.seal import CRC

ROOT = Path(__file__).resolve().parent.parent
PAGE = 4096


def make(path: Path) -> dict:
    """A database with a flat and an HNSW collection; returns what EXPECTED.json holds."""
    rng = np.random.default_rng(0)
    expected = {}
    with vdb.open(path) as db:
        for name, kind, dim, n in (("flat", "flat", 6, 150), ("graph", "hnsw", 4, 120)):
            col = db.create_collection(name, dim=dim, metric="l2", index=kind)
            ids = [f"doc-{i}" if i % 2 else i for i in range(n)]
            X = rng.standard_normal((n, dim)).astype(np.float32)
            payloads = [
                {"i": i, "tags": ["a", "b"][: i % 3], "deep": {"k": str(i)}} for i in range(n)
            ]
            documents = [
                f"document {i} of {name} " * (1 + i % 4) if i % 5 else None for i in range(n)
            ]
            col.upsert(ids, X, payloads=payloads, documents=documents)
            expected[name] = {
                "dim": dim,
                "points": {
                    repr(pid): [p, d, x.tolist()]
                    for pid, p, d, x in zip(ids, payloads, documents, X, strict=True)
                },
            }
    return expected


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("damage")
    expected = make(root / "db")
    (root / "expected.json").write_text(json.dumps(expected))
    return root


def damaged_copies(source: Path, out: Path, cases: list) -> list[Path]:
    raw = (source / "db" / "data.mdb").read_bytes()
    paths = []
    for i, (damage, keep_checkpoints) in enumerate(cases):
        path = out / f"copy-{i}"
        shutil.copytree(source / "db", path)
        if not keep_checkpoints:
            shutil.rmtree(path / "index", ignore_errors=True)
        (path / "data.mdb").write_bytes(damage(raw))
        paths.append(path)
    return paths


def run_probe(source: Path, paths: list[Path]) -> list[dict]:
    """Probe every path, restarting the probe after a crash (which is then a result)."""
    results, todo = [], list(paths)
    while todo:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.helpers.damage_probe", str(source / "expected.json")]
            + [str(p) for p in todo],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        results += lines
        todo = todo[len(lines) :]
        if todo:  # the probe died on todo[0]
            results.append(
                {
                    "path": str(todo[0]),
                    "outcome": f"process ended with {proc.returncode}",
                    "detail": proc.stderr[-2000:],
                    "check_ok": None,
                }
            )
            todo = todo[1:]
    return results


def truncate(n):
    return lambda raw: raw[: n if n >= 0 else len(raw) + n]


def zero(start, stop):
    def go(raw):
        stop_ = len(raw) if stop is None else stop
        return raw[:start] + bytes(stop_ - start) + raw[stop_:]

    return go


def flip(positions):
    def go(raw):
        out = bytearray(raw)
        for pos, bit in positions:
            out[pos % len(out)] ^= 1 << bit
        return bytes(out)

    return go


def flips_in(needle: bytes, count: int, seed: int):
    """Bit flips inside the stored bytes of a known value (a record's document)."""

    def go(raw):
        at = raw.find(needle)
        assert at >= 0
        rng = np.random.default_rng(seed)
        return flip([(at + int(rng.integers(len(needle))), int(rng.integers(8)))] * count)(raw)

    return go


def cases(seed: int, random_flips: int) -> list:
    rng = np.random.default_rng(seed)
    out = [
        (truncate(0), True),
        (truncate(PAGE), True),
        (truncate(2 * PAGE), True),
        (truncate(-PAGE), True),
        (truncate(-1), False),
        (lambda raw: raw[: len(raw) // 2], True),
        (zero(0, None), True),
        (zero(0, PAGE), True),
        (zero(3 * PAGE, 5 * PAGE), False),
        (zero(3 * PAGE, 5 * PAGE), True),
        (flips_in(b"document 7 of flat", 1, 1), True),
        (flips_in(b"document 7 of flat", 1, 2), False),
        (flips_in(b'"deep":{"k":"13"}', 1, 3), True),
        (flips_in(b'"deep":{"k":"13"}', 1, 4), False),
    ]
    for _ in range(random_flips):
        positions = [(int(rng.integers(1 << 30)), int(rng.integers(8)))]
        out.append((flip(positions), bool(rng.integers(2))))
    return out


def assert_sound(results: list[dict]) -> None:
    """No signal, no undocumented exception, no wrong record; and `vdb check` flags every
    copy that did not read back whole. ("missing": a lookup by id that a damaged LMDB key
    or branch page sends astray finds nothing; LMDB keeps no checksums of its pages, so only
    a full check tells.)"""
    bad = [r for r in results if r["outcome"] not in ("ok", "error", "missing")]
    assert not bad, json.dumps(bad, indent=1)[:6000]
    unnoticed = [r for r in results if r["outcome"] != "ok" and r["check_ok"]]
    assert not unnoticed, f"vdb check passed copies that did not read back: {unnoticed}"
    unrepaired = [r for r in results if r.get("repair", "ok") != "ok"]
    assert not unrepaired, json.dumps(unrepaired, indent=1)[:6000]


@pytest.mark.parametrize(
    "seed,random_flips",
    [pytest.param(0, 16), pytest.param(1, 300, marks=pytest.mark.slow)],
)
def test_damaged_data_files(source, tmp_path, seed, random_flips):
    results = run_probe(source, damaged_copies(source, tmp_path, cases(seed, random_flips)))
    assert_sound(results)
    outcomes = [r["outcome"] for r in results]
    assert outcomes[:10].count("error") >= 9  # truncations and zeroed headers are refused
    assert outcomes[10:14] == ["error"] * 4  # a flipped bit inside a record is caught


def test_truncated_file_is_a_storage_error_not_sigbus(tmp_path):
    with vdb.open(tmp_path / "db") as db:
        db.create_collection("c", dim=2).upsert(list(range(500)), np.ones((500, 2)))
    data = tmp_path / "db" / "data.mdb"
    data.write_bytes(data.read_bytes()[: -2 * PAGE])
    with pytest.raises(vdb.DataCorruptedError, match="truncated"):
        vdb.open(tmp_path / "db")
    with pytest.raises(vdb.DataCorruptedError, match="truncated"):
        vdb.open(tmp_path / "db", read_only=True)
    assert not check(tmp_path / "db").ok


def test_damaged_record_makes_the_collection_read_only_until_repaired(tmp_path):
    path = tmp_path / "db"
    with vdb.open(path) as db:
        col = db.create_collection("c", dim=3)
        col.upsert(["a", "b", "c"], np.eye(3), documents=["alpha text", "bravo text", "charlie"])
    shutil.rmtree(path / "index")
    data = path / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[raw.find(b"bravo text") + 2] ^= 0x10
    data.write_bytes(bytes(raw))
    with vdb.open(path) as db:
        col = db.get_collection("c")
        assert col.count() == 2 and len(col.info()["damage"]) == 1
        assert "fails its checksum" in db.info()["damage"][0]
        assert [r.id for r in col.get(["a", "c"])] == ["a", "c"]
        with pytest.raises(vdb.DataCorruptedError, match="fails its checksum"):
            col.get("b")
        with pytest.raises(vdb.DataCorruptedError, match="read-only until"):
            col.upsert(["d"], np.ones(3))
    report = check(path)
    assert not report.ok and any("fails its checksum" in p for p in report.problems)
    repaired = check(path, repair=True)
    assert repaired.ok and repaired.repaired
    assert check(path).ok
    with vdb.open(path) as db:
        col = db.get_collection("c")
        assert sorted(r.id for r in vdb.collection.scan(col)) == ["a", "c"]
        col.upsert(["b"], np.ones(3), documents=["bravo again"])
        assert col.get("b").document == "bravo again" and col.count() == 3


def test_every_value_carries_its_checksum(tmp_path):
    """A stored value moved under another key fails its checksum too."""
    with vdb.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim=2)
        col.upsert([1, 2], [[1.0, 0.0], [0.0, 1.0]])
        store = db._store
        with store.read() as txn:
            from vdb.storage import keys

            one = txn.get(keys.record_key(1, 0), db=store.records)
        assert len(one) > CRC.size
        store.transact(lambda txn: txn.put(keys.record_key(1, 1), one, db=store.records))
        with pytest.raises(vdb.DataCorruptedError):
            col.get(2)


def test_vdb_check_command(tmp_path):
    from click.testing import CliRunner

    from vdb.cli.main import main

    path = tmp_path / "db"
    with vdb.open(path) as db:
        db.create_collection("c", dim=2).upsert(["a", "b"], [[1.0, 0.0], [0.0, 1.0]])
    runner = CliRunner()
    ok = runner.invoke(main, ["--data", str(path), "check"])
    assert ok.exit_code == 0 and "c: 2 points; checkpoint sound" in ok.output
    data = path / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[raw.find(np.float32([0.0, 1.0]).tobytes() + b"sb") + 9] ^= 1  # the id inside record b
    data.write_bytes(bytes(raw))
    bad = runner.invoke(main, ["--data", str(path), "check", "--json"])
    assert bad.exit_code == 1 and '"ok": false' in bad.output
    fixed = runner.invoke(main, ["check", str(path), "--repair"])
    assert fixed.exit_code == 0 and "repaired:" in fixed.output, fixed.output
    assert runner.invoke(main, ["--data", str(path), "check"]).exit_code == 0


def test_damage_reaches_a_remote_client_as_the_same_class(tmp_path):
    from tests.rpc import serving

    path = tmp_path / "db"
    with vdb.open(path) as db:
        db.create_collection("c", dim=2).upsert(["a", "b"], [[1.0, 0.0], [0.0, 1.0]])
    data = path / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(np.float32([0.0, 1.0]).tobytes() + b"sb")  # record "b": its vector, its id
    raw[at + 1] ^= 4
    data.write_bytes(bytes(raw))
    with serving(path) as (_, address), vdb.connect(address) as remote:
        col = remote.get_collection("c")
        assert col.get("a").id == "a"
        with pytest.raises(vdb.DataCorruptedError, match="fails its checksum"):
            col.get("b")
        with pytest.raises(vdb.DataCorruptedError, match="read-only until"):
            col.upsert(["c"], [[1.0, 1.0]])
        assert col.info()["damage"]
