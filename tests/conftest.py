"""Test-wide setup: without a GPU, "cuda" devices are the seam's test double.

On a machine without a usable GPU (no cupy, or no device visible), this sets
GRADSERVE_FAKE_CUDA=2 and puts tests/fakecuda first on the path (sys.path, and PYTHONPATH for
every server process the tests start), where the package `cupy` is a numpy stand-in
(tests/fakecuda/cupy): "cuda:0" and "cuda:1" are its devices, so the engine and server suites
run on "cuda" in CI too and fail wherever code skips the seam. The product only ever imports
cupy. With a GPU and cupy (`benchmarks/gpu_check.sh`) the same tests run on the real device.
An environment that sets GRADSERVE_FAKE_CUDA itself wins (0 turns the fake off).
"""

from __future__ import annotations

import os
import pathlib
import sys

FAKE_CUDA = pathlib.Path(__file__).resolve().parent / "fakecuda"  # holds the fake `cupy`


def _real_gpus() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no cupy, no driver, no device
        return 0


def fake_cuda_devices() -> int:
    """How many fake GPUs the test double has (0: the real cupy, if any)."""
    return int(os.environ.get("GRADSERVE_FAKE_CUDA") or 0)


if "GRADSERVE_FAKE_CUDA" not in os.environ and _real_gpus() == 0:
    os.environ["GRADSERVE_FAKE_CUDA"] = "2"
if fake_cuda_devices():
    for name in [m for m in sys.modules if m == "cupy" or m.startswith("cupy.")]:
        del sys.modules[name]  # a real cupy without a device, loaded by _real_gpus
    sys.path.insert(0, str(FAKE_CUDA))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(FAKE_CUDA), os.environ.get("PYTHONPATH")) if p)
