"""The sealed values of the meta and ids tables: collection configs, collection states, the
next collection number, the database's identity, and the external-id -> internal-id map.
Every read checks the value's checksum (seal.py) and raises DataCorruptedError on damage."""

import os

from vdb.errors import DataCorruptedError, shown
from vdb.storage import keys
from vdb.storage.seal import seal, unseal


def get_config(txn, store, name: str) -> bytes | None:
    """The JSON config of collection `name`, or None when there is none."""
    key = keys.collection_key(name)
    raw = txn.get(key, db=store.meta)
    if raw is None:
        return None
    return bytes(unseal(key, raw, f"the config of collection {shown(name)}"))


def put_config(txn, store, name: str, config_json: bytes) -> None:
    key = keys.collection_key(name)
    txn.put(key, seal(key, config_json), db=store.meta)


def get_state(txn, store, cid: int) -> tuple[int, int, int]:
    """(lsn, next_iid, count) of collection cid: its newest op-log sequence number, the next
    fresh internal id, and how many points it holds. (0, 0, 0) for a collection never
    written."""
    key = keys.state_key(cid)
    raw = txn.get(key, db=store.meta)
    if raw is None:
        return 0, 0, 0
    body = unseal(key, raw, f"the state of collection {cid}")
    if len(body) != keys.STATE.size:
        raise DataCorruptedError(f"the state of collection {cid} has {len(body)} bytes")
    lsn, next_iid, count = keys.STATE.unpack(body)
    if count > next_iid:
        raise DataCorruptedError(
            f"the state of collection {cid} counts {count} points in {next_iid} slots"
        )
    return lsn, next_iid, count


def put_state(txn, store, cid: int, lsn: int, next_iid: int, count: int) -> None:
    key = keys.state_key(cid)
    txn.put(key, seal(key, keys.STATE.pack(lsn, next_iid, count)), db=store.meta)


def get_number(txn, store, key: bytes, default: int) -> int:
    """A counter such as the next collection number or the schema version."""
    raw = txn.get(key, db=store.meta)
    if raw is None:
        return default
    body = bytes(unseal(key, raw, f"meta value {key.decode()!r}"))
    if not body.isdigit():
        raise DataCorruptedError(f"meta value {key.decode()!r} is not a number: {body[:20]!r}")
    return int(body)


def put_number(txn, store, key: bytes, value: int) -> None:
    txn.put(key, seal(key, str(value).encode()), db=store.meta)


def database_id(txn, store) -> bytes | None:
    """The 16 random bytes that name this database (index checkpoints carry them)."""
    raw = txn.get(keys.KEY_DB_ID, db=store.meta)
    return None if raw is None else bytes(unseal(keys.KEY_DB_ID, raw, "the database id"))


def new_database_id(txn, store) -> bytes:
    db_id = os.urandom(16)
    txn.put(keys.KEY_DB_ID, seal(keys.KEY_DB_ID, db_id), db=store.meta)
    return db_id


def get_iid(txn, store, id_key: bytes) -> int | None:
    """The internal id that the ids table maps a full ids key (cid + encoded id) to."""
    raw = txn.get(id_key, db=store.ids)
    return None if raw is None else iid_of(id_key, raw)


def iid_of(id_key: bytes, raw) -> int:
    body = unseal(id_key, raw, "an entry of the id map")
    if len(body) != keys.U64.size:
        raise DataCorruptedError(f"an entry of the id map has {len(body)} bytes")
    return keys.U64.unpack(body)[0]


def put_iid(txn, store, id_key: bytes, iid: int) -> None:
    key, value = iid_entry(id_key, iid)
    txn.put(key, value, db=store.ids)


def iid_entry(id_key: bytes, iid: int) -> tuple[bytes, bytes]:
    """(key, sealed value) of an id-map entry, for a batch of puts."""
    return id_key, seal(id_key, keys.U64.pack(iid))
