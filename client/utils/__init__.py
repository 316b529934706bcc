"""gradserve.utils: `gradserve.utils.data` (datasets and the DataLoader), as torch.utils.

    >>> from gradserve.utils.data import DataLoader, TensorDataset
"""

from __future__ import annotations

from . import data

__all__ = ["data"]
