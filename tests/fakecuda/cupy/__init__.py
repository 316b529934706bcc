"""A stand-in for cupy, for tests only: numpy arrays behind a distinct device-array type.

This is a test double for the engine's seam (`engine/core/backend.py`), not a claim about
cupy. It
exists so that CI, which has no GPU, runs the engine and the server on "cuda" devices and
fails wherever code skips the seam: touches device data with numpy, lets a host array meet a
device array, or computes on one GPU with another's data. Whether cupy has a function, or
computes it the same way, is not checked here; `benchmarks/gpu_check.sh` runs the same
suites on a real GPU for that.

It is the package `cupy` of the folder tests/fakecuda, which tests/conftest.py puts first
on the path (and on PYTHONPATH, for the servers the tests start) when no real GPU is present;
`GRADSERVE_FAKE_CUDA=n` gives it n devices, "cuda:0".."cuda:n-1". A server started with it
says so on stderr. The product never imports it: to gradserve it is cupy.

The rules, few on purpose (each is cupy's unless marked *stricter*):

1. Device arrays are their own type (`xp.ndarray`, a numpy array inside); a view's `.base`
   is the array that owns the memory. `flags` has `c_contiguous`, `f_contiguous` and
   `owndata`, no `writeable`.
2. Host and device arrays never meet. A numpy array given to an `xp` function, an operator,
   `__setitem__` or as an index raises TypeError (*stricter*: cupy converts some of these
   implicitly); numpy's own functions and ufuncs refuse device arrays (*stricter*: cupy
   dispatches some `np.*` calls to itself), and so does implicit conversion (`np.asarray(d)`).
   Only `xp.array`/`xp.asarray` (host to device) and `xp.asnumpy`/`.get()` (device to host)
   cross, and they copy.
3. An array lives on the device that was current when it was made (`xp.cuda.Device(i)` as a
   context, or `runtime.setDevice`, per thread, default 0). Computing with it while another
   device is current raises ValueError, as cupy's kernels do without peer access; `copy()`
   copies to the current device.
4. Reductions and element reads give 0-dim arrays, never numpy scalars.
5. `xp.random` is absent (*stricter*): random ops draw from the session's generator, through
   the seam.
6. `add.at` (scatter-add) takes the dtypes of CUDA's atomicAdd only: int32, uint32, uint64,
   float16, float32, float64.
7. `get_default_memory_pool()` counts the bytes of live arrays per device (`used_bytes`,
   `total_bytes` including freed blocks kept for reuse, `free_all_blocks`, `set_limit`); an
   allocation past the limit raises `cuda.memory.OutOfMemoryError`, a MemoryError.

tests/engine/test_devices.py shows each rule at work.
"""

from __future__ import annotations

import os
import sys
import threading
import types
import weakref

import numpy as _np


def _device_count() -> int:
    return int(os.environ.get("GRADSERVE_FAKE_CUDA") or 0)  # read per call: tests change it


if "pytest" not in sys.modules:  # a process the tests started (a server): say what it runs on
    sys.stderr.write(f"cupy is the numpy test double of tests/fakecuda ({_device_count()} fake "
                     "devices), not a GPU\n")


# -- devices ------------------------------------------------------------------------------------
class _Current(threading.local):
    def __init__(self) -> None:
        self.device = 0
        self.stack: list[int] = []


_current = _Current()


class _Runtime:
    class CUDARuntimeError(RuntimeError):
        pass

    @staticmethod
    def getDeviceCount() -> int:  # noqa: N802 (cupy's names)
        return _device_count()

    @staticmethod
    def getDevice() -> int:  # noqa: N802
        return _current.device

    @classmethod
    def setDevice(cls, index: int) -> None:  # noqa: N802
        if not 0 <= index < _device_count():
            raise cls.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        _current.device = index


class Device:
    """A device; as a context it is current inside the block (nested blocks restore)."""

    def __init__(self, device: int | None = None) -> None:
        self.id = _current.device if device is None else int(device)

    def __enter__(self) -> Device:
        _current.stack.append(_current.device)
        _Runtime.setDevice(self.id)
        return self

    def __exit__(self, *exc) -> None:
        _current.device = _current.stack.pop()

    def use(self) -> None:
        _Runtime.setDevice(self.id)

    def synchronize(self) -> None:
        pass  # numpy has finished by the time it returns

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


class OutOfMemoryError(MemoryError):
    pass


