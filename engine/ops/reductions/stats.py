"""More reductions and scans: all, any, amax, amin, norm, logsumexp, cumsum, cumprod.

    >>> from gradserve import engine
    >>> x = engine.tensor([[3., 4.], [0., 1.]], requires_grad=True)
    >>> n = x.norm(dim=1)
    >>> n, n.grad_fn.name()
    (tensor([5., 1.], grad_fn=<LinalgVectorNormBackward0>), 'LinalgVectorNormBackward0')
"""

from __future__ import annotations

import math

import numpy as np

from ...core.dtype import TORCH_SCALAR_NAMES, bool_, float_result, int64, uint8
from ...core.errors import InvalidArgumentError, TensorIndexError
from ...core.registry import Meta, defop
from ...core.shape import normalize_dim, numel, reduced_shape
from ...surface.tensor_api import where
from .reduce import _axis, _dims, _expand_back


def _reduced(a, dim, keepdim) -> tuple[int, ...]:
    return reduced_shape(a.shape, _dims(a, dim), keepdim)


# -- all / any -------------------------------------------------------------------------------
def _truth_meta(a, dim=None, keepdim=False):
    # torch keeps uint8 for uint8 input, bool otherwise
    return Meta(_reduced(a, dim, keepdim), uint8 if a.dtype is uint8 else bool_)


def _truth(fn):
    def forward(xp, a, dim=None, keepdim=False):
        out = getattr(xp, fn)(a != 0, axis=_axis(a.ndim, dim), keepdims=keepdim)
        return out.astype(a.dtype) if a.dtype == np.uint8 else out

    return forward


defop("all", infer=_truth_meta)(_truth("all"))
defop("any", infer=_truth_meta)(_truth("any"))


# -- amax / amin -----------------------------------------------------------------------------
def _amax_meta(name):
    def infer(a, dim=(), keepdim=False):
        dims = _dims(a, dim)
        for d in dims:
            if a.shape and a.shape[d] == 0:
                raise TensorIndexError(
                    f"{name}(): Expected reduction dim {d} to have non-zero size.")
        return Meta(reduced_shape(a.shape, dims, keepdim), a.dtype)

    return infer


def _extreme_all(name: str, fn: str):
    op = defop(name, infer=_amax_meta(name), grad_name=name.capitalize() + "Backward0",
               save=(0,), save_output=True)(
        lambda xp, a, dim=(), keepdim=False: getattr(xp, fn)(
            a, axis=_axis(a.ndim, dim), keepdims=keepdim))

    @op.def_backward
    def _(ctx, g):
        (a,) = ctx.saved
        shape = ctx.in_shapes[0]
        dims = _axis(len(shape), ctx.attrs.get("dim", ()))
        keep = ctx.attrs.get("keepdim", False)
        mask = a == _expand_back(ctx.output, shape, dims, keep)
        count = mask.sum(dims, keepdim=True) if dims else mask * 1
        return (_expand_back(g, shape, dims, keep) * mask / count,)  # ties share evenly

    return op


_extreme_all("amax", "max")
_extreme_all("amin", "min")


# -- norm ------------------------------------------------------------------------------------
def _norm_meta(a, p=2.0, dim=None, keepdim=False):
    if not a.dtype.is_floating_point:
        raise InvalidArgumentError(
            "linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
            f"{TORCH_SCALAR_NAMES[a.dtype.name]}")
    if p < 0 and numel(a.shape) == 0:
        raise InvalidArgumentError(
            "linalg.vector_norm cannot compute the -inf norm on an empty tensor because the "
            "operation does not have an identity")
    return Meta(_reduced(a, dim, keepdim), a.dtype)


def _norm(xp, a, p=2.0, dim=None, keepdim=False):
    axis = _axis(a.ndim, dim)
    x = xp.abs(a)
    if p == math.inf:
        if x.size == 0:  # the max of nothing: 0, the norm of an empty vector
            return xp.zeros(reduced_shape(a.shape, axis, keepdim), a.dtype)
        return xp.max(x, axis=axis, keepdims=keepdim)
    if p == -math.inf:
        return xp.min(x, axis=axis, keepdims=keepdim)
    if p == 0:
        return xp.sum(x != 0, axis=axis, keepdims=keepdim).astype(a.dtype)
    if p == 1:
        return xp.sum(x, axis=axis, keepdims=keepdim)
    if p == 2:
        return xp.sqrt(xp.sum(x * x, axis=axis, keepdims=keepdim))
    return xp.sum(x ** p, axis=axis, keepdims=keepdim) ** (1.0 / p)


norm = defop("norm", infer=_norm_meta, grad_name="LinalgVectorNormBackward0", save=(0,),
             save_output=True,
             grads_from=lambda attrs: frozenset() if attrs.get("p", 2.0) == 0 else None)(_norm)


