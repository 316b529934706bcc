"""randperm and multinomial as torch's CPU kernels compute them, without a Python loop.

randperm (aten/src/ATen/native/TensorFactories.cpp) shuffles with a sequential Fisher-Yates:
for n below 2^32 / 20, step i swaps places i and i + (word % (n - i)); above, the
"inside-out" variant writes i into a place drawn from 64-bit words. Each step depends on the
previous ones, but only through which earlier step last wrote a place: with all the draws
known up front, every final value is found by following such "last writer" links, which
pointer jumping does for all places at once in O(n log n) array work.

multinomial (native/Distributions.cpp, native/cpu/MultinomialKernel.cpp) samples without
replacement by the exponential race (argmax or top-k of p / Exp(1)), and with replacement by
binary search of each 53-bit uniform in the normalised cumulative sum.

    >>> from gradserve.engine.core.mt19937 import CPUGenerator
    >>> randperm_values(CPUGenerator(0), 5).tolist()
    [4, 0, 1, 3, 2]
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import InvalidArgumentError
from ..core.mt19937 import CPUGenerator
from ..core.torch_dists import exponential, normal, uniform, unit

SMALL_RANDPERM = (1 << 32) // 20  # torch: n < numeric_limits<uint32_t>::max() / 20


def randperm_values(gen: CPUGenerator, n: int, small_limit: int = SMALL_RANDPERM) -> np.ndarray:
    """torch.randperm(n)'s values (int64) from `gen`."""
    if n <= 1:
        return np.zeros(max(n, 0), np.int64) if n == 0 else np.zeros(1, np.int64)
    if n < small_limit:
        return _swap_shuffle(gen, n)
    return _inside_out(gen, n)


def _root(parent: np.ndarray) -> np.ndarray:
    """For each node, the end of its parent chain (a node that is its own parent)."""
    while True:
        up = parent[parent]
        if np.array_equal(up, parent):
            return parent
        parent = up


def _previous_same(values: np.ndarray) -> np.ndarray:
    """For each i, the largest k < i with values[k] == values[i], else -1."""
    order = np.argsort(values, kind="stable")
    sv = values[order]
    prev = np.full(values.size, -1, np.int64)
    same = sv[1:] == sv[:-1]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def _swap_shuffle(gen: CPUGenerator, n: int) -> np.ndarray:
    """for i < n - 1: swap(r[i], r[i + random() % (n - i)]), r starting as 0..n-1.

    Place k is final after step k and holds what it held just before step k, c(k): its own
    index unless an earlier step swapped into it, in which case it holds what that step's
    place held just before that step, c(that step): a chain down to an untouched index. Step
    i takes its value from place j_i: c(i) when j_i == i, else what the last earlier step
    that targeted j_i put there, else j_i itself."""
    idx = np.arange(n, dtype=np.int64)
    steps = idx[:-1]
    j = steps + (gen.random32(n - 1) % (n - steps).astype(np.uint64)).astype(np.int64)
    moved = j != steps
    if not moved.any():
        return idx
    # last (largest) step k < t with j_k == t, k != t: it made place t hold c(k)
    last_into = np.full(n, -1, np.int64)
    tgt, src = j[moved], steps[moved]
    order = np.argsort(tgt, kind="stable")
    tgt, src = tgt[order], src[order]
    ends = np.append(tgt[1:] != tgt[:-1], True)
    last_into[tgt[ends]] = src[ends]
    c = _root(np.where(last_into >= 0, last_into, idx))
    out = c.copy()  # c(i) where j_i == i, and for the last place
    q = _previous_same(j)[moved]
    at = steps[moved]
    out[at] = np.where(q >= 0, c[np.maximum(q, 0)], j[moved])
    return out


def _inside_out(gen: CPUGenerator, n: int) -> np.ndarray:
    """for i < n: z = random64() % (i + 1); r[i] = r[z]; r[z] = i.

    Place p ends holding the last step that drew z == p, if any; else what step p copied
    into it: p itself when z_p == p, else what place z_p held then, which is the last
    earlier step that drew z_p, else (again) what step z_p copied: a chain."""
    idx = np.arange(n, dtype=np.int64)
    z = (gen.random64(n) % (idx + 1).astype(np.uint64)).astype(np.int64)
    prev = _previous_same(z)
    term = z == idx
    value = np.where(term, idx, prev)
    term |= prev >= 0
    v = value[_root(np.where(term, idx, z))]
    last = np.full(n, -1, np.int64)
    order = np.argsort(z, kind="stable")
    zs = z[order]
    ends = np.append(zs[1:] != zs[:-1], True)
    last[zs[ends]] = order[ends]
    return np.where(last >= 0, last, v)


