"""torch's AVX2 normal fill for float32 (`normal_fill_16_AVX2`), bit for bit, in numpy.

On x86 torch fills 16+ contiguous float32 normals with Box-Muller over 8-wide AVX2 vectors,
taking log and sincos from its avx_mathfun.h (Cephes polynomials in float). Its build
contracts each multiply-then-add of those polynomials into a fused multiply-add; the float
arithmetic below does the same (a float product is exact in double, so a multiply-add in
double rounds once before the rounding to float), which reproduces torch's values exactly:
checked against torch itself for every one of the 2^24 uniforms in both the radius and the
angle place (tests/engine/test_torch_rng.py checks a sample against torch, and every k
against radius_reference and angle_reference, torch's steps written plainly).

Speed: the kernel is about a hundred elementwise passes, so the words are drawn and
transformed in blocks that stay in cache, every pass writes into preallocated buffers, and
the steps that torch does with masks and blends (Cephes' range reduction, the sign and the
sin/cos swap by octant) are done with integer bit operations, because numpy's masked
operations on random masks cost ten times an arithmetic pass. Where a rounding provably
changes nothing (a product of small integers by a short constant, the exact Cody-Waite steps)
the fused steps are merged into one exact double computation.
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Callable

import numpy as np

from . import mt19937
from .mt19937 import draw_blocks

_f, _d, _i = np.float32, np.float64, np.int32
# rows of 16 normals a block: on one thread 4096 (the buffers, ~120 bytes a pair, stay in
# L2/L3); on several, up to 8192 and no fewer than 2048 (see block_rows)
_BLOCK_ROWS, _THREADED_ROWS, _MIN_ROWS = 4096, 8192, 2048
_LOG_P = tuple(float(_f(c)) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_LOG_P32 = tuple(_f(c) for c in _LOG_P)
_LOG_Q1, _LOG_Q2 = _f(-2.12194440e-4), _f(0.693359375)
_CHEAP_STEPS = 6  # of Horner's 8 in log256_ps, done unfused (see _Kernel.radius)
_SQRTHF_BITS = int(np.array(0.707106781186547524, _f).view(_i))
# Cody-Waite pi/4 in three floats. With j in {0, 2, 4, 6, 8}, j*DP1 and j*DP2 are exact
# floats and x + j*DP1 + j*DP2 is an exact float, so torch's three fused steps round only
# at the last: x + j*(DP1+DP2+DP3), computed exactly in double, then rounded once
_DP = tuple(float(_f(c)) for c in (-0.78515625, -2.4187564849853515625e-4,
                                   -3.77489497744594108e-8))
_DP_SUM = _DP[0] + _DP[1] + _DP[2]  # exact in double (48 bits)
_COS_P = (2.443315711809948e-005, -1.388731625493765e-003, 4.166664568298827e-002)
_SIN_P = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
# rows: cos, sin; the two polynomials in z run side by side as one (2, n) array
_K0, _K1, _K2 = (np.array([[float(_f(c))], [float(_f(s))]])
                 for c, s in zip(_COS_P, _SIN_P, strict=True))
_FOPI = _f(1.27323954473516)
_ANGLE = _f(2.0 * np.pi) * _f(2.0 ** -24)  # 2pi * (k * 2^-24) == (2pi * 2^-24) * k, exactly
_V32 = np.dtype((np.void, 32))  # 8 words: half a row of 16, moved as one item
_BE = np.dtype(">i4")
# the words come as 64-bit draws (first word high); byteswapped, each 32-bit half reads as
# its word in big-endian order, and this mask keeps the low 24 bits of both
_MASK_BE = np.uint64(0xFFFFFF00FFFFFF00)
_SIGN = np.int32(-2**31)
# the k (24 bits) whose radius the unfused steps leave one ulp off, as k << 1 | (1 if one
# ulp low): `python -m gradserve.engine.core.normal_avx2` lists them anew; a test checks all k
_LOG_FIXES = np.frombuffer(base64.b64decode(
    "GGJIAOErSwAZWlEAE4JVANJsVgBlplgAvHpaAP8+WwDVD14AfaVkAFurZAAkv2QAF29nAK8zaQCURWoActJqAGYn"
    "bABPem4Aq9JvADhXcQDlbXEAhthxAC7/dgDOQHcAop13ACPodwBO+XcAStF4AD7gewAwg3wAtrt8AF8xfQBAn30A"
    "Wg1+AJ0ffgC3Ln4Axtd+AKYKgAB0YIAAsXCAAIt9gABsh4EAXoiBAHJNggBuqoMAdFuEACH3hABNFoUAyauFAFfq"
    "hQBTFIYAdCOGAF8thgBryoYAsx2HAMNShwBkAYgA+yqIAP9hiQD2cooA8ZyKAFuxigATt4oAucaLAE32iwCT+4sA"
    "zgWMAB+ajQDLz40AK9uOAEL9jgAuPo8A43eQAHqgkAAakJEAjd+RAClDkwCdSZMA7FCTADmpkwCUzpMAIduTAJrv"
    "kwDv+5MA3YiUAAuOlACwpJQApLSUAJHmlACH65QAFhOVAG8nlQBeO5UAGniVAG+NlQD7nJUAZLKVAKTplQDZDpYA"
    "bDCWADo3lgBHgJYAOaqWAGHAlgBGxZYA1cmWAJrYlgC22ZYAbPCWAOv3lgBEEJcAShKXAEg1lwDcOJcAcDyXAGNA"
    "lwBKQ5cAm0+XAP+BlwCii5cAd42XAJyNlwD8lJcAIpWXAFDFlwB9yJcAGN6XAL33lwAIDJgA6hSYAK00mAD/WJgA"
    "MHOYAHSEmAATjZgAho6YADqcmAChqJgACbiYAJ+5mAD7v5gAI+2YAOssmQA9P5kANWeZADhvmQDCgJkA84OZACyS"
    "mQA5nZkA/aKZAKawmQA3tJkAY8KZADTEmQC2yZkAgtiZAMf1mQC3+ZkAbEKaAH1KmgDLT5oAt3qaAOd6mgCFhJoA"
    "usmaAEDKmgCj1JoAKdWaAPvZmgAY45oAauuaAGv1mgD7EZsA4BabABEcmwDWKZsAeyybAENKmwAXW5sA7nCbALqO"
    "mwAaj5sAEr6bAJ0CnAD9ApwAAQWcAC8InAC9JJwAXDCcAH06nAC/P5wAYVqcAC55nADBj5wA2aacACTGnABY0ZwA"
    "GdacAJ8BnQDoA50AhyKdAJo0nQD8OJ0ABlKdAMdcnQAsYJ0AMW2dAPF+nQClf50A7oedAGWZnQDsr50AkcqdAPrh"
    "nQD35Z0ASheeAGU5ngBmO54AM0CeAAVKngC8lp4A3aeeALgLnwAcGZ8AfSyfACZwnwC1rJ8A6bWfAOrQnwCp158A"
    "1NufALEHoAAkDaAAiRGgAEcToAB3S6AAZWmgABOLoADLi6AAhY2gAJmdoAD1nqAAVbGgAIC4oAC6u6AAAM6gAGzv"
    "oAAJDqEA8xGhAH42oQA3P6EABkmhAF1doQDuaqEAipKhAB/DoQAMyaEAo9+hAEsJogAQGqIAKjuiAKZLogBsXqIA"
    "ZWGiAGBjogCAcaIAmXaiAHKXogC4q6IAmq+iAPy1ogA65qIAHeyiAO8TowDtKqMAPjWjABdTowAAmaMAEbKjAJjB"
    "owBKOqQAjU2kAEFTpACtWaQAgGakALp2pABkoqQAiRKlAHggpQCiOKUAYlulAMVzpQAjdaUAZI+lACKcpQBanKUA"
    "pa6lAJa/pQD7JqYAYiemAOE4pgBIWKYAKGOmAHd5pgD08aYAYPumAKMLpwAgHKcABianAFkppwBsLKcAN1ynAN+K"
    "pwDy7KcAN/unAE81qAA4O6gAMU6oAK1bqADfgqgA9IeoADrmqADRMakA8UypANJ4qQDWz6kASNepAKcmqgCcOaoA"
    "D2CqAHxxqgC1hKoA27SqACguqwCyPqsAf1WrAKLPqwAJ6asAivmrADcArAD6DawAtRGsAPh0rAABp6wAFyOtAAJt"
    "rQC8ga0AA5mtADSxrQCMsa0AArOtAA0PrgC5G64An0+uAENirgC3dK4AwdeuANfurgB3LK8Alz+vACezrwDvNLAA"
    "1nqwAATCsAC3jrEAedSxAI/zsQA+nLIATxezAPBFswAqULMAqCe0ALdEtABWYLQA44u0ABDvtAArRrUA7HS1AIsF"
    "tgAyW7YA2HC2ACfutgBvO7cAABW8AA8OvQCU3L0AB5K+AJA4wQCZQMIAt5TCADAUxgB4UMcAqHrIAC5m0ABxZOEA"
    "BFszAQOlNAFHfzcB5f85ARpkPQE6mz0BJiI/AT4ZQQFkk0UBErVFAVo5RgFzO0YBpbFGAQdsRwHmeEcBxPlJAThI"
    "SwHrZEsBEH5LAcuxSwHeuksBe8lLAX7KSwGU1UsB0dtLAbtZTQErRk4BdblOAZ2/TwH41k8Bu+pPAcn9TwF9bFAB"
    "HYlQARU9UQH2yFEB2kpSAY2BUgHVglIBE4dSAcG8VQEiClYBCJpWAShBVwGAjVcBMr1XAWtiWQF9vFkBAPxZAY4Y"
    "WwHL4VsB11xgAdJTmwEYD6MBDPSkAW8CpQH9UaUBIImlARWcpQEIv6UB9d+lAXgspgGIX6YB3jqnAS3TpwFe8KcB"
    "0VOoAdibqAFI/agBup2pAcT9qgETL6wBdh6tAU0irQEuE64BmqnMAfvt0QE2ydIBjXbTAQOT0wEBo9MBV4vUAWDb"
    "1AHY5tUBFWzpAfyf6QFv8OkB/s/0AeYS9QG9ePUBYQv6AX87/QE="), "<i4")
# sorted, with a sentinel above every k, so a search never runs off the end
_LOG_FIX_K = np.append(_LOG_FIXES >> 1, 1 << 24).astype(_i)
_LOG_FIX_STEP = np.append(np.where(_LOG_FIXES & 1, 1, -1), 0).astype(_i)
_LOG_FILTER = np.zeros(1 << 16, np.bool_)  # bool: numpy finds the set places of a bool
_LOG_FILTER[_LOG_FIX_K[:-1] & 0xFFFF] = True  # array several times faster than of a uint8 one
_FLIP_OFFSET = np.array([[2 << 13], [0]], _i)  # rows: cos, sin


def _c(value, dtype) -> np.ndarray:
    """A constant operand as a 0-d array of the dtype a scalar would resolve to: numpy
    takes an array operand about a microsecond faster than a scalar, which adds up over
    the kernel's passes (the blocks run on several threads, and this part holds the GIL)."""
    return np.array(value, dtype)


