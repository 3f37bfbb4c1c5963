"""The LMDB environment of one database directory: opening, locking, transactions, migrations."""

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import lmdb

from vdb._rwlock import RWLock
from vdb.errors import (
    DatabaseLockedError,
    DataCorruptedError,
    InvalidArgumentError,
    NotFoundError,
    StorageError,
)
from vdb.storage import keys, lmdbfile, values
from vdb.storage.migrations import MIGRATIONS, schema_version

DEFAULT_MAP_SIZE = 1 << 30  # grown by doubling when full
LOCK_FILE = "writer.lock"
# LMDB's own errors that mean the file's structure is damaged (the rest are I/O or limits).
_DAMAGE = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError, lmdb.PanicError)

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
        self.env = None
        self.upgraded_from = keys.SCHEMA_VERSION  # the schema found, before any migration
        try:
            if not read_only:
                self._lock_fd = take_writer_lock(self.path)
            lmdbfile.check(self.path)
            self.env = _open_env(
                str(self.path),
                map_size=map_size,
                max_dbs=len(keys.ALL_DBS) + 4,
                max_readers=512,
                readonly=read_only,
                lock=True,
                sync=True,
                metasync=True,
            )
            with _mapped_errors():
                self.dbs = {
                    name: self.env.open_db(name, create=not read_only) for name in keys.ALL_DBS
                }
            self.meta = self.dbs[keys.DB_META]
            self.records = self.dbs[keys.DB_RECORDS]
            self.ids = self.dbs[keys.DB_IDS]
            self.oplog = self.dbs[keys.DB_OPLOG]
            self._write_lock = threading.Lock()
            self._resize = RWLock()  # readers: open transactions; writer: a map resize
            if read_only:
                with self.read() as txn:
                    self.db_id = _check_schema(txn, self)
            else:
                self.db_id = self.transact(self._migrate)
        except BaseException:
            self.close()
            raise

    def _migrate(self, txn) -> bytes:
        """Bring the schema up to date (numbered migrations, in order); returns the database
        id, made for a new database."""
        version = self.upgraded_from = schema_version(txn, self)
        if version > keys.SCHEMA_VERSION:
            raise StorageError(
                f"database schema {version} is newer than this vdb supports ({keys.SCHEMA_VERSION})"
            )
        if version == keys.SCHEMA_VERSION and txn.get(keys.KEY_SCHEMA, db=self.meta):
            db_id = values.database_id(txn, self)
            if db_id is None:
                raise DataCorruptedError("the database has no id record")
            return db_id
        while version < keys.SCHEMA_VERSION:
            MIGRATIONS[version](txn, self)
            version += 1
        values.put_number(txn, self, keys.KEY_SCHEMA, version)
        return values.database_id(txn, self) or values.new_database_id(txn, self)

    def transact(self, fn):
        """Run fn(txn) in a write transaction and commit; retried after growing a full map.

        fn must only touch the transaction: it may run more than once.
        """
        with self._write_lock, _mapped_errors():
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
        with self._resize.read(), _mapped_errors():
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


@contextmanager
def _mapped_errors():
    """LMDB's errors as ours: structural damage is DataCorruptedError, other failures of the
    environment (I/O, limits) StorageError."""
    try:
        yield
    except _DAMAGE as exc:
        raise DataCorruptedError(f"the LMDB file is damaged: {exc}") from None
    except lmdb.MapFullError:
        raise
    except lmdb.Error as exc:
        raise StorageError(f"LMDB failed: {exc}") from None


def _open_env(path: str, **options):
    with _mapped_errors():
        return lmdb.open(path, **options)


def _check_schema(txn, store) -> bytes:
    """For a read-only open: the schema must be this vdb's; returns the database id."""
    version = schema_version(txn, store)
    if version < keys.SCHEMA_VERSION:
        raise StorageError(
            f"database schema {version} predates this vdb's ({keys.SCHEMA_VERSION}); open it "
            "once for writing to upgrade it"
        )
    if version > keys.SCHEMA_VERSION:
        raise StorageError(
            f"database schema {version} is newer than this vdb supports ({keys.SCHEMA_VERSION})"
        )
    db_id = values.database_id(txn, store)
    if db_id is None:
        raise DataCorruptedError("the database has no id record")
    return db_id


def take_writer_lock(path: Path) -> int:
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
