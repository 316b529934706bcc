"""gradserve.nn.utils.rnn: `pad_sequence`, as torch.nn.utils.rnn's (packed sequences are not
provided: pad, and mask with the lengths).

    >>> from gradserve.nn.utils.rnn import pad_sequence
    >>> pad_sequence([engine.ones(2), engine.ones(3)], batch_first=True)
    tensor([[1., 1., 0.],
            [1., 1., 1.]])
"""

from __future__ import annotations

from gradserve.engine import cat, stack


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """Stack tensors of shape (L_i, *) into (max L, N, *) (or (N, max L, *) with
    batch_first), filling with `padding_value` on `padding_side`; differentiable."""
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


__all__ = ["pad_sequence"]
