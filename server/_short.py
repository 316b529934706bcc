"""Which Pipeline requests are known to be short before they run, so the servicer may run them
on the event loop's thread (on a slot taken for them, see `_scheduler.try_inline`), and a
stream's request read ahead at the normal priority: a tiny request, or the replay of a captured
step whose last runs were short. Anything else, however short it turns out to be, goes to a
slot's thread."""

from __future__ import annotations

from . import _replay as replay

# a fetch this small counts as tiny: a copy of at most this much
TINY_FETCH_BYTES = 64 << 10
TINY_FETCH_IDS = 16
# a replay of a captured step whose last run took at most this many seconds is short: about
# what it may keep the loop from other calls
INLINE_REPLAY_SECONDS = 0.003


def short(session, req, handle: str | None, draining: bool) -> bool:
    """Whether Pipeline request `req` is known to be short before it runs: tiny (`tiny`), or
    a replay of a captured step alone (`handle`) on a CPU session whose last such request
    took at most `INLINE_REPLAY_SECONDS`, with a tiny `then` (a replay runs the same kernels
    on the same shapes every time; a run that does not fit its plan runs eagerly, as long as
    eager takes). Nothing is short on a server that is draining."""
    if handle is None:
        return tiny(session, req, draining)
    if session.device != "cpu" or draining:
        return False
    seconds = replay.last_seconds(session, handle)
    return seconds is not None and seconds <= INLINE_REPLAY_SECONDS and tiny_then(session, req)


def tiny(session, req, draining: bool = False) -> bool:
    """Whether `req` is known to be tiny before it runs: no ops, nothing to release (a
    released tensor may free a whole graph), and a tiny `then` (`tiny_then`)."""
    if req.ops or req.op_batch or req.release or draining:
        return False
    return tiny_then(session, req)


def tiny_then(session, req) -> bool:
    """Whether `req`'s `then` is nothing, or a few small CPU values to fetch."""
    kind = req.WhichOneof("then")
    if kind is None:
        return True
    if kind != "fetch" or session.device != "cpu" or len(req.fetch.ids) > TINY_FETCH_IDS:
        return False
    tensors, size = session.tensors, 0
    for tid in req.fetch.ids:
        t = tensors.get(tid)
        if t is None:
            continue  # fails at once: not found
        if getattr(t, "_device", None) != "cpu":  # a GPU copy waits for queued kernels
            return False
        size += getattr(getattr(t, "_data", None), "nbytes", 1 << 62)
    return size <= TINY_FETCH_BYTES
