"""gradserve.utils.data against torch.utils.data: the same batches (values, dtypes, nesting
and types) for the same datasets and arguments, on engine tensors and on a current session;
a TensorDataset of a session's tensors is batched on the server without a wait."""

from __future__ import annotations

import collections
import warnings

import gradserve as gs
import gradserve.utils.data as gdata
import numpy as np
import pytest
import torch
import torch.utils.data as tdata

Point = collections.namedtuple("Point", "x y")


def plain(batch):
    """A batch as Python values and type names, to compare ours with torch's."""
    if isinstance(batch, (gs.Tensor, torch.Tensor)):
        return ("tensor", str(batch.dtype).split(".")[-1], tuple(batch.shape), batch.tolist())
    if isinstance(batch, dict):
        return (type(batch).__name__, {k: plain(v) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return ("namedtuple", [plain(v) for v in batch])
    if isinstance(batch, (list, tuple)):
        return (type(batch).__name__, [plain(v) for v in batch])
    return (type(batch).__name__, batch)


class Items:
    """A map-style dataset of arbitrary samples, written against either library."""

    def __init__(self, lib, kind, n=7):
        self.lib, self.kind, self.n = lib, kind, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        lib = self.lib
        rng = np.random.default_rng(i)
        if self.kind == "tensor-pair":
            return lib.tensor(rng.standard_normal(3), dtype=lib.float32), lib.tensor(i % 3)
        if self.kind == "numbers":
            return i, float(i) / 2, bool(i % 2)
        if self.kind == "numpy":
            return rng.standard_normal((2, 2)), np.int32(i), np.float32(i) / 3
        if self.kind == "dict":
            return {"x": lib.ones(2) * i, "label": i, "name": f"item{i}"}
        if self.kind == "namedtuple":
            return Point(lib.tensor([float(i)]), i)
        if self.kind == "nested":
            return [lib.tensor([i, i + 1]), (i, {"z": np.float64(i)})]
        raise AssertionError(self.kind)


KINDS = ["tensor-pair", "numbers", "numpy", "dict", "namedtuple", "nested"]
ARGS = [dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=1),
        dict(batch_size=None), dict(batch_size=7), dict(batch_size=10)]


def _batches(lib_data, dataset, **kw):
    return [plain(b) for b in lib_data.DataLoader(dataset, **kw)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kw", ARGS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_default_collation_matches_torch(M, kind, kw):
    ours = _batches(gdata, Items(M, kind), **kw)
    theirs = _batches(tdata, Items(torch, kind), **kw)
    assert ours == theirs
    loader, tloader = gdata.DataLoader(Items(M, kind), **kw), tdata.DataLoader(Items(torch,
                                                                                     kind), **kw)
    assert len(loader) == len(tloader)
    if M.current_session() is not None:
        first = next(iter(loader))
        leaves = [first] if isinstance(first, gs.Tensor) else [
            v for v in (first.values() if isinstance(first, dict) else first)
            if isinstance(v, gs.Tensor)]
        assert all(t.session is M.current_session() for t in leaves)


@pytest.mark.parametrize("kw", ARGS[:5], ids=lambda kw: "-".join(f"{k}{v}"
                                                                  for k, v in kw.items()))
def test_tensor_dataset_matches_torch(M, kw):
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    y = np.arange(7) % 3
    ours = gdata.TensorDataset(M.tensor(x), M.tensor(y))
    theirs = tdata.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ours) == len(theirs) and plain(ours[2]) == plain(theirs[2])
    assert _batches(gdata, ours, **kw) == _batches(tdata, theirs, **kw)


def test_tensor_dataset_batches_are_made_on_the_server(M):
    session = M.current_session()
    x, y = M.randn(50, 4), M.randint(0, 3, (50,))
    ds = gdata.TensorDataset(x, y)
    if session is not None:
        session.synchronize()
        waits = session.stats.waits
    M.manual_seed(0)
    seen = []
    for xb, yb in gdata.DataLoader(ds, batch_size=8, shuffle=True):
        assert xb.shape[1:] == (4,) and xb.shape[0] == yb.shape[0]
        seen.append((xb, yb))
    if session is not None:
        assert session.stats.waits == waits  # no round trip for the whole epoch
        assert session.stats.bytes_up < 10_000  # nothing uploaded per batch
        assert all(b.session is session for pair in seen for b in pair)
    rows = gs.cat([xb for xb, _ in seen]).tolist()
    assert sorted(rows) == sorted(x.tolist())  # a permutation of the rows
    labels = gs.cat([yb for _, yb in seen]).tolist()
    assert {tuple(r): lab for r, lab in zip(rows, labels, strict=True)} == {
        tuple(r): lab for r, lab in zip(x.tolist(), y.tolist(), strict=True)}
    M.manual_seed(0)
    again = gs.cat([xb for xb, _ in gdata.DataLoader(ds, batch_size=8, shuffle=True)])
    assert again.tolist() == rows  # the order comes from the seeded generator


def test_shuffle_draws_a_new_order_each_epoch(M):
    ds = gdata.TensorDataset(M.arange(20))
    loader = gdata.DataLoader(ds, batch_size=20, shuffle=True)
    a, b = (next(iter(loader))[0].tolist() for _ in range(2))
    assert sorted(a) == sorted(b) == list(range(20)) and a != b


def test_samplers_and_custom_collate_match_torch(M):
    ds = Items(M, "numbers", n=10)
    tds = Items(torch, "numbers", n=10)
    sampler = gdata.BatchSampler(gdata.SequentialSampler(ds), batch_size=4, drop_last=False)
    tsampler = tdata.BatchSampler(tdata.SequentialSampler(tds), batch_size=4, drop_last=False)
    assert list(sampler) == list(tsampler) and len(sampler) == len(tsampler)
    assert _batches(gdata, ds, batch_sampler=sampler) == _batches(tdata, tds,
                                                                  batch_sampler=tsampler)
    assert _batches(gdata, ds, sampler=[9, 3, 1], batch_size=2) == _batches(
        tdata, tds, sampler=[9, 3, 1], batch_size=2)
    assert ([b for b in gdata.DataLoader(ds, batch_size=4, collate_fn=lambda b: len(b))]
            == [b for b in tdata.DataLoader(tds, batch_size=4, collate_fn=lambda b: len(b))])
    assert sorted(gdata.SubsetRandomSampler([5, 7, 9])) == [5, 7, 9]
    drawn = list(gdata.RandomSampler(ds, replacement=True, num_samples=40))
    assert len(drawn) == 40 and set(drawn) <= set(range(10))
    counts = collections.Counter(gdata.RandomSampler(ds, num_samples=25))
    assert sorted(counts) == list(range(10)) and sorted(counts.values()) == [2] * 5 + [3] * 5


def test_subset_concat_and_random_split(M):
    ds = gdata.TensorDataset(M.arange(10))
    sub = gdata.Subset(ds, [4, 1])
    assert len(sub) == 2 and sub[0][0].item() == 4
    cat = ds + gdata.TensorDataset(M.arange(10, 13))
    assert len(cat) == 13 and cat[11][0].item() == 11 and cat[-1][0].item() == 12
    parts = gdata.random_split(ds, [0.5, 0.3, 0.2])
    tparts = tdata.random_split(tdata.TensorDataset(torch.arange(10)), [0.5, 0.3, 0.2])
    assert [len(p) for p in parts] == [len(p) for p in tparts] == [5, 3, 2]
    assert sorted(i for p in parts for i in p.indices) == list(range(10))
    assert [len(p) for p in gdata.random_split(ds, [0.34, 0.33, 0.33])] == [
        len(p) for p in tdata.random_split(tdata.TensorDataset(torch.arange(10)),
                                           [0.34, 0.33, 0.33])]
    assert [len(p) for p in gdata.random_split(ds, [7, 3])] == [7, 3]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        gdata.random_split(ds, [7, 4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gdata.random_split(gdata.TensorDataset(M.arange(2)), [0.9, 0.1, 0.0])
    assert any("Length of split at index 2 is 0" in str(w.message) for w in caught)


def test_iterable_dataset(M):
    class Stream(gdata.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    class TStream(tdata.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    for kw in (dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=None)):
        assert _batches(gdata, Stream(), **kw) == _batches(tdata, TStream(), **kw)


@pytest.mark.parametrize("kw", [dict(shuffle=True, sampler=[0]),
                                dict(batch_sampler=[[0]], batch_size=2),
                                dict(batch_size=None, drop_last=True), dict(num_workers=-1)])
def test_argument_errors_are_torch_s(kw):
    with pytest.raises(ValueError) as theirs:
        tdata.DataLoader(tdata.TensorDataset(torch.arange(3)), **kw)
    with pytest.raises(ValueError) as ours:
        gdata.DataLoader(gdata.TensorDataset(gs.arange(3)), **kw)
    assert str(ours.value) == str(theirs.value)


def test_collate_errors_are_torch_s():
    for batch in ([object(), object()], [np.array(["a"]), np.array(["b"])], [[1, 2], [3]]):
        try:
            tdata.default_collate(batch)
        except (TypeError, RuntimeError) as e:
            theirs = e
        with pytest.raises(type(theirs)) as ours:
            gdata.default_collate(batch)
        assert str(ours.value) == str(theirs)
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        gdata.TensorDataset(gs.zeros(2), gs.zeros(3))


def test_default_convert_matches_torch(M):
    sample = {"a": np.zeros(2), "b": (1, np.float32(2)), "c": "s"}
    assert plain(gdata.default_convert(sample)) == plain(tdata.default_convert(sample))


def test_a_random_split_of_a_tensor_dataset_is_batched_on_the_server(M):
    session = M.current_session()
    x = M.arange(40.0).reshape(20, 2)
    y = M.arange(20)
    train, held = gdata.random_split(gdata.TensorDataset(x, y), [15, 5])
    if session is not None:
        session.synchronize()
        waits = session.stats.waits
    for shuffle in (False, True):
        batches = list(gdata.DataLoader(train, batch_size=4, shuffle=shuffle))
        if session is not None:
            assert session.stats.waits == waits  # the subset's rows go up, nothing comes back
        rows = gs.cat([b[1] for b in batches]).tolist()
        if session is not None:
            waits = session.stats.waits
        expected = [int(i) for i in train.indices]
        assert (rows == expected) if not shuffle else (sorted(rows) == sorted(expected))
        assert [len(b[1]) for b in batches] == [4, 4, 4, 3]
    assert plain(list(gdata.DataLoader(held, batch_size=5))[0]) == plain(
        gdata.default_collate([held[i] for i in range(5)]))
