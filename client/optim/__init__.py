"""gradserve.optim: SGD and Adam, updating parameters where they live (engine or server).

    >>> import gradserve.nn as nn, gradserve.optim as optim
    >>> model = nn.Linear(3, 1)
    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loss = model(engine.randn(8, 3)).pow(2).mean()
    >>> loss.backward(); opt.step(); opt.zero_grad()
"""

from ._adam import Adam
from ._optimizer import Optimizer, zeros_like
from ._sgd import SGD

__all__ = ["SGD", "Adam", "Optimizer", "zeros_like"]