# the kernel's constant operands (see where each is used)
_C_MASK_BE = _c(_MASK_BE, np.uint64)
_C_LOG_P32 = tuple(_c(p, _f) for p in _LOG_P32)
_C_LOG_P64 = tuple(_c(p, _d) for p in _LOG_P)
_C_LOG_Q1, _C_LOG_Q2 = _c(_LOG_Q1, _f), _c(_LOG_Q2, _f)
_C_2_24, _C_ONE, _C_HALF, _C_M2 = (_c(v, _f) for v in (1 << 24, 1, 0.5, -2))
_C_HALF64 = _c(0.5, _d)
_C_ANGLE, _C_DP = _c(_ANGLE, _f), _c(_DP_SUM * 2.0 ** -13, _d)
_C_EXP_BIAS, _C_SQRTHF = _c(_SQRTHF_BITS + (24 << 23), _i), _c(_SQRTHF_BITS, _i)
_C_SIGN = _c(_SIGN, _i)
_C_I = {v: _c(v, _i) for v in (16, 17, 23, 31, 0xFFFF, 0x7FFFFF, 0xE000, 0x2000, 0x1C000)}


class _Kernel:
    """Buffers for one block of h Box-Muller pairs, so each step is one pass with no
    allocation; the radius and the angle words run side by side as (2, h) arrays where a
    step is the same for both."""

    # (rows, dtype) of each buffer, in the order __init__ assigns them
    _LAYOUT = ((2, _i), (2, _i), (2, _f), (2, _f), (1, _i), (1, _i), (1, _i), (1, _f), (1, _f),
               (1, _f), (1, _d), (1, _d), (2, _d), (2, _d), (1, np.intp), (1, np.bool_))
    _BYTES = sum(r * np.dtype(t).itemsize for r, t in _LAYOUT)  # per pair

    def __init__(self, h: int, arena: np.ndarray | None = None) -> None:
        """Buffers for h pairs, carved from `arena` (bytes, at least h * _BYTES) when given:
        blocks of different sizes then reuse one allocation (no fresh pages to fault in)."""
        self.h = h
        arena = np.empty(h * self._BYTES, np.uint8) if arena is None else arena
        views, at = [], 0
        for rows, t in self._LAYOUT:
            size = rows * h * np.dtype(t).itemsize
            a = arena[at:at + size].view(t)
            views.append(a.reshape(rows, h) if rows == 2 else a)
            at += size
        (self.k, self.flip, self.u, self.cs, self.ki, self.jq, self.n, self.e, self.y, self.z,
         self.m64, self.t64, self.t2, self.zx, self.idx, self.hit) = views

    def fill(self, v: np.ndarray, out: np.ndarray, mean: float = 0.0,
             std: float = 1.0) -> None:
        """Rows `out` (h/8, 16) from their h drawn 64-bit values `v` (overwritten), as
        normals of `mean` and `std`."""
        v.byteswap(inplace=True)
        v &= _C_MASK_BE
        # each row's 8 draws: 4 (8 words) for the radii, then 4 for the angles
        np.copyto(self.k.view(_V32), v.view(_V32).reshape(-1, 2).T)
        np.copyto(self.u, self.k.view(_BE), casting="unsafe")
        r = self.radius(self.u[0])
        cs = self.sincos(self.u[1], self.k[1])
        np.multiply(cs, r, out=cs)
        cs.view(_i)[...] ^= self.flip
        if not (_f(mean) == 0 and _f(std) == 1):  # while the values are still in cache
            _affine(cs.reshape(-1), mean, std, self.t2.reshape(-1))
        np.copyto(out.view(_V32).T, cs.view(_V32))

    def radius(self, a: np.ndarray, fix: bool = True) -> np.ndarray:
        """sqrt(-2 log(1 - k/2^24)) with log256_ps, from k as floats (overwritten); `fix`
        False leaves the k of _LOG_FIXES as the unfused steps leave them."""
        e, ix = self.e, a.view(_i)
        y, z, m64, t = self.y, self.z, self.m64, self.t64
        # the places whose k may be one of _LOG_FIXES, by k's low 16 bits
        np.copyto(self.ki, a, casting="unsafe")  # float to int32 is one SIMD pass, to intp not
        np.bitwise_and(self.ki, _C_I[0xFFFF], out=self.idx, casting="unsafe")
        np.take(_LOG_FILTER, self.idx, out=self.hit, mode="clip")
        at = self.hit.nonzero()[0] if fix else self.idx[:0]
        ks = self.ki[at]
        np.subtract(_C_2_24, a, out=a)  # 2^24 (1 - u): exact
        # frexp and Cephes' "x < sqrt(1/2): e -= 1, x += x" in one: subtracting sqrt(1/2)'s
        # bits borrows from the exponent exactly when the mantissa is below it (the 2^-24
        # scale is folded into the exponent)
        ix -= _C_EXP_BIAS
        np.right_shift(ix, _C_I[23], out=self.ki)
        np.copyto(e, self.ki, casting="unsafe")
        ix &= _C_I[0x7FFFFF]
        ix += _C_SQRTHF
        m = a
        m -= _C_ONE
        np.multiply(m, m, out=z)
        # Horner's first six steps unfused in float32, four times cheaper than a fused
        # step: that changes the radius of a few k (_LOG_FIXES, found by trying all 2^24),
        # which are put right after. A fused step is done in double (a product of floats is
        # exact there, so the step rounds once, on the way back to float), with the casts
        # as passes of their own: a ufunc that mixes float and double operands casts them
        # through a buffer, slower than a separate cast
        np.multiply(m, _C_LOG_P32[0], out=y)
        y += _C_LOG_P32[1]
        for p in _C_LOG_P32[2:_CHEAP_STEPS + 1]:
            y *= m
            y += p
        np.copyto(m64, m)
        for p in _C_LOG_P64[_CHEAP_STEPS + 1:]:
            np.copyto(t, y)
            t *= m64
            t += p
            np.copyto(y, t, casting="same_kind")
        y *= m
        np.multiply(y, z, out=t, dtype=_d)
        np.multiply(e, _C_LOG_Q1, out=y)
        np.add(t, y, out=y, casting="same_kind")
        z *= _C_HALF
        y -= z
        m += y
        e *= _C_LOG_Q2
        m += e
        m *= _C_M2
        r = np.sqrt(m, out=m)
        if at.size:
            where = np.searchsorted(_LOG_FIX_K, ks)  # at most the sentinel's place
            fix = _LOG_FIX_K[where] == ks
            r.view(_i)[at[fix]] += _LOG_FIX_STEP[where[fix]]
        return r

    def sincos(self, x: np.ndarray, kw: np.ndarray) -> np.ndarray:
        """sincos256_ps of 2pi k/2^24 from k as floats (`x`, overwritten) and the
        byteswapped words (`kw`): (cos, sin) as rows of self.cs, their signs in self.flip."""
        jq, n, t = self.jq, self.n, self.t64
        cs, t2, zx = self.cs, self.t2, self.zx
        x *= _C_ANGLE
        # Cephes' octant j = (int(x * 4/pi) + 1) & ~1 is ((k >> 21) + 1) & ~1 for every k
        # (checked for all 2^24); k's top bits sit at bits 13..15 of the byteswapped word,
        # so jq = j << 13
        np.bitwise_and(kw, _C_I[0xE000], out=jq)
        jq += _C_I[0x2000]
        jq &= _C_I[0x1C000]
        # one fused step, its float and double operands mixed in the ufuncs (two passes;
        # the polynomials below chain their steps in double, with casts of their own)
        np.multiply(jq, _C_DP, out=t)
        np.add(t, x, out=x, casting="same_kind")
        np.copyto(zx[1], x)
        z = self.z
        np.multiply(x, x, out=z)
        z64 = zx[0]
        np.copyto(z64, z)
        np.multiply(z64, _K0, out=t2)
        t2 += _K1
        np.copyto(cs, t2, casting="same_kind")
        np.copyto(t2, cs)
        t2 *= z64
        t2 += _K2
        np.copyto(cs, t2, casting="same_kind")
        cs *= z
        np.copyto(t2, cs)
        t2 *= zx  # cos: c*z - z/2; sin: s*x + x
        np.multiply(z64, _C_HALF64, out=t)
        t2[0] -= t
        t2[1] += zx[1]
        np.copyto(cs, t2, casting="same_kind")
        cs[0] += _C_ONE
        # odd octant pairs (j & 2) swap the polynomials: a bitwise select
        ci = cs.view(_i)
        np.left_shift(jq, _C_I[17], out=n)
        n >>= _C_I[31]
        d = self.ki
        np.bitwise_xor(ci[0], ci[1], out=d)
        d &= n
        ci ^= d
        # sign bits: r*cos flips for j in {2, 4} ((j + 2) & 4), r*sin for j in {4, 6} (j & 4)
        np.add(jq, _FLIP_OFFSET, out=self.flip)
        self.flip <<= _C_I[16]
        self.flip &= _C_SIGN
        return cs


