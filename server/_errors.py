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


class DeadlineExceededError(ServerError):
    """A request ran past its compute budget (--max-request-seconds) or the caller's deadline;
    what it did up to then stays done, and the session stays usable."""


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


def detach(exc: BaseException, always: bool = False) -> BaseException:
    """`exc` without the tracebacks of it and its causes, when it is an error the caller
    made or a limit it hit (no one reads those tracebacks; kept, they hold the frames of the
    failed request, and the arrays those held, until the cyclic collector runs). Other
    errors keep theirs, for the log of an INTERNAL error, unless `always` (logged already)."""
    top = exc.cause if isinstance(exc, OpFailure) else exc
    if not always and not isinstance(top, GradserveError):
        return exc
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return exc
