"""LSTM, GRU and RNN over a PackedSequence, as torch runs them: at step t only the first
batch_sizes[t] sequences (sorted by decreasing length) step; a sequence that has ended keeps
its state, so h_n holds each sequence's state at its own last step, and the reverse direction
starts each sequence at its last step from the initial state. The output is a PackedSequence
of the same batch sizes and order; h_n (and c_n) come back in the batch's original order.

Each layer projects all the packed steps at once (one linear op), then runs the recurrence on
row ranges of it: on a remote session every step is a handful of buffered ops.
"""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError, cat, stack

from . import functional as F
from .utils.rnn import PackedSequence, _host


def _rows(state, n: int):
    if isinstance(state, tuple):
        return tuple(s[:n] for s in state)
    return state[:n]


def _merge(new, old, n: int, full: int):
    """The state after a step of the first n rows: new rows then the untouched rest."""
    if n == full:
        return new
    if isinstance(new, tuple):
        return tuple(cat([a, b[n:]]) for a, b in zip(new, old, strict=True))
    return cat([new, old[n:]])


def _direction(module, projected, sizes, offsets, state, w_hh, b_hh, reverse: bool):
    """One direction of one layer: the packed outputs (in packed order) and the final state."""
    full = sizes[0]
    outs = [None] * len(sizes)
    steps = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
    for t in steps:
        n = sizes[t]
        step = module._cell(projected[offsets[t]:offsets[t] + n], _rows(state, n), w_hh, b_hh)
        outs[t] = step[0] if isinstance(step, tuple) else step
        state = _merge(step, state, n, full)
    return cat(outs), state


def run_packed(module, packed: PackedSequence, hx, lstm: bool):
    """`module(packed, hx)` for a stacked, maybe bidirectional recurrence."""
    data = packed.data
    if data.dim() != 2:
        raise InvalidArgumentError(f"{type(module).__name__}: packed input must be 2D, got "
                                   f"{data.dim()}D")
    if data.shape[-1] != module.input_size:
        raise InvalidArgumentError(f"input.size(-1) must be equal to input_size. Expected "
                                   f"{module.input_size}, got {data.shape[-1]}")
    sizes, _ = _host(packed)
    batch = sizes[0]
    offsets = [0] * len(sizes)
    for t in range(1, len(sizes)):
        offsets[t] = offsets[t - 1] + sizes[t - 1]
    sort, unsort = packed.sorted_indices, packed.unsorted_indices
    if hx is None:
        h0 = module._zeros_state(data, batch)
        states = (h0, h0) if lstm else h0
    else:
        # torch's permute_hidden: the given state is in the batch's original order
        states = tuple(hx) if lstm else hx
        if sort is not None:
            states = (tuple(s.index_select(1, sort) for s in states) if lstm
                      else states.index_select(1, sort))
    x, finals = data, []
    for layer in range(module.num_layers):
        outs = []
        for direction in range(module._directions):
            k = layer * module._directions + direction
            w_ih, w_hh, b_ih, b_hh = module._weights(layer, direction)
            projected = F.linear(x, w_ih, b_ih)
            start = (states[0][k], states[1][k]) if lstm else states[k]
            out, final = _direction(module, projected, sizes, offsets, start, w_hh, b_hh,
                                    reverse=bool(direction))
            outs.append(out)
            finals.append(final)
        x = outs[0] if len(outs) == 1 else cat(outs, -1)
        if module.dropout and module.training and layer < module.num_layers - 1:
            x = F.dropout(x, module.dropout, training=True)
    output = PackedSequence(x, packed.batch_sizes, sort, unsort)
    if hasattr(packed, "_host_values"):
        output._host_values = packed._host_values  # the same batch_sizes tensor
    def restore(h):
        return h if unsort is None else h.index_select(1, unsort)

    if lstm:
        return output, (restore(stack([f[0] for f in finals])),
                        restore(stack([f[1] for f in finals])))
    return output, restore(stack(finals))