def multinomial_indices(gen: CPUGenerator, p: np.ndarray, num_samples: int,
                        replacement: bool) -> np.ndarray:
    """torch.multinomial(p, num_samples, replacement)'s indices (int64) from `gen`."""
    p = np.ascontiguousarray(p)
    rows = p.reshape(-1, p.shape[-1])
    if not replacement or num_samples == 1:
        if not np.all(np.isfinite(rows)) or (rows < 0).any():
            raise InvalidArgumentError("probability tensor contains either `inf`, `nan` or "
                                       "element < 0")
        if (rows.sum(axis=1) == 0).any():
            raise InvalidArgumentError("invalid multinomial distribution (sum of "
                                       "probabilities <= 0)")
        q = exponential(gen, rows.size, p.dtype, 1.0).reshape(rows.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = (rows / q).astype(p.dtype)
        if num_samples == 1:
            out = np.argmax(q, axis=1)[:, None]
        else:
            out = np.argsort(-q, axis=1, kind="stable")[:, :num_samples]
        return out.astype(np.int64).reshape(*p.shape[:-1], num_samples)
    if (rows < 0).any():
        raise InvalidArgumentError("invalid multinomial distribution (encountering "
                                   "probability entry < 0)")
    if not np.all(np.isfinite(rows)):
        raise InvalidArgumentError("invalid multinomial distribution (encountering "
                                   "probability entry = infinity or NaN)")
    cum = np.cumsum(rows, axis=1, dtype=p.dtype)
    total = cum[:, -1:]
    if (total <= 0).any():
        raise InvalidArgumentError("invalid multinomial distribution (sum of probabilities "
                                   "<= 0)")
    cum = (cum / total).astype(p.dtype)
    cum[:, -1] = 1
    u = unit(gen, rows.shape[0] * num_samples, np.float64).reshape(rows.shape[0], -1)
    out = np.stack([np.searchsorted(c.astype(np.float64), row, side="left")
                    for c, row in zip(cum, u, strict=True)]) if rows.shape[0] else \
        np.zeros((0, num_samples), np.int64)
    return out.astype(np.int64).reshape(*p.shape[:-1], num_samples)


def trunc_normal_values(gen: CPUGenerator, n: int, dtype, contiguous: bool, mean: float,
                        std: float, a: float, b: float) -> np.ndarray:
    """torch 2.13's `nn.init.trunc_normal_`: when [a, b] holds more than 0.3 of the mass,
    normals redrawn (a whole tensor's worth each round) where they fall outside; else
    uniform candidates on [a, b] accepted by log(u) > the log density below its peak. The
    rounds run here, on the data, so a remote session waits for none of them."""
    dtype = np.dtype(dtype)
    cast = dtype.type

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:
        lo, hi = cast(a), cast(b)
        result = normal(gen, n, dtype, mean, std, contiguous)
        while True:
            outside = (result < lo) | (result > hi)
            if not outside.any():
                return result
            result = np.where(outside, normal(gen, n, dtype, mean, std, contiguous), result)
    mode = max(a, min(mean, b))
    log_peak = -0.5 * ((mode - mean) / std) ** 2

    def log_density(x):  # torch's in-place float steps, scalars cast to the dtype
        x = (x - cast(mean)) / cast(std)
        return (x * x) * cast(-0.5) - cast(log_peak)

    result = uniform(gen, n, dtype, a, b)
    candidates = log_density(result)
    with np.errstate(divide="ignore"):
        pending = np.log(uniform(gen, n, dtype)) > candidates
        while pending.any():
            fresh = uniform(gen, n, dtype, a, b)
            result = np.where(pending, fresh, result)
            candidates = log_density(fresh)
            pending = np.where(pending, np.log(uniform(gen, n, dtype)) > candidates, pending)
    return result
