"""torch's CPU generator (CPUGeneratorImpl over its mt19937 engine), in numpy.

torch seeds a 32-bit Mersenne Twister with the low 32 bits of the seed (the reference
`init_genrand`), draws 32-bit words from it, and makes a 64-bit draw from two words (the
first is the high half). numpy's MT19937 bit generator runs the same twist and tempering in
C, so this class only owns torch's seeding, its state layout and the Box-Muller cache that
torch keeps beside the engine; the words come out of numpy in bulk.

State: torch's `left_` counts down to the next twist where numpy's `pos` counts up, with
`pos == 625 - left`; a freshly seeded torch engine has `left_ = 1, next_ = 0` (numpy: pos 624).
`get_state()` gives the bytes `torch.get_rng_state()` gives (5056 of them, the same layout),
so a state saved here loads in torch and the other way round.

Words come out of one sequential engine, but what torch computes from them (a float per word,
a normal per pair of words) is independent per block of words; `draw_blocks` draws blocks in
order on the calling thread and transforms them on it and on helper threads at once (numpy
releases the GIL inside its loops, and while it draws).

    >>> g = CPUGenerator(0)
    >>> int(g.random32(1)[0])
    2357136044
"""

from __future__ import annotations

import math
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

N = 624
DEFAULT_SEED = 67280421310721  # c10::detail::default_rng_seed_val, torch's unseeded start
STATE_BYTES = 5056  # sizeof(CPUGeneratorImplState) on 64-bit platforms
# up to this many 64-bit draws, words from random_raw paired here beat numpy's `integers`
# (whose per-call overhead is several microseconds; per word it is the faster)
_RAW_PAIRS = 4096
_HALF = np.uint64(32)
_LEGACY = struct.Struct("<QiiQ")  # the_initial_seed, left, seeded, next
_TAIL = struct.Struct("<dddi4xf?3x")  # normal_x, normal_y, normal_rho, normal_is_valid,
#                                      next_float_normal_sample, is_next_float_normal_valid


def _init_genrand(seed32: int) -> np.ndarray:
    key = [seed32]
    for j in range(1, N):
        prev = key[-1]
        key.append((1812433253 * (prev ^ (prev >> 30)) + j) & 0xFFFFFFFF)
    return np.array(key, dtype=np.uint32)


