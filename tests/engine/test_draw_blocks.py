"""Random draws in blocks on several threads (core/mt19937.draw_blocks, which rand's and
randn's float kernels use): the words are drawn in order on the calling thread, so every value
and the generator's state after a draw are what one thread gives and what torch gives, at
sizes on either side of every block edge and whatever the number of helper threads; an error
reaches the caller and leaves no helper waiting."""

from __future__ import annotations

import platform
import threading
import time

import numpy as np
import pytest
import torch
from gradserve.engine.core import mt19937, normal_avx2
from gradserve.engine.core import torch_dists as D
from gradserve.engine.core.mt19937 import CPUGenerator, draw_blocks

X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(params=[0, 1, 3], ids=lambda n: f"{n}-helpers")
def helpers(request, monkeypatch):
    monkeypatch.setattr(mt19937, "DRAW_HELPERS", request.param)
    monkeypatch.setattr(mt19937, "ADAPT_TO_LOAD", False)  # whatever else the machine runs
    return request.param


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few words, so that small draws cross many block edges (and the threaded
    schedule of the normal kernel starts at 10 rows)."""
    monkeypatch.setattr(D, "_UNIT_BLOCK", 7)
    monkeypatch.setattr(D, "_SMALL_DRAW", 5)
    monkeypatch.setattr(D, "_FILL16_ROWS", 3)
    monkeypatch.setattr(normal_avx2, "_BLOCK_ROWS", 3)
    monkeypatch.setattr(normal_avx2, "_THREADED_ROWS", 5)
    monkeypatch.setattr(normal_avx2, "_MIN_ROWS", 2)


def test_blocks_are_drawn_in_order_and_each_is_done_once(helpers):
    drawn, done = [], {}

    def draw(n):
        drawn.append(n)
        return np.full(n, len(drawn))

    def work(i, v):
        assert i not in done
        done[i] = (v.tolist(), threading.get_ident())

    sizes = [3, 1, 4, 1, 5, 9, 2, 6]
    draw_blocks(draw, sizes, work)
    assert drawn == sizes
    assert {i: v for i, (v, _) in done.items()} == {i: [i + 1] * n for i, n in enumerate(sizes)}


def test_an_error_in_a_block_reaches_the_caller(helpers):
    def work(i, v):
        if i == 3:
            raise ValueError("block 3")

    with pytest.raises(ValueError, match="block 3"):
        draw_blocks(lambda n: np.zeros(n), [2] * 6, work)


def test_a_failing_draw_leaves_no_helper_waiting(helpers):
    calls = []

    def draw(n):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return np.zeros(n)

    with pytest.raises(KeyboardInterrupt):
        draw_blocks(draw, [1] * 5, lambda i, v: None)
    done = []  # the helpers took their stop signal: a later call runs to the end
    draw_blocks(lambda n: np.zeros(n), [1] * 9, lambda i, v: done.append(i))
    assert sorted(done) == list(range(9))


def test_helpers_leave_the_cpus_that_the_load_takes(monkeypatch):
    monkeypatch.setattr(mt19937, "DRAW_HELPERS", 3)  # four CPUs
    monkeypatch.setattr(mt19937, "helpers_load", lambda: 0.0)
    for load, helpers in ((0.2, 3), (1.0, 3), (1.7, 2), (3.2, 1), (4.0, 0), (9.0, 0)):
        monkeypatch.setattr(mt19937.os, "getloadavg", lambda load=load: (load, load, load))
        assert mt19937.helpers_now() == helpers, load
    monkeypatch.setattr(mt19937, "ADAPT_TO_LOAD", False)
    assert mt19937.helpers_now() == 3


def test_the_helpers_own_work_does_not_turn_them_off(monkeypatch):
    """A draw-heavy loop raises the load by its helpers' work: that part is theirs
    (helpers_load), and they stay; the rest of the load is other work."""
    monkeypatch.setattr(mt19937, "DRAW_HELPERS", 1)  # two CPUs
    monkeypatch.setattr(mt19937.os, "getloadavg", lambda: (1.9, 1.9, 1.9))
    monkeypatch.setattr(mt19937, "helpers_load", lambda: 0.8)
    assert mt19937.helpers_now() == 1
    monkeypatch.setattr(mt19937, "helpers_load", lambda: 0.0)  # the 0.9 is other work
    assert mt19937.helpers_now() == 0


def test_helpers_load_counts_the_helpers_cpu_time(monkeypatch):
    monkeypatch.setattr(mt19937, "DRAW_HELPERS", 1)
    monkeypatch.setattr(mt19937, "ADAPT_TO_LOAD", False)
    start = time.monotonic()
    monkeypatch.setattr(mt19937, "_spent", {"cpu": 0.0, "seen": 0.0, "wall": start,
                                            "rate": 0.0})

    ran_on = set()

    def busy(i, v):
        ran_on.add(threading.get_ident())
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.05:  # 50 ms of CPU a block
            pass

    draw_blocks(lambda n: np.zeros(n), [1] * 4, busy)
    helped = bool(ran_on - {threading.get_ident()})  # (a loaded machine may not let it)
    assert (mt19937._spent["cpu"] >= 0.04) == helped  # the caller's own blocks not counted
    # a fraction of a second of a minute's average: a little above idle
    assert (0 < mt19937.helpers_load() < 0.05) == helped


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_block_rows_cover_the_rows(threads):
    for rows in (0, 1, 4095, 4096, 4097, 16384, 62500, 100003):
        sizes = normal_avx2.block_rows(rows, threads)
        assert sum(sizes) == rows and all(s > 0 for s in sizes)
        top = normal_avx2._BLOCK_ROWS if threads == 1 else normal_avx2._THREADED_ROWS
        assert max(sizes, default=0) <= top


def _torch_gen(seed):
    return torch.Generator().manual_seed(seed)


def _edges(block):
    return sorted({n for k in (1, 2, 3) for n in (k * block - 1, k * block, k * block + 1)})


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_rand_across_block_edges_is_torchs(helpers, blocks, request):
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    g, t = CPUGenerator(3), _torch_gen(3)
    for n in [0, 1, 2, 3, 33, *_edges(2 * D._UNIT_BLOCK), *_edges(D._UNIT_BLOCK)]:
        for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
            ours = D.uniform(g, n, dtype)
            theirs = torch.rand(n, dtype=tdtype, generator=t).numpy()
            assert np.array_equal(ours, theirs), (n, dtype)
        ours = D.uniform(g, n, np.float32, -2.0, 0.5)
        assert np.array_equal(ours, torch.empty(n).uniform_(-2.0, 0.5, generator=t).numpy())
        ours = D.uniform(g, n, np.float64, -2.0, 0.5)
        theirs = torch.empty(n, dtype=torch.float64).uniform_(-2.0, 0.5, generator=t)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=0)
        assert g.get_state() == bytes(t.get_state().numpy())


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_randint_across_block_edges_is_torchs(helpers, blocks, request):
    """randint's blocks: a word per element below a range of 2^28 (two words a 64-bit draw,
    so a block holds 2 * _UNIT_BLOCK elements), a 64-bit draw per element from 2^28 on;
    draws under _SMALL_DRAW are done whole."""
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    sizes = {0, 1, 2, 3, 33, D._SMALL_DRAW - 1, D._SMALL_DRAW, D._SMALL_DRAW + 1,
             *_edges(2 * D._UNIT_BLOCK), *_edges(D._UNIT_BLOCK)}
    g, t = CPUGenerator(4), _torch_gen(4)
    for n in sorted(sizes):
        for (low, high), dtype in (((0, 10), np.int64), ((-5, 1000), np.int64),
                                   ((0, 200), np.uint8), ((-7, 99), np.float32),
                                   ((-9, 2**28), np.int64), ((-2**40, 2**40), np.int64),
                                   ((3, 2**30), np.int32)):
            ours = D.random_from_to(g, n, dtype, low, high)
            theirs = torch.randint(low, high, (n,), generator=t,
                                   dtype=getattr(torch, np.dtype(dtype).name)).numpy()
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (n, low, dtype)
        assert g.get_state() == bytes(t.get_state().numpy())


@pytest.mark.skipif(not X86, reason="torch's AVX2 normal kernel is x86's")
@pytest.mark.parametrize("blocks", ["default", "small"])
def test_randn_across_block_edges_is_torchs_bit_for_bit(helpers, blocks, request):
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    rows = normal_avx2._BLOCK_ROWS, normal_avx2._THREADED_ROWS, normal_avx2._MIN_ROWS
    sizes = {16 * r + d for r in (*rows, 2 * rows[1], 2 * rows[1] + 1) for d in (-1, 0, 1, 17)}
    g, t = CPUGenerator(9), _torch_gen(9)
    for n in sorted(sizes):
        for mean, std in ((0.0, 1.0), (1.5, 0.25)):
            ours = D.normal(g, n, np.float32, mean, std)
            theirs = torch.empty(n).normal_(mean, std, generator=t).numpy()
            assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), (n, mean)
            assert g.get_state() == bytes(t.get_state().numpy())
    ours = D.normal(g, 4001, np.float64)  # the double template after: still the same stream
    np.testing.assert_allclose(ours, torch.randn(4001, dtype=torch.float64, generator=t),
                               rtol=1e-12)


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_float64_randn_across_block_edges_is_torchs(helpers, blocks, request):
    """The scalar template (float64) draws its uniforms a block of rows at a time."""
    if blocks == "small":
        request.getfixturevalue("small_blocks")
    sizes = {16 * k * D._FILL16_ROWS + d for k in (1, 2, 3) for d in (-1, 0, 1, 17)}
    g, t = CPUGenerator(5), _torch_gen(5)
    for n in sorted(sizes | {16, 17}):
        for mean, std in ((0.0, 1.0), (1.5, 0.25)):
            ours = D.normal(g, n, np.float64, mean, std)
            theirs = torch.empty(n, dtype=torch.float64).normal_(mean, std, generator=t)
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)
            assert g.get_state() == bytes(t.get_state().numpy())
