"""`DataLoader`: batches of a dataset, as torch.utils.data.DataLoader, in this process.

With the default collation, a `TensorDataset` whose tensors live on one session (or all
in-process) is batched where they live: the sampler's order becomes one tensor there (an
`arange`, or a `randperm` when shuffling) and each batch is `t[order[i:j]]` for each tensor,
so a remote epoch uploads no data. Any other dataset is read item by item (`dataset[i]`,
or `__getitems__`) and collated by `collate_fn` (torch's `default_collate` unless given).

Each epoch makes torch's draws in torch's order (a base seed as the epoch starts, then the
sampler's), so a seeded shuffled epoch is torch's and so is every draw after it. Waits per
epoch on a session: none when batching a TensorDataset there (the base seed is never
fetched; a shuffle's own generator is seeded on the server from the seed drawn there); one
when iterating a RandomSampler without `generator=` (its seed, torch's `.item()`), which
then shuffles in-process.
"""

from __future__ import annotations

from ..._default import session_of
from ._collate import default_collate, default_convert
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, draw_seed


class DataLoader:
    """Iterate over `dataset` in batches (torch's arguments; `num_workers` > 0 loads in this
    process too, giving the same batches).

    >>> ds = TensorDataset(gs.arange(6.).reshape(3, 2), gs.tensor([0, 1, 0]))
    >>> for x, y in DataLoader(ds, batch_size=2):
    ...     print(x.shape, y.tolist())
    gradserve.Size([2, 2]) [0, 1]
    gradserve.Size([1, 2]) [0]
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True) -> None:
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 "
                             "to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.generator = generator
        self._seeded = False
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler),
                                ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={value}")
        elif sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and not self._iterable:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None or (self._iterable
                                                             and batch_size is not None)
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)

    def __iter__(self):
        plan = self._server_plan()
        # torch's iterator draws a base seed (for workers) from the loader's generator or
        # the global stream as it starts; a persistent workers' iterator only once
        if not (self.persistent_workers and self.num_workers > 0 and self._seeded):
            draw_seed(None if plan is None else plan[0], self.generator)
            self._seeded = True
        if plan is not None:
            return self._server_batches(*plan)
        if self._iterable:
            return self._iterable_batches()
        return self._map_batches()

    # -- how batches are made ------------------------------------------------------------
    def _map_batches(self):
        fetch_many = getattr(self.dataset, "__getitems__", None)
        for index in self._index_sampler:
            if not self._auto_collation:
                yield self.collate_fn(self.dataset[index])
            elif fetch_many:
                yield self.collate_fn(fetch_many(index))
            else:
                yield self.collate_fn([self.dataset[i] for i in index])

    def _iterable_batches(self):
        if self.batch_size is None:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def _server_plan(self):
        """(home, tensors, rows) when this loader's batches are index ops where a
        TensorDataset's tensors live (also of a Subset of one, as random_split makes), else
        None (another dataset, collate_fn or sampler). Draws nothing."""
        dataset, rows = self.dataset, None
        if type(dataset) is Subset and type(dataset.dataset) is TensorDataset:
            dataset, rows = dataset.dataset, dataset.indices
        sampler = self.sampler
        if not (type(dataset) is TensorDataset and self._default_collate
                and type(self.batch_sampler) is BatchSampler
                and (type(sampler) is SequentialSampler
                     or (type(sampler) is RandomSampler and not sampler.replacement
                         and sampler.num_samples == len(sampler.data_source)))):
            return None
        tensors = dataset.tensors
        home = session_of(tensors[0])
        if any(session_of(t) is not home for t in tensors[1:]):
            return None
        return home, tensors, rows

    def _server_batches(self, home, tensors, rows):
        # a generator, so the sampler draws at the first batch, as torch's does
        order = self.sampler._order(home)
        if rows is not None:  # the subset's rows, sent once per epoch, in the sampler's order
            order = home.tensor([int(i) for i in rows], dtype="int64")[order]
        yield from self._slices(order, tensors)

    def _slices(self, order, tensors):
        n, size = order.shape[0], self.batch_size
        stop = n - n % size if self.drop_last else n
        for start in range(0, stop, size):
            index = order[start:start + size]
            yield [t[index] for t in tensors]
