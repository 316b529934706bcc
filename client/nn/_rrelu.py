"""torch's randomized leaky ReLU: `F.rrelu` and `nn.RReLU` (engine/ops/nn/rrelu.py).

While training, each element <= 0 gets its own slope from U(lower, upper), drawn from the
random stream of wherever the input lives (its session's generator for a remote tensor, so
`manual_seed` there gives torch's slopes); in eval the slope is (lower + upper) / 2. The
slopes are drawn and applied on the tensor's side: a remote call is two buffered ops.

    >>> import gradserve.nn.functional as F
    >>> F.rrelu(engine.tensor([-2.0, 3.0]), 0.25, 0.75)
    tensor([-1.,  3.])
"""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError

from ._module import Module


def rrelu(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False):
    """rrelu(input, lower=1./8, upper=1./3, training=False, inplace=False) -> Tensor"""
    if not float(lower) <= float(upper):
        raise InvalidArgumentError("Lower bound should be less than or equal to the upper bound")
    bounds = {"lower": float(lower), "upper": float(upper)}
    noise = (input._op("rrelu_noise", input, **bounds),) if training else ()
    if inplace:
        return input._inplace("rrelu_with_noise_", *noise, **bounds)
    return input._op("rrelu_with_noise", input, *noise, **bounds)


def rrelu_(input, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False):
    """In-place version of `rrelu`."""
    return rrelu(input, lower, upper, training, inplace=True)


class RReLU(Module):
    """Randomized leaky ReLU: random negative slopes while training, their mean in eval.

    >>> import gradserve.nn as nn
    >>> nn.RReLU(0.1, 0.3)
    RReLU(lower=0.1, upper=0.3)
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
                 inplace: bool = False) -> None:
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input):
        return rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"lower={self.lower}, upper={self.upper}{inplace_str}"
