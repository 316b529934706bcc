"""API.md §8: after the same seed, gradserve's random functions give torch's numbers, in
process and on a remote session (whose generator lives on the server), for a grid of seeds,
shapes, dtypes and interleavings of calls. torch (the CPU build in the test extra) is the
oracle: integers and permutations must be equal, floats equal to 2 ulp (float32) or 1e-12
relative (float64)."""

from __future__ import annotations

import math
import platform

import gradserve as gs
import gradserve.nn as gnn
import gradserve.nn.functional as F
import numpy as np
import pytest
import torch
from gradserve import engine

SEEDS = (0, 7, 2**40 + 3)
SHAPES = ((0,), (1,), (15,), (16,), (17,), (1000,), (3, 5, 7))
FLOATS = ("float32", "float64")


def _mkl_intel() -> bool:
    """torch's x86 builds draw bernoulli_(float p) (dropout) from MKL's generator on Intel
    CPUs, which gradserve does not reproduce (README)."""
    if not torch.backends.mkl.is_available() or platform.machine().lower() not in (
            "x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return "GenuineIntel" in f.read(4096)
    except OSError:
        return False


MKL_INTEL = _mkl_intel()


def home(ns):
    """Where ns's tensors are made: the engine module or the remote session."""
    return engine if ns.kind == "engine" else ns.session


def seed_both(ns, seed):
    torch.manual_seed(seed)
    home(ns).manual_seed(seed)


def same(ours, theirs) -> None:
    t = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    o = ours.detach().cpu().numpy() if hasattr(ours, "detach") else np.asarray(ours)
    assert o.shape == t.shape and o.dtype == t.dtype, (o.shape, t.shape, o.dtype, t.dtype)
    if t.dtype.kind in "iub":
        np.testing.assert_array_equal(o, t)
    elif t.dtype == np.float32:
        ulp = np.spacing(np.abs(t).astype(np.float32))
        bad = ~(np.abs(o.astype(np.float64) - t) <= 2 * ulp)
        assert not bad.any(), (o[bad][:5], t[bad][:5])
    else:
        np.testing.assert_allclose(o, t, rtol=1e-12, atol=0)


def tdt(name):
    return getattr(torch, name)


@pytest.mark.parametrize("seed", SEEDS)
def test_rand_and_randn_over_shapes_and_dtypes(ns, seed):
    h = home(ns)
    seed_both(ns, seed)
    for shape in SHAPES:
        for dt in FLOATS:
            same(h.rand(*shape, dtype=dt), torch.rand(*shape, dtype=tdt(dt)))
            same(h.randn(*shape, dtype=dt), torch.randn(*shape, dtype=tdt(dt)))


@pytest.mark.parametrize("seed", SEEDS)
def test_integers_and_permutations_are_equal(ns, seed):
    h = home(ns)
    seed_both(ns, seed)
    for low, high in ((0, 10), (-5, 3), (0, 2**28 - 1), (-9, 2**28), (0, 2**33),
                      (-2**40, 2**40)):
        for dt in ("int64", "int32", "int16", "int8", "uint8", "float32", "float64"):
            if dt in ("int16", "int8", "uint8") and high > 2**8 or (
                    dt == "int32" and high > 2**31) or (dt == "float32" and high > 2**24):
                continue
            if dt == "uint8" and low < 0:
                continue
            same(h.randint(low, high, (3, 5), dtype=dt),
                 torch.randint(low, high, (3, 5), dtype=tdt(dt)))
    for n in (0, 1, 2, 15, 16, 17, 1000, 3001):
        same(h.randperm(n), torch.randperm(n))
    same(h.randperm(40, dtype="float32"), torch.randperm(40, dtype=torch.float32))


def test_random_in_place_over_dtypes(ns):
    h = home(ns)
    seed_both(ns, 11)
    for dt in ("int64", "int32", "int16", "int8", "uint8", "bool", "float32", "float64"):
        same(h.empty(17, dtype=dt).random_(), torch.empty(17, dtype=tdt(dt)).random_())
        if dt != "bool":
            same(h.empty(17, dtype=dt).random_(3), torch.empty(17, dtype=tdt(dt)).random_(3))
            same(h.empty(17, dtype=dt).random_(2, 9), torch.empty(17, dtype=tdt(dt)).random_(2, 9))
    same(h.empty(9, dtype="int64").random_(-2**63, None),
         torch.empty(9, dtype=torch.int64).random_(-2**63, None))
    same(h.empty(9, dtype="int64").random_(-2**62, 2**62),
         torch.empty(9, dtype=torch.int64).random_(-2**62, 2**62))


def test_interleaved_calls_share_one_stream(ns):
    """Mixed calls: the scalar normal path (under 16 elements) caches its second value in the
    generator for the next call; the vectorised path (16+) does not touch the cache."""
    h = home(ns)
    seed_both(ns, 1234)
    steps = [
        lambda m: m.randn(3, dtype=tdt("float64") if m is torch else "float64"),
        lambda m: m.randn(5),
        lambda m: m.rand(17),
        lambda m: m.randint(0, 100, (7,)),
        lambda m: m.randn(16),
        lambda m: m.randn(1, dtype=tdt("float64") if m is torch else "float64"),
        lambda m: m.randperm(33),
        lambda m: m.empty(4, 6).t().normal_(1.0, 2.0),  # not contiguous: the scalar path
        lambda m: m.empty(4, 6).normal_(-1.0, 0.5),
        lambda m: m.randn(2, 3, 4),
        lambda m: m.empty(5, 3).uniform_(-2, 3),
        lambda m: m.rand(1, dtype=tdt("float64") if m is torch else "float64"),
    ]
    for step in steps:
        same(step(h), step(torch))


def test_in_place_samplers(ns):
    h = home(ns)
    seed_both(ns, 5)
    for dt in FLOATS:
        for shape in ((7,), (40,), (6, 5)):
            for name, args in (("uniform_", (-1.5, 2.5)), ("normal_", (3.0, 0.25)),
                               ("exponential_", (1.7,)), ("geometric_", (0.3,)),
                               ("cauchy_", (0.5, 2.0)), ("log_normal_", (0.2, 0.5))):
                ours = getattr(h.empty(*shape, dtype=dt), name)(*args)
                theirs = getattr(torch.empty(*shape, dtype=tdt(dt)), name)(*args)
                same(ours, theirs)
        same(h.empty(6, 4, dtype=dt).t().uniform_(0, 5),
             torch.empty(6, 4, dtype=tdt(dt)).t().uniform_(0, 5))


def test_bernoulli_with_probability_tensors(ns):
    h = home(ns)
    seed_both(ns, 3)
    for dt in FLOATS:
        p_np = np.linspace(0, 1, 37).astype(dt).reshape(37)
        p, tp = h.tensor(p_np), torch.tensor(p_np)
        same(h.bernoulli(p) if ns.kind == "engine" else gs.bernoulli(p), torch.bernoulli(tp))
        same(h.zeros(3, 37, dtype="int64").bernoulli_(p),
             torch.zeros(3, 37, dtype=torch.int64).bernoulli_(tp))


@pytest.mark.skipif(MKL_INTEL, reason="torch draws bernoulli_(float p) from MKL on Intel")
def test_bernoulli_float_p_and_dropout(ns):
    h = home(ns)
    seed_both(ns, 9)
    same(h.empty(50).bernoulli_(0.3), torch.empty(50).bernoulli_(0.3))
    x_np = np.arange(1, 41, dtype=np.float32).reshape(5, 8)
    same(F.dropout(h.tensor(x_np), 0.25), torch.nn.functional.dropout(torch.tensor(x_np), 0.25))
    same(gnn.Dropout(0.5)(h.tensor(x_np)), torch.nn.Dropout(0.5)(torch.tensor(x_np)))


@pytest.mark.skipif(MKL_INTEL, reason="torch may draw exponential_ from MKL on Intel")
def test_multinomial(ns):
    h = home(ns)
    seed_both(ns, 21)
    for dt in FLOATS:
        w_np = np.array([[0.1, 0.0, 3.0, 1.0, 0.5, 2.0], [1, 1, 1, 1, 1, 1]], dtype=dt)
        w, tw = h.tensor(w_np), torch.tensor(w_np)
        same(w.multinomial(1), tw.multinomial(1))
        same(w.multinomial(4), tw.multinomial(4))
        same(w.multinomial(9, replacement=True), tw.multinomial(9, replacement=True))
        same(w[0].multinomial(20, True), tw[0].multinomial(20, True))


def test_normal_functions(ns):
    h = home(ns)
    seed_both(ns, 8)
    mean_np = np.linspace(-3, 3, 20).astype(np.float32)
    std_np = np.linspace(0.1, 2, 20).astype(np.float32)
    mean, std = h.tensor(mean_np), h.tensor(std_np)
    tmean, tstd = torch.tensor(mean_np), torch.tensor(std_np)
    same(gs.normal(mean, std), torch.normal(tmean, tstd))
    same(gs.normal(mean, 0.5), torch.normal(tmean, 0.5))
    same(gs.normal(1.5, std), torch.normal(1.5, tstd))
    with gs.use(h) if ns.kind != "engine" else _nothing():
        same(gs.normal(2.0, 3.0, size=(4, 5)), torch.normal(2.0, 3.0, size=(4, 5)))
    same(h.rand_like(mean), torch.rand_like(tmean))
    same(h.randn_like(mean), torch.randn_like(tmean))


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_generators_are_streams_of_their_own(ns):
    h = home(ns)
    seed_both(ns, 2)
    g, tg = gs.Generator().manual_seed(99), torch.Generator().manual_seed(99)
    same(h.randn(20, generator=g), torch.randn(20, generator=tg))
    same(h.randn(3), torch.randn(3))  # the default stream, untouched by g's draws
    same(h.randint(0, 50, (6,), generator=g), torch.randint(0, 50, (6,), generator=tg))
    same(h.randperm(25, generator=g), torch.randperm(25, generator=tg))
    same(h.empty(7).normal_(generator=g), torch.empty(7).normal_(generator=tg))
    same(h.rand(2, 3), torch.rand(2, 3))
    assert g.initial_seed() == 99
    state, tstate = g.get_state(), tg.get_state()
    assert bytes(state.numpy()) == bytes(tstate.numpy())  # torch's own state bytes
    a = h.rand(5, generator=g).cpu().numpy()
    g.set_state(state)
    assert np.array_equal(h.rand(5, generator=g).cpu().numpy(), a)


def test_rng_state_round_trips_and_is_torchs(ns):
    h = home(ns)
    seed_both(ns, 4)
    h.randn(3, dtype="float64"), torch.randn(3, dtype=torch.float64)  # caches a normal
    state = h.get_rng_state()
    assert state.dtype == gs.uint8 and tuple(state.shape) == (5056,)
    assert bytes(state.numpy()) == bytes(torch.get_rng_state().numpy())
    a = h.randn(5, dtype="float64").cpu().numpy()
    h.set_rng_state(state)
    assert np.array_equal(h.randn(5, dtype="float64").cpu().numpy(), a)
    torch.set_rng_state(torch.from_numpy(state.numpy().copy()))  # torch loads ours
    assert np.array_equal(torch.randn(5, dtype=torch.float64).numpy(), a)
    h.set_rng_state(torch.get_rng_state())  # and ours loads torch's
    same(h.rand(4), torch.rand(4))
    assert h.initial_seed() == torch.initial_seed() == 4


def test_default_initialisations_and_nn_init(ns):
    h = home(ns)
    session = None if ns.kind == "engine" else ns.session
    seed_both(ns, 0)
    pairs = [(gnn.Linear(7, 3, session=session), torch.nn.Linear(7, 3)),
             (gnn.Conv2d(3, 4, 3, session=session), torch.nn.Conv2d(3, 4, 3)),
             (gnn.Linear(5, 2, bias=False, session=session), torch.nn.Linear(5, 2, bias=False))]
    for ours, theirs in pairs:
        mine, want = dict(ours.named_parameters()), dict(theirs.named_parameters())
        assert mine.keys() == want.keys()
        for k in want:
            same(mine[k], want[k])
    for name, kw in (("uniform_", {"a": -0.2, "b": 0.7}), ("normal_", {"std": 0.02}),
                     ("xavier_uniform_", {}), ("xavier_normal_", {"gain": 2.0}),
                     ("kaiming_uniform_", {"a": math.sqrt(5)}),
                     ("kaiming_normal_", {"nonlinearity": "relu"}),
                     ("trunc_normal_", {"std": 0.02}),
                     ("trunc_normal_", {"std": 1.0, "a": -1.0, "b": 1.0}),
                     ("trunc_normal_", {"mean": 0.5, "std": 1.0, "a": 0.6, "b": 0.9})):
        same(getattr(gnn.init, name)(h.empty(20, 30), **kw),
             getattr(torch.nn.init, name)(torch.empty(20, 30), **kw))


def test_random_ops_cost_no_round_trip(ns):
    if ns.kind == "engine":
        pytest.skip("round trips are a remote session's")
    s = ns.session
    s.synchronize()
    before = s.stats.waits
    s.manual_seed(1)
    g = gs.Generator().manual_seed(3)
    s.randn(100), s.rand(5, generator=g), s.randint(0, 9, (4,)), s.randperm(30)
    s.empty(8).normal_(), s.empty(8).bernoulli_(s.rand(8)), s.rand(3, 4).multinomial(2)
    gnn.Linear(4, 4, session=s)
    assert s.stats.waits == before
