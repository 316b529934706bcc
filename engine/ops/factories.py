"""Factories: ops with no tensor inputs (zeros, ones, full, arange, eye, ...); the random
ones are in ops/random.py."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..core.dtype import as_dtype, default_float_dtype, int64, scalar_dtype
from ..core.errors import InvalidArgumentError
from ..core.layout import is_contiguous, non_overlapping_and_dense
from ..core.registry import Meta, defop
from ..core.shape import check_shape


# -- factories: ops with no tensor inputs, run on the device named in attrs -------------------
def _dense(shape: tuple, strides) -> tuple | None:
    """A `*_like` factory's strides (torch's preserve_format: another tensor's dense layout);
    None: contiguous. The engine lays its array out so (`_finish`)."""
    if strides is None:
        return None
    strides = tuple(strides)
    if len(strides) != len(shape) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in strides) \
            or not non_overlapping_and_dense(shape, strides):
        raise InvalidArgumentError(f"strides {list(strides)} do not lay out shape "
                                   f"{list(shape)} densely")
    return None if is_contiguous(shape, strides) else strides


def _factory_meta(shape, dtype, device=None, strides=None, **_):
    shape = check_shape(shape)
    return Meta(shape, as_dtype(dtype), _dense(shape, strides))


def _factory(fill):
    def forward(xp, shape, dtype, device, strides=None, **kw):
        return fill(xp, tuple(shape), as_dtype(dtype).np, **kw)

    return forward


_SHAPED = ("shape", "dtype", "device", "strides")  # factories take attrs only
defop("zeros", infer=_factory_meta, needs_device=True, attrs=_SHAPED)(
    _factory(lambda xp, s, d: xp.zeros(s, d)))
defop("ones", infer=_factory_meta, needs_device=True, attrs=_SHAPED)(
    _factory(lambda xp, s, d: xp.ones(s, d)))
defop("empty", infer=_factory_meta, needs_device=True, attrs=_SHAPED)(
    _factory(lambda xp, s, d: xp.zeros(s, d)))


def _full_meta(shape, value, dtype=None, device=None, strides=None):
    if not isinstance(value, numbers.Real):
        raise InvalidArgumentError(f"full() fill value must be a number, got {value!r}")
    shape = check_shape(shape)
    return Meta(shape, as_dtype(dtype) if dtype else scalar_dtype(value), _dense(shape, strides))


defop("full", infer=_full_meta, needs_device=True,
      attrs=("shape", "value", "dtype", "device", "strides"))(
    lambda xp, shape, value, dtype=None, device=None, strides=None: xp.full(
        tuple(shape), value, _full_meta(shape, value, dtype).dtype.np)
)


def _arange_meta(start, end, step=1, dtype=None, device=None):
    for v in (start, end, step):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise InvalidArgumentError("arange() bounds must be numbers")
    if step == 0:
        raise InvalidArgumentError("step must be nonzero")
    if (end - start) * step < 0:
        raise InvalidArgumentError("upper bound and larger bound inconsistent with step sign")
    n = max(0, math.ceil((end - start) / step))
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if is_int else default_float_dtype()
    return Meta((n,), as_dtype(dtype))


defop("arange", infer=_arange_meta, needs_device=True,
      attrs=("start", "end", "step", "dtype", "device"))(
    lambda xp, start, end, step=1, dtype=None, device=None: xp.arange(
        start, end, step).astype(_arange_meta(start, end, step, dtype).dtype.np)[
        :_arange_meta(start, end, step, dtype).shape[0]]
)


def _eye_meta(n, m=None, dtype=None, device=None):
    return Meta(check_shape((n, n if m is None else m)), as_dtype(dtype or default_float_dtype()))


defop("eye", infer=_eye_meta, needs_device=True, attrs=("n", "m", "dtype", "device"))(
    lambda xp, n, m=None, dtype=None, device=None: xp.eye(n, m, dtype=as_dtype(
        dtype or default_float_dtype()).np)
)


def _linspace_meta(start, end, steps, dtype=None, device=None):
    if steps < 0:
        raise InvalidArgumentError("number of steps must be non-negative")
    return Meta((int(steps),), as_dtype(dtype or default_float_dtype()))


@defop("linspace", infer=_linspace_meta, needs_device=True)
def _linspace(xp, start, end, steps, dtype=None, device=None):
    # torch fills the first half forwards from start and the second half backwards from end,
    # so both ends are exact; in float64, then cast
    i = xp.arange(steps, dtype=np.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    # one step is `start` (torch special-cases it; the backward half would give `end`)
    half = max(steps // 2, 1)
    out = xp.where(i < half, start + step * i, end - step * (steps - 1 - i))
    return out.astype(as_dtype(dtype or default_float_dtype()).np)
