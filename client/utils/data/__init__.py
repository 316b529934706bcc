"""gradserve.utils.data: torch.utils.data's datasets, samplers and DataLoader (num_workers=0).

A `TensorDataset` of a session's tensors is batched on the server: the order (a randperm
when shuffling) is made there and each batch is an index op, so no batch is uploaded again
and an epoch costs no round trip (a shuffle seeds its generator on the server from the seed
drawn there); shuffled orders are torch's after the same seed. Other
datasets are read item by item and collated as torch's `default_collate` does (tensors
stacked; numbers, numpy arrays, tuples and dicts as torch), the new tensors made on the
current session.

    >>> from gradserve.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(gs.arange(10.), gs.arange(10))
    >>> [y.tolist() for _, y in DataLoader(ds, batch_size=4)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
"""

from __future__ import annotations

from ._collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
)

__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset",
           "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "default_collate", "default_convert", "random_split"]
