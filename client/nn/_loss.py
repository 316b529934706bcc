"""Loss modules: thin holders of the options of the matching functional loss."""

from __future__ import annotations

from . import functional as F
from ._module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        self.reduction = reduction


class MSELoss(_Loss):
    """Mean squared error. >>> nn.MSELoss()(engine.tensor([1., 3.]), engine.zeros(2))
    tensor(5.)
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class _ClassLoss(_Loss):
    """A loss of scores against class indices; `_loss` is its functional form."""

    def __init__(self, weight=None, *, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        F._no_class_weight(weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return type(self)._loss(input, target, ignore_index=self.ignore_index,
                                reduction=self.reduction)


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy of logits against class indices.

    >>> nn.CrossEntropyLoss()(engine.zeros(2, 4), engine.tensor([0, 3]))
    tensor(1.3863)
    """

    _loss = staticmethod(F.cross_entropy)


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of log-probabilities at class indices.

    >>> nn.NLLLoss()(engine.tensor([[-1., -2.]]), engine.tensor([1]))
    tensor(2.)
    """

    _loss = staticmethod(F.nll_loss)
