"""Stateless neural-network functions (torch.nn.functional), over any gradserve tensor.

Every function here is written against the tensor API alone (methods and `_op`), so the same
call runs in-process on engine tensors and on a server for remote tensors. Where the engine
has a fused op (linear, convolution, pooling, the norms, the losses, dropout's mask) the
function sends that one op, so a remote call costs one op on the wire rather than the several
its composition would. Convolution and pooling live in `_f_conv`, norms and lookups in
`_f_norm`, losses in `_f_loss` and attention in `_f_attention`; all are re-exported here.

    >>> from gradserve import engine
    >>> import gradserve.nn.functional as F
    >>> x = engine.tensor([[1., -2.]])
    >>> F.relu(x)
    tensor([[1., 0.]])
"""

from __future__ import annotations

import warnings

from gradserve.engine import InvalidArgumentError

from ._f_attention import scaled_dot_product_attention
from ._f_conv import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    max_pool1d,
    max_pool2d,
    pad,
)
from ._f_extra import (
    bilinear,
    hardsigmoid,
    hardswish,
    hardtanh,
    logsigmoid,
    mish,
    prelu,
    relu6,
    softmin,
)
from ._f_loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from ._f_loss_more import (
    cosine_embedding_loss,
    gaussian_nll_loss,
    margin_ranking_loss,
    multilabel_soft_margin_loss,
    poisson_nll_loss,
    triplet_margin_loss,
)
from ._f_misc import (
    adaptive_avg_pool1d,
    hinge_embedding_loss,
    instance_norm,
    multi_margin_loss,
    soft_margin_loss,
)
from ._f_norm import batch_norm, embedding, group_norm, layer_norm, one_hot
from ._f_shrink import (
    celu,
    glu,
    hardshrink,
    selu,
    softshrink,
    softsign,
    tanhshrink,
    threshold,
)
from ._f_similarity import cosine_similarity, dropout2d, normalize, pairwise_distance
from ._f_spatial import (
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    fold,
    interpolate,
    pixel_shuffle,
    pixel_unshuffle,
    unfold,
)
from ._mha import multi_head_attention_forward
from ._rrelu import rrelu, rrelu_

__all__ = [
    "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv1d", "conv2d", "cross_entropy", "dropout",
    "elu", "embedding", "gelu", "group_norm", "huber_loss", "kl_div", "l1_loss", "layer_norm",
    "leaky_relu", "linear", "log_softmax", "max_pool1d", "max_pool2d", "mse_loss", "nll_loss",
    "one_hot", "pad", "relu", "scaled_dot_product_attention", "sigmoid", "silu", "smooth_l1_loss",
    "softmax", "softplus", "tanh",
    "adaptive_max_pool2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "cosine_similarity", "dropout2d", "fold", "interpolate", "normalize", "pairwise_distance",
    "pixel_shuffle", "pixel_unshuffle", "unfold", "adaptive_max_pool1d",
    "bilinear", "cosine_embedding_loss", "gaussian_nll_loss", "hardsigmoid", "hardswish",
    "hardtanh", "logsigmoid", "margin_ranking_loss", "mish", "multilabel_soft_margin_loss",
    "poisson_nll_loss", "prelu", "relu6", "softmin", "triplet_margin_loss",
    "adaptive_avg_pool1d", "hinge_embedding_loss", "instance_norm", "multi_margin_loss",
    "soft_margin_loss",
    "celu", "glu", "hardshrink", "selu", "softshrink", "softsign", "tanhshrink", "threshold",
    "rrelu", "rrelu_", "multi_head_attention_forward",
]


def relu(input, inplace: bool = False):
    """max(input, 0) elementwise.

    >>> F.relu(engine.tensor([-1., 2.]))
    tensor([0., 2.])
    """
    return input.relu_() if inplace else input.relu()


def sigmoid(input):
    """1 / (1 + exp(-input)) elementwise.

    >>> F.sigmoid(engine.tensor([0.]))
    tensor([0.5000])
    """
    return input.sigmoid()


def tanh(input):
    """Hyperbolic tangent elementwise.

    >>> F.tanh(engine.tensor([0.]))
    tensor([0.])
    """
    return input.tanh()


