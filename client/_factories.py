"""The factories of a remote session (`s.tensor`, `s.zeros`, `s.randn`, ...), as torch's.

Small data rides inline in the op buffer; a tensor of INLINE_UPLOAD_BYTES or more streams
through `Upload` in chunks (one wait). Every other factory is a registry op recorded like any
op, so making a tensor costs no round trip.
"""

from __future__ import annotations

import numpy as np
from gradserve.engine import AutogradError, InvalidArgumentError, as_dtype, get_op
from gradserve.engine._dtype import default_float, from_numpy_dtype
from gradserve.engine._shape import parse_size
from gradserve.v1.codec import CHUNK_BYTES, tensor_data

from ._record import apply
from ._tensor import RemoteTensor
from ._wire import upload_requests

INLINE_UPLOAD_BYTES = 1 << 20  # s.tensor data below this rides inline in the op buffer


class Factories:
    """torch's tensor factories on a session (mixed into `Session`)."""

    def tensor(self, data, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A new leaf holding a copy of `data` (numbers, nested lists, numpy arrays).

        >>> x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> x.shape, x.dtype
        ((2, 2), gradserve.float32)
        """
        if isinstance(data, RemoteTensor):
            self._own(data)
            from gradserve.engine import no_grad

            with no_grad():
                out = data.detach().clone()
                if dtype is not None:
                    out = out.to(dtype=dtype)
            return out.requires_grad_(requires_grad) if requires_grad else out
        from gradserve import engine

        return self._upload(engine.tensor(data, dtype=dtype).numpy(), requires_grad)

    def from_numpy(self, array: np.ndarray, requires_grad: bool = False) -> RemoteTensor:
        """A new leaf with the values and dtype of a numpy array (copied to the server).

        >>> s.from_numpy(np.arange(3.0)).dtype
        gradserve.float64
        """
        if not isinstance(array, np.ndarray):
            raise InvalidArgumentError(f"expected np.ndarray (got {type(array).__name__})")
        dtype = as_dtype(array.dtype)
        return self._upload(array.astype(dtype.np, copy=False), requires_grad)

    def _upload(self, arr: np.ndarray, requires_grad: bool) -> RemoteTensor:
        dtype = from_numpy_dtype(arr.dtype)
        if requires_grad and not dtype.is_floating_point:
            raise AutogradError(
                "Only Tensors of floating point and complex dtype can require gradients"
            )
        self._check_open()
        out = RemoteTensor(self, self._new_id(), arr.shape, dtype, self._device)
        out._rg = bool(requires_grad)
        if arr.nbytes < INLINE_UPLOAD_BYTES:
            self._send("tensor", (), (out._id,), {"requires_grad": bool(requires_grad)},
                       data=tensor_data(arr, dtype))
            return out
        self._flush()
        with self._lock:
            self.stats.waits += 1
            self.stats.uploads += 1
            self.stats.bytes_up += arr.nbytes
        self._unary("Upload", lambda: upload_requests(
            self._id, out._id, arr, dtype, bool(requires_grad), CHUNK_BYTES))
        return out

    def _factory(self, name: str, requires_grad: bool, **attrs) -> RemoteTensor:
        attrs["device"] = self._device
        out = apply(get_op(name), (), attrs, session=self)
        return out.requires_grad_(True) if requires_grad else out

    def zeros(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A tensor of zeros.

        >>> s.zeros(2, 3).shape
        (2, 3)
        """
        return self._factory("zeros", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def ones(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A tensor of ones.

        >>> s.ones(3, requires_grad=True).requires_grad
        True
        """
        return self._factory("ones", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def empty(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """An uninitialised tensor (zeros on the server).

        >>> s.empty(4).shape
        (4,)
        """
        return self._factory("empty", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def full(self, size, fill_value, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """A tensor filled with `fill_value`.

        >>> s.full((2, 2), 7).dtype
        gradserve.int64
        """
        return self._factory("full", requires_grad, shape=parse_size((size,)), value=fill_value,
                             dtype=None if dtype is None else as_dtype(dtype).name)

    def randn(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Standard normal samples from the session's generator.

        >>> s.randn(2, 2).shape
        (2, 2)
        """
        return self._factory("randn", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def rand(self, *size, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Uniform [0, 1) samples from the session's generator.

        >>> s.rand(3).shape
        (3,)
        """
        return self._factory("rand", requires_grad, shape=parse_size(size),
                             dtype=_float(dtype).name)

    def arange(self, start, end=None, step=1, dtype=None,
               requires_grad: bool = False) -> RemoteTensor:
        """Evenly spaced values in [start, end).

        >>> s.arange(5).tolist()
        [0, 1, 2, 3, 4]
        """
        if end is None:
            start, end = 0, start
        return self._factory("arange", requires_grad, start=start, end=end, step=step,
                             dtype=None if dtype is None else as_dtype(dtype).name)

    def eye(self, n: int, m: int | None = None, dtype=None,
            requires_grad: bool = False) -> RemoteTensor:
        """The identity matrix.

        >>> s.eye(2).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        """
        return self._factory("eye", requires_grad, n=int(n), m=None if m is None else int(m),
                             dtype=_float(dtype).name)

    def zeros_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Zeros with `t`'s shape and dtype.

        >>> s.zeros_like(s.ones(2, 3)).shape
        (2, 3)
        """
        return self.zeros(*t.shape, dtype=t.dtype if dtype is None else dtype,
                          requires_grad=requires_grad)

    def ones_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Ones with `t`'s shape and dtype.

        >>> s.ones_like(s.zeros(2), dtype=gs.int64).tolist()
        [1, 1]
        """
        return self.ones(*t.shape, dtype=t.dtype if dtype is None else dtype,
                         requires_grad=requires_grad)

    def randn_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Normal samples with `t`'s shape and dtype.

        >>> s.randn_like(s.ones(2, 3)).shape
        (2, 3)
        """
        return self.randn(*t.shape, dtype=t.dtype if dtype is None else dtype,
                          requires_grad=requires_grad)

    def rand_like(self, t, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """Uniform samples with `t`'s shape and dtype.

        >>> s.rand_like(s.ones(4)).shape
        (4,)
        """
        return self.rand(*t.shape, dtype=t.dtype if dtype is None else dtype,
                         requires_grad=requires_grad)

    def full_like(self, t, fill_value, dtype=None, requires_grad: bool = False) -> RemoteTensor:
        """`fill_value` with `t`'s shape and dtype.

        >>> s.full_like(s.ones(2), 0.5).tolist()
        [0.5, 0.5]
        """
        return self.full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                         requires_grad=requires_grad)

    def manual_seed(self, seed: int) -> None:
        """Seed this session's own random generator (other sessions are unaffected).

        >>> s.manual_seed(0); a = s.randn(3).tolist()
        >>> s.manual_seed(0); s.randn(3).tolist() == a
        True
        """
        self._send("manual_seed", (), (), {"seed": int(seed)})


def _float(dtype):
    return as_dtype(dtype) if dtype is not None else default_float
