"""The keyword index's checkpoint: one derived file (vdb/storage/derived.py) beside the vector
checkpoint, named c{cid}.ckpt-text so that whatever removes a collection's checkpoints
(dropping it, `vdb check --repair`) removes it too. Stamped with the op-log sequence number
(LSN) it covers and with what it belongs to (database id, collection number and creation
time, text config); verified whole, then its arrays against each other, before it is used.
"""

from dataclasses import asdict
from pathlib import Path

from vdb.index.sparse import SparseIndex
from vdb.storage import derived
from vdb.storage.derived import Unsound

MAGIC = b"VDBTEXT1"

__all__ = ["Unsound", "load", "path_for", "save", "snapshot", "stamp"]


def path_for(directory: Path, cid: int) -> Path:
    return Path(directory) / f"c{cid}.ckpt-text"


def stamp(db_id: bytes, config) -> dict:
    """What a collection's keyword checkpoint must say it belongs to."""
    return {
        "db_id": db_id.hex(),
        "cid": config.cid,
        "created_at": config.created_at,
        "text": asdict(config.text),
    }


def snapshot(index: SparseIndex) -> tuple[dict, dict]:
    """What the file holds, taken under the collection's lock so that it can be written while
    the collection changes."""
    return index.state()


def save(path: Path, taken: tuple[dict, dict], lsn: int, owner: dict) -> None:
    meta, sections = taken
    derived.write(path, MAGIC, {**owner, "lsn": lsn, "meta": meta}, sections)


def load(path: Path, owner: dict) -> tuple[SparseIndex, int] | None:
    """(index, lsn) from the file, None when there is none, Unsound(reason) when there is one
    that must not be used."""
    found = derived.read(path, MAGIC, owner)
    if found is None:
        return None
    fields, sections = found
    try:
        lsn = fields["lsn"]
        if type(lsn) is not int or lsn < 0:
            raise Unsound(f"its lsn {lsn!r} is not a sequence number")
        index = SparseIndex.restore(fields["meta"], sections)
    except Unsound:
        raise
    except Exception as exc:  # a field of the wrong type or missing: the file is not sound
        raise Unsound(f"its contents do not fit together ({type(exc).__name__}: {exc})") from None
    return index, lsn
