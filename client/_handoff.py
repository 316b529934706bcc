"""What a session does when its server goes away: say why, precisely, or follow the session
to the server that restored it.

- A stream that ended without a gradserve answer (the transport's words only) is explained by
  asking the target about the session (`explain_break`): still there (the connection
  dropped), draining, moved, lost and why, or nothing answers.
- A session that is not found is told apart by the server's `reason` and instance id
  (`explain`): closed, reclaimed after its TTL, lost in a drain, or its server restarted
  (another instance answers).
- A session that a draining server wrote to its state dir ("moved") is restored through the
  same target (a proxy, or gRPC's pick_first over several addresses, reaches a live server),
  under the same id (`restore`); the Pipeline then resends what the old server did not
  answer. The program notices nothing but a log line.
"""

from __future__ import annotations

import logging
import time

from gradserve.v1 import gradserve_pb2 as pb

from ._errors import ConnectionError, GradserveError, SessionLostError, SessionMovedError

log = logging.getLogger("gradserve")

PROBE_TIMEOUT = 3.0  # seconds to wait for a server to answer what happened to a session
RESTORE_PATIENCE = 600.0  # seconds to keep retrying while a session is still being written
UNREACHABLE_PATIENCE = 30.0  # ... and while no server answers at all
_BACKOFF = (0.02, 0.5)  # first and longest pause between restore attempts


def closed_here(session) -> SessionLostError:
    """What using a session this program closed raises."""
    err = SessionLostError(f"session {session.id} was closed by this program (close(), or "
                           "the end of its `with` block)")
    err.reason = "closed"
    return err


def explain(session, error: GradserveError) -> GradserveError:
    """`error` with its session-lost reason made precise: a server that never held the
    session while another instance created it means the server restarted."""
    return _explain(session.id, session._instance, error)


def _explain(session_id: str, instance: str, error: GradserveError) -> GradserveError:
    if (isinstance(error, SessionLostError) and error.reason == "unknown"
            and getattr(error, "instance", None) and instance
            and error.instance != instance):
        out = SessionLostError(
            f"session {session_id} is lost: the server restarted (instance "
            f"{instance} held it, instance {error.instance} answers now), and a "
            "session lives in its server's memory; start a new session (servers run with "
            "--state-dir keep sessions across a rolling update)")
        out.code, out.op, out.site, out.instance = error.code, None, None, error.instance
        out.reason = "restarted"
        return out
    return error


def explain_break(session, error: GradserveError) -> GradserveError:
    """Why the session's stream ended with `error`, which no gradserve server sent."""
    try:
        # wait_for_ready: a channel in its reconnect backoff (the server just restarted, or
        # a proxy moves to another address) is not yet a server that is gone
        session._client._call("DescribeSession", pb.SessionRef(session_id=session.id),
                              session_id=session.id,
                              timeout=_probe_timeout(session._client), wait_for_ready=True)
    except SessionMovedError as moved:
        return moved
    except SessionLostError as e:
        return moved_elsewhere(session, e) or explain(session, e)
    except ConnectionError as e:  # also DEADLINE_EXCEEDED: nobody answered in time
        if e.reason == "draining":
            out = ConnectionError(f"the gradserve server is draining (shutting down): {e}; "
                                  f"session {session.id} ends with it")
        else:
            out = ConnectionError(f"no gradserve server answers at {session._client.target} "
                                  f"(the session's stream ended: {error}; asking again: {e})")
        out.code, out.op, out.site = e.code, None, None
        out.reason = "draining" if e.reason == "draining" else _silent_why(session._client, e)
        return out
    except GradserveError as e:
        return explain(session, e)
    out = ConnectionError(f"the connection to the gradserve server dropped ({error}); session "
                          f"{session.id} is still there, but requests sent since its last "
                          "reply may not have run")
    out.code, out.op, out.site, out.reason = getattr(error, "code", None), None, None, \
        "unreachable"
    return out


def _probe_timeout(client) -> float:
    """How long to ask: PROBE_TIMEOUT, or less when the client gives the server less."""
    limit = getattr(client, "_timeout", None)
    return PROBE_TIMEOUT if limit is None else min(PROBE_TIMEOUT, limit)


