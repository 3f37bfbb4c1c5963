"""`vdb check`: verify a whole database directory, and repair it.

Checks: the LMDB file against its header (size, meta pages); the schema and the database
id; every collection's config and state; every record (checksum, layout, id, payload JSON,
document UTF-8, slot inside the collection); the id map in both directions; each
collection's count of points; the op log (checksums, slots, sequence numbers); LMDB's own
B-trees as far as reads can tell (every entry a scan meets is found again by a lookup of its
key, keys in order); and each index checkpoint, verified as opening verifies it.

Repair (`repair=True`) takes the writer's lock and writes a new data file from everything
that is sound: damaged records and the id-map entries that point at them are left out, ids
that lost their entry are mapped again, each collection that lost something is recounted,
its op log dropped, its sequence number moved on and its checkpoint deleted (rebuilt on the
next open). Because the file is written anew, damage to LMDB's own pages that a scan can
still read past is repaired too. The old file is kept as DIR/damaged-TIME/data.mdb. Points
whose records were damaged are lost; the report says how many.
"""

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from vdb.collection import CHECKPOINT_DIR, CollectionConfig
from vdb.errors import DataCorruptedError, StorageError
from vdb.index import checkpoint
from vdb.storage import keys, oplog, values
from vdb.storage.codec import decode_record, encode_id
from vdb.storage.env import Store, take_writer_lock
from vdb.storage.seal import is_sound, unseal


@dataclass
class CollectionReport:
    name: str
    cid: int
    points: int = 0  # sound records
    damaged: int = 0  # records that fail their checks
    checkpoint: str = "missing"  # "sound", "missing", or why it would not be used


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)  # everything found wrong
    collections: list[CollectionReport] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # what repair did
    unrepaired: list[str] = field(default_factory=list)  # problems repair cannot fix

    @property
    def ok(self) -> bool:
        """True when nothing is wrong, or when repair fixed everything that was."""
        return not self.problems or (bool(self.repaired) and not self.unrepaired)

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "ok": self.ok,
            "problems": self.problems,
            "repaired": self.repaired,
            "unrepaired": self.unrepaired,
            "collections": [vars(c) for c in self.collections],
        }


def check(path, repair: bool = False) -> CheckReport:
    """Verify the database at path (reading only, beside a running writer if any), and with
    repair=True rewrite it from what is sound; see the module docstring."""
    path = Path(path)
    report = CheckReport(str(path))
    lock = None
    try:
        if not (path / "data.mdb").exists():
            raise StorageError(f"no database at {str(path)!r}")
        if repair:
            lock = take_writer_lock(path)
        store = Store(path, read_only=True)
    except StorageError as exc:
        _unrepairable(report, str(exc))
        if lock is not None:
            os.close(lock)
        return report
    try:
        try:
            with store.read() as txn:
                scan = _Scan(txn, store, report)
                scan.run()
        except DataCorruptedError as exc:  # LMDB's structure: nothing past it can be read
            _unrepairable(report, str(exc))
        if repair and report.problems and not report.unrepaired:
            _rewrite(path, store, scan, report)
    finally:
        store.close()
        if lock is not None:
            os.close(lock)
    return report


def _unrepairable(report: CheckReport, problem: str) -> None:
    report.problems.append(problem)
    report.unrepaired.append(problem)


