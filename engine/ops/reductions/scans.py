"""More scans, one torch kernel each: logcumsumexp, cummax, cummin (values and indices).

logcumsumexp's gradient is torch's stable form: the upstream gradient split into its positive
and negative parts, each carried backwards in log space (a reversed logcumsumexp), so no
exp(x) overflows on its own.

    >>> from gradserve import engine
    >>> engine.tensor([0.0, 0.0]).logcumsumexp(0)
    tensor([0.0000, 0.6931])
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import int64, no_kernel
from ...core.registry import Meta, defop
from ...core.shape import normalize_dim


def _lcse_meta(a, dim):
    normalize_dim(dim, max(len(a.shape), 1))
    if not a.dtype.is_floating_point:
        raise no_kernel("logcumsumexp_out", a.dtype)
    return Meta(tuple(a.shape), a.dtype)


def _logcumsumexp(xp, a, dim):
    if a.ndim == 0:
        return a.copy()
    d = normalize_dim(dim, a.ndim)
    return _inclusive_scan(xp, a, d, "logaddexp").astype(a.dtype)


def _inclusive_scan(xp, a, d: int, ufunc: str):
    """A prefix scan of an associative ufunc along d: numpy's accumulate; elsewhere (cupy
    offers accumulate for few ufuncs) by doubling, log2(n) elementwise passes."""
    fn = getattr(xp, ufunc)
    if xp is np:
        return fn.accumulate(a, axis=d)
    out = xp.moveaxis(a, d, -1).copy()
    shift, n = 1, out.shape[-1]
    while shift < n:
        step = out.copy()
        step[..., shift:] = fn(out[..., shift:], out[..., :-shift])
        out, shift = step, shift * 2
    return xp.moveaxis(out, -1, d)


logcumsumexp = defop("logcumsumexp", infer=_lcse_meta, grad_name="LogcumsumexpBackward0",
                     save=(0,), save_output=True)(_logcumsumexp)


@logcumsumexp.def_backward
def _(ctx, g):
    (x,) = ctx.saved
    out = ctx.output
    if x.ndim == 0:
        return (g,)
    d = normalize_dim(ctx.attrs["dim"], x.ndim)

    def reverse_lcse(z):
        return z.flip(d).logcumsumexp(d).flip(d)

    pos = (reverse_lcse(g.clamp(min=0).log() - out) + x).exp()
    neg = (reverse_lcse((-g).clamp(min=0).log() - out) + x).exp()
    return (pos - neg,)


def _cum_meta(a, dim):
    normalize_dim(dim, max(len(a.shape), 1))
    return Meta(tuple(a.shape), a.dtype), Meta(tuple(a.shape), int64)


def _cum_extreme(ufunc: str):
    def forward(xp, a, dim):
        if a.ndim == 0:
            return a.copy(), xp.zeros((), np.int64)
        d = normalize_dim(dim, a.ndim)
        values = _inclusive_scan(xp, a, d, ufunc)
        shape = [1] * a.ndim
        shape[d] = a.shape[d]
        pos = xp.arange(a.shape[d], dtype=np.int64).reshape(shape)
        # the latest position holding the running extreme (a nan holds it from there on)
        hit = a == values
        if a.dtype.kind == "f":
            hit = hit | xp.isnan(a)
        index = _inclusive_scan(xp, xp.where(hit, pos, -1), d, "maximum")
        return values, index.astype(np.int64)

    return forward


def _cum_backward(ctx, g):
    shape = tuple(ctx.in_shapes[0])
    if not shape:
        return (g,)
    d = normalize_dim(ctx.attrs["dim"], len(shape))
    zeros = g._op("zeros", shape=shape, dtype=g.dtype.name, device=g.device)
    return (zeros.scatter_add(d, ctx.output, g),)  # positions sharing an index add up


cummax = defop("cummax", infer=_cum_meta, save_output=1, grad_name="CummaxBackward0")(
    _cum_extreme("maximum"))
cummax.def_backward(_cum_backward)
cummin = defop("cummin", infer=_cum_meta, save_output=1, grad_name="CumminBackward0")(
    _cum_extreme("minimum"))
cummin.def_backward(_cum_backward)
