"""Test-wide setup: without a GPU, "cuda" devices are the seam's test double.

On a machine without a usable GPU (no cupy, or no device visible), this sets
GRADSERVE_FAKE_CUDA=2 before any test runs, so "cuda:0" and "cuda:1" are the numpy stand-in
of `gradserve/engine/_fakecupy.py` for every test and for every server process the tests
start: the engine and server suites then run on "cuda" in CI too, and fail wherever code
skips the seam. With a GPU and cupy (`benchmarks/gpu_check.sh`) the same tests run on the real
device. An environment that sets GRADSERVE_FAKE_CUDA itself wins (0 turns the fake off).
"""

from __future__ import annotations

import os


def _real_gpus() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no cupy, no driver, no device
        return 0


if "GRADSERVE_FAKE_CUDA" not in os.environ and _real_gpus() == 0:
    os.environ["GRADSERVE_FAKE_CUDA"] = "2"
