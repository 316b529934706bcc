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
import re
import secrets
import threading
import time
from collections.abc import Callable

from gradserve import engine

from ._errors import PermissionDeniedError, ResourceExhaustedError, SessionNotFoundError
from ._limits import held_bytes

# A caller-proposed session id: as unguessable as ours (22 chars of token_urlsafe(16)) or more.
_PROPOSED_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")

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
        # hooks or custom Functions of the client were registered: a backward may call back,
        # and while a request runs that may, `channel` reaches its stream (_callbacks)
        self.calls_back = False
        self.channel = None
        self._held: dict[str, int] = {}
        self._bytes_stale = False
        self._clock = clock
        self.created = clock()
        self.last_used = self.created

    def bytes_changed(self) -> None:
        """A call may have changed what the session holds (recounted when next asked)."""
        self._bytes_stale = True

    @property
    def nbytes(self) -> int:
        """Bytes of tensors and grads held; a busy session answers its last count."""
        return sum(self.bytes_by_device.values())

    @property
    def bytes_by_device(self) -> dict[str, int]:
        """`nbytes` per device the session's tensors live on (its last count when busy)."""
        if self._bytes_stale and self.lock.acquire(blocking=False):
            try:
                self._held = held_bytes(self.tensors.values())
                self._bytes_stale = False
            finally:
                self.lock.release()
        return self._held

    def touch(self) -> None:
        self.last_used = self._clock()

    def idle_seconds(self) -> float:
        return max(0.0, self._clock() - self.last_used)


class SessionManager:
    """The live sessions of one server: create, look up with an owner check, close, reap."""

    def __init__(self, *, ttl: float | None, max_sessions: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl if ttl and ttl > 0 else None
        self.max_sessions = max_sessions if max_sessions and max_sessions > 0 else None
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self.counts = {"created": 0, "closed": 0, "reaped": 0}

    # -- lookup ----------------------------------------------------------------------------
    def create(self, owner: str, device: str, session_id: str | None = None) -> Session:
        """A new session for `owner`, named `session_id` when the caller proposed one (so a
        proxy hashing the id routes later calls here); ResourceExhaustedError past
        max_sessions."""
        if session_id is not None and not _PROPOSED_ID.match(session_id):
            raise engine.InvalidArgumentError(
                f"proposed session id {session_id[:80]!r} must be 22 to 64 characters of "
                "A-Z a-z 0-9 _ -")
        with self._lock:
            if self.max_sessions is not None and len(self._sessions) >= self.max_sessions:
                raise ResourceExhaustedError(
                    f"this server already holds {len(self._sessions)} sessions, its limit "
                    "(max-sessions); close one or retry later"
                )
            if session_id in self._sessions:
                raise engine.InvalidArgumentError(
                    f"proposed session id {session_id!r} is already in use")
            session = Session(session_id or secrets.token_urlsafe(16), owner, device,
                              self._clock)
            self._sessions[session.id] = session
            self.counts["created"] += 1
        log_event("session.created", session=session.id, owner=owner, device=device)
        return session

    def get(self, session_id: str, owner: str) -> Session:
        """The session `session_id` if `owner` may use it; NOT_FOUND / PERMISSION_DENIED else."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.closed:
            raise SessionNotFoundError(
                f"session {session_id} not found (closed or reclaimed after its TTL)"
            )
        if session.owner != owner:
            raise PermissionDeniedError(f"session {session_id!r} belongs to another caller")
        return session

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    # -- ending sessions ---------------------------------------------------------------------
    def close(self, session: Session, reason: str = "closed") -> int:
        """Forget `session` and drop its tensors; the caller holds `session.lock`."""
        with self._lock:
            self._sessions.pop(session.id, None)
            self.counts[reason] += 1
        session.closed = True
        freed = len(session.tensors)
        session.tensors.clear()
        session._held, session._bytes_stale = {}, False
        log_event(f"session.{reason}", session=session.id, owner=session.owner,
                  device=session.device, freed_tensors=freed,
                  idle_seconds=round(session.idle_seconds(), 3))
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
                except Exception:  # pragma: no cover - the reaper must survive anything
                    log.exception("session reaper failed")

        self._reaper = threading.Thread(target=loop, name="gradserve-reaper", daemon=True)
        self._reaper.start()

    def stop_reaper(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
