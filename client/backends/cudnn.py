"""gradserve.backends.cudnn: torch's cudnn switches, accepted and kept (gradserve does not
call cuDNN, so they change nothing)."""

from __future__ import annotations

import contextlib
import sys

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    """False: gradserve's GPU kernels are cupy's, not cuDNN's."""
    return False


def version() -> None:
    return None


@contextlib.contextmanager
def flags(enabled=False, benchmark=False, deterministic=False, allow_tf32=True):
    """Set the switches for a `with` block, restoring them after (torch's)."""
    module = sys.modules[__name__]
    names = ("enabled", "benchmark", "deterministic", "allow_tf32")
    before = {name: getattr(module, name) for name in names}
    for name, value in zip(names, (enabled, benchmark, deterministic, allow_tf32), strict=True):
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(module, name, value)
