"""Compute slots: where a session's work runs, in order, fairly, and only while it computes.

Each device has a fixed number of slots (`--cpu-workers` for the CPU, one per GPU). A
session's work items queue in its own FIFO; sessions with work wait in one round-robin line
per device, and a free slot takes the next session in line, runs one item of it (one op
batch, one backward, ...), then puts the session back at the end of the line if it has more.
So a session never runs on two slots at once, its items run in the order they came, and a
busy session delays another by at most one item.

Sessions whose work is heavy run at a lower OS priority: when an item had an op touching
`HEAVY_ELEMENTS` or more (the estimate `--max-op-elements` is checked against), the
session's next item runs on a thread of a second pool, niced `BACKGROUND_NICE` below the
rest (a thread's own priority, Linux); a light item brings it back. Turns and slots are the
same for both; only the CPU, when it is contended, goes first to the light sessions' threads,
so a neighbour at the work limit costs a small-step client little latency.

A slot is held only while computing. Work that must wait for its client (a backward waiting
for a hook's answer, see `_callbacks`) gives its slot back for the wait (`client_wait`) and
takes one again before it goes on, ahead of sessions that have not started. The thread it
runs on stays with it (its Python stack is the backward's), so threads = busy slots + items
waiting on a client; an idle session or an idle stream holds none.

The hand-off costs as little as it can, because every request pays it: a thread that ends an
item takes the next one itself (no second thread is woken while it is awake), an idle thread
is woken last-in first-out (its caches are warm), and the caller on an event loop is told
with one `call_soon_threadsafe`, after the slot's bookkeeping, so the loop wakes to a thread
that is about to sleep instead of fighting it for the GIL. A request that is known to be
short before it runs (see the servicer) may run on the caller's own thread instead
(`try_inline`): it takes a slot like any item, under the same deadline, only without the
hand-off (on this 2-core VM each hand-off costs a few hundred microseconds of system calls).
When a session's next item is already queued as one ends (a Pipeline stream reads its next
request while the last one computes), the thread runs it straight on, at the normal
priority when it is known to be short (`submit(short=True)`), and tells the callers of
both once it is done: a caller woken in between would only fight the item for the GIL.

Each item runs with a deadline (`check_deadline` raises past it, between the ops of a batch
and between the nodes of a backward): the server's compute budget per request, or the
caller's own gRPC deadline when that is sooner. Nothing here imports grpc.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from gradserve.engine import seam

from ._errors import DeadlineExceededError, UnavailableError, detach
from ._limits import item_work


class _Local(threading.local):
    """What the item running on a thread set: its deadline (a tuple) and device, None on a
    thread that runs none (class defaults: read per op, never a failed lookup)."""

    deadline = None
    device = None


_local = _Local()
_QUEUED, _RUNNING, _DONE, _DROPPED = range(4)
_CALL_DEADLINE = "the call's deadline"
# A session whose last item had an op touching this many elements (a millisecond or more of a
# core's work) is heavy: its next item runs on a thread of lower OS priority.
HEAVY_ELEMENTS = 1 << 20
BACKGROUND_NICE = 10
_HEAVY_KEPT = 1 << 16  # sessions remembered as heavy (the least recent forgotten first)


def check_deadline(what: str = "this request",
                   done: str = "the ops before this point ran, the rest did not") -> None:
    """DeadlineExceededError when the item running on this thread passed its deadline."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline[0]:
        raise DeadlineExceededError(
            f"{what} ran longer than its compute budget of {deadline[1]:g} s "
            f"({deadline[2]}); {done}")


def _check_between(step: str | None = None) -> None:
    """The engine's node check: between two nodes of a backward, or (`step`) two parameters
    of an optimizer step over many, stop it past the deadline."""
    if getattr(_local, "deadline", None) is None:
        return
    if step is None:
        check_deadline("this request's backward", "it stopped between two nodes of the graph: "
                       "the nodes before ran (leaves they reached may hold part of their "
                       "gradient), the rest did not")
    else:
        check_deadline(f"this request's {step}", "it stopped between two parameters: those "
                       "before were updated, the rest were not")


class _Device:
    def __init__(self, name: str, slots: int) -> None:
        self.name = name
        self.slots = max(1, slots)
        self.free = self.slots
        self.resuming = 0  # items back from a client wait, ahead of the line
        self.line: collections.deque = collections.deque()  # session keys with queued work
        self.queues: dict[str, collections.deque] = {}
        self.running: set[str] = set()


