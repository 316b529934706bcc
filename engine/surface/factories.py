"""torch's tensor factories, written once for every place that makes tensors.

`FactoryAPI` is the surface (`tensor`, `zeros`, `randint`, `linspace`, `*_like`, ...) with
torch's arguments plus `requires_grad=` on every factory and `device=`; it rests on three
primitives a subclass provides: `_make` (run a factory op), `_leaf` (a new leaf from a host
array) and `_default_device`. The in-process engine (`EngineFactories` in tensor.py, whose methods
are `engine.zeros` etc.), a remote `Session` and the `gradserve.*` factories (which pick the
current session) all share it, so the same call means the same thing on each.

    >>> from gradserve import engine
    >>> engine.zeros(2, 3, dtype=engine.float64).shape
    gradserve.Size([2, 3])
    >>> engine.linspace(0, 1, 5)
    tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
"""

from __future__ import annotations

import numbers
import secrets

import numpy as np

from ..core import dtype as _dtype
from ..core.backend import canonical_device
from ..core.dtype import as_dtype, from_numpy_dtype, int64, scalar_dtype
from ..core.errors import AutogradError, InvalidArgumentError
from ..core.grad_mode import no_grad
from ..core.layout import preserved
from ..core.meta import AutogradMeta
from ..core.registry import get_op
from ..core.shape import parse_size
from ..core.warn import warn_user

_COPY_WARNING = (
    "To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone() "
    "or sourceTensor.detach().clone().requires_grad_(True), rather than "
    "torch.tensor(sourceTensor)."
)


def _sizes(name: str, size: tuple, kw: dict) -> tuple[int, ...]:
    """torch's `zeros(2, 3)`, `zeros((2, 3))` and `zeros(size=(2, 3))`."""
    extra = set(kw) - {"size"}
    if extra:
        raise TypeError(f"{name}() got an unexpected keyword argument '{sorted(extra)[0]}'")
    if "size" in kw:
        if size:
            raise TypeError(f"{name}() got multiple values for argument 'size'")
        size = (kw["size"],)
    return parse_size(size)


def _float(dtype):
    # read at call time: set_default_dtype changes it
    return as_dtype(dtype) if dtype is not None else _dtype.default_float_dtype()


def _name(dtype):
    return None if dtype is None else as_dtype(dtype).name


def check_requires_grad(dtype, requires_grad: bool) -> None:
    if requires_grad and not as_dtype(dtype).is_floating_point:
        raise AutogradError(
            "Only Tensors of floating point and complex dtype can require gradients"
        )


# set by set_default_device (surface/defaults.py): where factories put tensors when no
# device= is given; None: each maker's own (the engine's cpu, a session's device)
default_device: list = [None]


