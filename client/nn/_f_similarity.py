"""Functional normalize, cosine_similarity, pairwise_distance and dropout2d (re-exported by
gradserve.nn.functional), composed of existing ops with torch's formulas (so torch's eps
handling and gradients).
"""

from __future__ import annotations

import warnings

import numpy as np
from gradserve.engine import no_grad
from gradserve.engine.seam import write_out


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p over dim, eps).

    >>> F.normalize(engine.tensor([[3., 4.]]))
    tensor([[0.6000, 0.8000]])
    """
    norm = input.norm(p, dim, keepdim=True)
    denom = norm._op("clamp_min", norm, bound=float(eps)).expand_as(input)
    result = input / denom
    if out is not None:
        return write_out(out, result, "normalize")
    return result


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """The cosine of the angle between x1 and x2 along dim, each norm clamped below by eps
    (torch's formula: x1 / max(||x1||, eps) . x2 / max(||x2||, eps)).

    >>> F.cosine_similarity(engine.tensor([[1., 0.]]), engine.tensor([[1., 1.]]))
    tensor([0.7071])
    """
    if tuple(x1.shape) != tuple(x2.shape):  # aten's expand_outplace expands both
        try:
            shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
        except ValueError:
            pass  # the product below raises torch's error
        else:
            x1, x2 = x1.expand(shape), x2.expand(shape)
    # aten clamps copies of the norms without a gradient through the clamp
    n1 = x1.norm(2, dim, keepdim=True).clone()
    n2 = x2.norm(2, dim, keepdim=True).clone()
    with no_grad():
        n1.clamp_(min=eps)
        n2.clamp_(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim (aten's at::norm: NormBackward1).

    >>> F.pairwise_distance(engine.tensor([[0., 0.]]), engine.tensor([[3., 4.]]))
    tensor([5.0000])
    """
    diff = x1 - x2
    diff = diff._op("add_scalar", diff, other=float(eps))
    dim = max(x1.dim(), x2.dim()) - 1  # aten's: the innermost dim of the broadcast
    return diff._op("norm_dim", diff, p=float(p), dim=(dim,), keepdim=bool(keepdim))


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) (or (C, H, W)) with probability p, scaling the rest
    by 1/(1-p): one draw per channel, from the random stream where `input` lives.

    >>> F.dropout2d(engine.ones(1, 2, 2, 2), training=False).shape
    (1, 2, 2, 2)
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.dim() not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.dim()}-D input to dropout2d, which is "
                      "deprecated and will result in an error in a future release. To retain "
                      "the behavior and silence this warning, please use dropout instead. "
                      "Note that dropout2d exists to provide channel-wise dropout on inputs "
                      "with 2 spatial dimensions, a channel dimension, and an optional batch "
                      "dimension (i.e. 3D or 4D inputs).", UserWarning, stacklevel=2)
    if not training or p == 0.0:
        return input
    lead = 2 if input.dim() == 4 else 1
    mask = input._op("dropout_mask", input.new_zeros(
        *input.shape[:lead], *([1] * (input.dim() - lead))), p=float(p))
    return input.mul_(mask) if inplace else input * mask