class _Item:
    __slots__ = ("fn", "args", "budget", "why", "hold", "future", "loop", "state",
                 "release_at_end", "short")

    def __init__(self, fn, args, budget, why, hold, future, loop, short=False) -> None:
        self.fn, self.args, self.budget, self.why, self.hold = fn, args, budget, why, hold
        self.future, self.loop, self.short = future, loop, short
        self.state = _QUEUED
        self.release_at_end = False

    def cancelled(self) -> bool:
        # read across threads: a loop's future is only ever cancelled, never un-cancelled
        return self.state == _DROPPED or self.future.cancelled()

    def forget(self) -> None:
        """Drop the work once it ran or was dropped. A loop's future holds its item
        (`release_after`), and the item held the future: without this, that cycle kept the
        request (an upload's array) and the result (a fetch's arrays) until the cyclic
        collector ran, which a server tunes to run rarely (`_cli._tune_process`)."""
        self.fn = self.args = None

    def settle(self, result, error: BaseException | None) -> None:
        future, self.future = self.future, None
        self.forget()
        if self.loop is None:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
            return
        try:
            self.loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the loop closed under it: nobody waits any more
            pass


def _settle_all(done: list) -> None:
    """Answer each (item, result, error) of `done`, in order; `done` is emptied."""
    for item, result, error in done:
        item.settle(result, error)
    done.clear()


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if not future.done():
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _LoopFuture(asyncio.Future):
    """An event loop's future for an item; knows its item (for `release_after`)."""

    item: _Item


class _Threads:
    """Threads that run items: the most recently idle one takes the next, else a new one
    starts."""

    def __init__(self, name: str, nice: int = 0) -> None:
        self._name, self._nice = name, nice
        self._idle: list[queue.SimpleQueue] = []
        self._count = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                inbox = self._idle.pop()
            else:
                inbox = queue.SimpleQueue()
                self._count += 1
                threading.Thread(target=self._loop, args=(inbox,), daemon=True,
                                 name=f"{self._name}-{self._count}").start()
        inbox.put(fn)

    def _loop(self, inbox: queue.SimpleQueue) -> None:
        if self._nice:
            try:  # this thread only (Linux: a thread is a task of its own), below the rest
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid,
                               min(19, os.getpriority(os.PRIO_PROCESS, tid) + self._nice))
            except (AttributeError, OSError):  # pragma: no cover - not Linux: one priority
                pass
        while True:
            fn = inbox.get()
            if fn is None:
                return
            last = fn()
            with self._lock:
                self._idle.append(inbox)
            if last is not None:  # once idle: the work it answers may bring this thread more
                last()

    @property
    def count(self) -> int:
        return self._count


