"""torch's CPU distribution kernels over `CPUGenerator` words, vectorised with numpy.

Each function draws exactly the words torch's kernel draws, in the same order, and applies
the same transformation (aten/src/ATen/core/TransformationHelper.h, DistributionsHelper.h,
native/cpu/DistributionTemplates.h), so a seeded stream gives torch's values: integers
exactly, floats to within a rounding or two (torch's float kernels round at different
points, and its vectorised normal uses its own log/sincos approximations).

torch's kernels are serial and draw a fixed number of words per element, so n elements are
n (or 2n) words from one `random_raw` call, transformed as arrays. Results are host arrays
(numpy) of the requested numpy dtype, in row-major order.

    >>> from gradserve.engine.core.mt19937 import CPUGenerator
    >>> [round(float(v), 4) for v in normal(CPUGenerator(0), 3, np.float32)]
    [1.541, -0.2934, -2.1788]
"""

from __future__ import annotations

import platform
import threading

import numpy as np

from . import normal_avx2 as _normal_avx2
from .mt19937 import CPUGenerator, draw_blocks

_F32_DIV = np.float32(1.0 / (1 << 24))
_F64_DIV = 1.0 / (1 << 53)
_TWO_PI = 2.0 * np.pi
_M24, _M53 = np.uint64((1 << 24) - 1), np.uint64((1 << 53) - 1)
_M24_PAIR_BE = np.uint64(0xFFFFFF00FFFFFF00)  # both words' low 24 bits, byteswapped
_HALF = np.uint64(32)
_UNIT_BLOCK = 1 << 15  # 64-bit draws a block: 256 KiB, converted while still in cache
# below this many elements a draw is done whole (the blocks' bookkeeping costs more than
# the passes it saves)
_SMALL_DRAW = 4096
_VEC_MIN = 16  # torch's normal fills 16+ contiguous elements 16 at a time
_FILL16_ROWS = 2048  # rows of 16 a block of the scalar template: 512 KiB of buffers
_V64 = np.dtype((np.void, 64))  # 8 doubles: half a row of 16
# torch's x86 builds fill float32 normals with their AVX2 kernel (AVX-512 machines too: the
# normal kernel is not dispatched to AVX-512); elsewhere with the scalar template
_AVX2 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _is64(dtype) -> bool:
    return np.dtype(dtype) == np.float64


# -- uniform ---------------------------------------------------------------------------------
def unit(gen: CPUGenerator, n: int, dtype) -> np.ndarray:
    """n draws of `uniform_real_distribution<T>(0, 1)`: [0, 1) on T's mantissa grid
    (float64: 53 bits of a 64-bit draw; otherwise 24 bits of a word, as float32)."""
    return _unit(gen, n, np.dtype(dtype) == np.float64)


