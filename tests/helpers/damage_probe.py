"""Reads damaged copies of a database and says, for each, what a user would have met.

Usage: python -m tests.helpers.damage_probe EXPECTED.json DB_DIR...

EXPECTED.json: {collection: {"dim": d, "points": {repr(id): [payload, document, vector]}}}.
For each DB_DIR, one JSON line: {"path", "outcome", "detail", "check_ok"} where outcome is
  "ok"       every point read back exactly, nothing missing
  "error"    a documented error (StorageError family, or a collection not found that the
             database lists as damaged) before anything wrong was returned
  "wrong"    a record came back different from the one written (never acceptable)
  "missing"  points silently absent: no error, no damage listed (never acceptable)
and check_ok says whether `vdb check` found the directory sound.
An undocumented exception ends the process with a traceback; a crash ends it with a signal.
"""

import json
import sys

import numpy as np

import vdb
from vdb.checker import check
from vdb.collection import scan
from vdb.errors import NotFoundError, StorageError


def probe(path: str, expected: dict) -> tuple[str, str]:
    try:
        db = vdb.open(path)
    except StorageError as exc:
        return "error", f"open: {type(exc).__name__}: {exc}"
    try:
        for name, spec in expected.items():
            outcome = _collection(db, name, spec)
            if outcome[0] != "ok":
                return outcome
        return "ok", ""
    finally:
        db.close()


def _collection(db, name: str, spec: dict) -> tuple[str, str]:
    points = spec["points"]
    try:
        col = db.get_collection(name)
    except NotFoundError as exc:
        if db.info()["damage"]:
            return "error", f"{name}: {exc} (listed as damaged)"
        return "missing", f"{name}: {exc}"
    except StorageError as exc:
        return "error", f"{name}: {type(exc).__name__}: {exc}"
    damage = col.info()["damage"]
    try:
        seen = {}
        for rec in scan(col, with_vectors=True):
            seen[repr(rec.id)] = rec
        ids = [eval(key) for key in points]  # noqa: S307 - reprs of str and int ids we wrote
        got = {repr(r.id): r for r in col.get(ids, with_vectors=True)}
        vectors = np.array([v for _, _, v in points.values()], np.float32)
        tops = [hits[0].id if hits else None for hits in col.search(vectors, k=1)]
    except StorageError as exc:
        return "error", f"{name}: {type(exc).__name__}: {exc}"
    for found in (seen, got):
        for key, rec in found.items():
            if key not in points or not _same(rec, points[key]):
                return "wrong", f"{name}: {key} read back as {rec!r}"
    if len(seen) != len(points) or len(got) != len(points):
        if damage:
            return "error", f"{name}: {len(points) - len(seen)} missing, listed as damaged"
        return "missing", f"{name}: scroll {len(seen)}, get {len(got)} of {len(points)}"
    if any(repr(t) not in points for t in tops):
        return "wrong", f"{name}: a search returned an id never written"
    return "ok", ""


def _same(rec, want) -> bool:
    payload, document, vector = want
    return (
        rec.payload == payload
        and rec.document == document
        and np.array_equal(rec.vector, np.array(vector, np.float32))
    )


def after_repair(path: str, expected: dict) -> str:
    """Repair, then read everything again: "ok" (every point readable, those lost to the
    damage consistently absent, check clean) or what went wrong."""
    repair = check(path, repair=True)
    if not repair.ok:
        return "unrepaired: " + "; ".join(repair.unrepaired)[:200]
    if not check(path).ok:
        return "check still fails after repair"
    db = vdb.open(path)
    try:
        for name, spec in expected.items():
            col = db.get_collection(name)
            seen = {repr(r.id): r for r in scan(col, with_vectors=True)}
            got = col.get([eval(key) for key in spec["points"]])  # noqa: S307
            if len(seen) != len(got) or len(seen) != col.count():
                return f"{name}: scroll {len(seen)}, get {len(got)}, count {col.count()}"
            if any(
                key not in spec["points"] or not _same(r, spec["points"][key])
                for key, r in seen.items()
            ):
                return f"{name}: a wrong record after repair"
            col.upsert(["after-repair"], np.ones(spec["dim"]))  # writable again
    finally:
        db.close()
    return "ok"


def main() -> None:
    expected = json.loads(open(sys.argv[1]).read())
    for path in sys.argv[2:]:
        outcome, detail = probe(path, expected)
        report = check(path)
        line = {"path": path, "outcome": outcome, "detail": detail[:300], "check_ok": report.ok}
        if not report.ok and not report.unrepaired:
            line["repair"] = after_repair(path, expected)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
