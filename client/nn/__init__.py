"""gradserve.nn: layers, losses and the Module container, for engine and remote tensors.

A module's parameters live where its `session=` says: in-process (the default, or
`session=engine`) or on a remote session. The layers only call the tensor API, so the same
model code trains either way.

    >>> import gradserve.nn as nn
    >>> from gradserve import engine
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> loss = nn.CrossEntropyLoss()(model(engine.randn(4, 2)), engine.tensor([0, 1, 2, 0]))
    >>> loss.backward()
    >>> model[0].weight.grad.shape
    gradserve.Size([8, 2])
"""

from . import functional, init, modules, parameter, utils
from ._activation import GELU, LeakyReLU, LogSoftmax, SiLU, Softmax
from ._activation_more import (
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
from ._containers import ModuleDict, ModuleList
from ._conv import (
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    MaxPool1d,
    MaxPool2d,
)
from ._layers import Dropout, Flatten, Identity, Linear, ReLU, Sequential, Sigmoid, Tanh
from ._loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from ._loss_more import (
    CosineEmbeddingLoss,
    GaussianNLLLoss,
    MarginRankingLoss,
    MultiLabelSoftMarginLoss,
    PoissonNLLLoss,
    TripletMarginLoss,
)
from ._module import Module
from ._norm import BatchNorm1d, BatchNorm2d, Embedding, GroupNorm, LayerNorm
from ._params import Bilinear, ParameterDict, ParameterList
from ._rnn import GRU, LSTM
from ._rnn_cells import RNN, GRUCell, LSTMCell, RNNCell
from ._rrelu import RReLU
from ._shrink_layers import (
    CELU,
    GLU,
    SELU,
    Hardshrink,
    HingeEmbeddingLoss,
    MultiMarginLoss,
    SoftMarginLoss,
    Softshrink,
    Softsign,
    Tanhshrink,
    Threshold,
)
from ._spatial import (
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    CosineSimilarity,
    Dropout2d,
    Fold,
    PairwiseDistance,
    PixelShuffle,
    PixelUnshuffle,
    Unfold,
    Upsample,
)
from ._transformer import MultiheadAttention, TransformerEncoderLayer
from ._transformer_stack import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
)
from .parameter import Parameter

__all__ = [
    "GRU", "LSTM", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss",
    "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding",
    "Flatten", "GELU", "GroupNorm", "HuberLoss", "Identity", "KLDivLoss", "L1Loss", "LayerNorm",
    "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "MaxPool1d", "MaxPool2d", "Module",
    "ModuleDict", "ModuleList", "MultiheadAttention", "NLLLoss", "Parameter", "ReLU",
    "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Tanh", "TransformerEncoderLayer",
    "functional", "init", "modules", "parameter", "utils",
    "ELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LogSigmoid", "Mish", "PReLU", "ReLU6",
    "Softmin", "Softplus", "CELU", "GLU", "SELU", "Hardshrink", "HingeEmbeddingLoss",
    "MultiMarginLoss", "Softshrink", "SoftMarginLoss", "Softsign", "Tanhshrink", "Threshold",
    "CosineEmbeddingLoss", "GaussianNLLLoss", "MarginRankingLoss",
    "MultiLabelSoftMarginLoss", "PoissonNLLLoss", "TripletMarginLoss", "Bilinear",
    "ParameterDict", "ParameterList", "RNN", "GRUCell", "LSTMCell", "RNNCell", "Transformer",
    "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "CosineSimilarity",
    "Dropout2d", "Fold", "PairwiseDistance", "PixelShuffle", "PixelUnshuffle", "Unfold",
    "Upsample", "RReLU",
]