def _unit(gen: CPUGenerator, n: int, wide: bool, bounds: tuple | None = None) -> np.ndarray:
    """unit(), float64 when `wide` else float32; with `bounds` (low and high - low, T's
    values, the difference rounded in T) each block is mapped to x * (high - low) + low
    while it is still in cache, as `uniform` describes."""
    if wide:
        out = np.empty(n, np.float64)

        def wide_block(i: int, v: np.ndarray) -> None:
            v &= _M53
            o = out[i * _UNIT_BLOCK:i * _UNIT_BLOCK + v.size]
            np.copyto(o, v.view(np.int64), casting="unsafe")  # < 2^53: exact, and faster
            o *= _F64_DIV                                      # than from uint64
            if bounds is not None:
                _affine64(o, *bounds)

        draw_blocks(gen.random64, _block_sizes(n, _UNIT_BLOCK), wide_block)
        return out
    # words two at a time as 64-bit draws (one numpy call per block): byteswapped, each
    # half reads as its word in big-endian order, first word first
    out = np.empty(n, np.float32)

    def narrow(i: int, v: np.ndarray) -> None:
        v.byteswap(inplace=True)
        v &= _M24_PAIR_BE
        _scale32(out[2 * i * _UNIT_BLOCK:2 * (i * _UNIT_BLOCK + v.size)], bounds,
                 v.view(">i4"))

    draw_blocks(gen.random64, _block_sizes(n // 2, _UNIT_BLOCK), narrow)
    if n % 2:
        out[-1] = np.float32(gen.random32(1)[0] & _M24)
        _scale32(out[-1:], bounds)
    return out


_scratch_buffers = threading.local()


def _scratch(size: int, dtype) -> np.ndarray:
    """This thread's scratch array of `dtype` for one block (blocks run on several
    threads), reused from call to call: fresh pages cost more than the pass that fills them."""
    key = np.dtype(dtype).char
    buf = getattr(_scratch_buffers, key, None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 2 * _UNIT_BLOCK), dtype)
        setattr(_scratch_buffers, key, buf)
    return buf[:size]


def _scale32(o: np.ndarray, bounds: tuple | None, k: np.ndarray | None = None) -> None:
    """o = k / 2^24 for 24-bit integers k (`o` itself, as floats, when k is not given), or
    with bounds float(k / 2^24 * (high - low) + low) fused: the product is exact in double,
    and so is k * ((high - low) / 2^24), one pass fewer; k goes to double directly (a
    ufunc mixing float and double operands casts through a buffer, slower)."""
    if bounds is None:
        if k is not None:
            np.copyto(o, k, casting="unsafe")
        o *= _F32_DIV
        return
    lo, span = bounds
    t = _scratch(o.size, np.float64)
    np.copyto(t, o if k is None else k, casting="unsafe")
    # float64 scalars, so the loops are double's (a Python float would leave them float32's)
    t *= np.float64(span) * np.float64(_F32_DIV)
    t += np.float64(lo)
    np.copyto(o, t, casting="same_kind")


def _affine64(o: np.ndarray, lo: np.float64, span: np.float64) -> None:
    """o * span + lo in extended precision, rounded once more to double (see `uniform`)."""
    t = _scratch(o.size, np.longdouble)
    np.copyto(t, o)
    t *= np.longdouble(span)
    t += np.longdouble(lo)
    np.copyto(o, t, casting="same_kind")


def _block_sizes(n: int, block: int) -> list[int]:
    return [min(block, n - lo) for lo in range(0, n, block)]


def uniform(gen: CPUGenerator, n: int, dtype, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """`uniform_(low, high)`/`rand`: x * (high - low) + low in T's accumulate type, the
    multiply-add fused as torch's x86 build fuses it (float products are exact in double,
    so the float32 case rounds once; in double, extended precision rounds the product far
    below a double's ulp)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        lo, hi = np.float64(low), np.float64(high)
        return _unit(gen, n, True, None if lo == 0 and hi == 1 else (lo, hi - lo))
    lo, hi = np.float32(low), np.float32(high)
    # float16: a float drawn, then rounded to half, as torch does
    x = _unit(gen, n, False, None if lo == 0 and hi == 1 else (lo, hi - lo))
    return x.astype(dtype, copy=False)


# -- normal ----------------------------------------------------------------------------------
def normal(gen: CPUGenerator, n: int, dtype, mean: float = 0.0, std: float = 1.0,
           contiguous: bool = True) -> np.ndarray:
    """`normal_(mean, std)`/`randn`: torch's vectorised Box-Muller fill for 16+ contiguous
    elements, else its scalar Box-Muller over doubles (which caches the second value)."""
    dtype = np.dtype(dtype)
    if n >= _VEC_MIN and contiguous:
        return _normal_fill(gen, n, dtype, mean, std)
    return scalar_normal(gen, n, mean, std).astype(dtype)


def _normal_fill(gen, n, dtype, mean, std):
    """normal_fill: n uniforms, transformed 16 at a time (the first 8 give the radii, the
    next 8 the angles); a ragged tail redraws 16 fresh uniforms for the last 16 places."""
    if dtype == np.float32 and _AVX2:
        return _normal_fill_avx2(gen, n, mean, std)
    rows, rest = divmod(n, 16)
    out = np.empty(n, dtype)
    if rest and rows < _FILL16_ROWS:  # one block: the redrawn last 16 go with the rows
        u = unit(gen, n, dtype)  # the ragged chunk's uniforms too: drawn, then overwritten
        u = np.concatenate([u[:16 * rows], unit(gen, 16, dtype)])
        both = _fill16(u.reshape(-1, 16), dtype, mean, std)
        out[:rows * 16] = both[:rows].reshape(-1)
        out[n - 16:] = both[rows]
        return out
    body = out[:rows * 16].reshape(rows, 16)
    sizes = _block_sizes(rows, _FILL16_ROWS)

    def work(i: int, u: np.ndarray) -> None:  # a block's uniforms, drawn in stream order
        lo = i * _FILL16_ROWS
        _fill16(u.reshape(-1, 16), dtype, mean, std, body[lo:lo + sizes[i]])

    # the uniforms a block at a time, transformed while the next are drawn (the words of
    # a split draw are the words of one draw)
    draw_blocks(lambda r: unit(gen, 16 * r, dtype), sizes, work)
    if rest:
        out[n - 16:] = _fill16(_skip_unit(gen, rest, dtype).reshape(1, 16), dtype, mean,
                               std).reshape(-1)
    return out


def _skip_unit(gen: CPUGenerator, rest: int, dtype) -> np.ndarray:
    """The ragged chunk's `rest` uniforms drawn (torch overwrites them), then 16 more."""
    unit(gen, rest, dtype)
    return unit(gen, 16, dtype)


def _normal_fill_avx2(gen, n, mean, std):
    """The float32 fill on x86, torch's AVX2 kernel bit for bit (normal_avx2.py), drawing
    the words in blocks as it goes: a uniform is one word's low 24 bits."""
    rows, rest = divmod(n, 16)
    out = np.empty(n, np.float32)
    if rest and rows < _normal_avx2._BLOCK_ROWS:
        # one block: the rows and the redrawn last 16 go through the kernel together (a
        # small draw's cost is the kernel's passes, not their length)
        words = np.concatenate([gen.random64(8 * rows), _skip_then(gen, rest, 8)])
        both = _normal_avx2.fill_rows(lambda _k: words, rows + 1, mean, std)
        out[:rows * 16] = both[:rows].reshape(-1)
        out[n - 16:] = both[rows]
        return out
    _normal_avx2.fill_rows(gen.random64, rows, mean, std, out[:rows * 16].reshape(rows, 16))
    if rest:
        out[n - 16:] = _normal_avx2.fill_rows(lambda k: _skip_then(gen, rest, k), 1, mean,
                                              std).reshape(-1)
    return out


def _skip_then(gen: CPUGenerator, rest: int, k: int) -> np.ndarray:
    """The ragged chunk's `rest` uniforms drawn (torch overwrites them), then k 64-bit draws."""
    gen.random64(rest // 2)
    gen.random32(rest % 2)
    return gen.random64(k)


def _fill16(block: np.ndarray, dtype, mean, std, out: np.ndarray | None = None) -> np.ndarray:
    """normal_fill_16 over rows of 16 uniforms, the scalar template (log, cos and sin of the
    rounded operands, in double, rounded as torch rounds them: a value may differ from
    torch's by a rounding). Blocks of rows go through preallocated double buffers, the
    radii's and the angles' halves apart, so each pass is over contiguous, cached data."""
    rows = block.shape[0]
    out = np.empty((rows, 16), dtype) if out is None else out
    m, s = float(dtype.type(mean)), float(dtype.type(std))
    wide = dtype == np.float64
    size = min(rows, _FILL16_ROWS) * 8
    u, cs = np.empty((2, size)), np.empty((2, size))
    narrow = None if wide else np.empty(size, dtype)
    for lo in range(0, rows, _FILL16_ROWS):
        k = min(_FILL16_ROWS, rows - lo)
        src, dst, uu, cc = block[lo:lo + k], out[lo:lo + k], u[:, :8 * k], cs[:, :8 * k]
        if wide:  # half-rows of 8 doubles move as single items
            np.copyto(uu.view(_V64), src.view(_V64).T)
        else:
            np.copyto(uu.reshape(2, k, 8), src.reshape(k, 2, 8).transpose(1, 0, 2))
        radius, theta = uu
        np.subtract(1.0, radius, out=radius)
        np.log(radius, out=radius)
        radius *= -2.0
        np.sqrt(radius, out=radius)
        theta *= _TWO_PI
        if not wide:  # torch's float operands: theta and the radius rounded to T
            for a in (theta, radius):
                np.copyto(narrow[:a.size], a, casting="same_kind")
                np.copyto(a, narrow[:a.size])
        np.cos(theta, out=cc[0])
        np.sin(theta, out=cc[1])
        cc *= radius
        cc *= s
        cc += m
        if wide:
            np.copyto(dst.view(_V64).T, cc.view(_V64))
        else:
            np.copyto(dst.reshape(k, 2, 8).transpose(1, 0, 2), cc.reshape(2, k, 8),
                      casting="same_kind")
    return out


def scalar_normal(gen: CPUGenerator, n: int, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """n draws of `normal_distribution<double>` (float64): Box-Muller over two 53-bit
    uniforms per pair, r cos(theta) now and r sin(theta) cached in the generator for the
    next draw, from this call or a later one."""
    out = np.empty(n, np.float64)
    if n == 0:
        return out
    start = 0
    if gen.next_double_normal is not None:
        out[0], gen.next_double_normal, start = gen.next_double_normal, None, 1
    pairs = (n - start + 1) // 2
    if pairs:
        u = unit(gen, 2 * pairs, np.float64).reshape(-1, 2)
        r = np.sqrt(-2.0 * np.log1p(-u[:, 1]))
        theta = _TWO_PI * u[:, 0]
        both = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1).reshape(-1)
        out[start:] = both[:n - start]
        if (n - start) % 2:
            gen.next_double_normal = float(both[-1])
    return out * std + mean


# -- integers --------------------------------------------------------------------------------
# torch 2.13 draws 64 bits for a range of 2^28 or more (any dtype), which keeps the modulo
# bias small; measured against torch, the older sources say 2^32
_WIDE_RANGE = 1 << 28


def random_from_to(gen: CPUGenerator, n: int, dtype, low: int, high: int) -> np.ndarray:
    """`random_(low, high)`/`randint`: (word % range) + low, from a 64-bit draw when the
    range is 2^28 or more, else from a 32-bit word. Drawn and reduced a block at a time
    (`draw_blocks`), each block written into the result while it is still in cache."""
    dtype = np.dtype(dtype)
    span = int(high) - int(low)
    if n < _SMALL_DRAW:  # a few numpy calls on the whole draw: fewer, for a small one
        words = gen.random64(n) if span >= _WIDE_RANGE else gen.random32(n)
        return _offset(words % np.uint64(span), low).astype(dtype)
    out = np.empty(n, dtype)
    if span >= _WIDE_RANGE:
        span64, base = np.uint64(span), np.uint64(int(low) % (1 << 64))

        def wide(i: int, v: np.ndarray) -> None:
            _remainder(v, span64)
            v += base  # wraps in uint64 as torch's (uint64 + int64) does, then reads as int64
            np.copyto(out[i * _UNIT_BLOCK:i * _UNIT_BLOCK + v.size], v.view(np.int64),
                      casting="unsafe")

        draw_blocks(gen.random64, _block_sizes(n, _UNIT_BLOCK), wide)
        return out
    # words two at a time as 64-bit draws, the first word the high half: swapped (a rotation
    # by 32, three contiguous passes, cheaper than two strided ones), the halves of the
    # uint32 view are the words in order. Below 2^28 the remainder fits a uint32 and
    # (remainder + low) lies in [low, high): no wrap-around, so int64 arithmetic is torch's
    span32, base = np.uint32(span), np.int64(low)

    def narrow(i: int, v: np.ndarray) -> None:
        high = _scratch(v.size, np.uint64)
        np.right_shift(v, _HALF, out=high)
        v <<= _HALF
        v |= high
        w = v.view(np.uint32)
        _remainder(w, span32)
        lo = 2 * i * _UNIT_BLOCK
        o = out[lo:lo + w.size]
        t = o if dtype == np.int64 else _scratch(w.size, np.int64)
        np.copyto(t, w)
        if base:
            t += base
        if t is not o:
            np.copyto(o, t, casting="unsafe")

    draw_blocks(gen.random64, _block_sizes(n // 2, _UNIT_BLOCK), narrow)
    if n % 2:
        out[-1:] = (gen.random32(1) % np.uint64(span)).astype(np.int64) + base
    return out


def _remainder(w: np.ndarray, span) -> None:
    """w %= span for unsigned w and a scalar span, as w - (w // span) * span: numpy divides
    by a scalar with SIMD (libdivide's multiply and shift) but takes the remainder one
    element at a time, two to four times slower (exact either way: integers)."""
    q = _scratch(w.size, w.dtype)
    np.floor_divide(w, span, out=q)
    q *= span
    w -= q


def random_full_range(gen: CPUGenerator, n: int, dtype) -> np.ndarray:
    """`random_(int64 min, None)`: a whole 64-bit draw as an int64."""
    return gen.random64(n).view(np.int64).astype(dtype)


def random_default(gen: CPUGenerator, n: int, dtype) -> np.ndarray:
    """`random_()`: [0, max] for integer dtypes, [0, 2^mantissa] for floats, bits for bool."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return (gen.random32(n) & np.uint64(1)).astype(np.bool_)
    if dtype.kind == "f":
        digits = {8: 53, 4: 24, 2: 11}[dtype.itemsize]
        words = gen.random64(n) if dtype == np.float64 else gen.random32(n)
        return (words % np.uint64((1 << digits) + 1)).astype(dtype)
    top = int(np.iinfo(dtype).max) + 1
    words = gen.random64(n) if dtype == np.int64 else gen.random32(n)
    return (words % np.uint64(top)).astype(dtype)


def _offset(words: np.ndarray, base: int) -> np.ndarray:
    # (uint64 + int64) wraps in C, then reads as int64: add in uint64 and reinterpret
    return (words + np.uint64(int(base) % (1 << 64))).view(np.int64)


# -- other distributions ---------------------------------------------------------------------
def bernoulli_tensor(gen: CPUGenerator, p: np.ndarray) -> np.ndarray:
    """`bernoulli(p)` with a probability tensor: u < p per element, u a 53-bit double when
    p is float64 and a 24-bit float otherwise (float64 result; the caller casts)."""
    p = np.ascontiguousarray(p)
    flat = p.reshape(-1)
    if p.dtype == np.float64:
        hit = unit(gen, flat.size, np.float64) < flat
    else:
        hit = unit(gen, flat.size, np.float32) < flat.astype(np.float32)
    return hit.reshape(p.shape)


def bernoulli_scalar(gen: CPUGenerator, n: int, dtype, p: float) -> np.ndarray:
    """`bernoulli_(p)` with a float p, as torch's default kernel (53-bit u < p). torch's
    x86 builds take MKL's generator instead on Intel CPUs (see the README)."""
    return (unit(gen, n, np.float64) < float(p)).astype(dtype)


def exponential(gen: CPUGenerator, n: int, dtype, lambd: float = 1.0) -> np.ndarray:
    """`exponential_(lambd)`: -1/lambd * log(1 - u) over 53-bit doubles."""
    u = unit(gen, n, np.float64)
    return (-1.0 / lambd * np.log1p(-u)).astype(dtype)


def geometric(gen: CPUGenerator, n: int, dtype, p: float) -> np.ndarray:
    """`geometric_(p)`: ceil(log(u) / log(1 - p)) over 53-bit doubles."""
    u = unit(gen, n, np.float64)
    with np.errstate(divide="ignore"):
        return np.ceil(np.log(u) / np.log(1.0 - p)).astype(dtype)


def cauchy(gen: CPUGenerator, n: int, dtype, median: float = 0.0,
           sigma: float = 1.0) -> np.ndarray:
    """`cauchy_(median, sigma)`: median + sigma * tan(pi * (u - 0.5))."""
    u = unit(gen, n, np.float64)
    return (median + sigma * np.tan(np.pi * (u - 0.5))).astype(dtype)


def log_normal(gen: CPUGenerator, n: int, dtype, mean: float = 1.0,
               std: float = 2.0) -> np.ndarray:
    """`log_normal_(mean, std)`: exp of the scalar normal (which shares its cache)."""
    return np.exp(scalar_normal(gen, n, mean, std)).astype(dtype)
