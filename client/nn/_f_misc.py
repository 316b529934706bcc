"""torch.nn.functional's instance_norm, adaptive_avg_pool1d, hinge_embedding_loss,
soft_margin_loss and multi_margin_loss, composed as torch composes them (instance_norm:
batch_norm over a (1, N*C, ...) view; adaptive_avg_pool1d: the 2-D pool between an unsqueeze
and a squeeze); the two margin losses are compositions where torch has one kernel.

    >>> F.hinge_embedding_loss(engine.tensor([0.3, 2.0]), engine.tensor([1.0, -1.0]))
    tensor(0.1500)
"""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError, no_grad, where

from ._f_conv import adaptive_avg_pool2d
from ._f_loss import _no_grad_argument, _reduce, _reduction, _size
from ._f_norm import batch_norm


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Normalise each (sample, channel) over its spatial dims; running statistics, when
    given, are updated with the mean over the batch of each sample's statistics."""
    if use_input_stats:
        spatial = 1
        for n in input.shape[2:]:
            spatial *= n
        if spatial == 1:
            raise ValueError("Expected more than 1 spatial element when training, got input "
                             f"size {_size(input.shape)}")
    elif running_mean is None or running_var is None:
        raise InvalidArgumentError("Expected running_mean and running_var to be defined when "
                                   "use_input_stats is false")
    b, c = input.shape[0], input.shape[1]
    weight_ = None if weight is None else weight.repeat(b)
    bias_ = None if bias is None else bias.repeat(b)
    mean_ = None if running_mean is None else running_mean.repeat(b)
    var_ = None if running_var is None else running_var.repeat(b)
    flat = input.reshape(1, b * c, *input.shape[2:])
    out = batch_norm(flat, mean_, var_, weight_, bias_, bool(use_input_stats), momentum, eps)
    if use_input_stats:
        with no_grad():
            if running_mean is not None:
                running_mean.copy_(mean_.view(b, c).mean(0))
            if running_var is not None:
                running_var.copy_(var_.view(b, c).mean(0))
    return out.view(*input.shape)


def adaptive_avg_pool1d(input, output_size):
    """Mean over windows chosen so that the last dim becomes `output_size`."""
    if input.dim() not in (2, 3):
        raise InvalidArgumentError(
            f"Expected 2 to 3 dimensions, but got {input.dim()}-dimensional tensor for argument "
            "#1 'self' (while checking arguments for adaptive_avg_pool1d)")
    if not isinstance(output_size, int):
        (output_size,) = output_size
    out = adaptive_avg_pool2d(input.unsqueeze(-2), (1, int(output_size)))
    return out.squeeze(-2)


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """x where target is 1, max(0, margin - x) where target is -1 (torch's composition)."""
    reduction = _reduction(size_average, reduce, reduction)
    zeros = input.new_zeros(input.shape)  # aten's zeros_like: no edge
    shifted = input.new_full((), margin) - input  # a wrapped number minus a tensor: SubBackward0
    margin_clamp = shifted._op("clamp_min", shifted, bound=0)
    output = where(target != 1, margin_clamp, zeros) + where(target != -1, input, zeros)
    return _reduce(output, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """log(1 + exp(-target * input)), reduced: torch's one SoftMarginLossBackward0 node."""
    reduction = _reduction(size_average, reduce, reduction)
    _no_grad_argument("soft_margin_loss", target=target)
    return input._op("soft_margin_loss", input, target, reduction=reduction)


def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None,
                      size_average=None, reduce=None, reduction: str = "mean"):
    """Per sample, sum over the wrong classes i of max(0, margin - x[y] + x[i])^p (times
    weight[y]), over the number of classes: torch's one MultiMarginLossBackward0 node."""
    reduction = _reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None:
        if input.dim() > 0 and (weight.dim() != 1 or weight.shape[0] != input.shape[-1]):
            raise InvalidArgumentError(f"inconsistent weight size, expected "
                                       f"{input.shape[-1]} but got {list(weight.shape)}")
        _no_grad_argument("multi_margin_loss", weight=weight)
    return input._op("multi_margin_loss", input, target, 1.0 if weight is None else weight,
                     p=int(p), margin=float(margin), reduction=reduction)
