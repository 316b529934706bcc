"""Samplers as torch.utils.data's: the order a DataLoader reads a map-style dataset in.

Random orders make torch's draws in torch's order from the same streams, so after
`gs.manual_seed(s)` a shuffled epoch is torch's and leaves the generator where torch's is.
A RandomSampler without a generator draws a 64-bit seed from the global stream (the current
session's, or the data's) and shuffles with a fresh generator seeded by it: that seed is
fetched (one wait on a session) and the shuffle runs in-process, as iteration yields Python
ints. `_order(home)` gives a sampler's whole order as a tensor on `home` (a session or the
engine) for the DataLoader's server-side batching of a TensorDataset: there the generator is
seeded where the seed is drawn, so an epoch waits for nothing.
"""

from __future__ import annotations

from gradserve import engine

from ..._default import default_session
from ...engine.seam import Generator


def _home(home):
    return default_session(None) if home is None else home


def _gen_home(generator, home=None):
    """Where draws from `generator` run: given `home`, else where its state already lives
    (so it never moves), else in-process (a generator not yet used costs nothing there)."""
    if home is not None:
        return home
    if generator is not None and generator._where is not None:
        return generator._where
    return engine if generator is not None else default_session(None)


def _randperm(home, n: int, generator):
    kw = {} if generator is None else {"generator": generator}
    return _home(home).randperm(n, **kw)


def draw_seed(home, generator=None):
    """torch's `torch.empty((), dtype=torch.int64).random_(generator=...)`, left where it is
    drawn (torch's DataLoader discards its base seed: nothing to fetch)."""
    home = _gen_home(generator, home)
    kw = {} if generator is None else {"generator": generator}
    return home.empty((), dtype=engine.int64).random_(**kw)


def _own_generator(generator, home=None):
    """torch's RandomSampler: the given generator, else a fresh one seeded from the global
    stream of `home` (the seed comes back: one wait on a session)."""
    if generator is not None:
        return generator
    seed = int(draw_seed(_home(home)).item())
    return Generator().manual_seed(seed)


class Sampler:
    """Base class: `__iter__` yields dataset indices."""

    def __init__(self, data_source=None) -> None:
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1.

    >>> list(SequentialSampler(range(3)))
    [0, 1, 2]
    """

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)

    def _order(self, home):
        return _home(home).arange(len(self.data_source))


class RandomSampler(Sampler):
    """A random permutation of the indices (or `num_samples` drawn with `replacement`).

    >>> sorted(RandomSampler(range(4)))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError("replacement should be a boolean value, but got replacement="
                            f"{self.replacement}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError("num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        generator = _own_generator(self.generator)
        home = _gen_home(generator)
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield from home.randint(0, n, (32,), generator=generator).tolist()
            yield from home.randint(0, n, (self.num_samples % 32,),
                                    generator=generator).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from home.randperm(n, generator=generator).tolist()
        rest = self.num_samples % n
        if rest:
            yield from home.randperm(n, generator=generator).tolist()[:rest]
        elif self.generator is not None:  # torch draws it and keeps none of it (not fetched)
            home.randperm(n, generator=generator)

    def __len__(self) -> int:
        return self.num_samples

    def _order(self, home):
        """The epoch's order on `home` (the data's session), with no wait: our own
        generator is seeded there from the seed drawn there."""
        n = len(self.data_source)
        if self.replacement or self.num_samples != n:
            return None
        generator = self.generator
        if generator is None:
            generator = Generator._seeded_by(draw_seed(home))
        order = home.randperm(n, generator=generator)
        if self.generator is not None:
            home.randperm(n, generator=generator)  # torch's discarded last permutation
        return order


class SubsetRandomSampler(Sampler):
    """The given indices in a random order.

    >>> sorted(SubsetRandomSampler([5, 7]))
    [5, 7]
    """

    def __init__(self, indices, generator=None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        home = _gen_home(self.generator)
        for i in _randperm(home, len(self.indices), self.generator).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler` (the last one shorter unless dropped).

    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        if (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                or batch_size <= 0):
            raise ValueError("batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last="
                             f"{drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
