"""gradserve.nn.init: fill tensors in place with torch's initialisation schemes.

Each function works under no_grad on any gradserve tensor and draws its random numbers
where the tensor lives (a remote session's own generator, so `s.manual_seed` makes it
reproducible); on a remote session an initialisation is a few buffered ops, no round trip.
The draws are torch's in-place samplers (`uniform_`, `normal_`), so after the same seed the
values are torch's.

    >>> import gradserve.nn as nn
    >>> w = engine.empty(3, 4)
    >>> nn.init.xavier_uniform_(w).shape
    gradserve.Size([3, 4])
"""

from __future__ import annotations

import math
import warnings

from gradserve.engine import no_grad
from gradserve.engine.seam import generator_inputs

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]


def calculate_gain(nonlinearity: str, param=None) -> float:
    """torch's recommended gain for a nonlinearity (relu: sqrt(2), tanh: 5/3, ...).

    >>> round(nn.init.calculate_gain("relu"), 4)
    1.4142
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with U(a, b).

    >>> float(nn.init.uniform_(engine.empty(100), -1, 1).abs().max()) <= 1
    True
    """
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with N(mean, std^2).

    >>> nn.init.normal_(engine.empty(2, 2), std=0.02).shape
    gradserve.Size([2, 2])
    """
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None):
    """Fill with N(mean, std^2) restricted to [a, b] (bounds in absolute terms, as torch).

    torch 2.13's sampler, drawn where the tensor lives: normals redrawn outside [a, b] when
    that interval holds most of the mass, else uniform candidates accepted by the density;
    the rounds run beside the data (no round trip on a remote session).

    >>> x = nn.init.trunc_normal_(engine.empty(1000), std=1.0, a=-1.0, b=1.0)
    >>> float(x.abs().max()) <= 1.0
    True
    """
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The "
                      "distribution of values may be incorrect.", stacklevel=2)
    others, attrs = generator_inputs(generator, tensor, (), {"mean": float(mean), "std": float(std),
                                                  "low": float(a), "high": float(b)})
    with no_grad():
        return tensor._inplace("trunc_normal", *others, **attrs)


def constant_(tensor, val: float):
    """Fill with `val`. >>> nn.init.constant_(engine.empty(2), 0.5)
    tensor([0.5000, 0.5000])
    """
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor):
    """Fill with 0. >>> nn.init.zeros_(engine.empty(2))
    tensor([0., 0.])
    """
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill with 1. >>> nn.init.ones_(engine.empty(2))
    tensor([1., 1.])
    """
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).

    >>> nn.init.xavier_uniform_(engine.empty(3, 5)).shape
    gradserve.Size([3, 5])
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # torch computes the bound this way (the same rounding)
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot normal: N(0, gain^2 * 2 / (fan_in + fan_out)).

    >>> nn.init.xavier_normal_(engine.empty(3, 5)).shape
    gradserve.Size([3, 5])
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None):
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan) (gain from nonlinearity and a).

    >>> nn.init.kaiming_uniform_(engine.empty(4, 3), a=math.sqrt(5)).shape
    gradserve.Size([4, 3])
    """
    fan = _fan(tensor, mode)
    if fan == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std  # torch computes the bound this way (the same rounding)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None):
    """He normal: N(0, gain^2 / fan).

    >>> nn.init.kaiming_normal_(engine.empty(4, 3), nonlinearity="relu").shape
    gradserve.Size([4, 3])
    """
    fan = _fan(tensor, mode)
    if fan == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)
