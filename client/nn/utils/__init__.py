"""gradserve.nn.utils: gradient clipping (in place and without a round trip), parameters as
one vector and back, and `rnn.pad_sequence`.

On a remote session the norm, the clip coefficient and the scaling are all buffered ops:
`clip_grad_norm_` returns the total norm as a tensor and never waits (unless
error_if_nonfinite, which must read it).

    >>> import gradserve.nn as nn
    >>> w = engine.tensor([3., 4.], requires_grad=True)
    >>> (w * w).sum().backward()                  # grad (6, 8), norm 10
    >>> nn.utils.clip_grad_norm_([w], max_norm=1.0)
    tensor(10.)
    >>> w.grad
    tensor([0.6000, 0.8000])
"""

from __future__ import annotations

from . import rnn
from ._clip import clip_grad_norm_, clip_grad_value_
from ._convert import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "rnn",
           "vector_to_parameters"]
