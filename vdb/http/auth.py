"""API keys over HTTP: `Authorization: Bearer KEY`, the same keys and roles as over gRPC."""

from vdb.errors import PermissionDeniedError, ReadOnlyError
from vdb.rpc.server import ADMIN, WRITE


def role(core, request) -> int:
    """READ, WRITE or ADMIN; AuthenticationError without a valid key on a server with keys."""
    metadata = [
        (k, request.headers[k]) for k in ("authorization", "x-api-key") if k in request.headers
    ]
    return core.role_of(metadata)


def admit(core, request, write: bool = False, admin: bool = False) -> int:
    found = role(core, request)
    if write and found < WRITE:
        raise ReadOnlyError("this API key may only read")
    if admin and found < ADMIN:
        raise PermissionDeniedError("this request needs an admin API key")
    return found


class Call:
    """What the server's checks ask of a gRPC call, for an HTTP request: no deadline, and
    active until the server stops (the core's check_alive then raises)."""

    def time_remaining(self):
        return None

    def is_active(self) -> bool:
        return True


CALL = Call()
