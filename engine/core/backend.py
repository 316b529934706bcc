"""The one seam between ops and array libraries: numpy on "cpu", cupy on "cuda:n".

Ops receive the array module `xp` from the dispatcher and never ask which device they run
on. What differs between the libraries is written here, once:

- where work runs: `Backend.enter()`/`exit()` (and `activate()`) make a GPU current for an
  op, its result and anything else that touches its arrays;
- crossing between host and device: `to_host`, `from_host`, `to_device` (the `to` op);
- random draws: `draws(gen)` runs torch's kernels on the session's generator with their
  results on the device, so a seeded stream is the same on CPU and GPU (drawn on the host,
  then copied);
- scatter-add (`scatter_add`), whose CUDA atomics exist for a few dtypes only;
- what numpy arrays have and device arrays lack (`writable`);
- memory: `memory()` reads the device's memory pool.

cupy is imported only when a CUDA device is first used, so CPU-only installs never need it.
(The test suite puts a numpy stand-in named `cupy` first on the path when the machine has no
GPU: tests/fakecuda/cupy; this module does not know.)

    >>> be = backend("cpu")
    >>> be.xp.__name__, be.to_host(be.from_host(np.arange(3)))
    ('numpy', array([0, 1, 2]))
"""

from __future__ import annotations

import functools
import re

import numpy as np

from . import torch_dists
from .errors import DeviceUnavailableError, InvalidArgumentError

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def canonical_device(device) -> str:
    """"cpu" -> "cpu", "cuda" -> "cuda:0", "cuda:1" -> "cuda:1"; anything else is an error.

    >>> canonical_device("cuda")
    'cuda:0'
    """
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


def cuda_module():
    """cupy; raises DeviceUnavailableError without it."""
    try:
        import cupy  # optional dependency (the cuda12/cuda13 extras): GPUs only
    except ImportError as e:
        raise DeviceUnavailableError(
            "CUDA devices need cupy, which is not installed (pip install 'gradserve[cuda12]' "
            "or 'gradserve[cuda13]', matching the machine's CUDA)"
        ) from e
    return cupy


def cuda_device_count() -> int:
    """GPUs visible to cupy here (0 without cupy or a driver).

    >>> cuda_device_count() >= 0
    True
    """
    try:
        return int(cuda_module().cuda.runtime.getDeviceCount())
    except Exception:
        return 0


# -- backends --------------------------------------------------------------------------------
class Backend:
    """numpy on the host. `enter()`/`exit(token)` bracket the work of one op: on the host they
    silence numpy's floating-point warnings (inf and nan are values, not events: torch never
    warns about them), on a GPU they also make it the current device."""

    def __init__(self) -> None:
        # plain instance attributes: the dispatcher reads them on every op
        self.device, self.xp = "cpu", np
        self.enter, self.exit = _quiet_enter, _quiet_exit

    def activate(self):
        """`enter()`/`exit()` as a context manager, for work outside the dispatcher."""
        return _Scope(self)

    def to_host(self, array) -> np.ndarray:
        """A numpy array with `array`'s values (itself on the host)."""
        return array

    def from_host(self, array: np.ndarray):
        """`array` on this device (itself on the host)."""
        return array

    def draws(self, gen) -> Draws:
        """torch's kernels on the generator `gen` (a CPUGenerator), drawing onto this
        device."""
        return Draws(gen, self)

    def synchronize(self) -> None:
        """Wait for the device's queued work (nothing to wait for on the host)."""

    def memory(self) -> tuple[int, int] | None:
        """(bytes in use by arrays, bytes held by the memory pool) of a GPU; None here."""
        return None


class CudaBackend(Backend):
    """cupy (or the fake) on GPU `index`."""

    def __init__(self, device: str, module) -> None:
        self.device, self.xp = device, module
        self.index = int(device.split(":")[1])
        self._runtime = module.cuda.runtime
        count = self._runtime.getDeviceCount()
        if self.index >= count:
            raise DeviceUnavailableError(
                f"CUDA error: invalid device ordinal: {device} asked for, {count} GPU(s) "
                "visible here"
            )
        self.enter, self.exit = self._enter, self._exit

    # The current device is per thread. Reading and setting it directly, rather than through
    # a shared `cupy.cuda.Device` object, keeps threads from sharing its context stack.
    def _enter(self) -> int:
        previous = self._runtime.getDevice()
        if previous != self.index:
            self._runtime.setDevice(self.index)
        return previous

    def _exit(self, previous: int) -> None:
        if previous != self.index:
            self._runtime.setDevice(previous)

    def to_host(self, array) -> np.ndarray:
        return self.xp.asnumpy(array)

    def from_host(self, array: np.ndarray):
        with self.activate():
            return self.xp.asarray(array)

    def synchronize(self) -> None:
        self.xp.cuda.Device(self.index).synchronize()

    def memory(self) -> tuple[int, int]:
        with self.activate():  # cupy's pool answers for the current device
            pool = self.xp.get_default_memory_pool()
            return int(pool.used_bytes()), int(pool.total_bytes())


