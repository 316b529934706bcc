"""Functional losses (re-exported by gradserve.nn.functional).

Where the engine has a fused loss op the function sends that one op; class weights, label
smoothing, probability targets and K-dimensional inputs of cross_entropy are composed from
the fused per-element loss and ordinary tensor ops, with torch's normalisation.
"""

from __future__ import annotations

import warnings

from gradserve.engine import AutogradError, InvalidArgumentError, is_grad_enabled

_REDUCTIONS = ("mean", "sum", "none")


class ReductionError(InvalidArgumentError, ValueError):
    """An unknown `reduction`: a ValueError as in torch, and a gradserve error."""


def _reduction(size_average, reduce, reduction: str) -> str:
    """torch's legacy size_average/reduce flags, mapped to `reduction` with its warning."""
    if size_average is not None or reduce is not None:
        warnings.warn("size_average and reduce args will be deprecated, please use "
                      "reduction='mean' instead.", UserWarning, stacklevel=3)
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else "mean" if size_average else "sum"
    if reduction not in _REDUCTIONS:
        raise ReductionError(f"{reduction} is not a valid value for reduction")
    return reduction


def _same_size(input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({_size(target.shape)}) that is different to the input size "
            f"({_size(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.", UserWarning, stacklevel=3)


def _size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"