class _Scan:
    """One pass over the database, recording problems and what a repair must change."""

    def __init__(self, txn, store, report: CheckReport):
        self.txn, self.store, self.report = txn, store, report
        self.configs: dict[int, CollectionConfig] = {}
        self.next_iid: dict[int, int] = {}
        self.sound_ids: dict[int, dict[bytes, int]] = {}  # cid -> {encoded id: iid}
        self.touched: set[int] = set()  # collections whose content a repair changes

    def problem(self, cid: int | None, text: str) -> None:
        name = self.configs[cid].name if cid in self.configs else None
        self.report.problems.append(f"collection {name!r}: {text}" if name else text)
        if cid is not None:
            self.touched.add(cid)

    def run(self) -> None:
        self.read_configs()
        for cid, config in self.configs.items():
            col = CollectionReport(config.name, cid)
            self.report.collections.append(col)
            try:
                lsn, next_iid, count = values.get_state(self.txn, self.store, cid)
            except DataCorruptedError as exc:
                self.problem(cid, str(exc))
                lsn, next_iid, count = 1 << 62, 1 << 62, -1
            self.next_iid[cid] = next_iid
            self.records(config, col)
            self.ids(config)
            if count >= 0 and count != col.points + col.damaged:
                self.problem(
                    cid,
                    f"its state counts {count} points, its records are {col.points + col.damaged}",
                )
            self.log(config, lsn)
            col.checkpoint = self.checkpoint(config, lsn)
            if col.checkpoint not in ("sound", "missing"):
                self.problem(
                    cid,
                    f"its index checkpoint is not used ({col.checkpoint}); "
                    "opening rebuilds it from the records",
                )
        for db, name in (
            (self.store.records, "records"),
            (self.store.ids, "id map"),
            (self.store.oplog, "op log"),
        ):
            for cid in _cids(self.txn, db) - set(self.configs):
                self.report.problems.append(
                    f"the {name} holds entries of collection {cid}, which has no config"
                )

    def entries(self, db, prefix: bytes, cid: int | None):
        """(key, value) of the entries under prefix, in order; damaged keys met on the way
        (out of order, or not found again by a lookup) are problems, never an early end."""
        cursor = self.txn.cursor(db=db)
        last = None
        if not cursor.set_range(prefix):
            return
        for key, raw in cursor:
            if not key.startswith(prefix):
                if is_sound(key, raw) or not prefix:
                    return
                self.problem(cid, f"a damaged key {bytes(key[:24]).hex()} lies among its entries")
                continue
            if last is not None and key <= last:
                self.problem(cid, f"key {bytes(key[:24]).hex()} is out of order")
            elif self.txn.get(key, db=db) != raw:
                self.problem(cid, f"key {bytes(key[:24]).hex()} is not found by a lookup")
            last = key
            yield key, raw

    def read_configs(self) -> None:
        for key, raw in self.entries(self.store.meta, keys.PREFIX_COLLECTION, None):
            try:
                body = unseal(key, raw, f"the config {bytes(key[:40])!r}")
                config = CollectionConfig.from_json(bytes(body))
            except DataCorruptedError as exc:
                _unrepairable(self.report, f"{exc} (its records cannot be read without it)")
                continue
            self.configs[config.cid] = config

    def records(self, config: CollectionConfig, col: CollectionReport) -> None:
        cid, dim = config.cid, config.dim
        sound = self.sound_ids[cid] = {}
        for key, raw in self.entries(self.store.records, keys.cid_prefix(cid), cid):
            try:
                if len(key) != 12:
                    raise DataCorruptedError(f"record key {bytes(key).hex()} is damaged")
                iid = keys.U64.unpack(key[4:])[0]
                rec = decode_record(key, raw, dim, with_vector=False)
                if iid >= self.next_iid[cid]:
                    raise DataCorruptedError(f"{keys.describe_record(key)} lies beyond its slots")
            except DataCorruptedError as exc:
                col.damaged += 1
                self.problem(cid, str(exc))
                continue
            col.points += 1
            sound[encode_id(rec.id)] = iid

    def ids(self, config: CollectionConfig) -> None:
        """The id map against the records: every entry sound and naming the slot whose
        record holds its id, and every sound record's id mapped."""
        cid, sound, seen = config.cid, self.sound_ids[config.cid], set()
        for key, raw in self.entries(self.store.ids, keys.cid_prefix(cid), cid):
            id_key = bytes(key[4:])
            try:
                iid = values.iid_of(key, raw)
                if sound.get(id_key) != iid:
                    raise DataCorruptedError(f"id-map entry {id_key[:40]!r} names slot {iid}")
            except DataCorruptedError as exc:
                self.problem(cid, str(exc))
                continue
            seen.add(id_key)
        for id_key, iid in sound.items():
            if id_key not in seen:
                self.problem(cid, f"slot {iid} holds an id the id map lacks")

    def log(self, config: CollectionConfig, lsn: int) -> None:
        cid = config.cid
        for key, raw in self.entries(self.store.oplog, keys.cid_prefix(cid), cid):
            try:
                _, iids = oplog.decode(key, raw)
                entry = keys.U64.unpack(key[4:])[0]
                if entry > lsn or (
                    len(iids) and (iids.min() < 0 or iids.max() >= self.next_iid[cid])
                ):
                    raise DataCorruptedError(f"op-log entry {entry} does not fit the collection")
            except DataCorruptedError as exc:
                self.problem(cid, str(exc))

    def checkpoint(self, config: CollectionConfig, lsn: int) -> str:
        path = checkpoint.path_for(self.store.path / CHECKPOINT_DIR, config.cid)
        try:
            loaded = checkpoint.load(path, checkpoint.stamp(self.store.db_id, config))
        except checkpoint.Unsound as exc:
            return str(exc)
        if loaded is None:
            return "missing"
        if loaded[-1] > lsn:
            return f"it covers LSN {loaded[-1]}, beyond the collection's {lsn}"
        return "sound"


