"""The engine's Tensor: the autograd bookkeeping of `AutogradMeta` plus an array."""

from __future__ import annotations

import numpy as np

from ._backend import backend
from ._dtype import DType, from_numpy_dtype
from ._errors import InvalidArgumentError
from ._layout import of_array
from ._meta import AutogradMeta
from ._size import Size


class Tensor(AutogradMeta):
    """An n-dimensional array that records the ops applied to it for autograd."""

    __slots__ = ("_data", "_grad", "_shape")

    def __init__(self, data, device: str = "cpu", requires_grad: bool = False,
                 dtype: DType | None = None) -> None:
        self._init_meta(dtype or from_numpy_dtype(data.dtype), device, of_array(data))
        self._data = data
        self._shape = Size(data.shape)
        self._grad = None
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _result(cls, data, device: str, dtype: DType, strides) -> Tensor:
        """An op's output, whose layout its shape rule already gave (None: contiguous)."""
        t = cls.__new__(cls)
        t._init_meta(dtype, device, strides)
        t._data = data
        t._shape = Size(data.shape)
        t._grad = None
        return t

    # -- metadata --------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return self._shape

    def _saved_data(self):
        return self._data

    def _snapshot(self, copy: bool) -> Tensor:
        """A stand-in for self in the graph: its history, with its data (copied when backward
        will read the old value, which an in-place write is about to overwrite)."""
        out = Tensor(self._data.copy() if copy else self._data, self._device, dtype=self.dtype)
        out._rg, out._grad_fn, out._output_nr, out._acc = (self._rg, self.grad_fn,
                                                          self._output_nr, self._acc)
        return out

    # -- .grad -----------------------------------------------------------------------------
    @property
    def grad(self):
        self._warn_if_non_leaf_grad(self._grad is not None)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise InvalidArgumentError("assigned grad expected to be a Tensor or None")
            self._check_assigned_grad(value)
        self._grad = value

    # -- aliasing --------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """A tensor with the same storage and version counter, outside the graph."""
        return self._op("detach", self)

    @property
    def data(self) -> Tensor:
        """Same storage, a fresh version counter: in-place changes through it go unnoticed."""
        return self._op("data", self)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise InvalidArgumentError("data must be set to a Tensor")
        if value.device != self.device:
            raise InvalidArgumentError("data set to a tensor that requires gradients must match")
        self._data, self.dtype, self._strides = value._data, value.dtype, value._strides
        self._shape = value._shape

    # -- values ----------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        self._check_numpy()
        return self._data

    def _host(self) -> np.ndarray:
        return backend(self._device).to_host(self._data)

    def item(self):
        if self._data.size != 1:
            raise InvalidArgumentError(
                f"a Tensor with {self._data.size} elements cannot be converted to Scalar"
            )
        return self._host().reshape(()).item()

    def tolist(self):
        return self._host().tolist()

    def __array__(self, dtype=None, copy=None):
        a = self._host()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        from ._format import format_tensor

        return format_tensor(self._host(), self.dtype, self._device, self._repr_suffix())

    # -- autograd --------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (or only into `inputs`)."""
        from ._grad_api import backward

        backward([self], None if gradient is None else [gradient], retain_graph,
                 create_graph, inputs)

    def __getitem__(self, key):
        return super().__getitem__(_scalar_indices_as_ints(key))

    def _record_function(self, node, inputs, outputs) -> None:
        """A custom Function's node was made (see _function): nothing more to do here."""

    def _home(self):
        from ._factories import ENGINE

        return ENGINE

    # -- the two primitives of TensorAPI -----------------------------------------------------
    def _op(self, name, *inputs, **attrs):
        return apply(get_op(name), inputs, attrs)

    def _inplace(self, name, *others, **attrs):
        return apply_inplace(get_op(name), self, others, attrs)


def _scalar_indices_as_ints(key):
    """x[t] with 0-dim integer tensors alone indexes like x[int(t)] (a view), as in torch."""
    parts = key if isinstance(key, tuple) else (key,)
    advanced = [k for k in parts if isinstance(k, (Tensor, list))]
    if advanced and all(isinstance(k, Tensor) and k.ndim == 0 and k.dtype.kind == 1
                        for k in advanced):
        return tuple(k.item() if isinstance(k, Tensor) else k for k in parts)
    return key


from ._dispatch import apply, apply_inplace  # noqa: E402  (dispatch builds Tensors)
from ._registry import get_op  # noqa: E402
