"""Budgets: the bytes a session and the server keep alive, the work one op or request may do,
and the sizes a request may have before it is parsed.

Bytes are counted where arrays are made: every array an op, an upload or a backward binds is
tracked (by a weak reference to the storage it owns) in its session's `Account` until it is
freed, wherever it is kept alive from: an id the client holds, a saved tensor of a recorded
graph, a grad, optimizer state. A request is checked before an op allocates, from the op's
inferred output shapes, against both the session's limit (--max-session-bytes) and the
server's (--max-server-bytes); the exact check runs after the request, and a request that
ends over a limit has its new bindings undone, so the session stays usable.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass
from weakref import getweakrefcount, getweakrefs

from gradserve.v1.codec import MAX_MESSAGE_BYTES

from ._errors import ResourceExhaustedError

MiB = 1 << 20


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or the cgroup's limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Limits:
    """Every budget of one server; None or 0 means no limit. `defaults()` derives the
    machine-dependent ones (documented in `gradserve serve --help`)."""

    max_session_bytes: int | None = None
    max_server_bytes: int | None = None
    max_op_elements: int | None = None
    max_request_seconds: float | None = None
    callback_timeout: float | None = 60.0
    max_batch_bytes: int | None = MAX_MESSAGE_BYTES
    max_batch_ops: int | None = 100_000
    max_batch_depth: int = 32
    max_graph_nodes: int | None = 200_000
    max_sessions_per_caller: int | None = None

    @staticmethod
    def default_server_bytes() -> int:
        """80 % of the machine's memory (or the cgroup's limit)."""
        return machine_memory() * 4 // 5

    @staticmethod
    def default_session_bytes(server_bytes: int | None) -> int | None:
        """A quarter of the server's cap: four sessions at their limit fill the server."""
        return None if not server_bytes else server_bytes // 4

    @staticmethod
    def default_op_elements(server_bytes: int | None) -> int:
        """2**31 elements (a few seconds of one core's work), fewer when the server's cap
        holds fewer float32 elements."""
        return min(1 << 31, (server_bytes or 1 << 40) // 4)


# -- bytes ---------------------------------------------------------------------------------
class Ledger:
    """The bytes every session's tracked arrays hold, together, and the server's limit.

    A freed array's weak reference is put on `freed` (its callback is that list's C
    `append`: no Python frame and no lock per free, while an op runs) and subtracted by the
    next `settle`, which runs before anything reads a count it must have exact (a limit
    that looks reached, a session's bytes as reported) and, in batches, from `track`. Until
    then the counts are at most that much too high: a check that passes on them passes on
    the exact ones, one that fails settles first."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit if limit and limit > 0 else None
        self.total = 0
        self.lock = threading.RLock()
        self.freed: list[_Ref] = []
        self.gone = self.freed.append  # every tracked array's weakref callback

    def settle(self) -> None:
        """Subtract the arrays freed since the last settle from their accounts and the
        total."""
        if self.freed:
            with self.lock:
                self._settle()

    def _settle(self) -> None:  # with the lock held
        freed, total = self.freed, self.total
        pop = freed.pop
        while freed:
            ref = pop()
            held, n = ref.held
            account = held.account
            del account.refs[id(ref)]
            held.bytes -= n
            account.bytes -= n
            total -= n
        self.total = total


_SETTLE_EVERY = 64  # freed arrays `track` lets queue up before it settles them (bounds the
# queue of a session that never reads a count nor comes near a limit)


class _Held:
    """One account's bytes on one device."""

    __slots__ = ("account", "bytes")

    def __init__(self, account: Account) -> None:
        self.account, self.bytes = account, 0


class _Ref(weakref.ref):
    __slots__ = ("held",)  # (the _Held it counts in, its array's nbytes)


class Account:
    """What one session's arrays hold, per device; counted once per owned storage. `bytes`
    may count arrays freed since the ledger's last `settle` (`held` and `held_bytes`
    settle first).

    A tracked storage is found again by its weak references (a view of it, or it bound
    twice, counts nothing more): no table keyed by address to keep in step with the frees.
    `refs` keeps each reference alive (by its own id) until its array is freed and settled."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.ledger = ledger if ledger is not None else Ledger()
        self.bytes = 0
        self.devices: dict[str, _Held] = {}
        self.refs: dict[int, _Ref] = {}

    def track(self, data, device: str) -> None:
        """Count `data`'s storage (the array that owns it) until it is freed."""
        root = data
        base = getattr(root, "base", None)
        while base is not None and hasattr(base, "nbytes"):
            root = base
            base = getattr(root, "base", None)
        if getweakrefcount(root):  # a fresh array has none: the usual case, one C call
            for ref in getweakrefs(root):
                if type(ref) is _Ref:
                    try:
                        mine = ref.held[0].account is self
                    except AttributeError:  # another account's, being made on its thread
                        continue
                    if mine:
                        return  # counted (a live array's references are all live)
        ledger = self.ledger
        try:
            ref = _Ref(root, ledger.gone)
        except TypeError:  # not weak-referenceable (a numpy scalar): nothing large
            return
        held = self.devices.get(device)
        if held is None:
            held = self.devices.setdefault(device, _Held(self))
        n = root.nbytes
        ref.held = (held, n)
        lock = ledger.lock
        lock.acquire()  # not `with`: half the cost, once per array made
        try:
            self.refs[id(ref)] = ref
            held.bytes += n
            self.bytes += n
            ledger.total += n
            if len(ledger.freed) > _SETTLE_EVERY:
                ledger._settle()
        finally:
            lock.release()

    def track_tensor(self, t) -> None:
        """A tensor's storage and its grad's."""
        self.track(t._data, t._device)
        if t._grad is not None:
            self.track(t._grad._data, t._grad._device)

    def held(self) -> dict[str, int]:
        with self.ledger.lock:
            self.ledger._settle()
            return {d: h.bytes for d, h in self.devices.items() if h.bytes}

    def held_bytes(self) -> int:
        """`bytes`, exact."""
        self.ledger.settle()
        return self.bytes


def meta_bytes(metas) -> int:
    total = 0
    for m in metas:
        total += math.prod(m.shape) * m.dtype.itemsize
    return total


_last_collect = [0.0]

# What the server keeps for a session beyond what its graph and ids hold (a captured step's
# earlier runs, server/_plan.py), let go before a byte limit refuses: each a function of the
# session (None: every session's, for the server's limit), True when it let something go.
releasers: list = []


def release_held(session, server: bool = False) -> bool:
    released = False
    for release in releasers:
        released = release(None if server else session) or released
    return released


def reclaim() -> bool:
    """Collect reference cycles (an error's traceback that holds the frames that held
    arrays), at most once a second; True when it ran. Asked before a byte limit refuses."""
    now = time.monotonic()
    if now - _last_collect[0] < 1.0:
        return False
    _last_collect[0] = now
    gc.collect()
    return True


class Budget:
    """The bytes one request may still allocate under its session's and the server's limit."""

    def __init__(self, session, limit: int | None) -> None:
        self.session, self.limit = session, limit
        self.account = session.account
        self.server_limit = self.account.ledger.limit

    def _left(self) -> tuple[float, float]:
        account = self.account
        account.ledger.settle()
        left = math.inf if self.limit is None else self.limit - account.bytes
        server_left = (math.inf if self.server_limit is None
                       else self.server_limit - account.ledger.total)
        return left, server_left

    def take(self, nbytes: int, what: str) -> None:
        account, limit, server_limit = self.account, self.limit, self.server_limit
        if (limit is None or nbytes <= limit - account.bytes) and (
                server_limit is None or nbytes <= server_limit - account.ledger.total):
            return  # room for it (every op asks: the usual answer, without a call)
        left, server_left = self._left()
        if nbytes > left or nbytes > server_left:
            if release_held(self.session, nbytes > server_left) | reclaim():
                left, server_left = self._left()
        if nbytes > left:
            raise ResourceExhaustedError(
                f"{what} would make {nbytes} bytes, more than the {max(left, 0)} left "
                f"under session {self.session.id}'s limit of {self.limit} bytes "
                "(max-session-bytes; saved tensors of recorded graphs count)",
                "max_session_bytes")
        if nbytes > server_left:
            raise ResourceExhaustedError(
                f"{what} would make {nbytes} bytes, more than the {max(server_left, 0)} "
                f"this server has left under its limit of {self.server_limit} bytes "
                "(max-server-bytes); retry later, or on another replica", "max_server_bytes")


def check_limit(session, limit: int | None, previous: dict) -> None:
    """After a call bound `previous`'s ids: over the session's or the server's byte limit,
    restore what they were bound to (so the session stays usable) and raise
    ResourceExhaustedError."""
    account = session.account
    server_limit = account.ledger.limit
    def over() -> tuple[bool, bool]:
        account.ledger.settle()
        return (limit is not None and account.bytes > limit,
                server_limit is not None and account.ledger.total > server_limit)

    if not previous or not (  # the counts are exact or too high: settle when over
            (limit is not None and account.bytes > limit)
            or (server_limit is not None and account.ledger.total > server_limit)):
        return
    over_session, over_server = over()
    if not (over_session or over_server):
        return
    if release_held(session, over_server) | reclaim():
        over_session, over_server = over()
        if not (over_session or over_server):
            return
    total = account.bytes
    for tid, old in previous.items():
        if old is None:
            session.tensors.pop(tid, None)
        else:
            session.tensors[tid] = old
    if over_session:
        raise ResourceExhaustedError(
            f"session {session.id} would hold {total} bytes, over its limit of {limit} bytes "
            f"(max-session-bytes); the {len(previous)} id(s) this request bound were released",
            "max_session_bytes")
    raise ResourceExhaustedError(
        f"this server would hold more than its limit of {server_limit} bytes "
        f"(max-server-bytes); the {len(previous)} id(s) this request bound were released",
        "max_server_bytes")


# -- work ------------------------------------------------------------------------------------
class _Work(threading.local):
    heaviest = 0  # the most elements one op of the running item touched (a class default:
    # reading it on a thread that never set it raises nothing, per op)


_work = _Work()


def item_work(reset: bool = False) -> int:
    """The most elements one op touched on this thread since the last reset (the scheduler's
    estimate of how heavy a session's requests are)."""
    heaviest = getattr(_work, "heaviest", 0)
    if reset:
        _work.heaviest = 0
    return heaviest


def check_elements(name: str, inputs, metas, limit: int | None, view: bool = True) -> None:
    """ResourceExhaustedError when op `name` would touch more than `limit` elements (its
    inputs', views such as a broadcast counted at their full size, or its outputs'; making
    a view touches nothing). Notes the count for `item_work`. `view`: whether the op is a
    view op (an output of another op is fresh even with strides: an elementwise result)."""
    touched = made = 0
    for m in metas:
        if m.strides is None or not view:  # not a view
            made += math.prod(m.shape)
    for x in inputs:
        if hasattr(x, "_data"):
            n = math.prod(x.shape)
            if n > touched:
                touched = n
    if made > touched:
        touched = made
    if touched > getattr(_work, "heaviest", 0):
        _work.heaviest = touched
    if limit is None:
        return
    if touched > limit:
        raise ResourceExhaustedError(
            f"{name} would touch {touched} elements, more than this server's limit of "
            f"{limit} per op (max-op-elements); split it into smaller ops",
            "max_op_elements")


def op_room(name: str, inputs, meta, limit: int | None, budget: Budget,
            view: bool = False) -> None:
    """`check_elements` and `budget.take` for an op of one output (`meta`), in one pass: the
    check every op of a request runs before its output is made. `view`: a view op's."""
    made = 0 if view and meta.strides is not None else math.prod(meta.shape)
    touched = made
    for x in inputs:
        data = getattr(x, "_data", None)
        if data is not None and data.size > touched:
            touched = data.size
    if touched > _work.heaviest:
        _work.heaviest = touched
    if limit is not None and touched > limit:
        check_elements(name, inputs, (meta,), limit, view)  # raises its error
    budget.take(made * meta.dtype.itemsize, name)


def count_nodes(root, limit: int) -> int:
    """The nodes of `root`'s backward graph; ResourceExhaustedError past `limit`."""
    start = root.grad_fn
    if start is None:
        return 0
    seen = {start}
    todo = [start]
    while todo:
        fn = todo.pop()
        for child, _ in getattr(fn, "next_functions", ()):
            if child is not None and child not in seen:
                seen.add(child)
                if len(seen) > limit:
                    raise ResourceExhaustedError(
                        f"this graph has more than {limit} nodes, the most DescribeGraph "
                        "describes (max-graph-nodes); describe a tensor nearer its leaves",
                        "max_graph_nodes")
                todo.append(child)
    return len(seen)
