"""gradserve.nn.utils.rnn: torch.nn.utils.rnn's padded and packed sequences, for either tensor
kind: `PackedSequence`, `pack_padded_sequence`, `pad_packed_sequence`, `pack_sequence`,
`unpack_sequence`, `pad_sequence`, `unpad_sequence`, `invert_permutation`. `nn.LSTM`, `GRU`
and `RNN` take a PackedSequence and return one, as torch's.

Lengths are host numbers, as torch's CPU lengths: a list, a numpy array or an in-process
tensor costs nothing; a session's tensor is fetched (one round trip). The packing itself is
one op where the data lives (its node is torch's PackPaddedSequenceBackward0), and unpacking
is torch's own composition (a filled tensor, one slice copied in per run of equal batch sizes),
so the graph is torch's. `batch_sizes`, `sorted_indices` and the lengths
`pad_packed_sequence` returns are int64 tensors on the data's side.

    >>> from gradserve.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    >>> x = engine.arange(6.0).reshape(3, 2)                  # (T=3, B=2)
    >>> packed = pack_padded_sequence(x, [1, 3], enforce_sorted=False)
    >>> packed.data, packed.batch_sizes
    (tensor([1., 0., 3., 5.]), tensor([2, 1, 1]))
    >>> pad_packed_sequence(packed)
    (tensor([[0., 1.],
            [0., 3.],
            [0., 5.]]), tensor([1, 3]))
"""

from __future__ import annotations

from typing import NamedTuple

from gradserve.engine import cat, int64, stack


class _Fields(NamedTuple):
    data: object
    batch_sizes: object = None
    sorted_indices: object = None
    unsorted_indices: object = None


