"""The op log: one entry per acknowledged write batch, keyed by collection and sequence number.

Entry layout (little-endian): u8 op, u32 count, then count int64 internal ids, sealed with a
checksum of key and entry (seal.py). The records themselves hold the data; the log says
which internal ids a batch touched, so derived state (in-memory index, checkpoints) can be
brought up to date by replaying entries newer than the sequence number it covers.
"""

import struct
from collections.abc import Iterator

import numpy as np

from vdb.errors import DataCorruptedError
from vdb.storage import keys
from vdb.storage.seal import seal, unseal

OP_UPSERT = 1
OP_DELETE = 2
ENTRY = struct.Struct("<BI")


def append(txn, db, cid: int, lsn: int, op: int, iids: np.ndarray) -> None:
    iids = np.ascontiguousarray(iids, dtype="<i8")
    key = keys.oplog_key(cid, lsn)
    txn.put(key, seal(key, ENTRY.pack(op, len(iids)) + iids.tobytes()), db=db)


def decode(key: bytes, value) -> tuple[int, np.ndarray]:
    """(op, iids) of a stored entry; DataCorruptedError when it fails its checks."""
    if len(key) != keys.CID.size + keys.U64.size:
        raise DataCorruptedError(f"an op-log key is damaged ({bytes(key[:16]).hex()})")
    lsn, cid = keys.U64.unpack_from(key, keys.CID.size)[0], keys.CID.unpack_from(key)[0]
    what = f"op-log entry {lsn} of collection {cid}"
    body = unseal(key, value, what)
    if len(body) < ENTRY.size:
        raise DataCorruptedError(f"{what} is cut short")
    op, count = ENTRY.unpack_from(body, 0)
    if op not in (OP_UPSERT, OP_DELETE) or len(body) != ENTRY.size + 8 * count:
        raise DataCorruptedError(f"{what} has a bad header (op {op}, count {count})")
    return op, np.frombuffer(body, dtype="<i8", count=count, offset=ENTRY.size).astype(np.int64)


def read_since(txn, db, cid: int, after_lsn: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (lsn, op, iids) for every entry of collection `cid` with lsn > after_lsn."""
    prefix = keys.cid_prefix(cid)
    cursor = txn.cursor(db=db)
    if not cursor.set_range(keys.oplog_key(cid, after_lsn + 1)):
        return
    for key, value in cursor:
        if key[:4] != prefix:
            break
        op, iids = decode(key, value)
        yield keys.U64.unpack(key[4:])[0], op, iids


def truncate(txn, db, cid: int, upto_lsn: int) -> int:
    """Delete entries with lsn <= upto_lsn; return how many were deleted."""
    return delete_range(txn, db, keys.cid_prefix(cid), keys.oplog_key(cid, upto_lsn + 1))


def delete_range(txn, db, prefix: bytes, stop_key: bytes | None = None) -> int:
    """Delete every key that starts with `prefix` (and sorts below `stop_key`, if given)."""
    cursor = txn.cursor(db=db)
    deleted = 0
    if not cursor.set_range(prefix):
        return 0
    while True:
        key = cursor.key()
        if not key.startswith(prefix) or (stop_key is not None and key >= stop_key):
            break
        if not cursor.delete():
            break
        deleted += 1
    return deleted
