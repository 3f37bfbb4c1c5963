"""Index checkpoints: the arena, the graph, the payload columns and the id array of one
collection in one
derived file (vdb/storage/derived.py), stamped with the op-log sequence number (LSN) they
cover and with what they belong to (database id, collection number and creation time,
dimension, metric).

Loading verifies the file whole (header and section checksums, every stamp against the
collection's own), then the index's arrays against each other (shapes, dtypes, counts,
neighbour ids in range) before anything searches them. A file that fails any of these
raises Unsound with the reason; the caller rebuilds from LMDB.
"""

import json
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vdb.filters import PayloadIndex
from vdb.ids import IdArray
from vdb.index.flat import FlatIndex
from vdb.index.hnsw import HnswIndex
from vdb.storage import derived
from vdb.storage.derived import Unsound

MAGIC = b"VDBCKPT2"
KINDS = {"flat": FlatIndex, "hnsw": HnswIndex}
PAYLOADS = "payloads"

__all__ = ["Unsound", "load", "path_for", "remove", "save", "stamp"]


def path_for(directory: Path, cid: int) -> Path:
    return Path(directory) / f"c{cid}.ckpt"


def stamp(db_id: bytes, config) -> dict:
    """What a collection's checkpoint must say it belongs to."""
    return {
        "db_id": db_id.hex(),
        "cid": config.cid,
        "created_at": config.created_at,
        "dim": config.dim,
        "metric": config.metric,
        "index": json.loads(json.dumps(asdict(config.index))),
    }


def snapshot(index: FlatIndex, payloads, ids: IdArray) -> tuple[dict, dict]:
    """A copy of what a checkpoint holds, (meta, sections), so that the file can be written
    while the collection changes."""
    meta, arrays = index.state()
    sections = {f"a.{name}": np.array(arr) for name, arr in arrays.items()}
    sections.update({name: np.array(arr) for name, arr in ids.state(index.size).items()})
    sections[PAYLOADS] = pickle.dumps(payloads, protocol=5)
    return meta, sections


def save(path: Path, taken: tuple[dict, dict], lsn: int, owner: dict) -> None:
    """Write a snapshot() covering LSN lsn."""
    meta, sections = taken
    derived.write(path, MAGIC, {**owner, "lsn": lsn, "meta": meta}, sections)


def load(path: Path, owner: dict):
    """(index, payloads, ids, lsn) from a checkpoint, None when there is none, Unsound(reason)
    when there is one that must not be used. ids is None in a checkpoint written before
    checkpoints held them."""
    found = derived.read(path, MAGIC, owner)
    if found is None:
        return None
    fields, sections = found
    try:
        meta, lsn = fields["meta"], fields["lsn"]
        arrays = {name[2:]: arr for name, arr in sections.items() if name.startswith("a.")}
        if meta.get("dim") != owner["dim"] or meta.get("metric") != owner["metric"]:
            raise Unsound("its index was built for another dimension or metric")
        if not isinstance(lsn, int) or lsn < 0:
            raise Unsound(f"its lsn {lsn!r} is not a sequence number")
        kind = KINDS.get(meta.get("kind"))
        wanted = owner["index"]["kind"]
        if kind is None or wanted not in ("auto", meta["kind"]):
            raise Unsound(f"its index kind {meta.get('kind')!r} is not the collection's")
        if kind is HnswIndex and meta.get("config") != owner["index"]["hnsw"]:
            raise Unsound("its HNSW parameters are not the collection's")
        index = kind.restore(meta, arrays)
        payloads = pickle.loads(sections[PAYLOADS])
        ids = IdArray.restore(sections, index.size) if "id_kind" in sections else None
    except Unsound:
        raise
    except Exception as exc:  # a field of the wrong type or missing: the file is not sound
        raise Unsound(f"its contents do not fit together ({type(exc).__name__}: {exc})") from None
    if not isinstance(payloads, PayloadIndex) or payloads.capacity < index.size:
        raise Unsound("its payload columns do not cover its points")
    return index, payloads, ids, lsn


def remove(directory: Path, cid: int) -> None:
    """Delete a collection's checkpoint and any temporary files left by a crash."""
    for stale in Path(directory).glob(f"c{cid}.ckpt*"):
        stale.unlink(missing_ok=True)
