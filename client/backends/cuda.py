"""gradserve.backends.cuda: torch's `backends.cuda.matmul.allow_tf32` and friends, accepted
(gradserve's matmuls follow cupy's settings)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

matmul = SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                         allow_bf16_reduced_precision_reduction=True)


def is_built() -> bool:
    """Whether gradserve can use CUDA here (cupy installed)."""
    return importlib.util.find_spec("cupy") is not None
