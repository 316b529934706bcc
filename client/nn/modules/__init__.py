"""gradserve.nn.modules: torch.nn.modules' layout, so `from gradserve.nn.modules import Module,
Linear` and `gradserve.nn.modules.loss._Loss` import as torch's do. Each submodule holds the
classes of its torch namesake that gradserve.nn has (the very same classes).

    >>> from gradserve.nn.modules.loss import _Loss
    >>> issubclass(nn.MSELoss, _Loss)
    True
"""

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
from .._containers import ModuleDict, ModuleList
from .._conv import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Conv1d, Conv2d, MaxPool1d, MaxPool2d
from .._layers import Dropout, Flatten, Identity, Linear, ReLU, Sequential, Sigmoid, Tanh
from .._loss import (
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
from .._loss_more import (
    CosineEmbeddingLoss,
    GaussianNLLLoss,
    MarginRankingLoss,
    MultiLabelSoftMarginLoss,
    PoissonNLLLoss,
    TripletMarginLoss,
)
from .._module import Module
from .._norm import BatchNorm1d, BatchNorm2d, Embedding, GroupNorm, LayerNorm
from .._params import Bilinear, ParameterDict, ParameterList
from .._rnn import GRU, LSTM
from .._rnn_cells import RNN, GRUCell, LSTMCell, RNNCell
from .._rrelu import RReLU
from .._shrink_layers import (
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
from .._spatial import (
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
from .._transformer import MultiheadAttention, TransformerEncoderLayer
from .._transformer_stack import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
)
from . import (  # noqa: F401  (torch's submodules)
    activation,
    batchnorm,
    container,
    conv,
    distance,
    dropout,
    flatten,
    fold,
    linear,
    loss,
    module,
    normalization,
    pixelshuffle,
    pooling,
    rnn,
    sparse,
    transformer,
    upsampling,
)

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AvgPool1d",
    "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Bilinear",
    "CELU", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "CosineEmbeddingLoss", "CosineSimilarity", "CrossEntropyLoss", "Dropout", "Dropout2d", "ELU",
    "Embedding", "Flatten", "Fold", "GELU", "GLU", "GRU", "GRUCell", "GaussianNLLLoss",
    "GroupNorm", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh", "HingeEmbeddingLoss",
    "HuberLoss", "Identity", "KLDivLoss", "L1Loss", "LSTM", "LSTMCell", "LayerNorm", "LeakyReLU",
    "Linear", "LogSigmoid", "LogSoftmax", "MSELoss", "MarginRankingLoss", "MaxPool1d",
    "MaxPool2d", "Mish", "Module", "ModuleDict", "ModuleList", "MultiLabelSoftMarginLoss",
    "MultiMarginLoss", "MultiheadAttention", "NLLLoss", "PReLU", "PairwiseDistance",
    "ParameterDict", "ParameterList", "PixelShuffle", "PixelUnshuffle", "PoissonNLLLoss", "RNN",
    "RNNCell", "RReLU", "ReLU", "ReLU6", "SELU", "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss",
    "SoftMarginLoss", "Softmax", "Softmin", "Softplus", "Softshrink", "Softsign", "Tanh",
    "Tanhshrink", "Threshold", "Transformer", "TransformerDecoder", "TransformerDecoderLayer",
    "TransformerEncoder", "TransformerEncoderLayer", "TripletMarginLoss", "Unfold", "Upsample"]
