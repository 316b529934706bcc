"""gradserve.nn: layers, losses and the Module container, for engine and remote tensors.

A module's parameters live where its `session=` says: in-process (the default, or
`session=engine`) or on a remote session. The layers only call the tensor API, so the same
model code trains either way.

    >>> import gradserve.nn as nn
    >>> from gradserve import engine
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> loss = nn.CrossEntropyLoss()(model(engine.randn(4, 2)), engine.tensor([0, 1, 2, 0]))
    >>> loss.backward()
    >>> model[0].weight.grad.shape
    (8, 2)
"""

from . import functional
from ._layers import Dropout, Linear, ReLU, Sequential, Sigmoid, Tanh
from ._loss import CrossEntropyLoss, MSELoss, NLLLoss
from ._module import Module, Parameter

__all__ = [
    "CrossEntropyLoss", "Dropout", "Linear", "MSELoss", "Module", "NLLLoss", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Tanh", "functional",
]