@norm.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    shape = ctx.in_shapes[0]
    p = ctx.attrs.get("p", 2.0)
    dims = _axis(len(shape), ctx.attrs.get("dim"))
    keep = ctx.attrs.get("keepdim", False)
    out = _expand_back(ctx.output, shape, dims, keep)
    g = _expand_back(g, shape, dims, keep)
    if p == 0:  # torch's: no gradient at all (the count of nonzeros is flat)
        return (None,)
    if p == 1:
        return (g * a.sign(),)
    if math.isinf(p):  # the extreme elements share the gradient evenly
        mask = a.abs() == out
        count = mask.sum(dims, keepdim=True) if dims else mask * 1
        return (g * a.sign() * mask / count,)
    zero = out == 0
    safe = where(zero, 1.0, out)
    if p == 2:
        return (where(zero, 0.0, g * a / safe),)
    # d ||a||_p / d a_i = a_i |a_i|^(p-2) / ||a||^(p-1); zero where a_i or the norm is 0
    scale = a * a.abs() ** (p - 2) if p >= 2 else where(a == 0, 0.0, a.sign() * a.abs() ** (
        p - 1))
    return (where(zero, 0.0, g * scale / safe ** (p - 1)),)


# -- logsumexp -------------------------------------------------------------------------------
def _logsumexp_meta(a, dim, keepdim=False):
    return Meta(_reduced(a, dim, keepdim), float_result(a.dtype))


def _logsumexp(xp, a, dim, keepdim=False):
    axis = _axis(a.ndim, dim)
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    if a.size == 0:
        return xp.log(xp.sum(xp.exp(a), axis=axis, keepdims=keepdim))
    m = xp.max(a, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or an inf): no shift
    out = xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdim else out.reshape(reduced_shape(a.shape, axis, False))


logsumexp = defop("logsumexp", infer=_logsumexp_meta, grad_name="LogsumexpBackward0",
                  save=(0,), save_output=True)(_logsumexp)


@logsumexp.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    shape = ctx.in_shapes[0]
    dims = _axis(len(shape), ctx.attrs["dim"])
    keep = ctx.attrs.get("keepdim", False)
    out = _expand_back(ctx.output, shape, dims, keep)
    return (_expand_back(g, shape, dims, keep) * (a - out).exp(),)


# -- cumulative ------------------------------------------------------------------------------
def _scan_meta(a, dim):
    normalize_dim(dim, max(len(a.shape), 1))
    return Meta(tuple(a.shape), int64 if a.dtype.kind < 2 else a.dtype)


def _scan(fn):
    def forward(xp, a, dim):
        if a.ndim == 0:
            return a.astype(np.int64) if a.dtype.kind in "biu" else a.copy()
        kw = {"dtype": np.int64} if a.dtype.kind in "biu" else {}
        return getattr(xp, fn)(a, axis=normalize_dim(dim, a.ndim), **kw)

    return forward


cumsum = defop("cumsum", infer=_scan_meta, grad_name="CumsumBackward0")(_scan("cumsum"))


@cumsum.def_backward
def _(ctx, g):
    if not ctx.in_shapes[0]:
        return (g,)
    d = normalize_dim(ctx.attrs["dim"], len(ctx.in_shapes[0]))
    return (g._op("cumsum_reverse", g, dim=d),)  # the gradients at and after each position


def _cumsum_reverse(xp, a, dim):
    d = normalize_dim(dim, a.ndim)
    return xp.flip(xp.cumsum(xp.flip(a, d), axis=d), d)


# sum from each position to the end: cumsum's gradient (and the other way round)
cumsum_reverse = defop("cumsum_reverse", infer=lambda a, dim: Meta(tuple(a.shape), a.dtype),
                       grad_name="CumsumBackward0")(_cumsum_reverse)
cumsum_reverse.def_backward(lambda ctx, g: (g.cumsum(ctx.attrs["dim"]),))


cumprod = defop("cumprod", infer=_scan_meta, grad_name="CumprodBackward0", save=(0,),
                save_output=True)(_scan("cumprod"))


@cumprod.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    if a.ndim == 0 or a.numel() == 0:
        return (g,)
    d = normalize_dim(ctx.attrs["dim"], a.ndim)
    if not bool((a == 0).any()):  # d out_j / d a_i = out_j / a_i for j >= i
        prod = g * ctx.output
        return (prod._op("cumsum_reverse", prod, dim=d) / a,)
    # With zeros, out_j / a_i is undefined: use the products themselves. Row i of `rows` is
    # a with a_i set to 1, so rows.cumprod()[i, j] = prod_{k <= j, k != i} a_k; only j >= i
    # counts. O(n^2) memory along dim, as torch's exact formula for this case.
    n = a.shape[d]
    am, gm = a.transpose(d, -1), g.transpose(d, -1)
    eye = g._op("eye", n=n, dtype="bool", device=g.device)
    rows = where(eye, 1.0, am.unsqueeze(-2).expand(*am.shape[:-1], n, n))
    upper = g._op("ones", shape=(n, n), dtype="bool", device=g.device).triu()
    prods = where(upper, rows.cumprod(-1), 0.0)
    return ((prods * gm.unsqueeze(-2)).sum(-1).transpose(d, -1),)
