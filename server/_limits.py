"""Bytes held by a session, and the limit (`--max-session-bytes`) every call must keep.

An op is checked against the limit before it allocates, from its inferred output shapes; the
exact check runs after the request, and a request that ends over the limit has its new
bindings undone, so the session stays usable.
"""

from __future__ import annotations

import math

from ._errors import ResourceExhaustedError


def held_bytes(tensors) -> dict[str, int]:
    """Bytes held by `tensors` and their grads, per device ("cpu", "cuda:0", ...), counting
    storage shared by views once. GPU bytes count as host bytes do."""
    seen: set[int] = set()
    held: dict[str, int] = {}
    for t in tensors:
        for x in (t, t._grad):
            if x is None:
                continue
            root = x._data
            while getattr(root, "base", None) is not None and hasattr(root.base, "nbytes"):
                root = root.base
            if id(root) not in seen:
                seen.add(id(root))
                held[x._device] = held.get(x._device, 0) + int(root.nbytes)
    return held


def tensor_bytes(tensors) -> int:
    """Bytes held by `tensors` and their grads on every device together."""
    return sum(held_bytes(tensors).values())


def meta_bytes(metas) -> int:
    return sum(math.prod(m.shape) * m.dtype.itemsize for m in metas)


class Budget:
    """The bytes one request may still allocate under its session's limit."""

    def __init__(self, session, limit: int) -> None:
        self.session, self.limit = session, limit
        self.left = limit - tensor_bytes(session.tensors.values())

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise ResourceExhaustedError(
                f"{what} would make {nbytes} bytes, more than the {max(self.left, 0)} left "
                f"under session {self.session.id}'s limit of {self.limit} bytes "
                "(max-session-bytes)", "max_session_bytes"
            )
        self.left -= nbytes


def check_limit(session, limit: int | None, previous: dict) -> None:
    """After a call bound `previous`'s ids: over the byte limit, restore what they were
    bound to (so the session stays usable) and raise ResourceExhaustedError."""
    if limit is None or not previous:
        return
    total = tensor_bytes(session.tensors.values())
    if total <= limit:
        return
    for tid, old in previous.items():
        if old is None:
            session.tensors.pop(tid, None)
        else:
            session.tensors[tid] = old
    raise ResourceExhaustedError(
        f"session {session.id} would hold {total} bytes, over its limit of {limit} bytes "
        f"(max-session-bytes); the {len(previous)} id(s) this request bound were released",
        "max_session_bytes")