class Scheduler:
    """Per-device compute slots over per-session FIFOs, served round-robin."""

    def __init__(self, devices: Sequence[str], cpu_slots: int,
                 budget: float | None = None) -> None:
        self.budget = budget if budget and budget > 0 else None
        self._devices = {d: _Device(d, cpu_slots if d == "cpu" else 1) for d in devices}
        self._cond = threading.Condition()
        self._threads = _Threads("gradserve-compute")
        self._background = _Threads("gradserve-background", BACKGROUND_NICE)
        self._heavy: collections.OrderedDict = collections.OrderedDict()  # session keys
        self._closed = False
        seam.set_node_check(_check_between)  # a long backward or step stops at it too

    def slots(self, device: str) -> int:
        return self._devices[device].slots

    def busy(self) -> int:
        """Items computing now, or waiting on their client."""
        with self._cond:
            return sum(d.slots - d.free + d.resuming for d in self._devices.values())

    @property
    def threads(self) -> int:
        return self._threads.count + self._background.count

    def heavy(self, key: str) -> bool:
        """Whether session `key`'s next item runs at background priority."""
        return key in self._heavy

    def submit(self, device: str, key: str, fn: Callable, *args,
               timeout: float | None = None, why: str = "--max-request-seconds",
               hold: bool = False, loop: asyncio.AbstractEventLoop | None = None,
               short: bool = False):
        """Queue `fn(*args)` as the next item of session `key` on `device`; its future: a
        concurrent.futures.Future, or with `loop` an asyncio future of that loop (call this
        on the loop's thread). `timeout`: the caller's own deadline in seconds (the sooner
        one wins). `hold`: the session stays busy after the item until `release(device,
        key)` (a reply that reads the session's storage while it streams)."""
        budget, why_text = self._budget(timeout, why)
        if loop is None:
            future = concurrent.futures.Future()
        else:
            future = _LoopFuture(loop=loop)
        item = _Item(fn, args, budget, why_text, hold, future, loop, short)
        if loop is not None:
            future.item = item
        with self._cond:
            if self._closed:
                raise UnavailableError("the server is stopping and runs no more work")
            dev = self._devices[device]
            fifo = dev.queues.get(key)
            if fifo is None:
                fifo = dev.queues[key] = collections.deque()
                if key not in dev.running:
                    dev.line.append(key)
            fifo.append(item)
            self._dispatch(dev)
        return future

    def _budget(self, timeout: float | None, why: str = "--max-request-seconds"
                ) -> tuple[float | None, str]:
        """An item's compute budget and what sets it: the server's, or the caller's own
        deadline (`timeout` seconds) when that is sooner."""
        if timeout is not None and (self.budget is None or timeout < self.budget):
            return max(0.0, timeout), _CALL_DEADLINE
        return self.budget, why

    def try_inline(self, device: str, key: str, timeout: float | None = None) -> bool:
        """Take a slot for session `key` to run a short item on the calling thread, when one
        is free and the session has nothing queued or running (so order and turns are as if
        it were queued); it runs under the deadline an item gets (`timeout`: the caller's
        own), until `end_inline`. False: submit it instead."""
        with self._cond:
            dev = self._devices[device]
            if (self._closed or dev.free <= dev.resuming or key in dev.running
                    or key in dev.queues):
                return False
            dev.free -= 1
            dev.running.add(key)
        budget, why = self._budget(timeout)
        _local.deadline = None if budget is None else (time.monotonic() + budget, budget, why)
        item_work(reset=True)
        return True

    def end_inline(self, device: str, key: str, weighed: bool = False) -> None:
        """End an inline item; `weighed`: it ran ops, so how heavy they were decides the
        priority of the session's next item (a request without ops leaves it as it was)."""
        _local.deadline = None
        heavy = item_work(reset=True) >= HEAVY_ELEMENTS
        with self._cond:
            dev = self._devices[device]
            dev.free += 1
            dev.running.discard(key)
            if weighed:
                self._note(key, heavy)
            self._dispatch(dev)
            if dev.resuming:
                self._cond.notify_all()

    def release(self, device: str, key: str) -> None:
        """End the hold of a `hold=True` item: the session's next item may run."""
        with self._cond:
            self._release(self._devices[device], key)

    def _release(self, dev: _Device, key: str) -> None:
        dev.running.discard(key)
        if dev.queues.get(key) and key not in dev.line:
            dev.line.append(key)
        self._dispatch(dev)

    def release_after(self, future, device: str, key: str) -> None:
        """`release` once the `hold=True` item of `future` ended (at once if it has); a
        queued one is dropped instead (it never runs, nothing to release)."""
        item = getattr(future, "item", None)
        if item is None:  # a concurrent future: its callback runs when it ends
            if not future.cancelled():
                future.add_done_callback(lambda f: None if f.cancelled()
                                         else self.release(device, key))
            return
        with self._cond:
            if item.state == _QUEUED:
                item.state = _DROPPED
            elif item.state == _RUNNING:
                item.release_at_end = True
            elif item.state == _DONE:
                self._release(self._devices[device], key)

    def withdraw(self, future) -> bool:
        """Drop the item of `future` (of `submit` with a loop) if it has not started: it never
        runs and its future is cancelled. False when it started (it runs to its end, and its
        future gets the result) or `future` is no item's."""
        item = getattr(future, "item", None)
        if item is None:
            return False
        with self._cond:
            if item.state != _QUEUED:
                return False
            item.state = _DROPPED
        future.cancel()
        return True

    @contextlib.contextmanager
    def client_wait(self) -> Iterator[None]:
        """Give this item's slot back while it waits for its client; take one again after."""
        device = getattr(_local, "device", None)
        if device is None:  # not on a slot (a test calling the executor directly)
            yield
            return
        dev = self._devices[device]
        with self._cond:
            dev.free += 1
            self._dispatch(dev)
            if dev.resuming:
                self._cond.notify_all()
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                dev.resuming += 1
                while dev.free <= 0:
                    self._cond.wait()
                dev.free -= 1
                dev.resuming -= 1
            deadline = _local.deadline
            if deadline is not None and deadline[2] != _CALL_DEADLINE:
                # the server's budget is of compute: the wait does not count (a caller's own
                # deadline is of the clock)
                _local.deadline = (deadline[0] + time.monotonic() - started, *deadline[1:])

    def close(self) -> None:
        """Refuse new items and fail the queued ones (UnavailableError); running ones go
        on (a draining server exits under them when its grace ends)."""
        with self._cond:
            self._closed = True
            for dev in self._devices.values():
                for fifo in dev.queues.values():
                    for item in fifo:
                        if item.cancelled() or (item.loop is None and not
                                                item.future.set_running_or_notify_cancel()):
                            continue
                        item.state = _DONE
                        item.settle(None, UnavailableError(
                            "the server stopped before this request ran"))
                dev.queues.clear()
                dev.line.clear()

    # -- inside --------------------------------------------------------------------------
    def _take(self, dev: _Device):
        """The next item to run on a free slot, the slot taken (lock held); None when no slot
        is free or nothing waits."""
        while dev.free > dev.resuming and dev.line:
            key = dev.line.popleft()
            fifo = dev.queues.get(key)
            item = None
            while fifo:
                candidate = fifo.popleft()
                if candidate.cancelled():
                    candidate.state = _DROPPED
                    candidate.forget()
                    continue
                if candidate.loop is None and not candidate.future.set_running_or_notify_cancel():
                    candidate.forget()
                    continue
                item = candidate
                break
            if not fifo:
                dev.queues.pop(key, None)
            if item is None:
                continue
            dev.free -= 1
            dev.running.add(key)
            item.state = _RUNNING
            return key, item
        return None

    def _dispatch(self, dev: _Device) -> None:
        """Start queued items on threads while slots are free (lock held)."""
        while (taken := self._take(dev)) is not None:
            self._start(dev, taken)

    def _start(self, dev: _Device, taken: tuple) -> None:
        background = self._niced(taken)
        threads = self._background if background else self._threads
        threads.submit(lambda: self._run(dev, *taken, background))

    def _niced(self, taken: tuple) -> bool:
        """Whether a taken (key, item) runs at background priority (lock held)."""
        return taken[0] in self._heavy and not taken[1].short

    def _note(self, key: str, heavy: bool) -> None:
        """Remember whether session `key`'s last item was heavy (lock held)."""
        if heavy:
            self._heavy[key] = None
            self._heavy.move_to_end(key)
            if len(self._heavy) > _HEAVY_KEPT:
                self._heavy.popitem(last=False)
        elif self._heavy:
            self._heavy.pop(key, None)

    def _run(self, dev: _Device, key: str, item: _Item,
             background: bool) -> Callable[[], None]:
        """Run `item`, then the next items of its priority this thread can take, one after
        another; what answers the last ones (for `_Threads` to call once the thread is
        idle). Items of one session that run back to back are answered together, after
        the last; any other is answered before the thread goes on to another session."""
        _local.device = dev.name
        answered: list = []  # (item, result, error) whose callers are not told yet
        while True:
            _local.deadline = (None if item.budget is None else
                               (time.monotonic() + item.budget, item.budget, item.why))
            result = error = None
            item_work(reset=True)
            try:
                result = item.fn(*item.args)
            except BaseException as exc:  # noqa: BLE001  (the caller gets it)
                error = detach(exc)
            item.forget()
            _local.deadline = None
            heavy = item_work(reset=True) >= HEAVY_ELEMENTS
            with self._cond:
                dev.free += 1
                item.state = _DONE
                self._note(key, heavy)
                if not item.hold or item.release_at_end:
                    dev.running.discard(key)
                    if dev.queues.get(key) and key not in dev.line:
                        dev.line.append(key)
                taken = self._take(dev)  # this thread runs the next one itself, if it may
                if taken is not None and self._niced(taken) != background:
                    self._start(dev, taken)
                    taken = None
                self._dispatch(dev)
                if dev.resuming:
                    self._cond.notify_all()
            answered.append((item, result, error))
            if taken is None:
                _local.device = None
                # last, once the thread is idle: the woken caller finds the GIL about free,
                # and its next item comes back to this thread
                return lambda: _settle_all(answered)
            if taken[0] != key or item.hold:
                _settle_all(answered)  # another session's turn: these callers wait no longer
            # else the session's next item (a stream's request read ahead) runs first: a
            # caller woken now would take the GIL from it, and wait behind it for the
            # stream's order anyway
            key, item = taken
