"""Key layout of the LMDB environment. Pure data and byte arithmetic, no logic beyond packing.

Named databases:
  meta     b"schema"                     -> u32 schema version
           b"col:" + name                -> JSON collection config (id, dim, metric, ...)
           b"state:" + cid               -> STATE: (lsn, next_iid) of one collection
           b"next_cid"                   -> u32 next collection id
  records  cid + iid                     -> record bytes (see codec.py)
  ids      cid + encoded external id     -> iid
  oplog    cid + lsn                     -> op-log entry (see oplog.py)

cid is a big-endian u32, iid and lsn big-endian u64, so keys of one collection are contiguous
and sorted by number.
"""

import struct

SCHEMA_VERSION = 1

DB_META = b"meta"
DB_RECORDS = b"records"
DB_IDS = b"ids"
DB_OPLOG = b"oplog"
ALL_DBS = (DB_META, DB_RECORDS, DB_IDS, DB_OPLOG)

KEY_SCHEMA = b"schema"
KEY_NEXT_CID = b"next_cid"
PREFIX_COLLECTION = b"col:"
PREFIX_STATE = b"state:"

CID = struct.Struct(">I")  # collection id, 4 bytes
U64 = struct.Struct(">Q")  # iid or lsn, 8 bytes
STATE = struct.Struct("<QQ")  # (lsn, next_iid), 16 bytes

# External ids: a tag byte, then the value. Ints sort numerically before strings.
ID_TAG_INT = b"i"
ID_TAG_STR = b"s"
INT_ID = struct.Struct(">Q")  # int64 with the sign bit flipped, so byte order = numeric order
INT_ID_BIAS = 1 << 63
MAX_STR_ID_BYTES = 256  # LMDB keys are limited to 511 bytes


def cid_prefix(cid: int) -> bytes:
    return CID.pack(cid)


def record_key(cid: int, iid: int) -> bytes:
    return CID.pack(cid) + U64.pack(iid)


def oplog_key(cid: int, lsn: int) -> bytes:
    return CID.pack(cid) + U64.pack(lsn)


def state_key(cid: int) -> bytes:
    return PREFIX_STATE + CID.pack(cid)


def collection_key(name: str) -> bytes:
    return PREFIX_COLLECTION + name.encode("utf-8")