@functools.cache
def _cuda_backend(device: str) -> CudaBackend:
    return CudaBackend(device, cuda_module())


def backend(device: str) -> Backend:
    """The backend of a canonical device name ("cpu", "cuda:1"); DeviceUnavailableError when
    cupy or the GPU is missing."""
    return _CPU if device == "cpu" else _cuda_backend(device)


class _Scope:
    __slots__ = ("_be", "_token")

    def __init__(self, be: Backend) -> None:
        self._be = be

    def __enter__(self):
        self._token = self._be.enter()
        return self._be

    def __exit__(self, *exc) -> None:
        self._be.exit(self._token)


def _quiet_scope():
    """(enter, exit) for numpy's "ignore all floating-point errors" state.

    `np.errstate` costs about 1 us per op, most of it rebuilding the same state object; setting
    numpy's context variable to a prebuilt ignore-all state is the same scope for a tenth of
    that. numpy's internals may move, so fall back to errstate when they are not there.
    """
    try:
        # numpy internals that may be absent (the fallback below): import when tried
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
    # a partial of the C method: entering costs no Python frame (it runs on every op)
    return functools.partial(var.set, ignore_all), var.reset


_quiet_enter, _quiet_exit = _quiet_scope()
_CPU = Backend()


# -- what differs between the array libraries ------------------------------------------------
class Draws:
    """torch's CPU random kernels (core/torch_dists.py) on a generator, with their results
    on a backend's device.

    Draws are made on the host and copied, so a seeded session draws the same numbers on CPU
    and GPU (at the cost of the copy). `d(kernel, shape, *args)` runs kernel `kernel` for
    `prod(shape)` elements and gives them in `shape`; `d.host(a)` is an operand on the host.

        >>> from gradserve.engine.core.mt19937 import CPUGenerator
        >>> d = backend("cpu").draws(CPUGenerator(0))
        >>> d("uniform", (2,), np.float16).dtype
        dtype('float16')
    """

    __slots__ = ("gen", "_be")

    def __init__(self, gen, be: Backend) -> None:
        self.gen, self._be = gen, be

    def __call__(self, kernel: str, shape, *args, **kwargs):
        shape = tuple(shape)
        n = int(np.prod(shape, dtype=np.int64))
        out = getattr(torch_dists, kernel)(self.gen, n, *args, **kwargs)
        return self._be.from_host(np.asarray(out).reshape(shape))

    def host(self, array) -> np.ndarray:
        return self._be.to_host(array)

    def to_device(self, array: np.ndarray):
        return self._be.from_host(array)


# CUDA's atomicAdd, which cupy's scatter-add uses, exists for these dtypes only.
_ATOMIC = {np.dtype(t) for t in (np.int32, np.uint32, np.uint64, np.float16, np.float32,
                                 np.float64)}


def scatter_add(xp, target, key, values) -> None:
    """`target[key] += values` where repeated indices add up (numpy's `add.at`).

    On a GPU, int64 adds as uint64 (the same bits and the same wrap-around in two's
    complement), and narrower integers and bool add in int32, then are cast back (bool: any
    addition makes True, as numpy's).

        >>> t = np.zeros(3, np.int64)
        >>> scatter_add(np, t, (np.array([0, 0, 2]),), np.array([1, 2, 3]))
        >>> t
        array([3, 0, 3])
    """
    if xp is np or target.dtype in _ATOMIC:
        xp.add.at(target, key, values)
        return
    values = xp.asarray(values, dtype=target.dtype)
    if target.dtype == np.int64:
        xp.add.at(target.view(np.uint64), key, values.view(np.uint64))
        return
    total = xp.zeros(target.shape, np.int32)
    xp.add.at(total, key, values.astype(np.int32))
    if target.dtype == np.bool_:
        target |= total != 0
    else:
        target += total.astype(target.dtype)


def to_device(xp, array, device: str):
    """`array`, an `xp` array on the op's device (the current one), as an array on `device`:
    itself when it is already there, else a copy (GPU to GPU directly: cupy's `copy()` copies
    to the device current at the time)."""
    if xp is np:
        return array if device == "cpu" else backend(device).from_host(array)
    if device == "cpu":
        return xp.asnumpy(array)
    dst = backend(device)
    if xp.cuda.runtime.getDevice() == dst.index:
        return array
    with dst.activate():
        return array.copy()


def writable(array) -> bool:
    """False for a read-only numpy array (from_numpy of a read-only buffer); device arrays
    have no read-only state."""
    return array.flags.writeable if isinstance(array, np.ndarray) else True

