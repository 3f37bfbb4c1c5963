"""Exceptions -> OpenAI's JSON error shape with an HTTP status."""

import logging

from starlette.responses import JSONResponse

from llm.errors import LlmError, ModelNotFoundError
from vdb import errors
from vdb.rpc.status import bounded

log = logging.getLogger("vdb.http")

# Most specific first: the first matching class decides the status.
_STATUS = (
    (errors.ModelNotLoadedError, 503, "service_unavailable"),
    (ModelNotFoundError, 404, "model_not_found"),
    (errors.NotFoundError, 404, "not_found"),
    (errors.AuthenticationError, 401, "invalid_api_key"),
    (errors.PermissionDeniedError, 403, "permission_denied"),
    (errors.MessageTooLargeError, 413, "request_too_large"),
    (errors.LimitExceededError, 400, "limit_exceeded"),
    (errors.ResourceExhaustedError, 429, "rate_limit_exceeded"),
    (errors.DeadlineExceededError, 504, "timeout"),
    (errors.UnavailableError, 503, "service_unavailable"),
    (errors.AbortedError, 503, "service_unavailable"),
    (errors.CollectionExistsError, 409, "conflict"),
    (errors.ClosedError, 503, "service_unavailable"),
    (errors.DatabaseLockedError, 503, "service_unavailable"),
    (errors.DataCorruptedError, 500, "data_loss"),
    (errors.StorageError, 503, "service_unavailable"),
    (ValueError, 400, "invalid_request_error"),
    (LlmError, 400, "invalid_request_error"),
    (KeyError, 404, "not_found"),
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code=None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def body(message: str, kind: str, param=None, code=None) -> dict:
    return {"error": {"message": bounded(message), "type": kind, "param": param, "code": code}}


def response(exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return JSONResponse(body(str(exc), kind, exc.param, exc.code), status_code=exc.status)
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            kind = "invalid_request_error" if status < 500 else "server_error"
            return JSONResponse(body(str(exc), kind, None, code), status_code=status)
    log.exception("internal error", exc_info=exc)
    message = f"internal error: {type(exc).__name__}"
    return JSONResponse(body(message, "server_error"), status_code=500)
