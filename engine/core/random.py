"""Random streams. Each server session owns a Generator; the engine has a default one.

The server makes a session's generator current while it runs that session's ops, so
sessions never share a stream. Draws are made on the host (numpy's PCG64) and moved to the
device, which keeps a seeded stream identical on CPU and GPU.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from .registry import get_op


class Generator:
    """A seedable random stream (torch.Generator's role)."""

    __slots__ = ("rng",)

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def manual_seed(self, seed: int) -> Generator:
        self.rng = np.random.Generator(np.random.PCG64(int(seed)))
        return self


default_generator = Generator()
_current: contextvars.ContextVar[Generator | None] = contextvars.ContextVar(
    "gradserve_generator", default=None
)


def current_generator_object() -> Generator:
    return _current.get() or default_generator


def current_generator() -> np.random.Generator:
    return current_generator_object().rng


def manual_seed(seed: int) -> Generator:
    """Seed the current generator: the engine's default one in-process (torch.manual_seed)."""
    get_op("manual_seed").run((), {"seed": seed})
    return current_generator_object()


@contextlib.contextmanager
def using_generator(gen: Generator):
    """Make `gen` the stream random ops draw from in this context (thread or task)."""
    token = _current.set(gen)
    try:
        yield gen
    finally:
        _current.reset(token)
