"""gradserve.optim.optimizer: the `Optimizer` base class, where torch programs import it.

    >>> from gradserve.optim.optimizer import Optimizer
"""

from __future__ import annotations

from ._optimizer import Optimizer

__all__ = ["Optimizer"]
