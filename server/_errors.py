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
    """The session id is unknown: never created, closed, or reclaimed after its TTL."""


class TensorNotFoundError(NotFoundError):
    """A tensor id is not bound in the session."""


class PermissionDeniedError(ServerError):
    """The session belongs to another caller."""


class UnauthenticatedError(ServerError):
    """The call carries no bearer token, or one the server does not know."""


class ResourceExhaustedError(ServerError):
    """A limit was hit: sessions per server or bytes per session."""


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
        return f"op {index} ({_short(op)} at {site})" if site else f"op {index} ({_short(op)})"


def _short(text: str, limit: int = 80) -> str:
    # Op names come from the wire; a garbage name must not flood the message.
    return text if len(text) <= limit else text[:limit] + "..."
