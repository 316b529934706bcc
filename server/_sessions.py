"""Sessions: who owns them, what they hold, and when they are reclaimed.

A session is a table of caller-chosen ids -> engine tensors on one device, with its own
random generator, an owner (the identity that created it) and a lock that makes its calls run
one at a time. The manager hands sessions out by id after checking the owner, refuses new ones
past `max_sessions`, and a reaper thread closes those idle longer than the TTL. Sessions in use
(lock held) are never reaped. Nothing here imports grpc.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from gradserve import engine
from gradserve.v1.codec import SESSION_ID, new_session_id

from ._errors import (
    PermissionDeniedError,
    ResourceExhaustedError,
    SessionMovedError,
    SessionNotFoundError,
)
from ._limits import Account, Ledger

ENDED_KEPT = 4096  # ended sessions remembered, to say why an id is gone (closed, reclaimed, ...)

log = logging.getLogger("gradserve.server")


def log_event(event: str, **fields) -> None:
    """One structured log line: a JSON object with the event name and its fields."""
    record = {"ts": round(time.time(), 3), "event": event, **fields}
    log.info(json.dumps(record, default=str))


class Session:
    """One caller's tensors on one device. Mutate `tensors` only while holding `lock`."""

    def __init__(self, session_id: str, owner: str, device: str, clock: Callable[[], float]):
        self.id = session_id
        self.owner = owner
        self.device = device
        self.tensors: dict[str, engine.Tensor] = {}
        self.generator = engine.Generator()
        self.lock = threading.Lock()
        self.closed = False
        # while a Pipeline request whose backward may call the client runs (its `then` is a
        # backward or grad), `channel` reaches its stream (_callbacks)
        self.channel = None
        # every array the session keeps alive, wherever from (its ids, graphs, grads)
        self.account = Account()
        self._clock = clock
        self.created = clock()
        self.last_used = self.created
        self.applied_seq = 0  # the last PipelineRequest.seq run (what a restore resends after)
        self.epoch = 0  # times written to a state dir and restored

    def bytes_changed(self) -> None:
        """A backward ran: count the grads it made (the engine's backward makes them, not an
        op of the session, so they are not counted where ops' outputs are)."""
        track = self.account.track
        for t in self.tensors.values():
            if t._grad is not None:
                track(t._grad._data, t._grad._device)

    @property
    def nbytes(self) -> int:
        """Bytes of every array the session keeps alive (tensors, grads, saved tensors of
        recorded graphs, optimizer state)."""
        return self.account.held_bytes()

    @property
    def bytes_by_device(self) -> dict[str, int]:
        """`nbytes` per device."""
        return self.account.held()

    def touch(self) -> None:
        self.last_used = self._clock()

    def idle_seconds(self) -> float:
        return max(0.0, self._clock() - self.last_used)