def _reduce(losses, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Mean (or sum, or elementwise) squared error between input and target.

    >>> F.mse_loss(engine.tensor([1., 3.]), engine.tensor([0., 0.]))
    tensor(5.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    _same_size(input, target)
    return input._op("mse_loss", input, target, reduction=reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Mean (or sum, or elementwise) absolute error.

    >>> F.l1_loss(engine.tensor([1., -3.]), engine.zeros(2))
    tensor(2.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    _same_size(input, target)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    """Squared error (halved, over beta) below |error| = beta, absolute error above.

    >>> F.smooth_l1_loss(engine.tensor([0.5, 3.]), engine.zeros(2))
    tensor(1.3125)
    """
    reduction = _reduction(size_average, reduce, reduction)
    _same_size(input, target)
    if beta == 0.0:  # torch's own shortcut: exactly the L1 loss
        return l1_loss(input, target, reduction=reduction)
    return input._op("smooth_l1_loss", input, target, reduction=reduction, beta=float(beta))


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """Squared error (halved) below |error| = delta, delta * (|error| - delta / 2) above.

    >>> F.huber_loss(engine.tensor([0.5, 3.]), engine.zeros(2))
    tensor(1.3125)
    """
    _reduction(None, None, reduction)
    _same_size(input, target)
    if weight is not None:
        return _reduce(input._op("huber_loss", input, target, reduction="none",
                                 delta=float(delta)) * weight, reduction)
    return input._op("huber_loss", input, target, reduction=reduction, delta=float(delta))


def _no_grad_argument(fn: str, **args) -> None:
    """torch's refusal of a weight that requires grad (its kernel has no derivative for it)."""
    for name, t in args.items():
        if t is not None and getattr(t, "requires_grad", False) and is_grad_enabled():
            raise AutogradError(f"The function '{fn}' is not differentiable with respect to "
                                f"argument '{name}'. This input cannot have requires_grad True.")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """-w (y log p + (1 - y) log(1 - p)) for probabilities p in [0, 1] (logs floored at -100).

    >>> F.binary_cross_entropy(engine.tensor([0.5, 0.5]), engine.tensor([1., 0.]))
    tensor(0.6931)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({_size(target.shape)}) that is different to "
                         f"the input size ({_size(input.shape)}) is deprecated. Please ensure "
                         "they have the same size.")
    _no_grad_argument("binary_cross_entropy", weight=weight)
    return input._op("binary_cross_entropy", input, target, 1.0 if weight is None else weight,
                     reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction: str = "mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target), computed stably from the logits;
    pos_weight scales the positive term (one weight per class, broadcast over the last dim).

    >>> F.binary_cross_entropy_with_logits(engine.zeros(2), engine.tensor([1., 0.]))
    tensor(0.6931)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({_size(target.shape)}) must be the same as input size "
                         f"({_size(input.shape)})")
    _no_grad_argument("binary_cross_entropy_with_logits", weight=weight, pos_weight=pos_weight)
    return input._op("binary_cross_entropy_with_logits", input, target,
                     1.0 if weight is None else weight,
                     1.0 if pos_weight is None else pos_weight, reduction=reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False):
    """KL divergence with `input` as log-probabilities: target * (log target - input)
    (0 where target is 0). reduction="batchmean" divides the sum by the batch size, which
    is the mathematically right KL; "mean" divides by every element, with torch's warning.

    >>> F.kl_div(engine.tensor([-1., -1.]), engine.tensor([0.5, 0.5]), reduction="sum")
    tensor(0.3069)
    """
    if reduction != "batchmean":
        reduction = _reduction(size_average, reduce, reduction)
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", UserWarning, stacklevel=2)
    if log_target:
        losses = target.exp() * (target - input)
    else:
        # aten's composition: xlogy(target, target) - target * input (so torch's nan gradient
        # for a target that requires one, at its zeros)
        losses = target._op("xlogy", target, target) - target * input
    if reduction == "batchmean":
        return losses.sum() / (input.shape[0] if input.dim() else 1)
    return _reduce(losses, reduction)


# -- class-index losses -------------------------------------------------------------------------
def _flat_classes(input, target):
    """(scores as (M, C), target as (M,), the shape per-element losses take) for inputs
    (C,), (N, C) or (N, C, d1, ...)."""
    if input.dim() <= 2:
        return input, target, tuple(target.shape)
    n, c = input.shape[:2]
    expected = (n,) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise InvalidArgumentError(f"Expected target size {list(expected)}, got "
                                   f"{list(target.shape)}")
    moved = input.permute(0, *range(2, input.dim()), 1).reshape(-1, c)
    return moved, target.reshape(-1), expected


def _class_weights(logp, target, weight, ignore_index):
    """Per-row weight: weight[target], 0 on ignored rows (1 without class weights)."""
    keep = target != ignore_index
    if weight is None:
        return keep.to(logp.dtype)
    safe = target._op("where", keep, target, 0)
    return weight[safe] * keep


def _nll_rows(logp, target, weight, ignore_index, reduction, out_shape):
    """nll over rows of (M, C) log-probabilities, torch's weighted mean included."""
    picked = logp._op("nll_loss", logp, target, reduction="none", ignore_index=ignore_index)
    w = _class_weights(logp, target, weight, ignore_index)
    losses = picked * w if weight is not None else picked
    if reduction == "none":
        return losses.reshape(out_shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / w.sum()


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities `input` (N, C, ...) at class indices;
    with class weights the mean divides by the weights of the rows counted.

    >>> F.nll_loss(engine.tensor([[-1., -2.]]), engine.tensor([1]))
    tensor(2.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    ignore_index = int(ignore_index)
    if weight is None and input.dim() <= 2:
        return input._op("nll_loss", input, target, reduction=reduction,
                         ignore_index=ignore_index)
    logp, flat_target, out_shape = _flat_classes(input, target)
    return _nll_rows(logp, flat_target, weight, ignore_index, reduction, out_shape)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
    """Softmax cross-entropy of logits (N, C, ...) against class indices or class
    probabilities, with torch's class weights, ignore_index and label smoothing.

    >>> F.cross_entropy(engine.zeros(2, 4), engine.tensor([0, 3]))
    tensor(1.3863)
    """
    reduction = _reduction(size_average, reduce, reduction)
    ignore_index = int(ignore_index)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    ndim = len(input.shape)  # input.dim(), without its frame: per step
    classes = input.shape[1] if ndim > 1 else input.shape[0]
    if target.dtype.is_floating_point and tuple(target.shape) == tuple(input.shape):
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing, classes)
    if weight is None and label_smoothing == 0.0 and ndim <= 2:
        # torch's graph: nll_loss over log_softmax, which keeps its output, not the logits
        # (an in-place change to the logits afterwards is no error), next_functions as torch's
        logp = input.log_softmax(ndim - 1)
        return logp._op("nll_loss", logp, target, reduction=reduction,
                        ignore_index=ignore_index)
    logp = input.log_softmax(1 if ndim > 1 else 0)
    rows, flat_target, out_shape = _flat_classes(logp, target)
    nll = _nll_rows(rows, flat_target, weight, ignore_index, reduction, out_shape)
    if label_smoothing == 0.0:
        return nll
    keep = flat_target != ignore_index
    spread = rows * weight if weight is not None else rows
    smooth = -(spread.sum(-1)) * keep
    if reduction == "none":
        smooth = smooth.reshape(out_shape)
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        smooth = smooth.sum() / _class_weights(rows, flat_target, weight, ignore_index).sum()
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / classes)


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing, classes):
    """Cross-entropy against class probabilities (target shaped like input)."""
    if tuple(target.shape) != tuple(input.shape):
        raise InvalidArgumentError(f"Expected target size {list(input.shape)}, got "
                                   f"{list(target.shape)}")
    dim = 1 if input.dim() > 1 else 0
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    terms = input.log_softmax(dim) * target
    if weight is not None:
        terms = terms * weight.reshape((classes,) + (1,) * (input.dim() - dim - 1))
    losses = -terms.sum(dim)
    if reduction == "mean":
        return losses.sum() / (losses.numel() if input.dim() > 1 else 1)
    return _reduce(losses, reduction)
