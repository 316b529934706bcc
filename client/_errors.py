"""The SDK's exceptions and the one table that maps gRPC status codes back to them.

The engine's classes are re-exported unchanged, so `gs.AutogradError` is the very class an
in-process engine tensor raises. The server sends each failure as a status code plus a
`gradserve.v1.Error` (in the `gradserve-error-bin` trailer of a unary call, as a value in a
Pipeline response); `error_from` turns either into one of these classes.
"""

from __future__ import annotations

import builtins

from gradserve.engine import (
    AutogradError,
    DeviceUnavailableError,
    GradserveError,
    InvalidArgumentError,
    TensorIndexError,
)

__all__ = [
    "AutogradError", "ConnectionError", "DeadlineExceededError", "DeviceUnavailableError",
    "GradserveError",
    "InvalidArgumentError",
    "PermissionError", "ResourceExhaustedError", "SessionLostError", "TensorIndexError",
    "error_from",
]


class SessionLostError(GradserveError):
    """The session is gone: closed, reclaimed after its TTL, never made, or its replica died.

    `reason` says which: "closed" (by this program, or CloseSession from anywhere),
    "reclaimed" (idle past the server's TTL), "restarted" (the server process that held it
    was replaced: a new instance id answers), "lost" (a draining server could not write it
    to its state dir: it never reached a quiet point), "replica_gone" (behind a proxy that
    pins it, its replica is gone) or "unknown" (the server never held it)."""

    reason = "unknown"


class ConnectionError(GradserveError, builtins.ConnectionError):  # noqa: A001
    """The server cannot be reached (nothing listens, it went away, or it is draining).

    `reason`: "draining" (the server is shutting down and takes no new calls),
    "unreachable" (nothing accepts connections at the target, or the connection dropped),
    "unresponsive" (the server accepted the connection but answered nothing, not even a
    health probe, within `gs.connect(timeout=)`: stopped, hung, or cut off), "bad_target"
    (the target is not "host:port" or a gRPC name), or "unavailable" (the server answered
    UNAVAILABLE for another reason)."""

    reason = "unavailable"


class SessionMovedError(ConnectionError):
    """SDK-internal: the session was written to a state dir by a draining server; the
    session restores it on a live server and resends what was not answered (`_handoff`)."""

    reason = "moved"


class PermissionError(GradserveError, builtins.PermissionError):  # noqa: A001
    """The server refused the caller: a missing or wrong token, or another caller's session."""


class ResourceExhaustedError(GradserveError):
    """A server limit was hit: too many sessions, or a session holds too many bytes."""


class DeadlineExceededError(GradserveError):
    """The server stopped a request that ran past its compute budget (`--max-request-seconds`).

    It is checked between ops: the request's earlier ops ran, the later ones did not, and the
    session goes on (unlike `ConnectionError` "unresponsive", which is a server that answers
    nothing). Split the work into smaller requests, or ask for a larger budget."""


# google.rpc.Code numbers, so this module needs no grpc import.
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED = 7, 8, 9, 10
OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 11, 12, 13, 14, 16

# The status -> exception table. NOT_FOUND is resolved by `_not_found` below.
_BY_CODE: dict[int, type[GradserveError]] = {
    INVALID_ARGUMENT: InvalidArgumentError,
    OUT_OF_RANGE: TensorIndexError,
    FAILED_PRECONDITION: AutogradError,
    RESOURCE_EXHAUSTED: ResourceExhaustedError,
    UNAUTHENTICATED: PermissionError,
    PERMISSION_DENIED: PermissionError,
    UNAVAILABLE: ConnectionError,
    DEADLINE_EXCEEDED: DeadlineExceededError,
    CANCELLED: ConnectionError,
    ABORTED: SessionLostError,
}

# `Error.kind` names the server-side class; it refines the code (TensorIndexError is an
# INVALID_ARGUMENT that is also an IndexError) but never contradicts it.
_BY_KIND: dict[str, type[GradserveError]] = {
    **{cls.__name__: cls
       for cls in (AutogradError, InvalidArgumentError, TensorIndexError, SessionLostError,
                   ResourceExhaustedError, PermissionError, ConnectionError,
                   DeviceUnavailableError, DeadlineExceededError)},
    # the server's own class names (gradserve.server._errors)
    "SessionNotFoundError": SessionLostError,
    "SessionMovedError": SessionMovedError,
    "TensorNotFoundError": InvalidArgumentError,
    "PermissionDeniedError": PermissionError,
    "UnauthenticatedError": PermissionError,
    "UnavailableError": ConnectionError,
}


def _not_found(message: str) -> type[GradserveError]:
    # NOT_FOUND is either the session (the SDK's SessionLostError) or a tensor id the caller
    # named (an invalid argument, as torch would raise on a bad reference).
    text = message.lower()
    if "session" in text and "tensor" not in text:
        return SessionLostError
    return InvalidArgumentError


def error_class(code: int, kind: str = "", message: str = "") -> type[GradserveError]:
    """The exception class for a status code and the server's optional `Error.kind`."""
    by_kind = _BY_KIND.get(kind)
    if code == NOT_FOUND:
        if by_kind in (SessionLostError, InvalidArgumentError):
            return by_kind
        base = _not_found(message)
    else:
        base = _BY_CODE.get(code, GradserveError)
    if by_kind is not None and issubclass(by_kind, base):
        return by_kind
    return base


def error_from(code: int, message: str, kind: str = "", op: str = "", site: str = "",
               op_index: int = -1, reason: str = "", instance: str = "") -> GradserveError:
    """Build the typed exception for a failure; names the op and its site when there is one.
    `reason` and `instance` are the server's Error fields (why a session is not there, and
    which server process answered).

    >>> error_from(3, "shape mismatch", op="mul", site="train.py:7", op_index=0)
    InvalidArgumentError("shape mismatch\\n  (in op 'mul' sent from train.py:7)")
    """
    cls = error_class(code, kind, message)
    text = message or f"gradserve call failed with status code {code}"
    if op and op_index >= 0:
        text += f"\n  (in op '{op}' sent from {site or 'an unknown line'})"
    err = cls(text)
    err.code = code
    err.op = op or None
    err.site = site or None
    err.instance = instance or None
    if reason and isinstance(err, SessionLostError):
        err.reason = reason
    elif kind == "UnavailableError":
        err.reason = "draining"
    return err
