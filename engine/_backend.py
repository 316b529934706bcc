"""The one seam between ops and array libraries: numpy on "cpu", cupy on "cuda:n".

Ops receive the array module `xp` from the dispatcher and never ask which device they run on.
cupy is imported only when a CUDA device is first used, so CPU-only installs never need it.
"""

from __future__ import annotations

import contextlib
import functools
import re

import numpy as np

from ._errors import InvalidArgumentError

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def canonical_device(device) -> str:
    """"cpu" -> "cpu", "cuda" -> "cuda:0", "cuda:1" -> "cuda:1"; anything else is an error."""
    if device is None:
        return "cpu"
    text = str(device).strip()
    m = _DEVICE_RE.match(text)
    if m is None:
        if re.match(r"^(cpu|cuda)\b", text):
            raise InvalidArgumentError(f"Invalid device string: '{text}'")
        raise InvalidArgumentError(
            f"Expected one of cpu, cuda device type at start of device string: {text}"
        )
    kind, index = m.groups()
    if kind == "cpu":
        return "cpu"
    return f"cuda:{int(index or 0)}"


class Backend:
    """An array module plus the context that makes its device current."""

    __slots__ = ("device", "xp", "_index")

    def __init__(self, device: str) -> None:
        self.device = device
        if device == "cpu":
            self.xp = np
            self._index = None
        else:
            try:
                import cupy
            except ImportError as e:  # pragma: no cover - depends on the machine
                raise InvalidArgumentError(
                    f"device {device} needs cupy, which is not installed "
                    "(pip install 'gradserve[gpu]')"
                ) from e
            self._index = int(device.split(":")[1])
            count = cupy.cuda.runtime.getDeviceCount()
            if self._index >= count:
                raise InvalidArgumentError(
                    f"CUDA error: invalid device ordinal {self._index} "
                    f"({count} device(s) visible)"
                )
            self.xp = cupy

    def run(self, forward, args, kwargs):
        """Call an op's forward on this device.

        inf and nan are values, not events: torch never warns about them, so numpy mustn't.
        """
        token = _quiet_enter()
        try:
            if self._index is None:
                return forward(np, *args, **kwargs)
            with self.xp.cuda.Device(self._index):
                return forward(self.xp, *args, **kwargs)
        finally:
            _quiet_exit(token)

    def activate(self):
        if self._index is None:
            return contextlib.nullcontext()
        return self.xp.cuda.Device(self._index)

    def to_host(self, array) -> np.ndarray:
        return array if self._index is None else self.xp.asnumpy(array)

    def from_host(self, array: np.ndarray):
        if self._index is None:
            return array
        with self.activate():
            return self.xp.asarray(array)


def _quiet_scope():
    """(enter, exit) for numpy's "ignore all floating-point errors" state.

    `np.errstate` costs about 1 us per op, most of it rebuilding the same state object; setting
    numpy's context variable to a prebuilt ignore-all state is the same scope for a tenth of
    that. numpy's internals may move, so fall back to errstate when they are not there.
    """
    try:
        from numpy._core import _ufunc_config

        var = _ufunc_config._extobj_contextvar
        with np.errstate(all="ignore"):
            ignore_all = var.get()
    except (ImportError, AttributeError):  # pragma: no cover - other numpy versions
        def enter():
            scope = np.errstate(all="ignore")
            scope.__enter__()
            return scope

        return enter, lambda scope: scope.__exit__(None, None, None)
    return (lambda: var.set(ignore_all)), var.reset


_quiet_enter, _quiet_exit = _quiet_scope()


@functools.cache
def backend(device: str) -> Backend:
    return Backend(device)


def cuda_device_count() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0
