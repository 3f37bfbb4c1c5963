"""What every call meets before its servicer: a request body that does not decode gets
INVALID_ARGUMENT and one log line (not INTERNAL and a traceback), and server reflection
wants a valid API key, of any role, when the server has keys. Health checks need none."""

import logging

import grpc

from vdb.errors import AuthenticationError, InvalidArgumentError
from vdb.rpc.status import bounded

log = logging.getLogger("vdb.server")

REFLECTION = "/grpc.reflection."  # the methods of both reflection services start so


class UndecodableRequestError(InvalidArgumentError):
    """A request body is not a valid message of the method's request type."""


class _Undecodable:
    """What the safe deserializer hands over in place of a request that did not decode; the
    method's behaviour turns it into INVALID_ARGUMENT (in a worker thread, not in gRPC's
    polling thread)."""

    __slots__ = ("size", "error")

    def __init__(self, size: int, error: Exception):
        self.size, self.error = size, error


class Guard(grpc.ServerInterceptor):
    """authenticate(metadata) raises AuthenticationError for a call without a valid key (it
    returns when the server has no keys)."""

    def __init__(self, authenticate):
        self.authenticate = authenticate
        self._wrapped: dict[str, tuple] = {}  # method -> (its handler, the guarded one)

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED
            return None
        if details.method.startswith(REFLECTION):
            try:
                self.authenticate(details.invocation_metadata)
            except AuthenticationError as exc:
                return _refused(handler, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        wrapped = self._wrapped.get(details.method)
        if wrapped is None or wrapped[0] is not handler:  # wrapped once per method
            wrapped = self._wrapped[details.method] = (handler, _guarded(handler, details.method))
        return wrapped[1]


def _kind(handler) -> str:
    """The name of the handler's behaviour field: unary_unary, unary_stream, ..."""
    request = "stream" if handler.request_streaming else "unary"
    response = "stream" if handler.response_streaming else "unary"
    return f"{request}_{response}"


def _refused(handler, code, message: str):
    def refuse(request, context):
        context.abort(code, message)

    return handler._replace(**{_kind(handler): refuse})


def _guarded(handler, method: str):
    """The handler with a deserializer that never raises and a behaviour that answers an
    undecodable request with INVALID_ARGUMENT."""
    decode = handler.request_deserializer
    if decode is None:
        return handler
    kind = _kind(handler)
    behaviour = getattr(handler, kind)

    def safe_decode(data: bytes):
        try:
            return decode(data)
        except Exception as exc:  # DecodeError, or anything a deserializer may raise
            return _Undecodable(len(data), exc)

    def refuse(context, undecodable: _Undecodable, index: int | None = None):
        which = "the request" if index is None else f"request {index} of the stream"
        log.warning(
            "undecodable request to %s from %s: %s (%d bytes): %s",
            method,
            context.peer(),
            which,
            undecodable.size,
            bounded(str(undecodable.error), 200),
        )
        return UndecodableRequestError(
            f"{which} is not a valid message for {method} ({undecodable.size} bytes): "
            f"{bounded(str(undecodable.error), 200)}"
        )

    if not handler.request_streaming:

        def unary(request, context):
            if isinstance(request, _Undecodable):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(refuse(context, request)))
            return behaviour(request, context)

        return handler._replace(request_deserializer=safe_decode, **{kind: unary})

    def checked(requests, context):
        for i, request in enumerate(requests):
            if isinstance(request, _Undecodable):
                raise refuse(context, request, i)
            yield request

    if handler.response_streaming:

        def streaming(requests, context):
            try:
                yield from behaviour(checked(requests, context), context)
            except UndecodableRequestError as exc:  # a servicer that does not map errors
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        return handler._replace(request_deserializer=safe_decode, **{kind: streaming})

    def gathered(requests, context):
        try:
            return behaviour(checked(requests, context), context)
        except UndecodableRequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return handler._replace(request_deserializer=safe_decode, **{kind: gathered})
