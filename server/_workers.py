"""Where engine work runs: CPU work on the RPC thread that asks, each GPU's on one thread."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence


class DeviceWorkers:
    """Where engine work runs: CPU work on the RPC thread that asks, each GPU's on one thread.

    A CUDA device gets a single worker thread: its kernels share one stream anyway, and one
    thread keeps the device's memory pool and context simple (the engine's backend enters
    `cupy.cuda.Device(n)` around each op). CPU work runs on the calling RPC thread, at most
    `cpu_workers` calls at a time (numpy releases the GIL in its kernels): CPU sessions run
    concurrently without handing each request to another thread and back, and GPU sessions
    never wait behind CPU ones or the reverse. Ordering within a session comes from the
    session lock, not from the workers: a session runs at most one request at a time.
    """

    def __init__(self, devices: Sequence[str], cpu_workers: int | None = None) -> None:
        if cpu_workers is None:
            cpu_workers = min(4, os.cpu_count() or 1)
        self._cpu_slots = threading.BoundedSemaphore(max(1, cpu_workers))
        self._pools = {
            device: concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"gradserve-{device}")
            for device in devices if device != "cpu"
        }

    def run(self, device: str, fn: Callable, *args):
        """Run `fn(*args)` on `device`'s worker and wait for its result (or its exception)."""
        if device == "cpu":
            with self._cpu_slots:
                return fn(*args)
        return self._pools[device].submit(fn, *args).result()

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
