"""Key layout of the LMDB environment. Pure data and byte arithmetic, no logic beyond packing.

Named databases:
  meta     b"schema"                     -> schema version (ASCII digits)
           b"db_id"                      -> 16 random bytes naming this database
           b"col:" + name                -> JSON collection config (id, dim, metric, ...)
           b"state:" + cid               -> STATE: (lsn, next_iid, count) of one collection
           b"next_cid"                   -> next collection id (ASCII digits)
  records  cid + iid                     -> record bytes (see codec.py)
  ids      cid + encoded external id     -> u64 iid
  oplog    cid + lsn                     -> op-log entry (see oplog.py)

cid is a big-endian u32, iid and lsn big-endian u64, so keys of one collection are contiguous
and sorted by number. From schema 2 every value is sealed (seal.py): followed by a CRC-32 of
its key and itself. Schema 1 stored them bare, with a 16-byte state (lsn, next_iid).
"""

import struct

SCHEMA_VERSION = 2

DB_META = b"meta"
DB_RECORDS = b"records"
DB_IDS = b"ids"
DB_OPLOG = b"oplog"
ALL_DBS = (DB_META, DB_RECORDS, DB_IDS, DB_OPLOG)

KEY_SCHEMA = b"schema"
KEY_NEXT_CID = b"next_cid"
KEY_DB_ID = b"db_id"
PREFIX_COLLECTION = b"col:"
PREFIX_STATE = b"state:"

CID = struct.Struct(">I")  # collection id, 4 bytes
U64 = struct.Struct(">Q")  # iid or lsn, 8 bytes
STATE = struct.Struct("<QQQ")  # (lsn, next_iid, count of points), 24 bytes
STATE_V1 = struct.Struct("<QQ")  # (lsn, next_iid): schema 1

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


def describe_record(key: bytes) -> str:
    """'record 12 of collection 3' for a records key (for error messages)."""
    if len(key) == CID.size + U64.size:
        return f"record {U64.unpack_from(key, CID.size)[0]} of collection {CID.unpack_from(key)[0]}"
    return f"record key {bytes(key[:16]).hex()}"