def _silent_why(client, error: ConnectionError) -> str:
    """"unresponsive" when a server holds the connection but answers nothing; else (the
    connection is refused: the wait above waited through gRPC's reconnect attempts)
    "unreachable"."""
    if error.reason != "unresponsive":
        return "unreachable"
    from grpc import ChannelConnectivity  # only once a wait has failed

    failing = client._connectivity() == ChannelConnectivity.TRANSIENT_FAILURE
    return "unreachable" if failing else "unresponsive"


def following(session, call):
    """`call()`, a call on `session`; when it finds the session moved (or its pinned replica
    gone while another server can take it), follow the session to the server that restores
    it, then call again. A lost session is explained."""
    try:
        return call()
    except SessionMovedError as e:
        moved = e
    except SessionLostError as e:
        moved = moved_elsewhere(session, e)
        if moved is None:
            raise explain(session, e) from None
    follow(session, moved)
    try:
        return call()
    except SessionLostError as e:
        raise explain(session, e) from None


def follow(session, moved: GradserveError) -> None:
    """The session moved: go on with it where it was restored. With a stream, read it to
    its end first (the old server sends the replies to what it ran, then "moved"; the
    stream then restores and resends). Closing it: restore it only to close it, so that
    the state dir keeps nothing."""
    pipe = session._pipe
    if pipe is not None and not pipe.reported and not session.closed:
        pipe.resume_after_move()
    else:
        restore(session, moved)


def moved_elsewhere(session, error: GradserveError) -> SessionMovedError | None:
    """Behind a proxy that pinned the session to a replica that is gone: whether another
    server can take it (replicas sharing a state dir); the moved error to follow, or None."""
    if not (isinstance(error, SessionLostError) and error.reason == "replica_gone"):
        return None
    client = session._client
    route = client._routes.pop(session.id, None)  # asked without the pin: any replica
    try:
        client._call("DescribeSession", pb.SessionRef(session_id=session.id),
                     session_id=session.id, timeout=PROBE_TIMEOUT)
    except SessionMovedError as moved:
        return moved
    except GradserveError:
        if route is not None:
            client._routes[session.id] = route
        return None
    out = SessionMovedError(f"session {session.id} is held by another server now")
    out.code, out.op, out.site = error.code, None, None
    return out


def restore(session, moved: GradserveError):
    """Restore the moved session on a live server through the client's target; its
    SessionInfo. Raises SessionLostError when it cannot be (lost, unknown there)."""
    info = restore_id(session._client, session.id, moved, session._instance)
    session._instance = info.instance_id
    return info


def restore_id(client, session_id: str, moved: GradserveError, instance: str = ""):
    """`restore` by id (`client.attach` of a moved session); `instance` held it before."""
    started = time.monotonic()
    pause, unreachable_since = _BACKOFF[0], None
    while True:
        # a proxy's pin names the server the session left; the one restoring it pins anew
        client._routes.pop(session_id, None)
        try:
            info, headers = client._call_with_headers(
                "RestoreSession", pb.RestoreSessionRequest(session_id=session_id),
                session_id=session_id, timeout=PROBE_TIMEOUT)
        except (SessionMovedError, ConnectionError) as e:
            # still being written by the old server, or no server reached yet
            now = time.monotonic()
            if isinstance(e, SessionMovedError) or e.reason == "draining":
                unreachable_since = None
            elif unreachable_since is None:
                unreachable_since = now
            if (now - started > RESTORE_PATIENCE or unreachable_since is not None
                    and now - unreachable_since > UNREACHABLE_PATIENCE):
                raise _lost(session_id, f"it could not be restored: {e}", moved) from None
            time.sleep(pause)
            pause = min(pause * 2, _BACKOFF[1])
            continue
        except SessionLostError as e:
            raise _explain(session_id, instance, e) from None
        client._learn_route(session_id, headers)
        log.warning("gradserve: session %s moved off its draining server; restored on "
                    "server instance %s (epoch %d) in %.3f s; resending what was not answered",
                    session_id, info.instance_id, info.epoch, time.monotonic() - started)
        return info


def _lost(session_id: str, why: str, cause: GradserveError) -> SessionLostError:
    out = SessionLostError(f"session {session_id} is lost: its server drained and moved it "
                           f"({cause}), and {why}")
    out.code, out.op, out.site, out.reason = getattr(cause, "code", None), None, None, "lost"
    return out
