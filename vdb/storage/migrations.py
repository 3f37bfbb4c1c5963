"""Numbered schema migrations: MIGRATIONS[n] upgrades schema n to n + 1 inside the one write
transaction that opens the database, so an upgrade is all or nothing.

Schema 1 -> 2: every value gains a checksum (seal.py), records become version 2, and each
collection's state gains the count of its points, which checks derived state on open.
"""

import json
from collections import Counter

from vdb.errors import DataCorruptedError
from vdb.storage import keys, values
from vdb.storage.seal import seal


def schema_version(txn, store) -> int:
    """The schema of the open environment: 1 for the bare b"1" of schema 1; a new, empty
    database counts as current."""
    raw = txn.get(keys.KEY_SCHEMA, db=store.meta)
    if raw is None:
        if txn.stat(store.meta)["entries"]:
            raise DataCorruptedError("the database's schema record is missing")
        return keys.SCHEMA_VERSION
    if raw == b"1":
        return 1
    return values.get_number(txn, store, keys.KEY_SCHEMA, keys.SCHEMA_VERSION)


def _rewrite(txn, db, fn) -> None:
    """Replace every value of a table with fn(key, value), in key order."""
    cursor = txn.cursor(db=db)
    more = cursor.first()
    while more:
        key = cursor.key()
        cursor.put(key, fn(key, cursor.value()))
        more = cursor.next()


def schema_1_to_2(txn, store) -> None:
    counts: Counter = Counter()

    def record(key: bytes, raw: bytes) -> bytes:
        counts[keys.CID.unpack_from(key)[0]] += 1
        return seal(key, bytes([2]) + raw[1:])  # the version byte, then the same layout

    _rewrite(txn, store.records, record)
    _rewrite(txn, store.ids, seal)
    _rewrite(txn, store.oplog, seal)
    configs, states = [], []
    cursor = txn.cursor(db=store.meta)
    for key, raw in cursor:
        if key.startswith(keys.PREFIX_COLLECTION):
            configs.append((key, raw))
        elif key.startswith(keys.PREFIX_STATE):
            states.append((key, raw))
        elif key == keys.KEY_NEXT_CID:
            values.put_number(txn, store, key, int(raw))
    for key, raw in configs:
        json.loads(raw)  # a config that does not parse stops the upgrade here
        txn.put(key, seal(key, raw), db=store.meta)
    for key, raw in states:
        cid = keys.CID.unpack_from(key, len(keys.PREFIX_STATE))[0]
        lsn, next_iid = keys.STATE_V1.unpack(raw)
        values.put_state(txn, store, cid, lsn, next_iid, counts[cid])


MIGRATIONS = {1: schema_1_to_2}
