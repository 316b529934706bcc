"""gradserve.cuda: what torch programs ask torch.cuda, answered for where tensors go.

With a session current the answers are about its server (`is_available()` when it has a
GPU); with none, about the GPUs cupy sees in this process.

    >>> gs.cuda.is_available() in (True, False)
    True
"""

from __future__ import annotations

from ._current import current_session
from ._surface import _device_count, _is_available


def is_available() -> bool:
    """Whether a GPU is there: the current session's server has one (or cupy sees one)."""
    return _is_available()


def device_count() -> int:
    """The GPUs of the current session's server; with none current, those cupy sees."""
    return _device_count()


def manual_seed(seed: int) -> None:
    """Seed the GPU's generator: the current session's when it is on a GPU (torch seeds its
    CUDA generators only; a CPU session's and the process's are left alone)."""
    session = current_session()
    if session is not None and str(session.device).startswith("cuda"):
        session.manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """`manual_seed` for every GPU (a session has one)."""
    manual_seed(seed)


def synchronize(device=None) -> None:
    """Wait until the current session's server has run everything sent so far."""
    session = current_session()
    if session is not None:
        session.synchronize()


def empty_cache() -> None:
    """Accepted; gradserve releases a session's memory as its tensors are freed."""


__all__ = ["device_count", "empty_cache", "is_available", "manual_seed", "manual_seed_all",
           "synchronize"]
