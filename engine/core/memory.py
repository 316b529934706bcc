"""Keeping freed array memory in-process, so a training step does not fault its pages back in.

glibc's malloc hands a large freed block back to the kernel (an mmap'd block at once, the top
of the heap once more than 128 KiB is free) and the next array of that size faults its pages
in again, one minor fault per 4 KiB. A training step frees and remakes the same arrays every
step: the medium MLP step paid ~750 faults in-process, a third of its time on a VM. Raising
malloc's mmap and trim thresholds keeps freed blocks for the next array, the warm figure
`gradserve serve` gets from the same settings, without users tuning malloc.

The settings are process-wide, so they are modest (arrays up to 32 MiB come from the heap;
up to 256 MiB of freed heap is kept) and only applied when nobody chose otherwise: the
environment's MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ win, GRADSERVE_KEEP_FREED_MEMORY=0
turns this off, and on a libc other than glibc nothing happens.
"""

from __future__ import annotations

import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's own upper bound for its dynamic threshold
TRIM_THRESHOLD = 256 << 20
_ENV_OFF = "GRADSERVE_KEEP_FREED_MEMORY"
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the thresholds once per process; whether they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(_ENV_OFF, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes  # only to reach glibc, once per process

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    # mallopt returns 1 on success; a glibc that refuses one value keeps its defaults
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
