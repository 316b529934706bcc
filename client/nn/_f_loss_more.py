"""More losses of torch.nn.functional, with torch's formulas (aten's, where torch's are
C++): margin_ranking_loss cosine_embedding_loss triplet_margin_loss poisson_nll_loss
gaussian_nll_loss multilabel_soft_margin_loss."""

from __future__ import annotations

import math

from gradserve.engine import InvalidArgumentError, no_grad, where

from ._f_extra import logsigmoid
from ._f_loss import _reduce, _reduction
from ._f_similarity import pairwise_distance


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean"):
    """max(0, -y * (x1 - x2) + margin). >>> F.margin_ranking_loss(
    ...     engine.tensor([1., 2.]), engine.tensor([2., 1.]), engine.tensor([1., 1.]))
    tensor(0.5000)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same "
                           f"dimension but got sizes: input1: {input1.shape}, input2: "
                           f"{input2.shape}, target: {target.shape} ")
    z = -target * (input1 - input2)
    z = z._op("add_scalar", z, other=float(margin))
    return _reduce(z._op("clamp_min", z, bound=0), reduction)


def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean"):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1.

    >>> F.cosine_embedding_loss(engine.tensor([[1., 0.]]), engine.tensor([[0., 1.]]),
    ...                         engine.tensor([1.]))
    tensor(1.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if input1.dim() not in (1, 2):
        raise InvalidArgumentError(f"1D target tensor expects 2D input tensors, but found "
                                   f"inputs with sizes {list(input1.shape)} and "
                                   f"{list(input2.shape)}.")
    dim = input1.dim() - 1
    eps = 1e-12  # aten's EPSILON
    prod = (input1 * input2).sum(dim)
    mag1, mag2 = (input1 * input1).sum(dim), (input2 * input2).sum(dim)
    norms = (mag1._op("add_scalar", mag1, other=eps) * mag2._op("add_scalar", mag2, other=eps))
    cos = prod / norms.sqrt()
    zeros = cos.new_zeros(())
    # aten's `1 - cos` subtracts from a wrapped number (SubBackward0), `cos - margin` is
    # sub(Tensor, Scalar) (SubBackward1)
    pos = where(target == 1, cos.new_ones(()) - cos, zeros)
    shifted = cos._op("sub_scalar", cos, other=float(margin))
    neg = where(target == -1, shifted._op("clamp_min", shifted, bound=0), zeros)
    return _reduce(pos + neg, reduction)


def _pairwise_distance(x1, x2, p: float, eps: float):
    return pairwise_distance(x1, x2, p, eps)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """max(0, margin + d(a, p) - d(a, n)), d the p-norm distance (of x1 - x2 + eps).

    >>> F.triplet_margin_loss(engine.zeros(1, 2), engine.zeros(1, 2), engine.ones(1, 2))
    tensor(0.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    dims = (anchor.dim(), positive.dim(), negative.dim())
    if len(set(dims)) != 1:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have "
                           f"the same number of dimensions, but got: anchor {dims[0]}D, "
                           f"positive {dims[1]}D, and negative {dims[2]}D inputs")
    d_pos = _pairwise_distance(anchor, positive, p, eps)
    d_neg = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(_pairwise_distance(positive, negative, p, eps))
    z = d_pos._op("add_scalar", d_pos, other=float(margin)) - d_neg  # aten's margin + d_pos - d_neg
    return _reduce(z._op("clamp_min", z, bound=0), reduction)


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None,
                     reduction: str = "mean"):
    """Negative log likelihood of target ~ Poisson(input): exp(x) - y * x (log_input), else
    x - y * log(x + eps); `full` adds Stirling's term where y > 1.

    >>> F.poisson_nll_loss(engine.tensor([0.]), engine.tensor([1.]))
    tensor(1.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        stirling = target * target.log() - target + 0.5 * (2 * math.pi * target).log()
        loss = loss + stirling.masked_fill(target <= 1, 0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean"):
    """Negative log likelihood of target ~ N(input, var): 0.5 * (log(var) + (x - y)^2 /
    var), var clamped to eps (without a gradient through the clamp, as torch). Checking that
    var has no negative entry waits for its values on a remote session, as torch's check
    waits for a GPU.

    >>> F.gaussian_nll_loss(engine.zeros(2), engine.zeros(2), engine.ones(2))
    tensor(0.)
    """
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * input.new_ones(input.shape)
    elif (var < 0).any().item():
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (input.dim() == var.dim() and sum(
                y for x, y in zip(input.shape, var.shape, strict=True) if x != y) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = var.clone()
    with no_grad():
        var.clamp_(min=eps)
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    """Per-class binary cross-entropy on logits, averaged over the classes (last dim).

    >>> F.multilabel_soft_margin_loss(engine.zeros(1, 2), engine.tensor([[1., 0.]]))
    tensor(0.6931)
    """
    reduction = _reduction(size_average, reduce, reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = input.dim() - 1
    loss = loss.sum(class_dim) / input.shape[class_dim]
    return _reduce(loss, reduction)
