"""More activation layers: ELU, Softplus, PReLU (a learnable slope), Mish, Hardtanh, ReLU6,
Hardsigmoid, Hardswish, LogSigmoid, Softmin; torch's arguments, reprs and parameter."""

from __future__ import annotations

from gradserve.engine import no_grad

from . import functional as F
from ._f_extra import (
    hardsigmoid,
    hardswish,
    hardtanh,
    logsigmoid,
    mish,
    prelu,
    softmin,
)
from ._layers import new_parameter
from ._module import Module


def _inplace(module) -> str:
    return "inplace=True" if module.inplace else ""


class ELU(Module):
    """alpha * (exp(x) - 1) below zero. >>> nn.ELU(alpha=0.5)
    ELU(alpha=0.5)
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta. >>> nn.Softplus(beta=2.0)
    Softplus(beta=2.0, threshold=20.0)
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class PReLU(Module):
    """x above zero, weight * x below, with `num_parameters` learnable slopes (one per
    channel, or one shared) starting at `init`.

    >>> nn.PReLU(3).weight.shape
    gradserve.Size([3])
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None,
                 session=None) -> None:
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = new_parameter(session, num_parameters, dtype=dtype,
                                    init=lambda t: t.fill_(init))
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Every slope back to `init`. >>> prelu.reset_parameters()"""
        with no_grad():
            self.weight.fill_(self.init)

    def forward(self, input):
        return prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Mish(Module):
    """x * tanh(softplus(x)). >>> nn.Mish()
    Mish()
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return mish(input, self.inplace)

    def extra_repr(self) -> str:
        return _inplace(self)


class Hardtanh(Module):
    """x clamped to [min_val, max_val]. >>> nn.Hardtanh(-2.0, 2.0)
    Hardtanh(min_val=-2.0, max_val=2.0)
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0,
                 inplace: bool = False) -> None:
        super().__init__()
        if max_val <= min_val:
            raise AssertionError("max_val must be greater than min_val")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return (f"min_val={self.min_val}, max_val={self.max_val}"
                + (", inplace=True" if self.inplace else ""))


class ReLU6(Hardtanh):
    """min(max(x, 0), 6). >>> nn.ReLU6()
    ReLU6()
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return _inplace(self)


class Hardsigmoid(Module):
    """relu6(x + 3) / 6. >>> nn.Hardsigmoid()
    Hardsigmoid()
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return hardsigmoid(input, self.inplace)


class Hardswish(Module):
    """x * relu6(x + 3) / 6. >>> nn.Hardswish()
    Hardswish()
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return hardswish(input, self.inplace)


class LogSigmoid(Module):
    """log(sigmoid(x)). >>> nn.LogSigmoid()
    LogSigmoid()
    """

    def forward(self, input):
        return logsigmoid(input)


class Softmin(Module):
    """softmax(-x) along `dim`. >>> nn.Softmin(dim=1)
    Softmin(dim=1)
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return softmin(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