class FactoryAPI:
    """torch's factories over `_make`, `_leaf` and `_default_device` (see the module doc)."""

    # Whether `_leaf` keeps the array it is given (the engine's tensors hold it), so that
    # `tensor(data)` must copy; a maker that only sends the bytes on reads them in place.
    _leaf_keeps_array = True

    def _make(self, name: str, requires_grad: bool, attrs: dict, inputs: tuple = ()):
        raise NotImplementedError

    def _leaf(self, arr: np.ndarray, device: str, requires_grad: bool):
        raise NotImplementedError

    def _default_device(self) -> str:
        raise NotImplementedError

    def _place(self, device) -> str:
        if device is None:
            device = default_device[0]  # set_default_device's, else this maker's own
            if device is None:
                return self._default_device()
        return canonical_device(device)

    def _factory(self, name: str, requires_grad: bool, device, generator=None, **attrs):
        attrs["device"] = self._place(device)
        if requires_grad:
            check_requires_grad(self._make_dtype(name, attrs), requires_grad)
        if generator is None:
            return self._make(name, bool(requires_grad), attrs)
        # random.py builds on this module (host_values): imported when a generator is given
        from .random import _with

        inputs, attrs = _with(generator, self, (), attrs)
        return self._make(name, bool(requires_grad), attrs, inputs)

    @staticmethod
    def _make_dtype(name: str, attrs: dict):
        return get_op(name).infer(**attrs).dtype

    # -- from data -----------------------------------------------------------------------------
    def tensor(self, data, dtype=None, device=None, requires_grad: bool = False):
        """A new leaf holding a copy of `data` (numbers, nested lists, numpy arrays, tensors).

        >>> engine.tensor([[1., 2.], [3., 4.]], requires_grad=True).shape
        gradserve.Size([2, 2])
        """
        if isinstance(data, AutogradMeta):
            warn_user(_COPY_WARNING)
            if data._home() is self:
                with no_grad():
                    out = data.detach().clone().to(dtype=dtype, device=self._place(
                        device if device is not None else data.device))
                return out.requires_grad_(True) if requires_grad else out
            data = host_values(data)
        arr = host_array(data, dtype, copy=self._leaf_keeps_array)
        check_requires_grad(from_numpy_dtype(arr.dtype), requires_grad)
        return self._leaf(arr, self._place(device), bool(requires_grad))

    def as_tensor(self, data, dtype=None, device=None):
        """`data` as a tensor: a tensor of this kind passes through (cast if asked), anything
        else is copied as `tensor()` does.

        >>> t = engine.ones(2)
        >>> engine.as_tensor(t) is t
        True
        """
        if isinstance(data, AutogradMeta) and data._home() is self:
            return data.to(dtype=dtype, device=device)
        return self.tensor(data, dtype=dtype, device=device)

    def from_numpy(self, array, requires_grad: bool = False):
        """A leaf with the values and dtype of a numpy array (in-process it shares the array's
        memory, as torch.from_numpy; a session copies it to the server).

        >>> engine.from_numpy(np.arange(3, dtype=np.int32))
        tensor([0, 1, 2], dtype=gradserve.int32)
        """
        if not isinstance(array, np.ndarray):
            raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
        dtype = from_numpy_dtype(array.dtype)
        if not array.dtype.isnative:
            raise ValueError("given numpy array has byte order different from the native byte "
                             "order. Conversion between byte orders is currently not supported.")
        check_requires_grad(dtype, requires_grad)
        return self._shared_leaf(array, bool(requires_grad))

    def _shared_leaf(self, array: np.ndarray, requires_grad: bool):
        return self._leaf(array, self._default_device(), requires_grad)

    # -- filled ----------------------------------------------------------------------------
    def zeros(self, *size, dtype=None, device=None, requires_grad: bool = False, **kw):
        """A tensor of zeros (float32 unless `dtype`).

        >>> engine.zeros(2, 3).shape
        gradserve.Size([2, 3])
        """
        return self._factory("zeros", requires_grad, device, shape=_sizes("zeros", size, kw),
                             dtype=_float(dtype).name)

    def ones(self, *size, dtype=None, device=None, requires_grad: bool = False, **kw):
        """A tensor of ones.

        >>> engine.ones(3, dtype=engine.int32)
        tensor([1, 1, 1], dtype=gradserve.int32)
        """
        return self._factory("ones", requires_grad, device, shape=_sizes("ones", size, kw),
                             dtype=_float(dtype).name)

    def empty(self, *size, dtype=None, device=None, requires_grad: bool = False, **kw):
        """An uninitialised tensor (zeros here).

        >>> engine.empty(4).shape
        gradserve.Size([4])
        """
        return self._factory("empty", requires_grad, device, shape=_sizes("empty", size, kw),
                             dtype=_float(dtype).name)

    def full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False):
        """A tensor filled with `fill_value`; its dtype follows the value (as torch).

        >>> engine.full((2,), 7).dtype
        gradserve.int64
        """
        if dtype is None:  # resolved here, so a session's server makes what we expect
            dtype = scalar_dtype(fill_value)
        return self._factory("full", requires_grad, device, shape=parse_size((size,)),
                             value=fill_value, dtype=_name(dtype))

    # -- random ----------------------------------------------------------------------------
    def randn(self, *size, generator=None, dtype=None, device=None,
              requires_grad: bool = False, **kw):
        """Standard normal samples from the current generator.

        >>> engine.randn(2, 2).shape
        gradserve.Size([2, 2])
        """
        return self._factory("randn", requires_grad, device, generator,
                             shape=_sizes("randn", size, kw),
                             dtype=_float(dtype).name)

    def rand(self, *size, generator=None, dtype=None, device=None,
              requires_grad: bool = False, **kw):
        """Uniform samples in [0, 1).

        >>> engine.rand(3).shape
        gradserve.Size([3])
        """
        return self._factory("rand", requires_grad, device, generator,
                             shape=_sizes("rand", size, kw),
                             dtype=_float(dtype).name)

    def randint(self, *args, size=None, generator=None, dtype=None, device=None,
                requires_grad: bool = False):
        """Integers drawn uniformly from [low, high): `randint(high, size)` or
        `randint(low, high, size)`, int64 unless `dtype`.

        >>> engine.randint(3, 10, (4,)).dtype
        gradserve.int64
        """
        if size is not None:
            args = (*args, size)
        if len(args) == 2:
            args = (0, *args)
        if len(args) != 3:
            raise TypeError("randint() takes (high, size) or (low, high, size)")
        low, high, shape = args
        return self._factory("randint", requires_grad, device, generator, low=int(low),
                             high=int(high),
                             shape=parse_size((shape,)), dtype=(_name(dtype) or "int64"))

    def randperm(self, n: int, *, generator=None, dtype=None, device=None,
                 requires_grad: bool = False):
        """A random permutation of 0 .. n-1 (int64 unless `dtype`).

        >>> sorted(engine.randperm(4).tolist())
        [0, 1, 2, 3]
        """
        return self._factory("randperm", requires_grad, device, generator, n=int(n),
                             dtype=_name(dtype) or "int64")

    # -- the generator's state ---------------------------------------------------------------
    def get_rng_state(self):
        """The current generator's state: torch's 5056 bytes, a uint8 tensor (a remote
        session's comes from its server; `torch.set_rng_state` accepts it too).

        >>> engine.get_rng_state().shape
        gradserve.Size([5056])
        """
        return self._make("rng_state", False, {"device": "cpu"})

    def set_rng_state(self, new_state) -> None:
        """Load a `get_rng_state()` state (gradserve's or torch's bytes) into the current
        generator.

        >>> s0 = engine.get_rng_state(); a = engine.rand(2).tolist()
        >>> engine.set_rng_state(s0); engine.rand(2).tolist() == a
        True
        """
        if not (hasattr(new_state, "_home") and new_state._home() is self):
            new_state = self.tensor(np.asarray(host_values(new_state) if hasattr(
                new_state, "_home") else new_state, np.uint8).reshape(-1), device="cpu")
        self._set_rng_state(new_state)

    def _set_rng_state(self, state) -> None:
        raise NotImplementedError

    def seed(self) -> int:
        """Seed the current generator from the OS's entropy; returns the seed (torch.seed)."""
        s = secrets.randbits(63)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the current generator was last seeded with (one wait on a session)."""
        return int.from_bytes(np.asarray(host_values(self.get_rng_state()),
                                         np.uint8)[:8].tobytes(), "little")

    # -- ranges ----------------------------------------------------------------------------
    def arange(self, start, end=None, step=1, dtype=None, device=None,
               requires_grad: bool = False):
        """Evenly spaced values in [start, end), int64 when all bounds are ints.

        >>> engine.arange(5).tolist()
        [0, 1, 2, 3, 4]
        """
        if end is None:
            start, end = 0, start
        if dtype is None and not all(isinstance(v, numbers.Integral) for v in (start, end, step)):
            dtype = _dtype.default_float_dtype()
        return self._factory("arange", requires_grad, device, start=start, end=end, step=step,
                             dtype=_name(dtype))

    def linspace(self, start, end, steps: int, dtype=None, device=None,
                 requires_grad: bool = False):
        """`steps` evenly spaced values from start to end, both included.

        >>> engine.linspace(-1, 1, 3).tolist()
        [-1.0, 0.0, 1.0]
        """
        return self._factory("linspace", requires_grad, device, start=float(start),
                             end=float(end), steps=int(steps), dtype=_float(dtype).name)

    def eye(self, n: int, m: int | None = None, dtype=None, device=None,
            requires_grad: bool = False):
        """The identity matrix.

        >>> engine.eye(2).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        """
        return self._factory("eye", requires_grad, device, n=int(n),
                             m=None if m is None else int(m), dtype=_float(dtype).name)

    # -- like another tensor -------------------------------------------------------------------
    def _like(self, name: str, t, dtype, device, requires_grad, *args):
        strides = preserved(tuple(t.shape), t._strides)
        dtype = t.dtype if dtype is None else dtype
        device = t.device if device is None else device
        if strides is None:
            return getattr(self, name)(*args, dtype=dtype, device=device,
                                       requires_grad=requires_grad)
        # torch's preserve_format: laid out as t is (t.t(): column-major), by the factory op
        attrs = {"shape": tuple(t.shape), "dtype": as_dtype(dtype).name, "strides": strides}
        if name == "full":
            attrs["value"] = args[1]
        return self._factory(name, requires_grad, device, **attrs)

    def _filled_like(self, t, dtype, device, requires_grad, fill):
        """torch's `empty_like(t).fill_()`: drawn into t's layout, in its memory order."""
        with no_grad():
            out = fill(self.empty_like(t, dtype=dtype, device=device))
        return out.requires_grad_(True) if requires_grad else out

    def zeros_like(self, input, dtype=None, device=None, requires_grad: bool = False):
        """Zeros with `input`'s shape, dtype and device.

        >>> engine.zeros_like(engine.ones(2, 3)).shape
        gradserve.Size([2, 3])
        """
        return self._like("zeros", input, dtype, device, requires_grad, input.shape)

    def ones_like(self, input, dtype=None, device=None, requires_grad: bool = False):
        """Ones with `input`'s shape, dtype and device.

        >>> engine.ones_like(engine.zeros(2), dtype=engine.int64).tolist()
        [1, 1]
        """
        return self._like("ones", input, dtype, device, requires_grad, input.shape)

    def empty_like(self, input, dtype=None, device=None, requires_grad: bool = False):
        """An uninitialised tensor like `input`.

        >>> engine.empty_like(engine.ones(4)).shape
        gradserve.Size([4])
        """
        return self._like("empty", input, dtype, device, requires_grad, input.shape)

    def full_like(self, input, fill_value, dtype=None, device=None,
                  requires_grad: bool = False):
        """`fill_value` with `input`'s shape, dtype and device.

        >>> engine.full_like(engine.ones(2), 0.5).tolist()
        [0.5, 0.5]
        """
        return self._like("full", input, dtype, device, requires_grad, input.shape,
                          fill_value)

    def randn_like(self, input, dtype=None, device=None, requires_grad: bool = False):
        """Normal samples with `input`'s shape, dtype and device.

        >>> engine.randn_like(engine.ones(2, 3)).shape
        gradserve.Size([2, 3])
        """
        if preserved(tuple(input.shape), input._strides) is not None:
            return self._filled_like(input, dtype, device, requires_grad, lambda t: t.normal_())
        return self._like("randn", input, dtype, device, requires_grad, input.shape)

    def rand_like(self, input, dtype=None, device=None, requires_grad: bool = False):
        """Uniform samples with `input`'s shape, dtype and device.

        >>> engine.rand_like(engine.ones(4)).shape
        gradserve.Size([4])
        """
        if preserved(tuple(input.shape), input._strides) is not None:
            return self._filled_like(input, dtype, device, requires_grad, lambda t: t.uniform_())
        return self._like("rand", input, dtype, device, requires_grad, input.shape)

    def randint_like(self, input, low=0, high=None, dtype=None, device=None,
                     requires_grad: bool = False):
        """Integers in [low, high) with `input`'s shape: `randint_like(t, high)` or
        `randint_like(t, low, high)`.

        >>> engine.randint_like(engine.ones(3), 5).shape
        gradserve.Size([3])
        """
        if high is None:
            low, high = 0, low
        if preserved(tuple(input.shape), input._strides) is not None:
            return self._filled_like(input, dtype, device, requires_grad,
                                     lambda t: t.random_(low, high))
        return self.randint(low, high, input.shape,
                            dtype=input.dtype if dtype is None else dtype,
                            device=input.device if device is None else device,
                            requires_grad=requires_grad)


def host_values(t) -> np.ndarray:
    """A host copy of any tensor's values (a remote one is fetched)."""
    host = getattr(t, "_host", None)
    return host() if host is not None else np.asarray(t.detach().numpy())


