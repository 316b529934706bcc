"""torch's AVX2 normal fill for float32 (`normal_fill_16_AVX2`), bit for bit, in numpy.

On x86 torch fills 16+ contiguous float32 normals with Box-Muller over 8-wide AVX2 vectors,
taking log and sincos from its avx_mathfun.h (Cephes polynomials in float). Its build
contracts each multiply-then-add of those polynomials into a fused multiply-add; the float
arithmetic below does the same (a float product is exact in double, so `_fma` rounds once,
bar a double-rounding tie), which reproduces torch's values exactly, not just closely.

Arrays are processed in blocks that stay in cache: the kernel is some forty elementwise
passes, and on a 1e6-element draw the blocks make it several times faster.
"""

from __future__ import annotations

import numpy as np

_f, _d = np.float32, np.float64
_BLOCK = 1 << 16
_LOG_P = tuple(_f(c) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
    -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_LOG_Q1, _LOG_Q2 = _f(-2.12194440e-4), _f(0.693359375)
_SQRTHF = _f(0.707106781186547524)
_DP = tuple(_f(c) for c in (-0.78515625, -2.4187564849853515625e-4, -3.77489497744594108e-8))
_COS_P = tuple(_f(c) for c in (2.443315711809948e-005, -1.388731625493765e-003,
                                4.166664568298827e-002))
_SIN_P = tuple(_f(c) for c in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1))
_FOPI = _f(1.27323954473516)
_TWO_PI = _f(2.0 * np.pi)


class _Scratch:
    """Per-block buffers, so each step is one pass with no allocation."""

    def __init__(self, n: int) -> None:
        self.d = np.empty(n, _d)

    def fma(self, a, b, c, out):
        """out = float32(a * b + c), rounded once: a float product is exact in double."""
        t = self.d[:a.size].reshape(a.shape)
        np.multiply(a, b, out=t, dtype=_d)
        t += c
        out[...] = t
        return out


def _log(x, sc: _Scratch):
    """log256_ps for x in (0, 1] (float32, modified in place)."""
    bits = x.view(np.uint32)
    e = (bits >> 23).astype(np.int32)
    e -= 126
    e = e.astype(_f)
    bits &= np.uint32(0x807FFFFF)
    bits |= np.uint32(0x3F000000)
    small = x < _SQRTHF
    m = x - _f(1)
    np.add(m, x, out=m, where=small)
    e -= small
    z = m * m
    y = np.empty_like(m)
    sc.fma(m, _LOG_P[0], _LOG_P[1], y)
    for p in _LOG_P[2:]:
        sc.fma(y, m, p, y)
    y *= m
    sc.fma(y, z, e * _LOG_Q1, y)
    z *= _f(0.5)
    y -= z
    m += y
    e *= _LOG_Q2
    m += e
    return m


def _sincos(x, sc: _Scratch):
    """sincos256_ps for x >= 0 (float32, modified in place)."""
    j = (x * _FOPI).astype(np.int32)
    j += 1
    j &= ~1
    y = j.astype(_f)
    for dp in _DP:
        sc.fma(y, dp, x, x)
    z = x * x
    c = np.empty_like(x)
    sc.fma(z, _COS_P[0], _COS_P[1], c)
    sc.fma(c, z, _COS_P[2], c)
    c *= z
    sc.fma(c, z, -(z * _f(0.5)), c)
    c += _f(1)
    s = y  # y is spent: reuse its memory
    sc.fma(z, _SIN_P[0], _SIN_P[1], s)
    sc.fma(s, z, _SIN_P[2], s)
    s *= z
    sc.fma(s, x, x, s)
    second = (j & 2) != 0
    sin, cos = np.where(second, c, s), np.where(second, s, c)
    np.negative(sin, out=sin, where=(j & 4) != 0)
    j -= 2
    np.negative(cos, out=cos, where=(j & 4) == 0)
    return sin, cos


def fill16(blocks: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Rows of 16 float32 uniforms -> rows of 16 normals (first 8 radii, last 8 angles)."""
    out = np.empty_like(blocks)
    m, s = _f(mean), _f(std)
    rows = max(1, _BLOCK // 16)
    sc = _Scratch(rows * 8)
    for lo in range(0, blocks.shape[0], rows):
        b = blocks[lo:lo + rows]
        radius = _log(_f(1) - b[:, :8], sc)
        radius *= _f(-2)
        np.sqrt(radius, out=radius)
        sin, cos = _sincos(_TWO_PI * b[:, 8:], sc)
        o = out[lo:lo + rows]
        np.multiply(radius, cos, out=o[:, :8])
        np.multiply(radius, sin, out=o[:, 8:])
        if not (m == 0 and s == 1):
            for half in (o[:, :8], o[:, 8:]):
                sc.fma(half, s, m, half)
    return out
