"""gradserve.autograd: torch.autograd for engine tensors and remote tensors alike.

A module, so that torch programs' imports work unchanged: `import gradserve.autograd`,
`from gradserve.autograd import Variable, Function, grad`, `from gradserve.autograd.functional
import jacobian`.

    >>> from gradserve.autograd import Variable, grad
    >>> x = Variable(gs.tensor(3.0), requires_grad=True)
    >>> grad(x * x, x)
    (tensor(6.),)
"""

from __future__ import annotations

from gradserve._autograd import backward, grad
from gradserve.engine import (
    Function,
    detect_anomaly,
    enable_grad,
    no_grad,
    set_detect_anomaly,
    set_grad_enabled,
)

from . import function, functional
from ._variable import Variable

__all__ = ["Function", "Variable", "backward", "detect_anomaly", "enable_grad", "function",
           "functional", "grad", "no_grad", "set_detect_anomaly", "set_grad_enabled"]