def host_array(data, dtype=None, copy: bool = True) -> np.ndarray:
    """`data` as a new numpy array of a gradserve dtype: `dtype`, else numpy input keeps its
    own (as torch.tensor) and Python numbers get the defaults (float32, int64, bool).
    copy=False: numpy input of that dtype is returned as it is (read, never kept)."""
    if isinstance(data, AutogradMeta):
        data = host_values(data)
    if dtype is not None:
        dtype = as_dtype(dtype)
    elif isinstance(data, (np.ndarray, np.generic)):
        from_numpy_dtype(data.dtype)  # a dtype gradserve does not have: TypeError naming it
    try:
        arr = (np.array if copy else np.asarray)(data, dtype=None if dtype is None else dtype.np)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"could not build a tensor from {type(data).__name__}: {e}"
        ) from None
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        arr = _default_cast(arr)
    return arr


def _default_cast(arr: np.ndarray) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(_dtype.default_float_dtype().np, copy=False)  # torch.tensor's default
    if kind in "iu":
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        return arr
    if kind == "O" and arr.size == 0:
        return arr.astype(np.float32)
    raise TypeError(f"can't build a tensor from values of numpy type {arr.dtype}")



def factory_names() -> tuple[str, ...]:
    """The public factories of `FactoryAPI` (what `engine` and `gradserve` export)."""
    return tuple(n for n in vars(FactoryAPI) if not n.startswith("_")) + ("manual_seed",)


__all__ = ["FactoryAPI", "host_array", "int64"]