class CPUGenerator:
    """torch.Generator("cpu")'s engine and caches: seeding, draws of 32/64-bit words,
    state bytes. Not thread-safe by itself (torch locks a mutex; gradserve runs one
    session's ops at a time)."""

    __slots__ = ("_bits", "_draws", "_seed", "_fresh", "next_double_normal", "next_float_normal")

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self._attach(np.random.MT19937(0))
        self.manual_seed(seed)

    def _attach(self, bits: np.random.MT19937) -> None:
        # numpy's Generator over the same engine: `integers` over the full uint64 range
        # returns mt19937_next64 (two words, the first high), torch's random64, in one C loop
        self._bits, self._draws = bits, np.random.Generator(bits)

    # -- seeding ------------------------------------------------------------------------
    def manual_seed(self, seed: int) -> CPUGenerator:
        seed = int(seed) % (1 << 64)  # torch takes negative seeds as their two's complement
        self._seed = seed
        self._set_engine(_init_genrand(seed & 0xFFFFFFFF), N, fresh=True)
        self.next_double_normal = self.next_float_normal = None
        return self

    def initial_seed(self) -> int:
        return self._seed

    def _set_engine(self, key: np.ndarray, pos: int, fresh: bool) -> None:
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": pos}}
        self._fresh = fresh

    # -- draws --------------------------------------------------------------------------
    def random32(self, n: int) -> np.ndarray:
        """n successive `random()` words (uint32 values in a uint64 array)."""
        if n <= 0:
            return np.zeros(0, np.uint64)
        self._fresh = False
        return self._bits.random_raw(int(n))

    def random64(self, n: int) -> np.ndarray:
        """n successive `random64()` values: two words each, the first the high half."""
        if n <= 0:
            return np.zeros(0, np.uint64)
        self._fresh = False
        if n <= _RAW_PAIRS:  # `integers` spends microseconds on its arguments first
            words = self._bits.random_raw(2 * int(n))
            high = words[0::2] << _HALF
            high |= words[1::2]
            return high
        return self._draws.integers(0, 1 << 64, int(n), dtype=np.uint64)

    # -- state --------------------------------------------------------------------------
    def get_state(self) -> bytes:
        """torch's `CPUGeneratorImpl::get_state()` bytes."""
        st = self._bits.state["state"]
        pos = int(st["pos"])
        nxt = 0 if self._fresh else pos
        head = _LEGACY.pack(self._seed, N + 1 - pos, 1, nxt)
        key = np.asarray(st["key"], dtype=np.uint64).astype("<u8").tobytes()
        dn, fn = self.next_double_normal, self.next_float_normal
        tail = _TAIL.pack(0.0, 0.0 if dn is None else dn, 0.0, dn is not None,
                          0.0 if fn is None else fn, fn is not None)
        return head + key + tail

    def set_state(self, data: bytes) -> None:
        """Load `get_state()` bytes (torch's or gradserve's)."""
        data = bytes(data)
        if len(data) != STATE_BYTES:
            raise RuntimeError("Expected either a THGeneratorState of size 5048 or a "
                               "CPUGeneratorImplState of size 5056 but found the input RNG "
                               f"state size to be {len(data)}")
        seed, left, _seeded, nxt = _LEGACY.unpack_from(data, 0)
        if not 1 <= left <= N:
            raise RuntimeError(f"The input RNG state must have left in [1, {N}], got {left}")
        key = np.frombuffer(data, "<u8", N, _LEGACY.size).astype(np.uint32)
        _x, dn, _rho, dn_valid, fn, fn_valid = _TAIL.unpack_from(data, _LEGACY.size + 8 * N)
        self._seed = seed
        self._set_engine(key, N + 1 - left, fresh=left == 1 and nxt == 0)
        self.next_double_normal = dn if dn_valid else None
        self.next_float_normal = fn if fn_valid else None

    @classmethod
    def from_state(cls, data: bytes) -> CPUGenerator:
        gen = cls.__new__(cls)
        gen._attach(np.random.MT19937(0))
        gen.set_state(data)
        return gen