class PackedSequence(_Fields):
    """A batch of variable-length sequences packed time-major (torch's PackedSequence).

    One made here also keeps its batch sizes and order as host numbers (`_host`), so the
    layers and `pad_packed_sequence` read them without fetching the tensors.
    """

    def to(self, *args, **kwargs) -> PackedSequence:
        """`data.to(...)`; the index tensors follow data's device, batch_sizes stays."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        def move(t):
            return None if t is None else t.to(data.device)

        moved = type(self)(data, self.batch_sizes, move(self.sorted_indices),
                           move(self.unsorted_indices))
        if hasattr(self, "_host_values"):
            moved._host_values = self._host_values  # the same batch_sizes tensor
        return moved

    def cuda(self, *args, **kwargs) -> PackedSequence:
        return self.to(self.data.cuda(*args, **kwargs).device)

    def cpu(self, *args, **kwargs) -> PackedSequence:
        return self.to("cpu")

    def double(self) -> PackedSequence:
        return self.to(dtype=self.data.double().dtype)

    def float(self) -> PackedSequence:
        return self.to(dtype=self.data.float().dtype)

    def half(self) -> PackedSequence:
        return self.to(dtype=self.data.half().dtype)

    def long(self) -> PackedSequence:
        return self.to(dtype=self.data.long().dtype)

    @property
    def is_cuda(self) -> bool:
        return str(self.data.device).startswith("cuda")

    def is_pinned(self) -> bool:
        return False


def _host_ints(values, what: str) -> list[int]:
    """Host ints from a list, numpy array or tensor (a session's tensor: one fetch)."""
    if hasattr(values, "tolist"):
        if hasattr(values, "dim") and values.dim() != 1:
            raise RuntimeError(f"'{what}' argument should be a 1D CPU int64 tensor, but got "
                               f"{values.dim()}D {values.device} Long tensor")
        values = values.tolist()
    return [int(v) for v in values]


def _sizes(lengths: list[int]) -> list[int]:
    """batch_sizes of lengths sorted in decreasing order: how many are longer than t."""
    longest = lengths[0] if lengths else 0
    return [sum(1 for n in lengths if n > t) for t in range(longest)]


def _host(sequence: PackedSequence) -> tuple[list[int], list[int] | None]:
    """The batch sizes and the unsorting order as host numbers (kept by a PackedSequence made
    here; else read from its tensors: a fetch for a session's)."""
    kept = getattr(sequence, "_host_values", None)
    if kept is not None and kept[0] is sequence.batch_sizes:
        return kept[1], kept[2]
    order = sequence.unsorted_indices
    return (_host_ints(sequence.batch_sizes, "batch_sizes"),
            None if order is None else _host_ints(order, "unsorted_indices"))


def batch_sizes_of(sequence: PackedSequence) -> list[int]:
    return _host(sequence)[0]


def _index_tensor(like, values: list[int]):
    return like.new_tensor(values, dtype=int64)


def _packed(data, sizes: list[int], sorted_indices, unsorted_indices,
            order: list[int] | None) -> PackedSequence:
    """A PackedSequence that remembers its host numbers; `order` is unsorted_indices' values."""
    seq = PackedSequence(data, _index_tensor(data, sizes), sorted_indices, unsorted_indices)
    seq._host_values = (seq.batch_sizes, sizes, order)
    return seq


def invert_permutation(permutation):
    """The inverse of a permutation tensor (None stays None)."""
    if permutation is None:
        return None
    return permutation.argsort()


def pack_padded_sequence(input, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *) with batch_first) of sequences of the given
    lengths; with enforce_sorted=False the batch is first sorted by decreasing length."""
    lengths = _host_ints(lengths, "lengths")
    sorted_indices = unsorted_indices = unsorted = None
    if not enforce_sorted:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable, as torch's
        lengths = [lengths[i] for i in order]
        sorted_indices = _index_tensor(input, order)
        input = input.index_select(0 if batch_first else 1, sorted_indices)
        unsorted = [0] * len(order)
        for k, i in enumerate(order):
            unsorted[i] = k
        unsorted_indices = _index_tensor(input, unsorted)
    data = input._op("pack_padded_sequence", input, lengths=lengths, batch_first=batch_first)
    return _packed(data, _sizes(lengths), sorted_indices, unsorted_indices, unsorted)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length: int | None = None):
    """Unpack to (padded batch, lengths), in the batch's original order."""
    sizes, order = _host(sequence)
    steps = len(sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest "
                             f"sequence in input, but got total_length={total_length} and max "
                             f"sequence length being {steps}")
        steps = total_length
    data = sequence.data
    batch = sizes[0] if sizes else 0
    out = data.new_full((steps, batch, *data.shape[1:]), padding_value)
    lengths = [0] * batch
    offset, prev, start = 0, batch, 0
    for i in range(len(sizes) + 1):  # torch's loop: one copy per run of equal batch sizes
        size = sizes[i] if i < len(sizes) else 0
        if size != prev:
            n = prev * (i - start)
            piece = data.narrow(0, offset, n).view(i - start, prev, *data.shape[1:])
            out.narrow(0, start, i - start).narrow(1, 0, prev).copy_(piece)
            offset, start = offset + n, i
        for b in range(size, prev):
            lengths[b] = i
        prev = size
    if batch_first:
        out = out.transpose(0, 1)
    if sequence.unsorted_indices is not None:
        out = out.index_select(0 if batch_first else 1, sequence.unsorted_indices)
        lengths = [lengths[k] for k in order]
    return out, _index_tensor(data, lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """Stack tensors of shape (L_i, *) into (max L, N, *) (or (N, max L, *) with
    batch_first), filling with `padding_value` on `padding_side`; differentiable.

    >>> pad_sequence([engine.ones(2), engine.ones(3)], batch_first=True)
    tensor([[1., 1., 0.],
            [1., 1., 1.]])
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        if missing:
            fill = s.new_full((missing, *s.shape[1:]), padding_value)
            s = cat([s, fill] if padding_side == "right" else [fill, s])
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False) -> list:
    """The sequences of a padded batch, as torch's: a `batch_first=False` batch is
    transposed in place first (`transpose_`: the caller's tensor is (B, T, *) afterwards),
    then each row (iterating: `unbind`) is cut to its length by a mask (`IndexBackward0`)."""
    if not batch_first:
        padded_sequences.transpose_(0, 1)
    longest = padded_sequences.shape[1]
    idx = padded_sequences._op("arange", start=0, end=longest, step=1, dtype="int64",
                               device=padded_sequences._device)
    lengths = _host_ints(lengths, "lengths")
    return [seq[idx < n] for seq, n in zip(padded_sequences, lengths, strict=True)]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) tensors (sorted by decreasing length unless enforce_sorted is
    False)."""
    lengths = [int(v.shape[0]) for v in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of tensors a PackedSequence holds, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence",
           "pad_sequence", "unpad_sequence", "pack_sequence", "unpack_sequence"]
