"""API.md §8 for draws big enough to be made in blocks on several threads (core/mt19937.py's
draw_blocks): `rand`/`randn` of float32 and float64 give torch's values, in process and on a
session, at sizes on either side of the blocked and threaded paths' edges, with no helper
thread or with several, and the stream goes on as torch's afterwards."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from gradserve.engine.core import mt19937, normal_avx2
from gradserve.engine.core import torch_dists as D

from .test_random_streams import home, same, seed_both

X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(params=[0, 2], ids=lambda n: f"{n}-helpers")
def helpers(request, monkeypatch):
    """The server of a remote session runs in this process: its draws use the same setting."""
    monkeypatch.setattr(mt19937, "DRAW_HELPERS", request.param)
    monkeypatch.setattr(mt19937, "ADAPT_TO_LOAD", False)  # whatever else the machine runs
    return request.param


def test_large_rand_is_torchs(ns, helpers):
    h = home(ns)
    seed_both(ns, 21)
    for n in (2 * D._UNIT_BLOCK - 1, 2 * D._UNIT_BLOCK + 1, 6 * D._UNIT_BLOCK + 3):
        for dt in ("float32", "float64"):
            same(h.rand(n, dtype=dt), torch.rand(n, dtype=getattr(torch, dt)))
    same(h.randint(0, 100, (9,)), torch.randint(0, 100, (9,)))


@pytest.mark.skipif(not X86, reason="float32 normals are torch's bit for bit on x86 only")
def test_large_randn_is_torchs_bit_for_bit(ns, helpers):
    h = home(ns)
    seed_both(ns, 22)
    threaded = 16 * 2 * normal_avx2._THREADED_ROWS
    for shape in ((threaded - 1,), (threaded + 17,), (3, normal_avx2._BLOCK_ROWS * 16 + 5)):
        ours = h.randn(*shape).detach().cpu().numpy()
        assert np.array_equal(ours.view(np.uint32), torch.randn(*shape).numpy().view(np.uint32))
    same(h.randn(7, dtype="float64"), torch.randn(7, dtype=torch.float64))
    same(h.rand(5), torch.rand(5))
