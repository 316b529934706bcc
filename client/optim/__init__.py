"""gradserve.optim: optimizers and learning-rate schedules, updating parameters where they
live (engine or server). On a remote session a step is buffered ops only: no round trip.

    >>> import gradserve.nn as nn, gradserve.optim as optim
    >>> model = nn.Linear(3, 1)
    >>> opt = optim.AdamW(model.parameters(), lr=0.01)
    >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    >>> loss = model(engine.randn(8, 3)).pow(2).mean()
    >>> loss.backward(); opt.step(); sched.step(); opt.zero_grad()
"""

from . import lr_scheduler, optimizer
from ._adam import Adam, AdamW
from ._adaptive import Adadelta, Adamax, NAdam, RAdam
from ._lbfgs import LBFGS
from ._optimizer import Optimizer, zeros_like
from ._rmsprop import Adagrad, RMSprop
from ._sgd import SGD

__all__ = ["LBFGS", "SGD", "NAdam", "RAdam", "Adadelta", "Adagrad", "Adam", "Adamax", "AdamW",
           "Optimizer", "RMSprop", "lr_scheduler", "optimizer", "zeros_like"]
