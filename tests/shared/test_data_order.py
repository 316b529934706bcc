"""The order of gradserve.utils.data's random samplers is torch's: after the same seed, a
shuffled DataLoader, RandomSampler, SubsetRandomSampler and random_split give torch's
indices epoch after epoch, and leave the generators where torch's are (the next draw is
torch's too), in-process and on a current session; with the costs in waits stated."""

from __future__ import annotations

import gradserve as gs
import gradserve.utils.data as gdata
import pytest
import torch
import torch.utils.data as tdata

SEEDS = (0, 3, 2**40 + 7)


class Index:
    """A map-style dataset whose item i is i (read item by item: the sampler path)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def _seed(lib, seed, with_generator):
    lib.manual_seed(seed)
    if not with_generator:
        return None
    return lib.Generator().manual_seed(seed + 1)


def _after(lib, generator):
    """The draws after the run: the global stream's, and the generator's if one is given."""
    out = [lib.rand(3).tolist()]
    if generator is not None:
        out.append(lib.randperm(10, generator=generator).tolist())
    return out


def _close(ours, theirs):
    assert ours[1:] == theirs[1:]
    assert ours[0] == pytest.approx(theirs[0], rel=1e-6, abs=0)


def _loader_epochs(lib, data_lib, dataset, seed, with_generator, epochs=2, **kw):
    g = _seed(lib, seed, with_generator)
    loader = data_lib.DataLoader(dataset, shuffle=True, generator=g, **kw)
    orders = [[[t.tolist() for t in b] if isinstance(b, (list, tuple)) else b.tolist()
               for b in loader] for _ in range(epochs)]
    return orders, _after(lib, g)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_generator", [False, True], ids=["global", "generator"])
@pytest.mark.parametrize("n,batch_size,drop_last", [(1, 1, False), (10, 3, False),
                                                    (10, 3, True), (37, 8, False),
                                                    (64, 64, False), (100, 7, True)])
def test_shuffled_loader_order_is_torchs(M, seed, with_generator, n, batch_size, drop_last):
    kw = dict(batch_size=batch_size, drop_last=drop_last)
    ours, ours_after = _loader_epochs(M, gdata, Index(n), seed, with_generator, **kw)
    theirs, theirs_after = _loader_epochs(torch, tdata, Index(n), seed, with_generator, **kw)
    assert ours == theirs
    _close(ours_after, theirs_after)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_generator", [False, True], ids=["global", "generator"])
@pytest.mark.parametrize("n,batch_size,drop_last", [(10, 3, False), (50, 8, True)])
def test_tensor_dataset_batched_on_the_server_is_torchs(M, seed, with_generator, n,
                                                        batch_size, drop_last):
    kw = dict(batch_size=batch_size, drop_last=drop_last)
    ours, ours_after = _loader_epochs(M, gdata, gdata.TensorDataset(M.arange(n)), seed,
                                      with_generator, **kw)
    theirs, theirs_after = _loader_epochs(torch, tdata,
                                          tdata.TensorDataset(torch.arange(n)), seed,
                                          with_generator, **kw)
    assert ours == theirs
    _close(ours_after, theirs_after)


@pytest.mark.parametrize("seed", SEEDS[:2])
@pytest.mark.parametrize("with_generator", [False, True], ids=["global", "generator"])
def test_a_random_split_then_a_shuffled_loader_is_torchs(M, seed, with_generator):
    def run(lib, data_lib):
        g = _seed(lib, seed, with_generator)
        train, held = data_lib.random_split(data_lib.TensorDataset(lib.arange(30)),
                                            [0.7, 0.3], generator=g)
        out = [list(held.indices)]
        out += [[b[0].tolist() for b in data_lib.DataLoader(train, batch_size=4,
                                                            shuffle=True, generator=g)]
                for _ in range(2)]
        return out, _after(lib, g)

    ours, ours_after = run(M, gdata)
    theirs, theirs_after = run(torch, tdata)
    assert ours == theirs
    _close(ours_after, theirs_after)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_generator", [False, True], ids=["global", "generator"])
@pytest.mark.parametrize("kw", [dict(), dict(num_samples=7), dict(num_samples=25),
                                dict(num_samples=20), dict(replacement=True),
                                dict(replacement=True, num_samples=70),
                                dict(replacement=True, num_samples=64)],
                         ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()) or "plain")
def test_random_sampler_is_torchs(M, seed, with_generator, kw):
    def run(lib, data_lib):
        g = _seed(lib, seed, with_generator)
        sampler = data_lib.RandomSampler(range(10), generator=g, **kw)
        return [list(sampler) for _ in range(2)], _after(lib, g)

    ours, ours_after = run(M, gdata)
    theirs, theirs_after = run(torch, tdata)
    assert ours == theirs
    _close(ours_after, theirs_after)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_generator", [False, True], ids=["global", "generator"])
def test_subset_sampler_and_random_split_are_torchs(M, seed, with_generator):
    def run(lib, data_lib):
        g = _seed(lib, seed, with_generator)
        out = [list(data_lib.SubsetRandomSampler([5, 9, 2, 11, 40], generator=g))
               for _ in range(2)]
        for lengths in ([3, 4, 6], [0.5, 0.25, 0.25], [0.3, 0.3, 0.4]):
            splits = data_lib.random_split(range(13), lengths, generator=g)
            out.append([list(s.indices) for s in splits])
        loader = data_lib.DataLoader(Index(9), batch_size=4,
                                     sampler=data_lib.SubsetRandomSampler(range(9),
                                                                          generator=g))
        out.append([b.tolist() for b in loader])
        return out, _after(lib, g)

    ours, ours_after = run(M, gdata)
    theirs, theirs_after = run(torch, tdata)
    assert ours == theirs
    _close(ours_after, theirs_after)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_every_epoch_draws_torchs_base_seed(M, seed):
    """Unshuffled and iterable loaders draw torch's base seed too, so later draws agree."""

    class Stream(tdata.IterableDataset):
        def __iter__(self):
            return iter(range(5))

    class GStream(gdata.IterableDataset):
        def __iter__(self):
            return iter(range(5))

    def run(lib, data_lib, stream):
        lib.manual_seed(seed)
        out = [[b.tolist() for b in data_lib.DataLoader(Index(6), batch_size=4)],
               [b.tolist() for b in data_lib.DataLoader(stream, batch_size=2)],
               [b[0].tolist() for b in data_lib.DataLoader(data_lib.TensorDataset(
                   lib.arange(6)), batch_size=4)]]
        return out, _after(lib, None)

    ours, ours_after = run(M, gdata, GStream())
    theirs, theirs_after = run(torch, tdata, Stream())
    assert ours == theirs
    _close(ours_after, theirs_after)


