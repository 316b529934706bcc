"""Random streams: torch's CPU generator, one per server session and one for the process.

Each `Generator` is torch's CPUGeneratorImpl (core/mt19937.py: mt19937 words, torch's seeding
and state bytes) and random ops draw through torch's kernels (core/torch_dists.py), so after
`manual_seed(s)` a stream gives the numbers torch gives for the same seed and call order. The
server makes a session's generator current while it runs that session's ops, so sessions
never share a stream. Draws are made on the host and moved to the device (core/backend.py),
so a GPU session draws the numbers a CPU one draws (torch's CUDA streams are not reproduced).

A `generator=` argument names a stream of its own: its state rides as a uint8 tensor
(torch's 5056 state bytes) that the op reads and writes back, so it lives wherever the
tensor lives (a remote session's server) and costs no round trip.

    >>> g = Generator().manual_seed(0)
    >>> int(g.cpu.random32(1)[0])
    2357136044
"""

from __future__ import annotations

import contextlib
import contextvars
import secrets

import numpy as np

from .dtype import session_float
from .mt19937 import STATE_BYTES, CPUGenerator
from .registry import get_op


class Generator:
    """A seedable random stream with torch.Generator("cpu")'s engine (the engine's own
    stream objects; `gradserve.Generator` is the user-facing one)."""

    __slots__ = ("cpu", "default_dtype", "anomaly")

    def __init__(self, seed: int | None = None) -> None:
        # unseeded, a stream starts from the OS's entropy, as torch's default generator does
        # (a fresh torch.Generator() object starts from a fixed seed: gradserve.Generator)
        self.cpu = CPUGenerator(secrets.randbits(64) if seed is None else seed)
        # A server session's other setting, current with its stream (using_generator): the
        # default float dtype its client set (None: the process's, float32 on a server).
        self.default_dtype = None
        self.anomaly = None  # its anomaly mode: None off, else check_nan (core/anomaly.py)

    def manual_seed(self, seed: int) -> Generator:
        self.cpu.manual_seed(seed)
        return self

    def seed(self) -> int:
        """Seed from the OS's entropy (torch.Generator.seed); returns the seed."""
        s = secrets.randbits(64)
        self.cpu.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self.cpu.initial_seed()

    def get_state(self) -> np.ndarray:
        """torch's state bytes as a uint8 array."""
        return np.frombuffer(self.cpu.get_state(), np.uint8).copy()

    def set_state(self, state) -> Generator:
        self.cpu.set_state(np.asarray(state, np.uint8).tobytes())
        return self


default_generator = Generator()
_current: contextvars.ContextVar[Generator | None] = contextvars.ContextVar(
    "gradserve_generator", default=None
)


def current_generator_object() -> Generator:
    return _current.get() or default_generator


def session_generator() -> Generator | None:
    """The generator a server session made current (using_generator); None in-process."""
    return _current.get()


def current_generator() -> CPUGenerator:
    return current_generator_object().cpu


def manual_seed(seed: int) -> Generator:
    """Seed the current generator: the engine's default one in-process (torch.manual_seed)."""
    get_op("manual_seed").run((), {"seed": seed})
    return current_generator_object()


@contextlib.contextmanager
def using_generator(gen: Generator):
    """Make `gen` the stream random ops draw from in this context (thread or task), and its
    session's default dtype the one promotion and factories use."""
    token = _current.set(gen)
    dtype_token = session_float.set(gen.default_dtype)
    try:
        yield gen
    finally:
        session_float.reset(dtype_token)
        _current.reset(token)


@contextlib.contextmanager
def state_generator(state: np.ndarray):
    """A generator loaded from a `generator=` state array (host uint8, 5056 bytes), whose
    state is written back into the array when the op has drawn."""
    if state.dtype != np.uint8 or state.size != STATE_BYTES:
        raise RuntimeError("generator= takes a gradserve.Generator")
    gen = CPUGenerator.from_state(state.tobytes())
    yield gen
    state.reshape(-1)[...] = np.frombuffer(gen.get_state(), np.uint8)
