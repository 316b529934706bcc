"""No wait on the server lasts forever: a call that hears nothing asks whether the server lives.

Every blocking read of a stream (a session's Pipeline, a Fetch) runs under a `Watch`. One
daemon thread looks at the watches a few times per `timeout` (the client's, from
`gs.connect`): a read that has heard nothing for 40 % of it makes the thread probe the
server with a gRPC Health/Check of its own (deadline: half of it), on the same channel.
Any answer (SERVING, NOT_SERVING, even UNIMPLEMENTED) means the server is alive and merely
busy, so the read goes on (a long backward is not an error); no answer means nobody is
there to answer (the process is stopped, or the host vanished): the read's call is cancelled
and it raises `gs.ConnectionError(reason="unresponsive")`, within `timeout` of the last
word the server said.

Unary calls need no thread: they wait on their future in slices and probe between them
(`Client._await`). gRPC keepalive on the channel does the same for connections that nobody
waits on, at the pace the server's ping policy allows.
"""

from __future__ import annotations

import threading
import time
import weakref

from ._errors import ConnectionError

_lock = threading.Lock()
_watches: weakref.WeakSet = weakref.WeakSet()
_wake = threading.Event()
_thread: threading.Thread | None = None
SILENT, PROBE = 0.4, 0.5  # parts of the timeout: silence before a probe; its deadline


def unresponsive(target: str, timeout: float, what: str = "the call") -> ConnectionError:
    """The error for a server that answered nothing, not even a health probe, in `timeout`."""
    err = ConnectionError(
        f"the gradserve server at {target} stopped answering: {what} heard nothing for "
        f"{timeout:g} s and a health probe got no answer either (the process is stopped or "
        "hung, or the network dropped); raise gs.connect(timeout=) for a slower server")
    err.code, err.op, err.site, err.reason = 4, None, None, "unresponsive"
    err.answered = False
    return err


class Watch:
    """One call's reads. `reading()` / `heard()` bracket each blocking read; `on_dead(error)`
    runs (on the watchdog thread) when a read outlives the server."""

    __slots__ = ("client", "session_id", "on_dead", "since", "reads", "error", "__weakref__")

    def __init__(self, client, on_dead, session_id: str | None = None) -> None:
        self.client = client
        self.session_id = session_id
        self.on_dead = on_dead
        self.since: float | None = None  # when the read in progress began
        self.reads = 0
        self.error: ConnectionError | None = None

    def reading(self) -> None:
        self.reads += 1
        self.since = time.monotonic()

    def heard(self) -> None:
        self.since = None


def watch(client, on_dead, session_id: str | None = None) -> Watch | None:
    """A registered Watch for a call of `client` on `session_id` (None: the client never
    gives up)."""
    if client._timeout is None:
        return None
    w = Watch(client, on_dead, session_id)
    global _thread
    with _lock:
        _watches.add(w)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="gradserve-watchdog", daemon=True)
            _thread.start()
    _wake.set()
    return w


def unwatch(w: Watch | None) -> None:
    if w is not None:
        with _lock:
            _watches.discard(w)


def _run() -> None:
    while True:
        with _lock:
            watches = list(_watches)
        if not watches:
            _wake.wait(1.0)
            _wake.clear()
            continue
        now = time.monotonic()
        tick = 0.5
        silent: dict = {}  # (client, session) -> its watches silent for SILENT * timeout
        for w in watches:
            timeout = w.client._timeout
            tick = min(tick, max(timeout / 10, 0.02))
            since = w.since
            if since is not None and w.error is None and now - since >= SILENT * timeout:
                silent.setdefault((w.client, w.session_id), []).append((w, w.reads))
        for (client, session_id), stuck in silent.items():
            alive = client._probe(PROBE * client._timeout, session_id)
            for w, reads in stuck:
                if w.reads != reads or w.since is None:
                    continue  # that read ended while we asked
                if alive:
                    w.since = time.monotonic()
                else:
                    w.error = unresponsive(client.target, client._timeout, "a read")
                    try:
                        w.on_dead(w.error)
                    except Exception:  # noqa: BLE001 (the watchdog must outlive any call)
                        pass
        del watches, silent
        time.sleep(tick)
