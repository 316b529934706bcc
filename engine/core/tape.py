"""A thread's tape: the ops the engine computes while someone watches (a server's plan of a
captured step watches one eager backward, to run its kernels again without the walk).

`watching()` gives the list the engine's kind appends to on this thread, until the block
ends: `(op, inputs, attrs, device, meta, outputs)` per computed op, `None` for anything the
tape cannot stand for (an in-place write, a shape that depended on the data), and
`("roots", grads)` where a backward starts. Nothing is kept when nobody watches: one
attribute read per op.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class _Local(threading.local):
    log = None  # a class default: a thread that never watched reads None without an error


_local = _Local()


def log() -> list | None:
    """This thread's tape, or None when nobody watches."""
    return getattr(_local, "log", None)


@contextmanager
def watching():
    """A fresh tape for this thread while the block runs."""
    outer = log()
    _local.log = tape = []
    try:
        yield tape
    finally:
        _local.log = outer
