"""Exception classes. Every error caused by bad input subclasses ValueError or KeyError."""


class VdbError(Exception):
    """Base class of every error raised by vdb."""


class InvalidArgumentError(VdbError, ValueError):
    """An argument has the wrong shape, type or value."""


class DimensionError(InvalidArgumentError):
    """A vector does not have the collection's dimension."""


class InvalidVectorError(InvalidArgumentError):
    """A vector holds NaN or infinite values, or is zero under cosine."""


class InvalidIdError(InvalidArgumentError):
    """A point id is not a str or int in the supported range."""


class DuplicateIdError(InvalidArgumentError):
    """The same point id appears twice in one batch."""


class InvalidPayloadError(InvalidArgumentError):
    """A payload is not a JSON object."""


class InvalidNameError(InvalidArgumentError):
    """A collection name does not match the allowed pattern."""


class FilterError(InvalidArgumentError):
    """A filter is malformed or compares values of the wrong type."""


class CollectionExistsError(VdbError, ValueError):
    """A collection with this name already exists."""


class NotFoundError(VdbError, KeyError):
    """Something looked up by name or id does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CollectionNotFoundError(NotFoundError):
    """No collection has this name."""


class PointNotFoundError(NotFoundError):
    """No point has this id."""


class PermissionDeniedError(VdbError, PermissionError):
    """The caller's API key does not allow the request (PERMISSION_DENIED)."""


class ReadOnlyError(PermissionDeniedError):
    """A write was attempted through a read-only handle."""


class DatabaseLockedError(VdbError, RuntimeError):
    """Another writer holds the database."""


class ClosedError(VdbError, RuntimeError):
    """The database or collection was closed."""


class StorageError(VdbError, OSError):
    """The database's files cannot be used as they are."""


class DataCorruptedError(StorageError):
    """Stored bytes fail their checksum or do not decode: a damaged or truncated file
    (DATA_LOSS over gRPC). `vdb check DIR` lists all the damage."""


class PullError(VdbError, ValueError):
    """A model could not be pulled into the model cache (`vdb model pull`)."""


class ModelSourceError(PullError):
    """A model source is malformed or names no known model: not a known short name, a
    pypi:PACKAGE, an http(s):// or hf:// URL, or a .gguf file; or a bad name or sha256."""


class DownloadError(PullError):
    """The source answered with an error status, could not be reached, or the connection
    dropped (what arrived is kept, and the same pull resumes from it)."""


class ChecksumError(PullError):
    """What the source gave does not have the expected sha256 (nothing is kept)."""


class NotAModelError(PullError):
    """What the source gave is not a whole GGUF file (nothing is kept)."""


# ---------------------------------------------------------------- raised by the remote client
# for conditions that only exist across the wire


class AuthenticationError(VdbError, PermissionError):
    """The server wants an API key and got none, or a wrong one (UNAUTHENTICATED)."""


class ResourceExhaustedError(VdbError, RuntimeError):
    """The server is at its limit of concurrent requests (RESOURCE_EXHAUSTED)."""


class MessageTooLargeError(ResourceExhaustedError, ValueError):
    """A request or response is larger than the server's maximum message size."""


class LimitExceededError(ResourceExhaustedError, ValueError):
    """A request asks for more work than the server's limits allow: queries per batch, k,
    results, texts to embed (RESOURCE_EXHAUSTED)."""


class DeadlineExceededError(VdbError, TimeoutError):
    """The request's deadline passed before the server finished it (DEADLINE_EXCEEDED)."""


class UnavailableError(VdbError, ConnectionError):
    """The server cannot be reached or is shutting down (UNAVAILABLE)."""


class ModelNotLoadedError(NotFoundError):
    """The server has no generation model (FAILED_PRECONDITION)."""


class AbortedError(VdbError, RuntimeError):
    """The server ended the request, as when its model was replaced mid-stream (ABORTED)."""


class ServerError(VdbError, RuntimeError):
    """The server failed in a way the client cannot act on (INTERNAL, UNKNOWN)."""


def shown(value, limit: int = 60) -> str:
    """repr(value) for an error message, cut after about limit characters: messages name
    the value they refuse but never echo unbounded input."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"
