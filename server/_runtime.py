"""One server's state and the rules every call follows, without grpc.

The servicer asks the runtime to admit a call (refused while draining), to identify the
caller, and to hold a session: look it up with an owner check, take its lock so its calls run
one at a time, and run work on its device's worker. Draining waits for admitted calls.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

from gradserve.engine import InvalidArgumentError

from ._auth import TokenTable, identify
from ._errors import OpFailure, SessionNotFoundError, UnavailableError
from ._executor import Executor, served
from ._sessions import Session, SessionManager, log_event
from ._workers import DeviceWorkers


class Runtime:
    """Sessions, device workers, the executor, auth and the drain state of one server."""

    def __init__(self, *, devices: Sequence[str] = ("cpu",), session_ttl: float | None = None,
                 max_sessions: int | None = None, max_session_bytes: int | None = None,
                 tokens: TokenTable | None = None, cpu_workers: int | None = None) -> None:
        self.devices = tuple(devices)
        self.sessions = SessionManager(ttl=session_ttl, max_sessions=max_sessions)
        self.executor = Executor(self.devices, max_session_bytes)
        self.workers = DeviceWorkers(self.devices, cpu_workers)
        self.tokens = tokens
        self.errors: Counter[str] = Counter()  # by error kind, for /metrics
        self._draining = False
        self._inflight = 0
        self._cond = threading.Condition()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.sessions.start_reaper()

    def begin_drain(self) -> None:
        """From now on new calls get UnavailableError; admitted ones go on."""
        with self._cond:
            self._draining = True
        log_event("server.draining", inflight=self._inflight)

    @property
    def draining(self) -> bool:
        return self._draining

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no admitted call runs; False when `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._inflight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def shutdown(self) -> None:
        self.sessions.stop_reaper()
        self.workers.shutdown()

    # -- calls --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Count a call as running, or refuse it while draining."""
        with self._cond:
            if self._draining:
                raise UnavailableError("the server is draining and takes no new calls; retry "
                                       "on another replica")
            self._inflight += 1
        try:
            yield
        finally:
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def identify(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """The caller's identity from the call's metadata (see _auth)."""
        return identify(metadata, self.tokens)

    def create_session(self, owner: str, device: str, session_id: str | None = None) -> Session:
        """A new session on `device` owned by `owner`; "" means the first device served
        (cpu, unless the server serves GPUs only). `session_id`: the caller's proposal."""
        device = served(device, self.devices) if device else self.devices[0]
        return self.sessions.create(owner, device, session_id)

    @contextlib.contextmanager
    def session(self, owner: str, session_id: str) -> Iterator[Session]:
        """Hold `session_id` for one call: owner checked, lock held, idle clock reset."""
        if not session_id:
            raise InvalidArgumentError("session_id is empty")
        session = self.sessions.get(session_id, owner)
        with session.lock:
            if session.closed:  # closed or reaped while this call waited for the lock
                raise SessionNotFoundError(
                    f"session {session_id} not found (closed or reclaimed after its TTL)"
                )
            session.touch()
            try:
                yield session
            except Exception as exc:
                self.note_error(session, exc)
                raise
            finally:
                session.touch()

    def run(self, session: Session, fn: Callable, *args):
        """`fn(session, *args)` on the session's device worker."""
        return self.workers.run(session.device, fn, session, *args)

    def close_session(self, owner: str, session_id: str) -> int:
        """Close a session; how many tensor ids it held."""
        with self.session(owner, session_id) as session:
            return self.sessions.close(session)

    def note_error(self, session: Session, exc: BaseException) -> None:
        """Count and log an error of a call on `session`."""
        cause = exc.cause if isinstance(exc, OpFailure) else exc
        kind = type(cause).__name__
        self.errors[kind] += 1
        fields = {"session": session.id, "kind": kind, "message": str(exc)[:500]}
        if isinstance(exc, OpFailure):
            fields.update(op=exc.op[:80], op_index=exc.index, site=exc.site[:200])
        log_event("session.error", **fields)
