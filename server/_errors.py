"""Errors the server raises itself, next to the engine's typed errors.

Each class maps to one gRPC status code in `_status.py`; nothing here knows about gRPC. The
client reads the class name from the `Error.kind` detail, so keep these names stable.
"""

from __future__ import annotations

from gradserve.engine import GradserveError


class ServerError(GradserveError):
    """Base of the errors that come from the server rather than from the engine."""


class NotFoundError(ServerError):
    """Something the caller named does not exist (any more)."""


class SessionNotFoundError(NotFoundError):
    """The session id is unknown: never created, closed, reclaimed after its TTL, or lost.

    `reason` says which, as `gradserve.v1.Error.reason` carries it: "closed", "reclaimed",
    "lost" (a draining server could not write it to the state dir) or "unknown" (this server
    process never held it)."""

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


class SessionMovedError(ServerError):
    """The session was written to the state dir by a draining server (or is being written):
    restore it on a live server with RestoreSession. Maps to UNAVAILABLE."""

    reason = "moved"


class TensorNotFoundError(NotFoundError):
    """A tensor id is not bound in the session."""


class PermissionDeniedError(ServerError):
    """The session belongs to another caller."""


class UnauthenticatedError(ServerError):
    """The call carries no bearer token, or one the server does not know."""


class ResourceExhaustedError(ServerError):
    """A limit was hit: sessions per server or bytes per session. `limit` names it for the
    metrics: "max_sessions", "max_session_bytes", "inline_fetch" or "memory"."""

    def __init__(self, message: str, limit: str = "other") -> None:
        super().__init__(message)
        self.limit = limit


class UnavailableError(ServerError):
    """The server is draining and takes no new calls."""


class OpFailure(Exception):
    """An op of a request failed: the underlying error plus where it happened.

    `cause` decides the status code; `index`, `op` and `site` travel in the error detail so
    the client can name the user's line.
    """

    def __init__(self, cause: BaseException, index: int, op: str, site: str) -> None:
        self.cause = cause
        self.index = index
        self.op = op
        self.site = site
        super().__init__(f"{self.where(index, op, site)}: {cause}")

    @staticmethod
    def where(index: int, op: str, site: str) -> str:
        """"op 3 (mul at train.py:7)": how a person reads which op failed."""
        return f"op {index} ({shorten(op)} at {site})" if site else f"op {index} ({shorten(op)})"


def shorten(text: str, limit: int = 80) -> str:
    # Op names come from the wire; a garbage name must not flood the message.
    return text if len(text) <= limit else text[:limit] + "..."
