"""The op log: one entry per acknowledged write batch, keyed by collection and sequence number.

Entry layout (little-endian): u8 op, u32 count, then count int64 internal ids. The records
themselves hold the data; the log says which internal ids a batch touched, so derived state
(in-memory index, checkpoints) can be brought up to date by replaying entries newer than the
sequence number it covers.
"""

import struct
from collections.abc import Iterator

import numpy as np

from vdb.storage import keys

OP_UPSERT = 1
OP_DELETE = 2
ENTRY = struct.Struct("<BI")


def append(txn, db, cid: int, lsn: int, op: int, iids: np.ndarray) -> None:
    iids = np.ascontiguousarray(iids, dtype="<i8")
    txn.put(keys.oplog_key(cid, lsn), ENTRY.pack(op, len(iids)) + iids.tobytes(), db=db)


def read_since(txn, db, cid: int, after_lsn: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (lsn, op, iids) for every entry of collection `cid` with lsn > after_lsn."""
    prefix = keys.cid_prefix(cid)
    cursor = txn.cursor(db=db)
    if not cursor.set_range(keys.oplog_key(cid, after_lsn + 1)):
        return
    for key, value in cursor:
        if key[:4] != prefix:
            break
        lsn = keys.U64.unpack(key[4:])[0]
        op, count = ENTRY.unpack_from(value, 0)
        iids = np.frombuffer(value, dtype="<i8", count=count, offset=ENTRY.size).astype(np.int64)
        yield lsn, op, iids


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
