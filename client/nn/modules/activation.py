"""gradserve.nn.modules.activation: as torch.nn.modules.activation, the classes of it that
gradserve.nn has (the very same classes), where torch scripts import them."""

from __future__ import annotations

from .._activation import GELU, LeakyReLU, LogSoftmax, SiLU, Softmax
from .._activation_more import (
    ELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LogSigmoid,
    Mish,
    PReLU,
    ReLU6,
    Softmin,
    Softplus,
)
from .._layers import ReLU, Sigmoid, Tanh
from .._rrelu import RReLU
from .._shrink_layers import (
    CELU,
    GLU,
    SELU,
    Hardshrink,
    Softshrink,
    Softsign,
    Tanhshrink,
    Threshold,
)
from .._transformer import MultiheadAttention

__all__ = ["CELU", "ELU", "GELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh",
    "LeakyReLU", "LogSigmoid", "LogSoftmax", "Mish", "MultiheadAttention", "PReLU", "RReLU",
    "ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid", "Softmax", "Softmin", "Softplus", "Softshrink",
    "Softsign", "Tanh", "Tanhshrink", "Threshold"]