def gelu(input, approximate: str = "none"):
    """x * Phi(x), Phi the standard normal CDF (exact, with erf), or torch's tanh form.

    >>> F.gelu(engine.tensor([-1., 0., 2.]))
    tensor([-0.1587,  0.0000,  1.9545])
    """
    return input._op("gelu", input, approximate=approximate)


def silu(input, inplace: bool = False):
    """x * sigmoid(x) (also called swish).

    >>> F.silu(engine.tensor([0., 1.]))
    tensor([0.0000, 0.7311])
    """
    out = input._op("silu", input)
    return input.copy_(out) if inplace else out


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x where x > 0, negative_slope * x elsewhere.

    >>> F.leaky_relu(engine.tensor([-2., 3.]), 0.1)
    tensor([-0.2000,  3.0000])
    """
    out = input._op("leaky_relu", input, negative_slope=float(negative_slope))
    return input.copy_(out) if inplace else out


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold.

    >>> F.softplus(engine.tensor([0., 30.]))
    tensor([ 0.6931, 30.0000])
    """
    return input._op("softplus", input, beta=float(beta), threshold=float(threshold))


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x where x > 0, alpha * (exp(x) - 1) elsewhere.

    >>> F.elu(engine.tensor([-1., 2.]))
    tensor([-0.6321,  2.0000])
    """
    out = input._op("elu", input, alpha=float(alpha))
    return input.copy_(out) if inplace else out


def _implicit_dim(name: str, ndim: int) -> int:
    # torch's legacy rule for a softmax called without dim, with torch's warning.
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim: int | None = None):
    """exp(input) normalised to sum to 1 along `dim`.

    >>> F.softmax(engine.tensor([0., 0.]), dim=0)
    tensor([0.5000, 0.5000])
    """
    if dim is None:
        dim = _implicit_dim("softmax", input.dim())
    return input.softmax(dim)


def log_softmax(input, dim: int | None = None):
    """log(softmax(input, dim)), computed stably.

    >>> F.log_softmax(engine.tensor([0., 0.]), dim=0)
    tensor([-0.6931, -0.6931])
    """
    if dim is None:
        dim = _implicit_dim("log_softmax", input.dim())
    return input.log_softmax(dim)


def linear(input, weight, bias=None):
    """input @ weight.T + bias, recorded as torch records it: `addmm(bias, x, weight.t())`
    (or `mm`) on a matrix, through views of the input otherwise, so grad_fn and
    next_functions are torch's (AddmmBackward0 over TBackward0, ...).

    >>> F.linear(engine.ones(1, 2), engine.ones(3, 2), engine.zeros(3))
    tensor([[2., 2., 2.]])
    """
    wt = weight.t()
    if len(input.shape) == 2:  # input.dim(), without its frame: per Linear
        return input.mm(wt) if bias is None else bias.addmm(input, wt)
    if input.dim() == 0:
        raise InvalidArgumentError("both arguments to linear need to be at least 1D, but they "
                                   f"are {input.dim()}D and {weight.dim()}D")
    lead, k = tuple(input.shape[:-1]), input.shape[-1]
    if bias is not None and input.is_contiguous():  # torch folds the batch into addmm
        return bias.addmm(input.view(-1, k), wt).view(*lead, wt.shape[-1])
    if bias is None and input.dim() == 1:
        return input.unsqueeze(0).mm(wt).squeeze(0)
    if bias is None and input.is_contiguous():  # torch's matmul: view, mm, _unsafe_view
        out = input.view(-1, k).mm(wt)
        return out._op("_unsafe_view", out, shape=lead + (wt.shape[-1],))
    out = input.matmul(wt)
    return out if bias is None else out + bias


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability p and scale the rest by 1/(1-p) while training.

    The mask comes from the random stream of wherever `input` lives (its session's
    generator for a remote tensor), so `manual_seed` there makes it reproducible.

    >>> F.dropout(engine.ones(4), p=0.5, training=False)
    tensor([1., 1., 1., 1.])
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    mask = input._op("dropout_mask", input, p=float(p))
    return input.mul_(mask) if inplace else input * mask
