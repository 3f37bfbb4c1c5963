"""Exceptions <-> gRPC status codes. The server names the exception class in the trailing
metadata key `vdb-error`, so the remote client raises the very class the embedded API would."""

import grpc

from llm import errors as model_errors
from vdb import errors

ERROR_KEY = "vdb-error"
MAX_DETAILS = 512  # bytes of UTF-8 in a status message (gRPC's metadata holds 8 KiB in all)

# Most specific first: the first matching class decides the code.
_CODES = (
    (errors.CollectionExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.ModelNotLoadedError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.AbortedError, grpc.StatusCode.ABORTED),
    (errors.AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.MessageTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ClosedError, grpc.StatusCode.UNAVAILABLE),
    (errors.UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.DatabaseLockedError, grpc.StatusCode.UNAVAILABLE),
    (errors.DataCorruptedError, grpc.StatusCode.DATA_LOSS),
    (errors.StorageError, grpc.StatusCode.UNAVAILABLE),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (KeyError, grpc.StatusCode.NOT_FOUND),
)

# The class raised for a status that carries no (known) class name.
_DEFAULTS = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: errors.NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: errors.CollectionExistsError,
    grpc.StatusCode.PERMISSION_DENIED: errors.ReadOnlyError,
    grpc.StatusCode.UNAUTHENTICATED: errors.AuthenticationError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: errors.UnavailableError,
    grpc.StatusCode.CANCELLED: errors.UnavailableError,
    grpc.StatusCode.FAILED_PRECONDITION: errors.ModelNotLoadedError,
    grpc.StatusCode.ABORTED: errors.AbortedError,
    grpc.StatusCode.DATA_LOSS: errors.DataCorruptedError,
}


def code_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status for an exception, or None for an unexpected one (a bug: INTERNAL)."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return None


def error_from(exc: grpc.RpcError) -> Exception:
    """The Python exception for a failed call."""
    code, details = exc.code(), exc.details() or ""
    name = dict(exc.trailing_metadata() or ()).get(ERROR_KEY)
    cls = (getattr(errors, name, None) or getattr(model_errors, name, None)) if name else None
    if not (isinstance(cls, type) and issubclass(cls, errors.VdbError | model_errors.LlmError)):
        cls = _DEFAULTS.get(code, errors.ServerError)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
            cls = errors.MessageTooLargeError
    return cls(details)


def bounded(message: str, limit: int = MAX_DETAILS) -> str:
    """message cut to at most limit bytes of UTF-8 (at a character boundary), marked with an
    ellipsis when cut: a status never carries unbounded input back to the client."""
    data = message.encode("utf-8", "replace")
    if len(data) <= limit:
        return message
    return data[: limit - 3].decode("utf-8", "ignore") + "..."