class SessionManager:
    """The live sessions of one server: create, look up with an owner check, close, reap."""

    def __init__(self, *, ttl: float | None, max_sessions: int | None,
                 clock: Callable[[], float] = time.monotonic, instance: str = "",
                 max_per_caller: int | None = None, ledger: Ledger | None = None) -> None:
        self.ttl = ttl if ttl and ttl > 0 else None
        self.max_sessions = max_sessions if max_sessions and max_sessions > 0 else None
        self.max_per_caller = max_per_caller if max_per_caller and max_per_caller > 0 else None
        self.ledger = ledger if ledger is not None else Ledger()
        self._per_caller: dict[str, int] = {}
        self.instance = instance
        self._clock = clock
        self._started = clock()
        self._sessions: dict[str, Session] = {}
        # id -> (why it ended, when, details) for the last ENDED_KEPT sessions
        self._ended: OrderedDict[str, tuple[str, float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self.counts = {"created": 0, "closed": 0, "reaped": 0, "moved": 0, "lost": 0,
                       "restored": 0}
        # Asked about ids this process does not know (the state dir: moved, or lost there);
        # returns the error to raise, or None.
        self.elsewhere: Callable[[str], Exception | None] = lambda session_id: None
        # Called by the reaper with the TTL: what sits in the state dir unclaimed that long
        # is reclaimed like an idle session.
        self.sweep: Callable[[float], None] = lambda ttl: None

    # -- lookup ----------------------------------------------------------------------------
    def create(self, owner: str, device: str, session_id: str | None = None) -> Session:
        """A new session for `owner`, named `session_id` when the caller proposed one (so a
        proxy hashing the id routes later calls here); ResourceExhaustedError past
        max_sessions."""
        if session_id is not None and not SESSION_ID.fullmatch(session_id):
            raise engine.InvalidArgumentError(
                f"proposed session id {session_id[:80]!r} must be 22 to 64 characters of "
                "A-Z a-z 0-9 _ -")
        session = Session(session_id or new_session_id(), owner, device, self._clock)
        self.add(session)
        log_event("session.created", session=session.id, owner=owner, device=device)
        return session

    def add(self, session: Session) -> None:
        """Hold `session` (new, or restored under its old id); ResourceExhaustedError past
        max_sessions, InvalidArgumentError when the id is in use."""
        with self._lock:
            if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
                raise ResourceExhaustedError(
                    f"this server already holds {len(self._sessions)} sessions, its limit "
                    "(max-sessions); close one or retry later", "max_sessions"
                )
            held = self._per_caller.get(session.owner, 0)
            if self.max_per_caller is not None and held >= self.max_per_caller:
                raise ResourceExhaustedError(
                    f"caller {session.owner!r} already holds {held} sessions, the most one "
                    "caller may hold here (max-sessions-per-caller); close one first",
                    "max_sessions_per_caller")
            if session.id in self._sessions:
                raise engine.InvalidArgumentError(
                    f"proposed session id {session.id!r} is already in use")
            self._sessions[session.id] = session
            self._per_caller[session.owner] = held + 1
            self._ended.pop(session.id, None)
            self.counts["restored" if session.epoch else "created"] += 1
        if session.account.ledger is not self.ledger:  # restored: count what it holds here
            session.account = Account(self.ledger)
            for t in session.tensors.values():
                session.account.track_tensor(t)

    def get(self, session_id: str, owner: str) -> Session:
        """The session `session_id` if `owner` may use it; NOT_FOUND / PERMISSION_DENIED else."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.closed:
            raise self.not_found(session_id)
        if session.owner != owner:
            raise PermissionDeniedError(f"session {session_id!r} belongs to another caller")
        return session

    def not_found(self, session_id: str) -> Exception:
        """Why `session_id` is not here: ended (closed, reclaimed, moved, lost), somewhere
        else (the state dir), or never held by this process."""
        with self._lock:
            ended = self._ended.get(session_id)
        sid = session_id[:80]
        if ended is not None:
            reason, when, details = ended
            ago = f"{max(0.0, self._clock() - when):.0f} s ago"
            if reason == "moved":
                return SessionMovedError(
                    f"session {sid} was moved off this draining server {ago} ({details}); "
                    "restore it on a live server (RestoreSession)")
            text = {"closed": f"it was closed {ago}",
                    "reclaimed": f"it was reclaimed after its TTL (idle longer than "
                                 f"{self.ttl or 0:g} s) {ago}",
                    "lost": f"it was lost {ago}: {details}"}[reason]
            return SessionNotFoundError(f"session {sid} not found: {text}", reason)
        elsewhere = self.elsewhere(session_id)
        if elsewhere is not None:
            return elsewhere
        up = self._clock() - self._started
        return SessionNotFoundError(
            f"session {sid} not found: this server process (instance {self.instance}, up "
            f"{up:.0f} s) never held it; if it existed, the server that held it has "
            "restarted, or it lives on another replica")

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    # -- ending sessions ---------------------------------------------------------------------
    def close(self, session: Session, reason: str = "closed", details: str = "") -> int:
        """Forget `session` and drop its tensors; the caller holds `session.lock`. `reason`:
        closed, reaped, moved (written to the state dir) or lost; later calls naming it are
        told so."""
        with self._lock:
            if self._sessions.pop(session.id, None) is not None:
                left = self._per_caller.get(session.owner, 1) - 1
                if left > 0:
                    self._per_caller[session.owner] = left
                else:
                    self._per_caller.pop(session.owner, None)
            self.counts[reason] += 1
            self._ended[session.id] = ("reclaimed" if reason == "reaped" else reason,
                                       self._clock(), details)
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        session.closed = True
        freed = len(session.tensors)
        session.tensors.clear()
        log_event(f"session.{reason}", session=session.id, owner=session.owner,
                  device=session.device, freed_tensors=freed,
                  idle_seconds=round(session.idle_seconds(), 3),
                  **({"details": details} if details else {}))
        return freed

    def reap_idle(self) -> list[str]:
        """Close every session idle longer than the TTL that is not in use; their ids."""
        if self.ttl is None:
            return []
        reaped = []
        for session in self.sessions():
            if session.idle_seconds() <= self.ttl:
                continue
            if not session.lock.acquire(blocking=False):
                continue  # a call is running on it, so it is not idle
            try:
                if not session.closed and session.idle_seconds() > self.ttl:
                    self.close(session, "reaped")
                    reaped.append(session.id)
            finally:
                session.lock.release()
        return reaped

    def start_reaper(self) -> None:
        """Reap in a daemon thread, checking a few times per TTL (at most every 10 s)."""
        if self.ttl is None or self._reaper is not None:
            return
        interval = min(max(self.ttl / 4, 0.05), 10.0)

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reap_idle()
                    self.sweep(self.ttl)
                except Exception:  # pragma: no cover - the reaper must survive anything
                    log.exception("session reaper failed")

        self._reaper = threading.Thread(target=loop, name="gradserve-reaper", daemon=True)
        self._reaper.start()

    def stop_reaper(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
