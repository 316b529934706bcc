"""RNN (Elman, tanh or relu) and the single-step cells RNNCell, LSTMCell and GRUCell, with
torch's parameter names, shapes, gate order and initialisation U(-1/sqrt(H), 1/sqrt(H)).
A cell is one step of the matching layer's recurrence; a Python loop over cells runs on a
remote session as buffered ops."""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError

from .._default import default_session, new_like
from . import functional as F
from . import init
from ._layers import new_parameter
from ._module import Module
from ._rnn import GRU, LSTM, _RNNBase


def _nonlinearity(name: str):
    if name == "tanh":
        return lambda x: x.tanh()
    if name == "relu":
        return F.relu
    raise ValueError(f"Unknown nonlinearity '{name}'. Select from 'tanh' or 'relu'.")


class RNN(_RNNBase):
    """h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), stacked and
    optionally bidirectional, as torch's.

    >>> out, h = nn.RNN(4, 8, num_layers=2)(engine.randn(5, 3, 4))
    >>> out.shape, h.shape
    (gradserve.Size([5, 3, 8]), gradserve.Size([2, 3, 8]))
    """

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 session=None) -> None:
        act = _nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype, session=session)
        self.nonlinearity, self._act = nonlinearity, act

    def _cell(self, gi, h, w_hh, b_hh):
        return self._act(gi + F.linear(h, w_hh, b_hh))


class _CellBase(Module):
    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None, session=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bias
        s = default_session(session)
        gates = self._gates * self.hidden_size
        self.weight_ih = new_parameter(s, gates, self.input_size, dtype=dtype)
        self.weight_hh = new_parameter(s, gates, self.hidden_size, dtype=dtype)
        if bias:
            self.bias_ih = new_parameter(s, gates, dtype=dtype)
            self.bias_hh = new_parameter(s, gates, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden), 1/sqrt(hidden)), as torch.
        >>> cell.reset_parameters()"""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _batched(self, input, hx):
        """(input as (N, I), hx or None with a batch dim, whether input was unbatched)."""
        if input.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got "
                             f"{input.dim()}D instead")
        if input.shape[-1] != self.input_size:
            raise InvalidArgumentError(f"input has inconsistent input_size: got "
                                       f"{input.shape[-1]} expected {self.input_size}")
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
            if hx is not None:
                hx = tuple(h.unsqueeze(0) for h in hx) if isinstance(hx, tuple) \
                    else hx.unsqueeze(0)
        return input, hx, unbatched

    def _zeros(self, input):
        return new_like(input, "zeros", input.shape[0], self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s if self.bias else s + ", bias=False"


class RNNCell(_CellBase):
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu).

    >>> nn.RNNCell(4, 8)(engine.randn(3, 4)).shape
    gradserve.Size([3, 8])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None, session=None) -> None:
        act = _nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device, dtype, session)
        self.nonlinearity, self._act = nonlinearity, act

    def forward(self, input, hx=None):
        input, hx, unbatched = self._batched(input, hx)
        h = self._zeros(input) if hx is None else hx
        out = self._act(F.linear(input, self.weight_ih, self.bias_ih)
                        + F.linear(h, self.weight_hh, self.bias_hh))
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity}"


class LSTMCell(_CellBase):
    """One LSTM step, gates in torch's order (input, forget, cell, output): returns (h', c').

    >>> h, c = nn.LSTMCell(4, 8)(engine.randn(3, 4))
    >>> h.shape, c.shape
    (gradserve.Size([3, 8]), gradserve.Size([3, 8]))
    """

    _gates = 4

    def forward(self, input, hx=None):
        input, hx, unbatched = self._batched(input, hx)
        if hx is None:
            zeros = self._zeros(input)
            hx = (zeros, zeros)
        gi = F.linear(input, self.weight_ih, self.bias_ih)
        h, c = LSTM._cell(self, gi, hx, self.weight_hh, self.bias_hh)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(_CellBase):
    """One GRU step, gates in torch's order (reset, update, new).

    >>> nn.GRUCell(4, 8)(engine.randn(3, 4)).shape
    gradserve.Size([3, 8])
    """

    _gates = 3

    def forward(self, input, hx=None):
        input, hx, unbatched = self._batched(input, hx)
        h = self._zeros(input) if hx is None else hx
        gi = F.linear(input, self.weight_ih, self.bias_ih)
        out = GRU._cell(self, gi, h, self.weight_hh, self.bias_hh)
        return out.squeeze(0) if unbatched else out
