"""gradserve.autograd.function: `Function` and its `FunctionCtx` (torch.autograd.function).

    >>> from gradserve.autograd.function import Function, FunctionCtx
"""

from __future__ import annotations

from gradserve.engine import Function, FunctionCtx

__all__ = ["Function", "FunctionCtx"]
