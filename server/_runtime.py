"""One server's state and the rules every call follows, without grpc.

The servicer asks the runtime to admit a call (refused while draining), to identify the
caller, and to hold a session: look it up with an owner check and take its lock; the work
itself runs as an item of the session's queue on a compute slot (`scheduler`), so a
session's calls run one at a time and in order. Draining waits for admitted calls; with a
state dir it moves sessions out instead (`_handoff`), and their calls go on until then.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from gradserve.engine import InvalidArgumentError

from ._auth import TokenTable, identify
from ._errors import OpFailure, SessionMovedError, SessionNotFoundError, UnavailableError
from ._executor import Executor, served
from ._handoff import Handoff
from ._limits import Ledger, Limits, usable_cores
from ._metrics import Metrics
from ._scheduler import Scheduler
from ._sessions import Session, SessionManager, log_event
from ._state import StateDir


class Runtime:
    """Sessions, device workers, the executor, auth and the drain state of one server."""

    def __init__(self, *, devices: Sequence[str] = ("cpu",), session_ttl: float | None = None,
                 max_sessions: int | None = None, max_session_bytes: int | None = None,
                 tokens: TokenTable | None = None, cpu_workers: int | None = None,
                 state_dir: str | os.PathLike | None = None,
                 limits: Limits | None = None) -> None:
        self.devices = tuple(devices)
        # A new id per process: a client that sees another one knows the server restarted.
        self.instance = secrets.token_hex(6)
        self.limits = limits if limits is not None else Limits()
        if max_session_bytes is not None:
            self.limits.max_session_bytes = max_session_bytes
        self.ledger = Ledger(self.limits.max_server_bytes)
        self.sessions = SessionManager(ttl=session_ttl, max_sessions=max_sessions,
                                       instance=self.instance, ledger=self.ledger,
                                       max_per_caller=self.limits.max_sessions_per_caller)
        self.metrics = Metrics(self)
        self.executor = Executor(self.devices, self.limits, self.metrics.observe)
        self.cpu_workers = cpu_workers if cpu_workers and cpu_workers > 0 else usable_cores()
        self.scheduler = Scheduler(self.devices, self.cpu_workers,
                                   self.limits.max_request_seconds)
        self.tokens = tokens
        self.handoff = None
        if state_dir is not None:
            self.handoff = Handoff(StateDir(state_dir, self.instance), self.sessions,
                                   self.devices)
            self.sessions.elsewhere = self.handoff.elsewhere
            self.sessions.sweep = self.handoff.state.sweep
        self._draining = False
        self._inflight = 0
        self._cond = threading.Condition()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.sessions.start_reaper()

    def begin_drain(self, grace: float = 30.0) -> None:
        """From now on new sessions are refused. Without a state dir new calls get
        UnavailableError and admitted ones go on; with one, sessions are moved out within
        `grace` seconds (`move_sessions`) and their calls go on until then."""
        with self._cond:
            self._draining = True
        if self.handoff is not None:
            self.handoff.begin(grace)
        log_event("server.draining", inflight=self._inflight, sessions=len(self.sessions),
                  state_dir=None if self.handoff is None else str(self.handoff.state.path))

    def move_sessions(self) -> bool:
        """With a state dir, after begin_drain: write every session at a quiet point (the
        rest are lost when the grace ends). True when all were written."""
        return self.handoff.move_all()

    def checkpoint(self, session: Session) -> SessionMovedError | None:
        """After a call on `session` (its lock held): while moving, write it if quiet; the
        error to end its calls with once it has moved."""
        return None if self.handoff is None else self.handoff.checkpoint(session)

    def restore_session(self, owner: str, session_id: str, epoch: int = 0) -> Session:
        """RestoreSession: the session another server wrote to the state dir, held here."""
        if self._draining:
            raise UnavailableError("the server is draining and takes no new sessions; retry "
                                   "on another replica")
        if not session_id:
            raise InvalidArgumentError("session_id is empty")
        if self.handoff is None:
            raise SessionNotFoundError(
                f"session {session_id[:80]} is not held here, and this server has no "
                "--state-dir to restore it from", "unknown")
        return self.handoff.restore(owner, session_id, epoch)

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

    @property
    def callback_timeout(self) -> float | None:
        return self.limits.callback_timeout

    def shutdown(self) -> None:
        self.sessions.stop_reaper()
        self.scheduler.close()

    # -- calls --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Count a call as running, or refuse it while draining (unless sessions are being
        moved: until a session has moved, its calls run)."""
        with self._cond:
            if self._draining and self.handoff is None:
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
        if self._draining:
            raise UnavailableError("the server is draining and takes no new sessions; retry "
                                   "on another replica")
        device = served(device, self.devices) if device else self.devices[0]
        return self.sessions.create(owner, device, session_id)

    @contextlib.contextmanager
    def session(self, owner: str, session_id: str) -> Iterator[Session]:
        """Hold `session_id` for one call: owner checked, lock held, idle clock reset."""
        if not session_id:
            raise InvalidArgumentError("session_id is empty")
        session = self.sessions.get(session_id, owner)
        with session.lock:
            if session.closed:  # closed, reaped or moved while this call waited for the lock
                raise self.sessions.not_found(session_id)
            session.touch()
            try:
                yield session
            except Exception as exc:
                self.note_error(session, exc)
                raise
            finally:
                session.touch()

    def run(self, session: Session, fn: Callable, *args):
        """`fn(session, *args)`; the caller is the session's item on a compute slot."""
        return fn(session, *args)

    def close_session(self, owner: str, session_id: str) -> int:
        """Close a session; how many tensor ids it held."""
        with self.session(owner, session_id) as session:
            return self.sessions.close(session)

    def note_error(self, session: Session, exc: BaseException) -> None:
        """Log an error of a call on `session` (the servicer counts every error it returns)."""
        cause = exc.cause if isinstance(exc, OpFailure) else exc
        kind = type(cause).__name__
        fields = {"session": session.id, "kind": kind, "message": str(exc)[:500]}
        if isinstance(exc, OpFailure):
            fields.update(op=exc.op[:80], op_index=exc.index, site=exc.site[:200])
        log_event("session.error", **fields)
