"""torch.nn.functional's selu, celu, softsign, tanhshrink, glu, softshrink, hardshrink,
threshold: one op each where torch has one kernel (engine/ops/elementwise/shrink.py),
torch's compositions otherwise (softsign: DivBackward0, tanhshrink: SubBackward0).

    >>> F.softshrink(engine.tensor([-1.0, 0.2, 2.0]))
    tensor([-0.5000,  0.0000,  1.5000])
"""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _maybe_inplace(input, out, inplace: bool):
    return input.copy_(out) if inplace else out


def selu(input, inplace: bool = False):
    """scale * elu(x, alpha) with torch's fixed alpha and scale."""
    out = input._op("scaled_elu", input, alpha=_SELU_ALPHA, scale=_SELU_SCALE)
    return _maybe_inplace(input, out, inplace)


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if alpha == 0:
        raise InvalidArgumentError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(input, input._op("celu", input, alpha=float(alpha)), inplace)


def softsign(input):
    """x / (1 + |x|)."""
    return input / (input.abs() + 1)


def tanhshrink(input):
    """x - tanh(x)."""
    return input - input.tanh()


def glu(input, dim: int = -1):
    """first half * sigmoid(second half), the halves split along dim."""
    return input._op("glu", input, dim=int(dim))


def softshrink(input, lambd: float = 0.5):
    """x - lambd above lambd, x + lambd below -lambd, 0 between."""
    return input._op("softshrink", input, lambd=float(lambd))


def hardshrink(input, lambd: float = 0.5):
    """x where |x| > lambd, else 0."""
    return input._op("hardshrink", input, lambd=float(lambd))


def threshold(input, threshold: float, value: float, inplace: bool = False):
    """x where x > threshold, else value."""
    out = input._op("threshold", input, threshold=float(threshold), value=float(value))
    return _maybe_inplace(input, out, inplace)
