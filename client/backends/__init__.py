"""gradserve.backends: torch.backends' switches that programs set, accepted.

`cudnn.benchmark`, `cudnn.deterministic`, `cudnn.enabled` and `cuda.matmul.allow_tf32` are
plain settings here (gradserve's kernels do not read them); `mps.is_available()` is False.

    >>> import gradserve.backends.cudnn as cudnn
    >>> cudnn.benchmark = True
    >>> gs.backends.mps.is_available()
    False
"""

from __future__ import annotations

from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
