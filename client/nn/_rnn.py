"""LSTM and GRU: torch's parameters, gate order and shapes, unrolled over time in tensor ops.

Each layer projects the whole input sequence at once (one linear op), then runs the
recurrence step by step; on a remote session every step is a handful of buffered ops.
"""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError, cat, stack

from .._default import default_session, new_like
from . import functional as F
from . import init
from ._layers import new_parameter
from ._module import Module
from ._rnn_packed import run_packed
from .utils.rnn import PackedSequence


class _RNNBase(Module):
    _gates = 0

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None,
                 session=None) -> None:
        super().__init__()
        if proj_size:
            raise NotImplementedError("proj_size is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, 0
        self.session = s = default_session(session)
        gates = self._gates * self.hidden_size
        self._names = []
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.hidden_size * self._directions
            for suffix in ("", "_reverse")[: self._directions]:
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                setattr(self, names[0], new_parameter(s, gates, width, dtype=dtype))
                setattr(self, names[1], new_parameter(s, gates, self.hidden_size, dtype=dtype))
                if bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    for name in names[2:]:
                        setattr(self, name, new_parameter(s, gates, dtype=dtype))
                self._names.append(names)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden), 1/sqrt(hidden)), as torch.
        >>> lstm.reset_parameters()"""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, direction: int):
        names = self._names[layer * self._directions + direction]
        ws = [getattr(self, n) for n in names]
        return ws if self.bias else ws + [None, None]

    def _zeros_state(self, like, batch: int):
        return new_like(like, "zeros", self.num_layers * self._directions, batch,
                        self.hidden_size)

    def _run(self, input, states):
        """The stacked recurrence; `states` is a list of per-(layer, direction) states."""
        unbatched = input.dim() == 2
        if input.dim() not in (2, 3):
            raise InvalidArgumentError(f"{type(self).__name__}: Expected input to be 2D or 3D, "
                                       f"got {input.dim()}D instead")
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first
                                                  else input)
        if x.shape[-1] != self.input_size:
            raise InvalidArgumentError(f"input.size(-1) must be equal to input_size. Expected "
                                       f"{self.input_size}, got {x.shape[-1]}")
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self._directions):
                k = layer * self._directions + direction
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
                projected = F.linear(x, w_ih, b_ih)  # (L, N, gates): all steps at once
                steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
                state = states(k)
                seq = [None] * x.shape[0]
                for t in steps:
                    state = self._cell(projected[t], state, w_hh, b_hh)
                    seq[t] = state[0] if isinstance(state, tuple) else state
                outs.append(stack(seq))
                finals.append(state)
            x = outs[0] if len(outs) == 1 else cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        out = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        return out, finals, unbatched

    def forward(self, input, hx=None):
        """The one-state recurrences (GRU, RNN): (output, h_n); LSTM overrides it for (h, c)."""
        if isinstance(input, PackedSequence):
            return run_packed(self, input, hx, lstm=False)
        unbatched = input.dim() == 2
        batch = 1 if unbatched else input.shape[0 if self.batch_first else 1]
        h0 = self._zeros_state(input, batch) if hx is None else _initial(hx, unbatched)
        out, finals, unbatched = self._run(input, lambda k: h0[k])
        h_n = stack(finals)
        return out, (h_n.squeeze(1) if unbatched else h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def _initial(hx, unbatched):
    """A given initial state as (layers * directions, N, H)."""
    return hx.unsqueeze(1) if unbatched else hx


class LSTM(_RNNBase):
    """Long short-term memory, gates in torch's order (input, forget, cell, output).

    >>> lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True)
    >>> out, (h, c) = lstm(engine.randn(3, 5, 4))
    >>> out.shape, h.shape, c.shape
    (gradserve.Size([3, 5, 8]), gradserve.Size([2, 3, 8]), gradserve.Size([2, 3, 8]))
    """

    _gates = 4

    def _cell(self, gi, state, w_hh, b_hh):
        h, c = state
        gates = gi + F.linear(h, w_hh, b_hh)
        n = self.hidden_size
        i, f = gates[:, :n].sigmoid(), gates[:, n:2 * n].sigmoid()
        g, o = gates[:, 2 * n:3 * n].tanh(), gates[:, 3 * n:].sigmoid()
        c = f * c + i * g
        return o * c.tanh(), c

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return run_packed(self, input, hx, lstm=True)
        unbatched = input.dim() == 2
        batch = 1 if unbatched else input.shape[0 if self.batch_first else 1]
        if hx is None:
            h0 = c0 = self._zeros_state(input, batch)
        else:
            h0, c0 = (_initial(t, unbatched) for t in hx)
        out, finals, unbatched = self._run(input, lambda k: (h0[k], c0[k]))
        h_n = stack([s[0] for s in finals])
        c_n = stack([s[1] for s in finals])
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return out, (h_n, c_n)


class GRU(_RNNBase):
    """Gated recurrent unit, gates in torch's order (reset, update, new).

    >>> gru = nn.GRU(4, 8)
    >>> out, h = gru(engine.randn(5, 3, 4))
    >>> out.shape, h.shape
    (gradserve.Size([5, 3, 8]), gradserve.Size([1, 3, 8]))
    """

    _gates = 3

    def _cell(self, gi, h, w_hh, b_hh):
        gh = F.linear(h, w_hh, b_hh)
        n = self.hidden_size
        r = (gi[:, :n] + gh[:, :n]).sigmoid()
        z = (gi[:, n:2 * n] + gh[:, n:2 * n]).sigmoid()
        new = (gi[:, 2 * n:] + r * gh[:, 2 * n:]).tanh()
        return (1 - z) * new + z * h