def _affine(flat: np.ndarray, mean: float, std: float, t: np.ndarray) -> None:
    """flat = float(flat * std + mean), fused (one rounding) as torch's kernel does; `t` a
    double buffer of flat's size."""
    np.copyto(t, flat)
    t *= _d(_f(std))
    t += _d(_f(mean))
    np.copyto(flat, t, casting="same_kind")


_local = threading.local()


def _kernel(h: int) -> _Kernel:
    """This thread's buffers for a block of h pairs (blocks run on several threads), in one
    allocation that grows to the largest block seen. The kernels over it are kept by size:
    carving a kernel's views costs as much as a small draw's arithmetic."""
    arena = getattr(_local, "arena", None)
    if arena is None or arena.size < h * _Kernel._BYTES:
        arena = _local.arena = np.empty(h * _Kernel._BYTES, np.uint8)
        _local.kernels = {}
    kernels = _local.kernels
    kern = kernels.get(h)
    if kern is None:
        if len(kernels) >= 8:  # a block size and a last block's, per fill size in use
            kernels.clear()
        kern = kernels[h] = _Kernel(h, arena)
    return kern


def block_rows(rows: int, threads: int) -> list[int]:
    """Rows per block. One thread: blocks of _BLOCK_ROWS (cache-sized). Several: blocks of
    up to _THREADED_ROWS (longer numpy loops, so threads contend less for the GIL between
    them), each the remaining rows over twice the threads ("guided" scheduling), so the
    last blocks are small and the threads finish together."""
    if threads <= 1:
        return [min(_BLOCK_ROWS, rows - lo) for lo in range(0, rows, _BLOCK_ROWS)]
    sizes, left = [], rows
    while left:
        size = min(left, max(_MIN_ROWS, min(_THREADED_ROWS, -(-left // (2 * threads)))))
        sizes.append(size)
        left -= size
    return sizes


def _fill_block(v: np.ndarray, o: np.ndarray, mean: float, std: float) -> None:
    """Rows `o` (r, 16) from their 8r drawn 64-bit values `v` (consumed)."""
    _kernel(v.size).fill(v, o, mean, std)


def fill_rows(words: Callable[[int], np.ndarray], rows: int, mean: float, std: float,
              out: np.ndarray | None = None) -> np.ndarray:
    """`rows` rows of 16 float32 normals, torch's normal_fill_16_AVX2 of 16 uniforms each
    (the first 8 give the radii, the next 8 the angles). `words(k)` draws k 64-bit values
    of two words each, the first word high (`CPUGenerator.random64`); they are drawn in
    blocks, in order, and the blocks are transformed on several threads (`draw_blocks`)."""
    out = np.empty((rows, 16), _f) if out is None else out
    # smaller fills: threads would mostly wait for each other
    helpers = mt19937.helpers_now() if rows >= 2 * _THREADED_ROWS else 0
    sizes = block_rows(rows, 1 + helpers)
    starts = [0, *itertools.accumulate(sizes[:-1])]

    def work(i: int, v: np.ndarray) -> None:
        _fill_block(v, out[starts[i]:starts[i] + sizes[i]], mean, std)

    draw_blocks(words, [8 * r for r in sizes], work, helpers)
    return out


def radius_reference(k: np.ndarray) -> np.ndarray:
    """The radius sqrt(-2 log(1 - k/2^24)) of 24-bit k (int32) as torch's log256_ps gives it,
    every multiply-add fused, written plainly: what _Kernel.radius must equal for every k."""
    a = (_f(1 << 24) - k.astype(_f)).view(_i) - (_SQRTHF_BITS + (24 << 23))
    e = (a >> 23).astype(_f)
    m = ((a & 0x7FFFFF) + _SQRTHF_BITS).view(_f) - _f(1)
    z = m * m

    def fma(x, y, c):
        return (x.astype(_d) * y.astype(_d) + np.asarray(c, _d)).astype(_f)

    y = fma(m, _f(_LOG_P[0]), _LOG_P[1])
    for p in _LOG_P[2:]:
        y = fma(y, m, p)
    y = fma(y * m, z, e * _LOG_Q1) - z * _f(0.5)
    return np.sqrt((m + y + e * _LOG_Q2) * _f(-2))


def angle_reference(k: np.ndarray) -> np.ndarray:
    """(cos, sin) of theta = 2pi * k/2^24 (in float) for 24-bit k (int32), as torch's
    sincos256_ps gives them (Cephes' octant, its three-step reduction, both polynomials,
    the select and the signs), every multiply-add fused, written plainly: rows that
    _Kernel.sincos, its signs applied, must equal for every k."""
    def fma(x, y, c):
        return (np.asarray(x, _d) * np.asarray(y, _d) + np.asarray(c, _d)).astype(_f)

    theta = _f(2.0 * np.pi) * (k.astype(_f) * _f(2.0 ** -24))
    j = ((theta * _FOPI).astype(_i) + 1) & ~1  # theta >= 0: no sign to take off first
    y = j.astype(_f)
    x = fma(y, _DP[2], fma(y, _DP[1], fma(y, _DP[0], theta)))
    z = x * x
    c = fma(fma(z, _f(_COS_P[0]), _f(_COS_P[1])), z, _f(_COS_P[2])) * z
    c = fma(c, z, -(z * _f(0.5))) + _f(1)
    s = fma(fma(z, _f(_SIN_P[0]), _f(_SIN_P[1])), z, _f(_SIN_P[2])) * z
    s = fma(s, x, x)
    swap = (j & 2) != 0
    cos, sin = np.where(swap, s, c), np.where(swap, c, s)
    return np.stack([np.where((j + 2) & 4, -cos, cos), np.where(j & 4, -sin, sin)])


def _log_fixes() -> np.ndarray:
    """The k where the kernel's radius, without fixes, is off, and which way (_LOG_FIXES)."""
    step, fixes = 1 << 20, []
    kern = _Kernel(step)
    for lo in range(0, 1 << 24, step):
        k = np.arange(lo, lo + step, dtype=_i)
        np.copyto(kern.u[0], k, casting="unsafe")
        ours, ref = kern.radius(kern.u[0], fix=False).view(_i), radius_reference(k).view(_i)
        off = np.flatnonzero(ours != ref)
        if off.size and np.abs(ours[off] - ref[off]).max() > 1:
            raise AssertionError("an unfused step moved a radius by more than an ulp")
        fixes.append(k[off] << 1 | (ours[off] < ref[off]))
    return np.concatenate(fixes).astype("<i4")


if __name__ == "__main__":  # prints _LOG_FIXES for the source
    text = base64.b64encode(_log_fixes().tobytes()).decode()
    print("\n".join(f'    "{text[i:i + 88]}"' for i in range(0, len(text), 88)))
