"""gradserve.optim.lr_scheduler: learning-rate schedules with torch's formulas and calls.

A scheduler only rewrites `group["lr"]` (and, for OneCycleLR, the momentum) in its
optimizer's param groups: Python numbers, so scheduling costs no op and no round trip, on
any session. Call `scheduler.step()` after `optimizer.step()`, as in torch.

    >>> import gradserve.optim as optim
    >>> opt = optim.SGD(model.parameters(), lr=0.1)
    >>> sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    >>> for _ in range(3):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.05]
"""

from __future__ import annotations

from ._lr_base import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
from ._schedulers import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LinearLR,
    PolynomialLR,
    SequentialLR,
)

__all__ = [
    "ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
    "CyclicLR", "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR",
    "OneCycleLR", "PolynomialLR", "ReduceLROnPlateau", "SequentialLR", "StepLR",
]