# -- blocks of words transformed on several threads ------------------------------------------
def _helper_count() -> int:
    """GRADSERVE_DRAW_HELPERS if set (0: draws stay on the calling thread), else one less
    than the CPUs this process may use, at most 3."""
    env = os.environ.get("GRADSERVE_DRAW_HELPERS", "").strip()
    if env:
        return max(0, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        cpus = os.cpu_count() or 1
    # beyond a few threads the Python overhead between numpy calls, which holds the GIL,
    # makes more threads wait rather than work
    return max(0, min(cpus, 4) - 1)


DRAW_HELPERS = _helper_count()  # helper threads `draw_blocks` may use (0: the caller only)
# Take only the CPUs the machine's load leaves free: a helper that must wait for a core makes
# a draw slower than the caller alone (the two then hand the GIL back and forth)
ADAPT_TO_LOAD = True


_LOAD_WINDOW = 60.0  # seconds: the time constant of the 1-minute load average
# the helpers' CPU seconds (they add theirs after each block), and its rate per wall second
_spent = {"cpu": 0.0, "seen": 0.0, "wall": time.monotonic(), "rate": 0.0}
_spent_lock = threading.Lock()


def helpers_load() -> float:
    """The draw helpers' running threads, averaged as the 1-minute load average averages
    the machine's: their CPU seconds per wall second, decayed over a minute. That part of
    the load is the helpers' own, which must not turn them off (a draw-heavy loop would
    otherwise count its own helpers as other work and stop using them)."""
    with _spent_lock:
        wall = time.monotonic()
        dt = wall - _spent["wall"]
        if dt > 0:
            keep = math.exp(-dt / _LOAD_WINDOW)
            rate = (_spent["cpu"] - _spent["seen"]) / dt
            _spent.update(seen=_spent["cpu"], wall=wall,
                          rate=keep * _spent["rate"] + (1 - keep) * rate)
        return _spent["rate"]


def helpers_now() -> int:
    """How many helpers a draw made now should use: DRAW_HELPERS, less the CPUs that the
    1-minute load average says other work keeps busy (the load less the calling thread
    and the helpers' own)."""
    if not ADAPT_TO_LOAD or DRAW_HELPERS == 0:
        return DRAW_HELPERS
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average here
        return DRAW_HELPERS
    others = max(0.0, load - 1.0 - helpers_load())
    return max(0, min(DRAW_HELPERS, int(DRAW_HELPERS + 0.5 - others)))


class _Job:
    """One `draw_blocks` call: drawn blocks waiting for a thread, and a count of the ones
    not yet transformed."""

    __slots__ = ("tasks", "work", "left", "lock", "done", "error")

    def __init__(self, work: Callable[[int, np.ndarray], None], total: int) -> None:
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.work, self.left, self.error = work, total, None
        self.lock, self.done = threading.Lock(), threading.Event()

    def run(self, task: tuple[int, np.ndarray], helper: bool = False) -> None:
        start = time.thread_time() if helper else 0.0
        try:
            self.work(*task)
        except BaseException as exc:  # re-raised on the calling thread
            self.error = self.error or exc
        if helper:  # before the block counts as done: a caller that returns has seen it
            spent = time.thread_time() - start
            with _spent_lock:
                _spent["cpu"] += spent
        with self.lock:
            self.left -= 1
            if not self.left:
                self.done.set()

    def help(self) -> None:
        """A helper's share: blocks until the caller says there are no more (None)."""
        while (task := self.tasks.get()) is not None:
            self.run(task, helper=True)

    def drain(self) -> None:
        while True:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                return
            self.run(task)


class _Helpers:
    """Daemon threads that take `_Job`s; started on first use, again in a forked child."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def start(self, n: int) -> None:
        with self.lock:
            while len(self.threads) < n:
                t = threading.Thread(target=self._serve, name="gradserve-draws", daemon=True)
                t.start()
                self.threads.append(t)

    def _serve(self) -> None:
        while True:
            self.jobs.get().help()


_helpers = _Helpers()
if hasattr(os, "register_at_fork"):  # a child has none of the parent's threads
    os.register_at_fork(after_in_child=lambda: globals().update(_helpers=_Helpers()))


def draw_blocks(draw: Callable[[int], np.ndarray], sizes: Sequence[int],
                work: Callable[[int, np.ndarray], None], helpers: int | None = None) -> None:
    """`work(i, draw(sizes[i]))` for every block i: the draws in order on this thread (the
    stream, and so the generator's state, is as if drawn at once), the work on this thread
    and on up to DRAW_HELPERS helpers, so `work` must touch only block i's output and
    buffers of its own thread. Returns when every block is done; re-raises the first error.
    A helper busy with another call's blocks leaves this call's to this thread. `helpers`:
    at most that many (default `helpers_now()`)."""
    if len(sizes) > 1:  # one block has nothing to share (and skips the load's look-up)
        helpers = min(helpers_now() if helpers is None else helpers, len(sizes) - 1)
    if len(sizes) <= 1 or helpers <= 0:
        for i, size in enumerate(sizes):
            work(i, draw(size))
        return
    job, pool, asked = _Job(work, len(sizes)), _helpers, 0
    pool.start(helpers)
    try:
        for i, size in enumerate(sizes):
            job.tasks.put((i, draw(size)))
            for _ in range(helpers - asked):  # once the first block is there to take
                pool.jobs.put(job)
                asked += 1
        job.drain()
    finally:  # every helper that was asked stops, even when a draw failed
        for _ in range(asked):
            job.tasks.put(None)
    job.done.wait()
    if job.error is not None:
        raise job.error
