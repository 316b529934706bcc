"""torch's CPU generator and kernels in numpy (engine/core/mt19937.py, torch_dists.py,
normal_avx2.py, ops/random_sample.py) against torch itself and against plain-Python
versions of torch's sequential loops."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from gradserve.engine.core import torch_dists as D
from gradserve.engine.core.mt19937 import CPUGenerator
from gradserve.engine.ops.random_sample import _inside_out, _swap_shuffle, randperm_values


def _torch_gen(seed):
    return torch.Generator().manual_seed(seed)


def test_a_fresh_generator_is_torchs_unseeded_one():
    assert CPUGenerator().get_state() == bytes(torch.Generator().get_state().numpy())


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**32, 2**63 + 5, -1])
def test_state_bytes_follow_torchs_through_draws(seed):
    g, t = CPUGenerator(seed), _torch_gen(seed)
    assert g.get_state() == bytes(t.get_state().numpy())
    for n32, n64 in ((1, 0), (0, 3), (700, 1), (623, 0), (1, 1), (5000, 0)):
        g.random32(n32), g.random64(n64)
        torch.randint(0, 2**20, (n32,), generator=t, dtype=torch.int64)  # a word each
        torch.randint(0, 2**40, (n64,), generator=t, dtype=torch.int64)  # two words each
        assert g.get_state() == bytes(t.get_state().numpy())
    assert g.initial_seed() == t.initial_seed()


def test_state_bytes_load_both_ways_with_a_cached_normal():
    t = _torch_gen(3)
    torch.randn(3, generator=t, dtype=torch.float64)  # leaves r*sin(theta) cached
    g = CPUGenerator.from_state(bytes(t.get_state().numpy()))
    assert g.next_double_normal is not None
    assert g.get_state() == bytes(t.get_state().numpy())
    ours = D.normal(g, 5, np.float64)
    np.testing.assert_allclose(ours, torch.randn(5, generator=t, dtype=torch.float64).numpy(),
                               rtol=1e-12)
    with pytest.raises(RuntimeError, match="size"):
        g.set_state(b"\0" * 10)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="torch's AVX2 normal kernel is x86's")
def test_float32_normal_fill_is_torchs_bit_for_bit():
    g, t = CPUGenerator(17), _torch_gen(17)
    for n, mean, std in ((1 << 16, 0.0, 1.0), (1000 + 5, 2.5, 0.3), (16, -1.0, 4.0)):
        ours = D.normal(g, n, np.float32, mean, std)
        theirs = torch.empty(n).normal_(mean, std, generator=t).numpy()
        assert np.array_equal(ours, theirs)


def test_float64_normal_fill_and_scalar_path():
    g, t = CPUGenerator(8), _torch_gen(8)
    for n in (1, 2, 3, 15, 16, 33, 4000):
        ours = D.normal(g, n, np.float64, 0.5, 2.0)
        theirs = torch.empty(n, dtype=torch.float64).normal_(0.5, 2.0, generator=t).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def _swap_reference(words, n):
    r = list(range(n))
    for i in range(n - 1):
        z = int(words[i]) % (n - i)
        r[i], r[i + z] = r[i + z], r[i]
    return r


def _inside_out_reference(words, n):
    r = [0] * n
    for i in range(n):
        z = int(words[i]) % (i + 1)
        r[i] = r[z]
        r[z] = i
    return r


@pytest.mark.parametrize("n", [2, 3, 5, 16, 17, 100, 2049])
def test_randperm_loops_vectorised_match_the_sequential_ones(n):
    for seed in range(4):
        words = CPUGenerator(seed).random32(n - 1)
        assert _swap_shuffle(CPUGenerator(seed), n).tolist() == _swap_reference(words, n)
        words = CPUGenerator(seed).random64(n)
        assert _inside_out(CPUGenerator(seed), n).tolist() == _inside_out_reference(words, n)


def test_randperm_picks_torchs_algorithm_by_size():
    for n in (0, 1, 2, 10, 5000):
        assert np.array_equal(randperm_values(CPUGenerator(4), n),
                              torch.randperm(n, generator=_torch_gen(4)).numpy())
    # above the threshold torch switches to the inside-out shuffle over 64-bit words
    big = randperm_values(CPUGenerator(4), 300, small_limit=100)
    assert big.tolist() == _inside_out_reference(CPUGenerator(4).random64(300), 300)


def test_uniform_bounds_and_half():
    g, t = CPUGenerator(6), _torch_gen(6)
    for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64),
                          (np.float16, torch.float16)):
        ours = D.uniform(g, 300, dtype, -3.0, 0.5)
        theirs = torch.empty(300, dtype=tdtype).uniform_(-3.0, 0.5, generator=t).numpy()
        if dtype == np.float16:
            np.testing.assert_array_equal(ours, theirs)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-12 if dtype == np.float64 else 0,
                                       atol=0)


def _untemper(y):
    """Inverse of mt19937's tempering: the state word that draws as y."""
    y = y ^ (y >> np.uint32(18))
    y = y ^ ((y << np.uint32(15)) & np.uint32(0xEFC60000))
    x = y.copy()
    for _ in range(5):
        x = y ^ ((x << np.uint32(7)) & np.uint32(0x9D2C5680))
    y, x = x, x.copy()
    for _ in range(3):
        x = y ^ (x >> np.uint32(11))
    return x


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="torch's AVX2 normal kernel is x86's")
def test_float32_normal_fill_over_a_grid_of_uniforms_is_torchs():
    """torch fed chosen words: a state with left_=624, next_=1 draws state[1..623] as they
    are (tempered, no twist), so a crafted state makes torch's own kernel transform a
    chosen grid of uniforms: every 37th 24-bit value in the radius and the angle places
    (both ends included), with random high bytes that the kernel must drop."""
    from gradserve.engine.core import normal_avx2

    rng = np.random.default_rng(0)
    grid = np.unique(np.r_[np.arange(0, 1 << 24, 37), 1, (1 << 24) - 1]).astype(np.uint32)
    grid = grid[:grid.size // 8 * 8]
    rows = np.concatenate([grid.reshape(-1, 8), rng.permutation(grid).reshape(-1, 8)], axis=1)
    words = rows | (rng.integers(0, 256, rows.shape, dtype=np.uint32) << np.uint32(24))
    flat = words.reshape(-1)
    per = 38 * 16  # rows of 16 that fit in 623 controlled draws
    t = torch.Generator()
    state = np.frombuffer(bytes(t.get_state().numpy()), np.uint8).copy()
    state[:24] = np.frombuffer(np.array([(0, 624, 1, 1)], "<u8,<i4,<i4,<u8").tobytes(), np.uint8)
    state[24 + 8 * 624:] = 0  # no cached normals
    keys = state[24:24 + 8 * 624].view("<u8")
    theirs = np.empty(flat.size, np.float32)
    for lo in range(0, flat.size, per):
        chunk = _untemper(flat[lo:lo + per])
        keys[1:1 + chunk.size] = chunk
        t.set_state(torch.from_numpy(state.copy()))
        theirs[lo:lo + chunk.size] = torch.empty(chunk.size).normal_(generator=t).numpy()
    w64 = words.astype(np.uint64).reshape(-1, 2)
    pairs = list((w64[:, 0] << np.uint64(32)) | w64[:, 1])
    drawn = []

    def draw(k):  # random64's contract: the next k pairs, in order
        drawn.append(k)
        return np.array(pairs[sum(drawn) - k:sum(drawn)], np.uint64)

    ours = normal_avx2.fill_rows(draw, len(words), 0.0, 1.0).reshape(-1)
    assert sum(drawn) == len(pairs)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_float32_radius_equals_the_fused_reference_for_every_uniform():
    """normal_avx2's radius does six of log256_ps's eight Horner steps unfused (cheaper) and
    puts right the few k that this moves by an ulp (_LOG_FIXES); for every 24-bit k it must
    equal radius_reference, which does every step fused as torch's build does (the grid test
    above holds the whole kernel against torch itself)."""
    from gradserve.engine.core import normal_avx2

    step = 1 << 20
    kern = normal_avx2._Kernel(step)
    for lo in range(0, 1 << 24, step):
        k = np.arange(lo, lo + step, dtype=np.int32)
        np.copyto(kern.u[0], k, casting="unsafe")
        ours = kern.radius(kern.u[0]).view(np.int32)
        assert np.array_equal(ours, normal_avx2.radius_reference(k).view(np.int32)), lo


def test_float32_angle_equals_the_fused_reference_for_every_uniform():
    """normal_avx2's sincos takes Cephes' octant from k's top bits, does the three-step
    reduction as one double step and chains the polynomials in double; for every 24-bit k
    its (cos, sin), signs applied, must equal angle_reference, Cephes' steps written plainly
    (the grid test above holds the whole kernel against torch itself)."""
    from gradserve.engine.core import normal_avx2

    step = 1 << 20
    kern = normal_avx2._Kernel(step)
    for lo in range(0, 1 << 24, step):
        k = np.arange(lo, lo + step, dtype=np.int32)
        np.copyto(kern.u[1], k, casting="unsafe")
        np.copyto(kern.k[1], k.astype(">i4").view(np.int32))  # the words as fill leaves them
        ours = kern.sincos(kern.u[1], kern.k[1]).view(np.int32) ^ kern.flip
        assert np.array_equal(ours, normal_avx2.angle_reference(k).view(np.int32)), lo
