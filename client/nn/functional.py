"""Stateless neural-network functions (torch.nn.functional), over any gradserve tensor.

Every function here is written against the tensor API alone (methods and `_op`), so the same
call runs in-process on engine tensors and on a server for remote tensors. Where the engine
has a fused op (linear, the losses, dropout's mask) the function sends that one op, so a
remote call costs one op on the wire rather than the several its composition would.

    >>> from gradserve import engine
    >>> import gradserve.nn.functional as F
    >>> x = engine.tensor([[1., -2.]])
    >>> F.relu(x)
    tensor([[1., 0.]])
"""

from __future__ import annotations

import warnings

__all__ = [
    "cross_entropy", "dropout", "linear", "log_softmax", "mse_loss", "nll_loss", "relu",
    "sigmoid", "softmax", "tanh",
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
    """input @ weight.T + bias, as one fused op.

    >>> F.linear(engine.ones(1, 2), engine.ones(3, 2), engine.zeros(3))
    tensor([[2., 2., 2.]])
    """
    if bias is None:
        return input._op("linear", input, weight)
    return input._op("linear", input, weight, bias)


def mse_loss(input, target, reduction: str = "mean"):
    """Mean (or sum, or elementwise) squared error between input and target.

    >>> F.mse_loss(engine.tensor([1., 3.]), engine.tensor([0., 0.]))
    tensor(5.)
    """
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"Using a target size ({_size(target.shape)}) that is different to the input size "
            f"({_size(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.", UserWarning, stacklevel=2)
    return input._op("mse_loss", input, target, reduction=reduction)


def cross_entropy(input, target, weight=None, *, ignore_index: int = -100,
                  reduction: str = "mean"):
    """Softmax cross-entropy of logits `input` (N, C) against class indices `target` (N,).

    >>> F.cross_entropy(engine.zeros(2, 4), engine.tensor([0, 3]))
    tensor(1.3863)
    """
    _no_class_weight(weight)
    return input._op("cross_entropy", input, target, reduction=reduction,
                     ignore_index=int(ignore_index))


def nll_loss(input, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities `input` (N, C) at class indices `target`.

    >>> F.nll_loss(engine.tensor([[-1., -2.]]), engine.tensor([1]))
    tensor(2.)
    """
    _no_class_weight(weight)
    return input._op("nll_loss", input, target, reduction=reduction,
                     ignore_index=int(ignore_index))


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


def _no_class_weight(weight) -> None:
    if weight is not None:
        raise NotImplementedError("per-class loss weights are not supported yet; "
                                  "pass weight=None")


def _size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"