def _cids(txn, db) -> set[int]:
    """The collection numbers that have entries in a table."""
    out, cursor = set(), txn.cursor(db=db)
    more = cursor.first()
    while more:
        key = cursor.key()
        if len(key) < 4:
            more = cursor.next()
            continue
        cid = keys.CID.unpack_from(key)[0]
        out.add(cid)
        more = cursor.set_range(keys.CID.pack(cid + 1)) if cid < 0xFFFFFFFF else False
    return out


def _rewrite(path: Path, store, scan: _Scan, report: CheckReport) -> None:
    """Write a new data file from the sound entries, then put it in place of the old one."""
    tmp = path / ".repair"
    shutil.rmtree(tmp, ignore_errors=True)
    fresh = Store(tmp)
    try:
        with store.read() as src:
            fresh.transact(lambda dst: _copy(src, dst, store, fresh, scan, report))
    finally:
        fresh.close()
        store.close()
    backup = path / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    backup.mkdir()
    os.replace(path / "data.mdb", backup / "data.mdb")
    os.replace(tmp / "data.mdb", path / "data.mdb")
    (path / "lock.mdb").unlink(missing_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    for cid in scan.touched:
        checkpoint.remove(path / CHECKPOINT_DIR, cid)
    report.repaired.append(f"the damaged data file is kept as {backup / 'data.mdb'}")


def _copy(src, dst, store, fresh, scan: _Scan, report: CheckReport) -> None:
    report.repaired.clear()
    for key, raw in src.cursor(db=store.meta):
        if is_sound(key, raw) and not key.startswith(keys.PREFIX_STATE):
            dst.put(key, raw, db=fresh.meta)  # configs, schema, next cid, the database id
    if not is_sound(keys.KEY_NEXT_CID, src.get(keys.KEY_NEXT_CID, db=store.meta)):
        values.put_number(dst, fresh, keys.KEY_NEXT_CID, max(scan.configs, default=0) + 1)
    kept = {(cid, iid) for cid, sound in scan.sound_ids.items() for iid in sound.values()}
    for key, raw in src.cursor(db=store.records):
        if len(key) == 12 and (keys.CID.unpack_from(key)[0], keys.U64.unpack(key[4:])[0]) in kept:
            dst.put(key, raw, db=fresh.records)
    for key, raw in src.cursor(db=store.oplog):
        if len(key) == 12 and keys.CID.unpack_from(key)[0] not in scan.touched:
            if keys.CID.unpack_from(key)[0] in scan.configs and is_sound(key, raw):
                dst.put(key, raw, db=fresh.oplog)
    for cid, config in scan.configs.items():
        sound = scan.sound_ids[cid]
        for id_key, iid in sound.items():
            values.put_iid(dst, fresh, keys.cid_prefix(cid) + id_key, iid)
        lsn, next_iid = _state(src, store, cid, scan)
        lsn += cid in scan.touched  # readers following the log see the change and reload
        values.put_state(dst, fresh, cid, lsn, next_iid, len(sound))
        col = next(c for c in report.collections if c.cid == cid)
        report.repaired.append(
            f"collection {config.name!r}: {col.points} points kept"
            + (f", {col.damaged} damaged record(s) removed" if col.damaged else "")
        )


def _state(src, store, cid: int, scan: _Scan) -> tuple[int, int]:
    """(lsn, next_iid) for the new file: the stored state when sound, else what the records
    and op log imply."""
    try:
        lsn, next_iid, _ = values.get_state(src, store, cid)
        return lsn, next_iid
    except DataCorruptedError:
        pass
    lsn = 0
    for key in src.cursor(db=store.oplog).iternext(values=False):
        if key[:4] == keys.cid_prefix(cid) and len(key) == 12:
            lsn = max(lsn, keys.U64.unpack(key[4:])[0])
    return lsn, max(scan.sound_ids[cid].values(), default=-1) + 1