def test_persistent_workers_draw_the_base_seed_once(M):
    def run(lib, data_lib):
        lib.manual_seed(1)
        loader = data_lib.DataLoader(Index(6), batch_size=3, shuffle=True, num_workers=1,
                                     persistent_workers=True)
        return [[b.tolist() for b in loader] for _ in range(2)], _after(lib, None)

    ours, ours_after = run(M, gdata)
    theirs, theirs_after = run(torch, tdata)
    assert ours == theirs
    _close(ours_after, theirs_after)


def test_a_shuffled_epoch_on_a_session_waits_for_nothing(M):
    """A TensorDataset on a session: no wait per shuffled epoch, with or without
    `generator=` (our own generator is seeded on the server from the seed drawn there), and
    no upload of the data; the iterated samplers fetch their order (one wait an epoch)."""
    session = M.current_session()
    if session is None:
        pytest.skip("waits are a session's")
    ds = gdata.TensorDataset(M.randn(500, 4), M.arange(500))
    g = gs.Generator().manual_seed(0)
    for generator in (None, g):
        loader = gdata.DataLoader(ds, batch_size=64, shuffle=True, generator=generator)
        list(loader)  # a given generator's state moves to the session once
        session.synchronize()
        waits, up = session.stats.waits, session.stats.bytes_up
        for _ in range(2):
            batches = list(loader)
        assert session.stats.waits == waits
        assert session.stats.bytes_up - up < 1_000
        assert len(batches) == 8 and all(b[0].session is session for b in batches)
    sampler = gdata.RandomSampler(range(100))
    waits = session.stats.waits
    assert sorted(sampler) == list(range(100))
    assert session.stats.waits == waits + 1  # the seed, fetched as torch's .item() does


def test_the_seeding_op_is_torchs(M):
    for seed in (0, 5, -3, 2**63 - 1, 2**40 + 7):
        drawn = M.tensor(seed).reshape(())
        g = gs.Generator._seeded_by(drawn)
        ours = M.randperm(20, generator=g).tolist() + [M.rand(2, generator=g).tolist()]
        tg = torch.Generator().manual_seed(seed)
        theirs = torch.randperm(20, generator=tg).tolist() + [torch.rand(2, generator=tg)
                                                               .tolist()]
        assert ours[:-1] == theirs[:-1]
        assert ours[-1] == pytest.approx(theirs[-1], rel=1e-6, abs=0)