class MemoryPool:
    """Bytes of live arrays per device; freed bytes stay in `total_bytes` until freed."""

    def __init__(self) -> None:
        self._used: dict[int, int] = {}
        self._total: dict[int, int] = {}
        self._limit: dict[int, int] = {}
        self._lock = threading.Lock()

    def used_bytes(self) -> int:
        return self._used.get(_current.device, 0)

    def total_bytes(self) -> int:
        return self._total.get(_current.device, 0)

    def free_bytes(self) -> int:
        return self.total_bytes() - self.used_bytes()

    def free_all_blocks(self) -> None:
        with self._lock:
            self._total[_current.device] = self.used_bytes()

    def set_limit(self, size: int = 0) -> None:
        self._limit[_current.device] = int(size)

    def get_limit(self) -> int:
        return self._limit.get(_current.device, 0)

    def _malloc(self, device: int, nbytes: int) -> None:
        with self._lock:
            used = self._used.get(device, 0) + nbytes
            limit = self._limit.get(device, 0)
            if limit and used > limit:
                raise OutOfMemoryError(
                    f"Out of memory allocating {nbytes:,} bytes (allocated so far: "
                    f"{used - nbytes:,} bytes, limit set to: {limit:,} bytes)."
                )
            self._used[device] = used
            self._total[device] = max(self._total.get(device, 0), used)

    def _free(self, device: int, nbytes: int) -> None:
        with self._lock:
            self._used[device] -= nbytes


_pool = MemoryPool()


def get_default_memory_pool() -> MemoryPool:
    return _pool


cuda = types.SimpleNamespace(
    Device=Device, runtime=_Runtime,
    memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError, MemoryPool=MemoryPool),
)


# -- arrays ---------------------------------------------------------------------------------------
_owners: dict[int, weakref.ref] = {}  # id(numpy array owning memory) -> its device array


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: _np.ndarray) -> None:
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.base is None


def _forget(key: int, device: int, nbytes: int) -> None:
    _owners.pop(key, None)
    _pool._free(device, nbytes)


def _own(a: _np.ndarray) -> ndarray:
    """A new device array owning `a`'s memory, on the current device."""
    device = _current.device
    _pool._malloc(device, a.nbytes)
    d = ndarray(a, device, None)
    _owners[id(a)] = weakref.ref(d)
    weakref.finalize(d, _forget, id(a), device, a.nbytes)
    return d


def _adopt(a: _np.ndarray, known: dict) -> ndarray:
    """The device array for numpy result `a`: an input it is, a view of the device array that
    owns its memory, or a new array."""
    d = known.get(id(a))
    if d is not None:
        return d
    root = a
    while True:  # numpy's views name their owner; as_strided's go through a holder object
        base = root.base
        if not isinstance(base, _np.ndarray):
            base = getattr(base, "base", None)
        if not isinstance(base, _np.ndarray):
            break
        root = base
    ref = _owners.get(id(root))
    owner = None if ref is None else ref()
    if root is a:
        return owner if owner is not None else _own(a)
    if owner is None:  # a view of memory numpy made inside the call
        owner = _own(root)
    return ndarray(a, owner._device, owner)


def _wrap(x, known: dict):
    if isinstance(x, _np.ndarray):
        return _adopt(x, known)
    if isinstance(x, _np.generic):
        return _own(_np.asarray(x))
    if isinstance(x, (tuple, list)) and any(isinstance(v, (_np.ndarray, _np.generic)) for v in x):
        return type(x)(_wrap(v, known) for v in x)
    return x


def _unwrap(x, known: dict):
    if type(x) is ndarray:
        if x._device != _current.device:
            raise ValueError(
                f"The device where the array resides ({x._device}) is different from the "
                f"current device ({_current.device}). Peer access is unavailable between "
                "these devices."
            )
        known[id(x._a)] = x
        return x._a
    if isinstance(x, _np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v, known) for v in x)
    return x


def _call(fn, args, kwargs):
    known: dict = {}
    args = _unwrap(args, known)
    kwargs = {k: _unwrap(v, known) for k, v in kwargs.items()}
    with _np.errstate(all="ignore"):  # cupy never warns about inf or nan
        return _wrap(fn(*args, **kwargs), known)


