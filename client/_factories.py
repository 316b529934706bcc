"""A remote session's factories (`s.tensor`, `s.zeros`, `s.randn`, ...): the engine's one
factory surface (`engine.surface.factories.FactoryAPI`, torch's arguments plus `requires_grad=` and
`device=`), over the session's primitives.

Small data rides inline in the op buffer; a tensor of INLINE_UPLOAD_BYTES or more streams
through `Upload` in chunks (one wait). Every other factory is a registry op recorded like any
op, so making a tensor costs no round trip.
"""

from __future__ import annotations

import numpy as np
from gradserve.engine import get_op, no_grad
from gradserve.engine.seam import FactoryAPI, from_numpy_dtype
from gradserve.v1.codec import CHUNK_BYTES, tensor_data

from ._tensor import RemoteTensor
from ._wire import upload_requests

INLINE_UPLOAD_BYTES = 1 << 20  # s.tensor data below this rides inline in the op buffer


class Factories(FactoryAPI):
    """torch's tensor factories on a session (mixed into `Session`).

    >>> x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> x.shape, x.dtype, s.arange(3).tolist()
    (gradserve.Size([2, 2]), gradserve.float32, [0, 1, 2])
    """

    # `_leaf` sends the bytes before it returns (inline, or an Upload it waits for): the
    # caller's array is read in place, never kept
    _leaf_keeps_array = False

    def _default_device(self) -> str:
        return self._device

    def _make(self, name: str, requires_grad: bool, attrs: dict,
              inputs: tuple = ()) -> RemoteTensor:
        out = self._kind.apply(get_op(name), inputs, attrs)
        return out.requires_grad_(True) if requires_grad else out

    def _leaf(self, arr: np.ndarray, device: str, requires_grad: bool) -> RemoteTensor:
        if device != self._device:  # the data lands on the session's device, then moves
            with no_grad():
                out = self._leaf(arr, self._device, False).to(device=device)
            return out.requires_grad_(True) if requires_grad else out
        dtype = from_numpy_dtype(arr.dtype)
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

    def manual_seed(self, seed: int) -> None:
        """Seed this session's own random generator (other sessions are unaffected).

        >>> s.manual_seed(0); a = s.randn(3).tolist()
        >>> s.manual_seed(0); s.randn(3).tolist() == a
        True
        """
        self._send("manual_seed", (), (), {"seed": int(seed)})

    def _set_rng_state(self, state: RemoteTensor) -> None:
        self._send("set_rng_state", (self._own(state),), (), {})
