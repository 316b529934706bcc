"""Tensor factories of the in-process engine (torch.tensor, torch.zeros, ...)."""

from __future__ import annotations

import numpy as np

from ._backend import canonical_device
from ._dispatch import apply
from ._dtype import as_dtype, default_float
from ._errors import AutogradError, InvalidArgumentError
from ._registry import get_op
from ._shape import parse_size
from ._tensor import Tensor


def _make(name: str, requires_grad: bool, **attrs) -> Tensor:
    attrs["device"] = canonical_device(attrs.get("device"))
    out = apply(get_op(name), (), attrs)
    if requires_grad:
        out.requires_grad_(True)
    return out


def to_tensor(data, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """engine.tensor(): copy `data` (nested lists, numbers, numpy arrays) into a new leaf."""
    arr = host_array(data, dtype)
    if requires_grad and arr.dtype.kind != "f":
        raise AutogradError(
            "Only Tensors of floating point and complex dtype can require gradients"
        )
    return get_op("tensor").run((arr,), {"device": device, "requires_grad": requires_grad})[0]


def host_array(data, dtype=None) -> np.ndarray:
    """`data` as a new numpy array of a gradserve dtype: `dtype`, else numpy input keeps its
    own (as torch.tensor) and Python numbers get the defaults (float32, int64, bool)."""
    if isinstance(data, Tensor):
        data = data._host()
    if dtype is not None:
        dtype = as_dtype(dtype)
    try:
        arr = np.array(data, dtype=None if dtype is None else dtype.np)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"could not build a tensor from {type(data).__name__}: {e}"
        ) from None
    if dtype is None:
        arr = _numpy_cast(arr) if isinstance(data, (np.ndarray, np.generic)) else _default_cast(arr)
    return arr


def _numpy_cast(arr: np.ndarray) -> np.ndarray:
    try:
        return arr.astype(as_dtype(arr.dtype).np, copy=False)
    except InvalidArgumentError:
        return _default_cast(arr)


def _default_cast(arr: np.ndarray) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float32, copy=False)  # torch.tensor's default float
    if kind in "iu":
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        return arr
    raise InvalidArgumentError(f"can't build a tensor from values of numpy type {arr.dtype}")


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new leaf holding a copy of `data`. >>> tensor([[1., 2.], [3., 4.]], requires_grad=True)"""
    return to_tensor(data, dtype, canonical_device(device), requires_grad)


def from_numpy(array) -> Tensor:
    """A leaf sharing memory with a numpy array (as torch.from_numpy)."""
    from ._dtype import from_numpy_dtype

    if not isinstance(array, np.ndarray):
        raise InvalidArgumentError(f"expected np.ndarray (got {type(array).__name__})")
    try:
        from_numpy_dtype(array.dtype)
    except KeyError:
        array = to_tensor(array)._data
    return Tensor(array, "cpu")


def _float(dtype):
    return as_dtype(dtype) if dtype is not None else default_float


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("zeros", requires_grad, shape=parse_size(size), dtype=_float(dtype).name,
                 device=device)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("ones", requires_grad, shape=parse_size(size), dtype=_float(dtype).name,
                 device=device)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("empty", requires_grad, shape=parse_size(size), dtype=_float(dtype).name,
                 device=device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("full", requires_grad, shape=parse_size((size,)), value=fill_value,
                 dtype=None if dtype is None else as_dtype(dtype).name, device=device)


def randn(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("randn", requires_grad, shape=parse_size(size), dtype=_float(dtype).name,
                 device=device)


def rand(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("rand", requires_grad, shape=parse_size(size), dtype=_float(dtype).name,
                 device=device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    return _make("arange", requires_grad, start=start, end=end, step=step,
                 dtype=None if dtype is None else as_dtype(dtype).name, device=device)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _make("eye", requires_grad, n=int(n), m=None if m is None else int(m),
                 dtype=_float(dtype).name, device=device)


def _like(fn, t, dtype, device, requires_grad):
    return fn(*t.shape, dtype=t.dtype if dtype is None else dtype,
              device=t.device if device is None else device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(ones, t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(randn, t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(rand, t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                device=t.device if device is None else device, requires_grad=requires_grad)
