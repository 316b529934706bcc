"""Compute slots: where a session's work runs, in order, fairly, and only while it computes.

Each device has a fixed number of slots (`--cpu-workers` for the CPU, one per GPU). A
session's work items queue in its own FIFO; sessions with work wait in one round-robin line
per device, and a free slot takes the next session in line, runs one item of it (one op
batch, one backward, ...), then puts the session back at the end of the line if it has more.
So a session never runs on two slots at once, its items run in the order they came, and a
busy session delays another by at most one item.

A slot is held only while computing. Work that must wait for its client (a backward waiting
for a hook's answer, see `_callbacks`) gives its slot back for the wait (`client_wait`) and
takes one again before it goes on, ahead of sessions that have not started. The thread it
runs on stays with it (its Python stack is the backward's), so threads = busy slots + items
waiting on a client; an idle session or an idle stream holds none.

Each item runs with a deadline (`check_deadline` raises past it): the server's compute budget
per request, or the caller's own gRPC deadline when that is sooner. Nothing here imports grpc.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from ._errors import DeadlineExceededError, UnavailableError, detach

_local = threading.local()


def check_deadline(what: str = "this request") -> None:
    """DeadlineExceededError when the item running on this thread passed its deadline."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline[0]:
        raise DeadlineExceededError(
            f"{what} ran longer than its compute budget of {deadline[1]:g} s "
            f"({deadline[2]}); the ops before this point ran, the rest did not")


class _Device:
    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.free = self.slots
        self.resuming = 0  # items back from a client wait, ahead of the line
        self.line: collections.deque = collections.deque()  # session keys with queued work
        self.queues: dict[str, collections.deque] = {}
        self.running: set[str] = set()


class _Item:
    __slots__ = ("fn", "args", "future", "budget", "why", "hold")

    def __init__(self, fn, args, budget, why, hold) -> None:
        self.fn, self.args, self.budget, self.why, self.hold = fn, args, budget, why, hold
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class _Threads:
    """Threads that run items: an idle one takes the next, else a new one starts."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0
        self._count = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._count += 1
                threading.Thread(target=self._loop, name=f"{self._name}-{self._count}",
                                 daemon=True).start()
        self._queue.put(fn)

    def _loop(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            fn()
            with self._lock:
                self._idle += 1

    @property
    def count(self) -> int:
        return self._count


class Scheduler:
    """Per-device compute slots over per-session FIFOs, served round-robin."""

    def __init__(self, devices: Sequence[str], cpu_slots: int,
                 budget: float | None = None) -> None:
        self.budget = budget if budget and budget > 0 else None
        self._devices = {d: _Device(cpu_slots if d == "cpu" else 1) for d in devices}
        self._cond = threading.Condition()
        self._threads = _Threads("gradserve-compute")
        self._closed = False

    def slots(self, device: str) -> int:
        return self._devices[device].slots

    def busy(self) -> int:
        """Items computing now, or waiting on their client."""
        with self._cond:
            return sum(d.slots - d.free + d.resuming for d in self._devices.values())

    @property
    def threads(self) -> int:
        return self._threads.count

    def submit(self, device: str, key: str, fn: Callable, *args,
               timeout: float | None = None, why: str = "--max-request-seconds",
               hold: bool = False) -> concurrent.futures.Future:
        """Queue `fn(*args)` as the next item of session `key` on `device`; its future.
        `timeout`: the caller's own deadline in seconds (the sooner one wins). `hold`: the
        session stays busy after the item until `release(device, key)` (a reply that reads
        the session's storage while it streams)."""
        budget, why_text = self.budget, f"{why}"
        if timeout is not None and (budget is None or timeout < budget):
            budget, why_text = max(0.0, timeout), "the call's deadline"
        item = _Item(fn, args, budget, why_text, hold)
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
        return item.future

    def release(self, device: str, key: str) -> None:
        """End the hold of a `hold=True` item: the session's next item may run."""
        with self._cond:
            dev = self._devices[device]
            dev.running.discard(key)
            if dev.queues.get(key):
                dev.line.append(key)
            self._dispatch(dev)

    def release_after(self, future: concurrent.futures.Future, device: str, key: str) -> None:
        """`release` once the `hold=True` item of `future` ended (at once if it has; never
        if it was cancelled before it ran)."""
        if not future.cancelled():
            future.add_done_callback(lambda f: None if f.cancelled()
                                     else self.release(device, key))

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
        try:
            yield
        finally:
            with self._cond:
                dev.resuming += 1
                while dev.free <= 0:
                    self._cond.wait()
                dev.free -= 1
                dev.resuming -= 1

    def close(self) -> None:
        """Refuse new items and fail the queued ones (UnavailableError); running ones go
        on (a draining server exits under them when its grace ends)."""
        with self._cond:
            self._closed = True
            for dev in self._devices.values():
                for fifo in dev.queues.values():
                    for item in fifo:
                        if item.future.set_running_or_notify_cancel():
                            item.future.set_exception(UnavailableError(
                                "the server stopped before this request ran"))
                dev.queues.clear()
                dev.line.clear()

    # -- inside --------------------------------------------------------------------------
    def _dispatch(self, dev: _Device) -> None:
        """Start queued items while slots are free (lock held)."""
        while dev.free > dev.resuming and dev.line:
            key = dev.line.popleft()
            fifo = dev.queues.get(key)
            item = None
            while fifo:
                candidate = fifo.popleft()
                if candidate.future.set_running_or_notify_cancel():  # else: cancelled, skip
                    item = candidate
                    break
            if not fifo:
                dev.queues.pop(key, None)
            if item is None:
                continue
            dev.free -= 1
            dev.running.add(key)
            self._threads.submit(lambda d=dev, k=key, i=item: self._run(d, k, i))

    def _run(self, dev: _Device, key: str, item: _Item) -> None:
        device = next(name for name, d in self._devices.items() if d is dev)
        _local.device = device
        _local.deadline = (None if item.budget is None else
                           (time.monotonic() + item.budget, item.budget, item.why))
        try:
            result = item.fn(*item.args)
        except BaseException as exc:  # noqa: BLE001  (the caller gets it)
            item.future.set_exception(detach(exc))
        else:
            item.future.set_result(result)
        finally:
            _local.device = _local.deadline = None
            with self._cond:
                dev.free += 1
                if not item.hold:
                    dev.running.discard(key)
                    if dev.queues.get(key) and key not in dev.line:
                        dev.line.append(key)
                self._dispatch(dev)
                self._cond.notify_all()
