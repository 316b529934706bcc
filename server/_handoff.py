"""Sessions that outlive their server (`--state-dir`): a draining server writes each session at
a quiet point and retires it ("moved"); another server restores it under the same id.

Draining with a state dir: every live session is announced in the dir (`.moving`); each is
written as soon as it is quiet (no call running: its lock is free or held by the call that
checks; no recorded graph that backward could still use), either by the draining thread
(idle sessions) or by the Pipeline request that just ran (`checkpoint`), whose stream then
ends with UNAVAILABLE and the error kind SessionMovedError. A session that is not quiet by the
end of the grace is lost, and the dir says why. Nothing here imports grpc.
"""

from __future__ import annotations

import time

from gradserve.engine import InvalidArgumentError, seam

from ._errors import PermissionDeniedError, SessionMovedError, SessionNotFoundError
from ._sessions import Session, SessionManager, log, log_event
from ._state import StateDir, Stored

POLL = 0.01  # seconds between looks at sessions that were not quiet yet


class Handoff:
    """The state-dir side of one server: moving its sessions out, restoring others in."""

    def __init__(self, state: StateDir, sessions: SessionManager, devices) -> None:
        self.state = state
        self.sessions = sessions
        self.devices = tuple(devices)
        self.active = False  # draining: sessions are being moved out
        self._deadline = 0.0
        self._failed: dict[str, str] = {}  # session id -> why writing it failed (logged once)

    # -- moving out -------------------------------------------------------------------------
    def begin(self, grace: float) -> None:
        """Start moving: announce every live session in the state dir."""
        self._deadline = time.monotonic() + grace
        self.state.mark_moving([s.id for s in self.sessions.sessions()], time.time() + grace)
        self.active = True

    def checkpoint(self, session: Session) -> SessionMovedError | None:
        """With `session.lock` held and no call running on it but the caller's: when moving
        and the session is quiet, write it and retire it; the error its calls now end with."""
        if not self.active or session.closed:
            return None
        if seam.why_not_quiet(session.tensors) is not None:
            return None
        started = time.monotonic()
        try:
            epoch, nbytes = self.state.save(session)
        except seam.NotQuiet:
            return None
        except Exception as e:  # a full disk: try again at its next quiet point, until the grace
            if session.id not in self._failed:
                log.exception("writing session %s to the state dir failed", session.id)
            self._failed[session.id] = f"writing it failed: {type(e).__name__}: {e}"
            return None
        details = f"epoch {epoch}, {nbytes} bytes in {self.state.path}"
        self.sessions.close(session, "moved", details)
        log_event("session.written", session=session.id, epoch=epoch, bytes=nbytes,
                  applied_seq=session.applied_seq,
                  seconds=round(time.monotonic() - started, 4))
        return self.sessions.not_found(session.id)  # SessionMovedError, naming the epoch

    def move_all(self) -> bool:
        """Write every idle quiet session, wait for the others until the grace ends, then
        record the rest as lost. True when every session was written."""
        while True:
            left = self.sessions.sessions()
            if not left:
                return True
            for session in left:
                if session.lock.acquire(blocking=False):
                    try:
                        self.checkpoint(session)
                    finally:
                        session.lock.release()
            if time.monotonic() >= self._deadline:
                break
            time.sleep(POLL)
        for session in self.sessions.sessions():
            self._lose(session)
        return False

    def _lose(self, session: Session) -> None:
        held = session.lock.acquire(blocking=False)
        try:
            why = None if not held else seam.why_not_quiet(session.tensors)
            if why is None and session.id in self._failed:
                why = f"it could not be written to the state dir ({self._failed[session.id]})"
            else:
                why = (f"it never reached a quiet point within the drain grace ("
                       f"{why or 'a call on it was still running'})")
            self.state.mark_lost(session.id, why)
            if held:
                self.sessions.close(session, "lost", why)  # logs session.lost
            else:  # a call still runs on it; the process exits under it
                log_event("session.lost", session=session.id, details=why)
        finally:
            if held:
                session.lock.release()

    # -- restoring in -----------------------------------------------------------------------
    def elsewhere(self, session_id: str) -> Exception | None:
        """What a call naming a session this server does not hold should hear, from the
        state dir: moved (restore it), still being written (retry), lost; None: unknown."""
        stored = self.state.status(session_id)
        if stored is None:
            return None
        return _stored_error(session_id, stored)

    def restore(self, owner: str, session_id: str, epoch: int = 0) -> Session:
        """The session `session_id` from the state dir, held here under the same id."""
        live = self._live(session_id, owner)
        if live is not None:  # a retried restore whose reply was lost
            return live
        stored = self.state.status(session_id)
        if stored is None:
            raise self.sessions.not_found(session_id)
        if stored.state != "moved":
            raise _stored_error(session_id, stored)
        if stored.owner != owner:
            raise PermissionDeniedError(f"session {session_id!r} belongs to another caller")
        if epoch and stored.epoch != epoch:
            raise InvalidArgumentError(
                f"the state dir holds epoch {stored.epoch} of session {session_id}, not {epoch}")
        started = time.monotonic()
        with self.state.claim(session_id) as claimed:
            if claimed is None:  # another server restored it a moment ago
                live = self._live(session_id, owner)
                if live is not None:
                    return live
                raise SessionMovedError(f"session {session_id} is being restored by another "
                                        "server; retry")
            arrays, meta = claimed
            if meta["device"] not in self.devices:
                raise InvalidArgumentError(
                    f"session {session_id} lives on {meta['device']}, which this server does "
                    f"not serve (devices: {', '.join(self.devices)})")
            session = Session(session_id, meta["owner"], meta["device"], time.monotonic)
            session.tensors, session.generator = seam.unpack(arrays, meta,
                                                                  meta["device"])
            session.epoch, session.applied_seq = meta["epoch"], meta["applied_seq"]
            session.bytes_changed()
            self.sessions.add(session)
        log_event("session.restored", session=session_id, owner=owner, epoch=session.epoch,
                  applied_seq=session.applied_seq, tensors=len(session.tensors),
                  seconds=round(time.monotonic() - started, 4))
        return session

    def _live(self, session_id: str, owner: str) -> Session | None:
        try:
            return self.sessions.get(session_id, owner)
        except (SessionNotFoundError, SessionMovedError):
            return None


def _stored_error(session_id: str, stored: Stored) -> Exception:
    if stored.state == "moved":
        return SessionMovedError(f"session {session_id} was moved here by a draining server "
                                 f"(epoch {stored.epoch}, {stored.details}); restore it with "
                                 "RestoreSession")
    if stored.state == "moving":
        return SessionMovedError(f"session {session_id} is being moved ({stored.details}); "
                                 "retry RestoreSession in a moment")
    return SessionNotFoundError(f"session {session_id} not found: it was lost: "
                                f"{stored.details}", "lost")
