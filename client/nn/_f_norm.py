"""Functional normalisation and lookups (re-exported by gradserve.nn.functional)."""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError, no_grad

from .._default import new_like


def _affine(weight, bias, like, n):
    """(weight, bias) as the fused ops take them: both; one alone gets its neutral partner
    made next to `like`, neither is the numbers (1, 0)."""
    if weight is None and bias is None:
        return (1.0, 0.0)  # the neutral numbers: torch's node has None edges for both
    if weight is None:
        weight = new_like(like, "ones", *n)
    if bias is None:
        bias = new_like(like, "zeros", *n)
    return (weight, bias)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) of input.

    Training: with the batch's statistics, and the running ones (when given) updated in place
    as torch does, `running = (1 - momentum) * running + momentum * batch` with the unbiased
    batch variance. Evaluation: with the running statistics.

    >>> x = engine.tensor([[1., 2.], [3., 6.]])
    >>> F.batch_norm(x, None, None, training=True, eps=0.0)
    tensor([[-1., -1.],
            [ 1.,  1.]])
    """
    channels = input.shape[1] if input.dim() > 1 else 0
    params = _affine(weight, bias, input, (channels,))
    if training or running_mean is None or running_var is None:
        out, mean, var = input._op("batch_norm", input, *params, eps=float(eps))
        if training and running_mean is not None and running_var is not None:
            with no_grad():
                m = 0.0 if momentum is None else float(momentum)
                running_mean.mul_(1 - m).add_(mean * m)
                running_var.mul_(1 - m).add_(var * m)
        return out
    return input._op("batch_norm_eval", input, *params, running_mean, running_var,
                     eps=float(eps))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last len(normalized_shape) dims, then scale and shift.

    >>> F.layer_norm(engine.tensor([[1., 3.]]), (2,), eps=0.0)
    tensor([[-1.,  1.]])
    """
    shape = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(
        int(n) for n in normalized_shape)
    if tuple(input.shape[input.dim() - len(shape):]) != shape:
        raise InvalidArgumentError(
            f"Given normalized_shape={list(shape)}, expected input with shape [*, "
            f"{', '.join(map(str, shape))}], but got input of size{list(input.shape)}")
    params = _affine(weight, bias, input, shape)
    return input._op("layer_norm", input, *params, normalized_ndim=len(shape), eps=float(eps))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise (N, C, *) over groups of C / num_groups channels, then scale per channel.

    >>> F.group_norm(engine.tensor([[[1.], [3.]]]), 1, eps=0.0)
    tensor([[[-1.],
             [ 1.]]])
    """
    params = _affine(weight, bias, input, (input.shape[1],))
    return input._op("group_norm", input, *params, num_groups=int(num_groups), eps=float(eps))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of `weight` at the integer indices `input`; padding_idx's row gets no gradient.

    With max_norm, the rows looked up are first rescaled in place to norm <= max_norm, as
    torch does.

    >>> F.embedding(engine.tensor([1, 0]), engine.tensor([[0., 1.], [2., 3.]]))
    tensor([[2., 3.],
            [0., 1.]])
    """
    if scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: scale_grad_by_freq and sparse are not supported")
    rows = weight.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise InvalidArgumentError("Padding_idx must be within num_embeddings")
        padding_idx = int(padding_idx) % rows
    if max_norm is not None:
        _renorm_rows(weight, input, float(max_norm), float(norm_type))
    return weight._op("embedding", weight, input, padding_idx=padding_idx)


def _renorm_rows(weight, input, max_norm: float, norm_type: float) -> None:
    """torch's embedding_renorm_: rows read by `input` with norm above max_norm scaled down,
    in place and outside autograd (rows not read are left alone)."""
    with no_grad():
        rows = weight._op("embedding", weight, input.reshape(-1))
        norms = (rows.abs() ** norm_type).sum(-1, keepdim=True) ** (1.0 / norm_type)
        scale = ((norms > max_norm) * (max_norm / (norms + 1e-7) - 1) + 1)
        picked = weight._op("embedding_grad", rows * scale - rows, input.reshape(-1),
                            num_weights=weight.shape[0], padding_idx=None)
        counts = weight._op("embedding_grad", rows * 0 + 1, input.reshape(-1),
                            num_weights=weight.shape[0], padding_idx=None)
        # a row read k times got k copies of its change summed: divide them back out
        weight.add_(picked / counts.clamp(min=1))


def one_hot(tensor, num_classes: int = -1):
    """Integer class indices as one-hot rows (int64). num_classes=-1 takes max + 1, which
    for a remote tensor costs one round trip, as the shape depends on the data.

    >>> F.one_hot(engine.tensor([0, 2]), 3)
    tensor([[1, 0, 0],
            [0, 0, 1]])
    """
    if num_classes < 0:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    return tensor._op("one_hot", tensor, num_classes=int(num_classes))
