"""The LMDB environment of one database directory: opening, locking, transactions, migrations."""

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import lmdb

from vdb._rwlock import RWLock
from vdb.errors import DatabaseLockedError, InvalidArgumentError, NotFoundError
from vdb.storage import keys

DEFAULT_MAP_SIZE = 1 << 30  # grown by doubling when full
LOCK_FILE = "writer.lock"

# Numbered migrations: MIGRATIONS[n] upgrades schema n to n + 1 inside one write transaction.
MIGRATIONS: dict[int, object] = {}

_open_paths: set[str] = set()
_open_paths_lock = threading.Lock()


class DatabaseNotFoundError(NotFoundError):
    """A read-only open named a directory that holds no database."""


class Store:
    """One LMDB environment. Writers are serialized; reads run in parallel.

    A second process opening the same directory for writing gets DatabaseLockedError; any
    number of read-only opens work beside one writer.
    """

    def __init__(self, path, read_only: bool = False, map_size: int = DEFAULT_MAP_SIZE):
        self.path = Path(path)
        self.read_only = read_only
        real = os.path.realpath(self.path)
        if read_only and not (self.path / "data.mdb").exists():
            raise DatabaseNotFoundError(f"no database at {str(self.path)!r}")
        if not read_only:
            if self.path.exists() and not self.path.is_dir():
                raise InvalidArgumentError(f"{str(self.path)!r} exists and is not a directory")
            self.path.mkdir(parents=True, exist_ok=True)
        with _open_paths_lock:
            if real in _open_paths:
                raise DatabaseLockedError(
                    f"{str(self.path)!r} is already open in this process; share that handle"
                )
            _open_paths.add(real)
        self._real = real
        self._lock_fd = None
        try:
            if not read_only:
                self._lock_fd = _take_writer_lock(self.path)
            self.env = lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=len(keys.ALL_DBS) + 4,
                max_readers=512,
                readonly=read_only,
                lock=True,
                sync=True,
                metasync=True,
            )
            self.dbs = {name: self.env.open_db(name, create=not read_only) for name in keys.ALL_DBS}
        except BaseException:
            self._release()
            raise
        self.meta = self.dbs[keys.DB_META]
        self.records = self.dbs[keys.DB_RECORDS]
        self.ids = self.dbs[keys.DB_IDS]
        self.oplog = self.dbs[keys.DB_OPLOG]
        self._write_lock = threading.Lock()
        self._resize = RWLock()  # readers: open transactions; writer: a map resize
        if not read_only:
            self.transact(self._migrate)

    def _migrate(self, txn) -> None:
        raw = txn.get(keys.KEY_SCHEMA, db=self.meta)
        version = int(raw) if raw else keys.SCHEMA_VERSION
        if version > keys.SCHEMA_VERSION:
            raise InvalidArgumentError(
                f"database schema {version} is newer than this vdb supports ({keys.SCHEMA_VERSION})"
            )
        while version < keys.SCHEMA_VERSION:
            MIGRATIONS[version](txn, self)
            version += 1
        txn.put(keys.KEY_SCHEMA, str(version).encode(), db=self.meta)

    def transact(self, fn):
        """Run fn(txn) in a write transaction and commit; retried after growing a full map.

        fn must only touch the transaction: it may run more than once.
        """
        with self._write_lock:
            while True:
                with self._resize.read():
                    txn = self.env.begin(write=True)
                    try:
                        result = fn(txn)
                        txn.commit()
                        return result
                    except lmdb.MapFullError:
                        txn.abort()
                    except BaseException:
                        txn.abort()
                        raise
                self._grow()

    def _grow(self) -> None:
        with self._resize.write():
            self.env.set_mapsize(self.env.info()["map_size"] * 2)

    @contextmanager
    def read(self):
        """A read-only transaction: a consistent snapshot of the whole database."""
        with self._resize.read():
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
                txn = self.env.begin()
            try:
                yield txn
            finally:
                txn.abort()

    def copy_to(self, dest) -> None:
        """Write a consistent, compacted copy of the environment into the empty directory dest."""
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise InvalidArgumentError(f"snapshot destination {str(dest)!r} is not empty")
        dest.mkdir(parents=True, exist_ok=True)
        with self._resize.read():
            self.env.copy(str(dest), compact=True)

    def close(self) -> None:
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        with _open_paths_lock:
            _open_paths.discard(self._real)


def _take_writer_lock(path: Path) -> int:
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise DatabaseLockedError(
            f"{str(path)!r} is open for writing by pid {holder}; open it with read_only=True "
            "or stop that process"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
