"""Datasets as torch.utils.data's: map-style `Dataset`, `TensorDataset`, `Subset`,
`ConcatDataset`, `IterableDataset`, and `random_split`."""

from __future__ import annotations

import bisect
import itertools
import math
import warnings

from .sampler import _gen_home


class Dataset:
    """A map-style dataset: `__getitem__(index)` and (for samplers) `__len__`.

    >>> class Squares(Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return i * i
    >>> list(Squares() + Squares())[:5]
    [0, 1, 4, 9, 0]
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is an iterable of samples (`__iter__`); the DataLoader batches it in
    order (no sampler, no shuffle)."""

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        raise TypeError("an IterableDataset cannot be concatenated (torch's ChainDataset is "
                        "not provided)")


class TensorDataset(Dataset):
    """Samples are the tensors' rows: `ds[i] == (t0[i], t1[i], ...)`.

    >>> ds = TensorDataset(gs.zeros(3, 2), gs.arange(3))
    >>> len(ds), ds[1][1].item()
    (3, 1)
    """

    def __init__(self, *tensors) -> None:
        if not all(tensors[0].size(0) == t.size(0) for t in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].size(0)


class Subset(Dataset):
    """The items of `dataset` at `indices`, in that order.

    >>> Subset(TensorDataset(gs.arange(5)), [4, 0])[0][0].item()
    4
    """

    def __init__(self, dataset, indices) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list) -> list:
        # a dataset that reads several items at once is asked for all of them (torch's)
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[idx] for idx in indices])
        return [self.dataset[self.indices[idx]] for idx in indices]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after the other.

    >>> len(ConcatDataset([TensorDataset(gs.zeros(2)), TensorDataset(gs.ones(3))]))
    5
    """

    def __init__(self, datasets) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


def _lengths(n: int, lengths) -> list[int]:
    """torch's: fractions summing to 1 become counts, the remainder dealt round-robin."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, length in enumerate(counts):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. "
                              f"This might result in an empty dataset.", stacklevel=3)
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    return list(lengths)


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split `dataset` into non-overlapping random `Subset`s of the given lengths (or
    fractions), drawn with one randperm from `generator` (default: the current generator).

    >>> a, b = random_split(TensorDataset(gs.arange(10)), [0.7, 0.3])
    >>> len(a), len(b)
    (7, 3)
    """
    lengths = _lengths(len(dataset), lengths)
    kw = {} if generator is None else {"generator": generator}
    indices = _gen_home(generator).randperm(sum(lengths), **kw).tolist()
    return [Subset(dataset, indices[end - length:end])
            for end, length in zip(itertools.accumulate(lengths), lengths, strict=True)]
