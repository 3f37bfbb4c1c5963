"""vdb: an embedded vector database with exact search, payload filters and durable storage.

>>> import vdb, tempfile
>>> with vdb.open(tempfile.mkdtemp()) as db:
...     col = db.create_collection("docs", dim=3)
...     _ = col.upsert([1, 2], [[1, 0, 0], [0, 1, 0]], payloads=[{"tag": "a"}, {"tag": "b"}])
...     [hit.id for hit in col.search([1, 0.2, 0], k=2, filter={"tag": "b"})]
[2]
"""

from vdb._version import __version__ as __version__
from vdb.collection import Collection, CollectionConfig, WriteResult
from vdb.database import Database
from vdb.errors import (
    AbortedError,
    AuthenticationError,
    ClosedError,
    CollectionExistsError,
    CollectionNotFoundError,
    DatabaseLockedError,
    DataCorruptedError,
    DeadlineExceededError,
    DimensionError,
    DuplicateIdError,
    FilterError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidNameError,
    InvalidPayloadError,
    InvalidVectorError,
    LimitExceededError,
    MessageTooLargeError,
    ModelNotLoadedError,
    NotFoundError,
    PermissionDeniedError,
    PointNotFoundError,
    ReadOnlyError,
    ResourceExhaustedError,
    ServerError,
    StorageError,
    UnavailableError,
    VdbError,
)
from vdb.results import Hit, SearchResults
from vdb.storage.codec import Record
from vdb.storage.env import DatabaseNotFoundError


def open(path, read_only: bool = False, **options) -> Database:  # noqa: A001
    """Open or create the database in directory `path`. read_only=True never writes and may
    run beside a writer in another process."""
    return Database(path, read_only=read_only, **options)


def check(path, repair: bool = False):
    """Verify every record, id, op-log entry and index file of the database at path; with
    repair=True also remove what cannot be read. Returns a vdb.checker.CheckReport."""
    from vdb.checker import check as _check

    return _check(path, repair=repair)


def connect(address: str, api_key: str | None = None, tls=None, timeout: float | None = None):
    """A database served by `vdb serve` at address ("host:port"), with the methods of
    vdb.open(path). See vdb.rpc.client.connect for tls and timeout."""
    from vdb.rpc.client import connect as _connect

    return _connect(address, api_key=api_key, tls=tls, timeout=timeout)


def connect_model(address: str, api_key: str | None = None, tls=None, timeout: float | None = None):
    """The generation model of the server at address (`vdb serve --model FILE.gguf`), with
    the generate, chat and tokenize methods of an llm model. See vdb.rpc.model_client."""
    from vdb.rpc.model_client import RemoteModel

    return RemoteModel(address, api_key=api_key, tls=tls, timeout=timeout)


__all__ = [
    "AbortedError",
    "AuthenticationError",
    "ClosedError",
    "Collection",
    "CollectionConfig",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "Database",
    "DatabaseLockedError",
    "DatabaseNotFoundError",
    "DataCorruptedError",
    "DeadlineExceededError",
    "DimensionError",
    "DuplicateIdError",
    "FilterError",
    "Hit",
    "InvalidArgumentError",
    "InvalidIdError",
    "InvalidNameError",
    "InvalidPayloadError",
    "InvalidVectorError",
    "LimitExceededError",
    "MessageTooLargeError",
    "ModelNotLoadedError",
    "NotFoundError",
    "PermissionDeniedError",
    "PointNotFoundError",
    "ReadOnlyError",
    "ResourceExhaustedError",
    "ServerError",
    "StorageError",
    "UnavailableError",
    "Record",
    "SearchResults",
    "VdbError",
    "WriteResult",
    "check",
    "connect",
    "connect_model",
    "open",
]