class ndarray:  # noqa: N801 (cupy's name)
    """A device array: a numpy array that only `xp` functions and operators may touch."""

    __slots__ = ("_a", "_device", "base", "__weakref__")
    __array_ufunc__ = None  # numpy's ufuncs refuse it, and defer operators to it
    __hash__ = None

    def __init__(self, a: _np.ndarray, device: int, base: ndarray | None) -> None:
        self._a, self._device, self.base = a, device, base

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    strides = property(lambda self: self._a.strides)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a))
    device = property(lambda self: Device(self._device))

    def get(self, stream=None) -> _np.ndarray:
        return self._a.copy()

    def copy(self, order: str = "C") -> ndarray:
        return _own(self._a.copy(order))

    def __getattr__(self, name: str):  # numpy's methods and properties, on device arrays
        if name.startswith("__"):  # no __array_interface__, buffer, ...: numpy can't read it
            raise AttributeError(name)
        attr = getattr(_np.ndarray, name)
        if callable(attr):
            return lambda *args, **kwargs: _call(attr, (self, *args), kwargs)
        return _call(lambda a: getattr(a, name), (self,), {})

    def __setitem__(self, key, value) -> None:
        _call(_np.ndarray.__setitem__, (self, key, value), {})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return repr(self._a)


def _operator(name: str, inplace: bool):
    fn = getattr(_np.ndarray, name)

    def method(self, *args):
        out = _call(fn, (self, *args), {})
        return self if inplace else out

    method.__name__ = name
    return method


for _name in ("__getitem__", "__len__", "__bool__", "__float__", "__int__", "__index__",
              "__complex__", "__neg__", "__pos__", "__abs__", "__invert__", "__add__", "__sub__",
              "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__", "__matmul__",
              "__and__", "__or__", "__xor__", "__lshift__", "__rshift__", "__radd__", "__rsub__",
              "__rmul__", "__rtruediv__", "__rfloordiv__", "__rmod__", "__rpow__", "__rmatmul__",
              "__rand__", "__ror__", "__rxor__", "__eq__", "__ne__", "__lt__", "__le__",
              "__gt__", "__ge__"):
    setattr(ndarray, _name, _operator(_name, inplace=False))
for _name in ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__",
              "__ipow__", "__iand__", "__ior__", "__ixor__"):
    setattr(ndarray, _name, _operator(_name, inplace=True))
del _name


# -- the module's functions ------------------------------------------------------------------------
def asarray(a, dtype=None, order=None) -> ndarray:
    """Host data to the current device (a copy); a device array as it is, or cast."""
    if type(a) is ndarray:
        return a if dtype is None or _np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _own(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0) -> ndarray:
    if type(a) is ndarray:
        out = a.copy() if copy else a
        return out if dtype is None else out.astype(dtype, copy=False)
    return _own(_np.array(a, dtype=dtype, order=order, ndmin=ndmin, copy=True))


asanyarray = asarray


def asnumpy(a, stream=None) -> _np.ndarray:
    """A host copy of a device array (host data as it is)."""
    return a._a.copy() if type(a) is ndarray else _np.asarray(a)


class _Function:
    __slots__ = ("_fn",)

    def __init__(self, fn) -> None:
        self._fn = fn

    def __call__(self, *args, **kwargs):
        return _call(self._fn, args, kwargs)

    def __getattr__(self, name: str):  # a ufunc's reduce, at, outer, accumulate, ...
        attr = getattr(self._fn, name)
        if self._fn is _np.add and name == "at":
            return _scatter_add
        return _Function(attr) if callable(attr) else attr


_ATOMIC = {_np.dtype(t) for t in ("int32", "uint32", "uint64", "float16", "float32", "float64")}


def _scatter_add(a, indices, b=None) -> None:
    if a.dtype not in _ATOMIC:  # CUDA's atomicAdd, which cupy's scatter-add uses, has no other
        raise TypeError("scatter_add only supports int32, float16, float32, float64, uint32, "
                        "uint64, as data type")
    _call(_np.add.at, (a, indices, b), {})


class _Namespace(types.ModuleType):
    """numpy's names (or a submodule's), each function taking and giving device arrays."""

    def __init__(self, module) -> None:
        super().__init__(module.__name__.replace("numpy", "fakecupy"))
        self._module = module

    def __getattr__(self, name: str):
        if name == "random":
            raise AttributeError("the fake cupy has no random module: random ops draw "
                                 "from the session's generator (engine/core/random.py, "
                                 "through the seam)")
        value = getattr(self._module, name)
        if name == "ndarray":
            value = ndarray
        elif isinstance(value, types.ModuleType):
            value = _Namespace(value)
        elif callable(value) and not isinstance(value, type):
            value = _Function(value)
        setattr(self, name, value)
        return value


_numpy_names = _Namespace(_np)
__getattr__ = _numpy_names.__getattr__  # `xp.zeros`, `xp.add.at`, `xp.lib.stride_tricks`, ...
