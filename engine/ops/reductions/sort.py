"""Order statistics: sort, topk, kthvalue, median. Each returns values and their indices;
the values' gradient goes back to the positions the indices name (ties: see median).

    >>> from gradserve import engine
    >>> x = engine.tensor([3., 1., 2.], requires_grad=True)
    >>> x.sort()
    gradserve.return_types.sort(
    values=tensor([1., 2., 3.], grad_fn=<SortBackward0>),
    indices=tensor([1, 2, 0]))
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import int64
from ...core.errors import InvalidArgumentError, TensorIndexError
from ...core.registry import Meta, defop
from ...core.shape import normalize_dim, numel, reduced_shape
from .reduce import evenly_distributed, scatter_dim


def _dim(a, dim) -> int:
    return normalize_dim(dim, max(len(a.shape), 1))


def _argsort(xp, a, axis: int, descending: bool):
    """Stable argsort; descending keeps equal elements in their original order (as torch's
    stable sort does)."""
    if not descending:
        return xp.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    rev = xp.flip(a, axis)
    return (n - 1) - xp.flip(xp.argsort(rev, axis=axis, kind="stable"), axis)


def _values_grad(ctx, g, idx, keepdim=True):
    """The values' gradient, placed at the positions idx names along dim (zeros elsewhere)."""
    return scatter_dim(g, idx, tuple(ctx.in_shapes[0]), ctx.attrs.get("dim", -1), keepdim)


# -- sort ------------------------------------------------------------------------------------
def _sort_meta(a, dim=-1, descending=False, stable=None):
    _dim(a, dim)
    return Meta(tuple(a.shape), a.dtype), Meta(tuple(a.shape), int64)


def _sort(xp, a, dim=-1, descending=False, stable=None):
    if a.ndim == 0:
        return a.copy(), xp.zeros((), np.int64)
    d = normalize_dim(dim, a.ndim)
    idx = _argsort(xp, a, d, descending)
    return xp.take_along_axis(a, idx, axis=d), idx


# sort, topk, kthvalue and median(dim) keep their index output (output 1) for backward
sort = defop("sort", infer=_sort_meta, save_output=1, grad_name=lambda a, dim=-1,
             descending=False, **kw: "SortBackward1" if "stable" in kw else "SortBackward0")(
    _sort)
sort.def_backward(lambda ctx, g: (_values_grad(ctx, g, ctx.output),))


def _topk_meta(a, k, dim=-1, largest=True, sorted=True):
    d = _dim(a, dim)
    size = a.shape[d] if a.shape else 1
    if not 0 <= k <= size:
        raise TensorIndexError("selected index k out of range")
    shape = tuple(a.shape[:d]) + (k,) + tuple(a.shape[d + 1:]) if a.shape else ()
    return Meta(shape, a.dtype), Meta(shape, int64)


def _topk(xp, a, k, dim=-1, largest=True, sorted=True):
    if a.ndim == 0:
        return a.copy(), xp.zeros((), np.int64)
    d = normalize_dim(dim, a.ndim)
    idx = xp.take(_argsort(xp, a, d, largest), xp.arange(k), axis=d)
    return xp.take_along_axis(a, idx, axis=d), idx


topk = defop("topk", infer=_topk_meta, grad_name="TopkBackward0", save_output=1)(_topk)
topk.def_backward(lambda ctx, g: (_values_grad(ctx, g, ctx.output),))


def _kth_meta(a, k, dim=-1, keepdim=False):
    d = _dim(a, dim)
    size = a.shape[d] if a.shape else 1
    if not 1 <= k <= size:
        raise TensorIndexError(f"kthvalue(): selected number k out of range for dimension {d}")
    shape = reduced_shape(a.shape, (d,), keepdim) if a.shape else ()
    return Meta(shape, a.dtype), Meta(shape, int64)


def _kth(xp, a, k, dim=-1, keepdim=False):
    if a.ndim == 0:
        return a.copy(), xp.zeros((), np.int64)
    d = normalize_dim(dim, a.ndim)
    idx = xp.take(_argsort(xp, a, d, False), xp.asarray([k - 1]), axis=d)
    vals = xp.take_along_axis(a, idx, axis=d)
    return (vals, idx) if keepdim else (vals.squeeze(d), idx.squeeze(d))


kthvalue = defop("kthvalue", infer=_kth_meta, grad_name="KthvalueBackward0", save_output=1)(
    _kth)
kthvalue.def_backward(lambda ctx, g: (
    _values_grad(ctx, g, ctx.output, ctx.attrs.get("keepdim", False)),))


def _median_dim_meta(a, dim, keepdim=False):
    d = _dim(a, dim)
    if a.shape and a.shape[d] == 0:
        raise TensorIndexError(f"median(): Expected reduction dim {d} to have non-zero size.")
    shape = reduced_shape(a.shape, (d,), keepdim) if a.shape else ()
    return Meta(shape, a.dtype), Meta(shape, int64)


def _median_dim(xp, a, dim, keepdim=False):
    if a.ndim == 0:
        return a.copy(), xp.zeros((), np.int64)
    d = normalize_dim(dim, a.ndim)
    vals, idx = _kth(xp, a, (a.shape[d] + 1) // 2, d, keepdim)  # the lower median, as torch
    if a.dtype.kind == "f":  # torch's median propagates NaN: a row with one gives its first
        nan = xp.isnan(a)
        rows = nan.any(axis=d, keepdims=keepdim)
        if rows.any():
            vals = xp.where(rows, xp.asarray(np.nan, a.dtype), vals)
            idx = xp.where(rows, nan.argmax(axis=d, keepdims=keepdim), idx)
    return vals, idx


median_dim = defop("median_dim", infer=_median_dim_meta, grad_name="MedianBackward1",
                   save_output=1)(_median_dim)
median_dim.def_backward(lambda ctx, g: (
    _values_grad(ctx, g, ctx.output, ctx.attrs.get("keepdim", False)),))


def _median_meta(a):
    if numel(a.shape) == 0:
        raise InvalidArgumentError("median() input tensor cannot be empty")
    return Meta((), a.dtype)


def _median(xp, a):
    flat = xp.sort(a.reshape(-1), kind="stable")  # NaNs last: one makes the median NaN
    return flat[-1 if a.dtype.kind == "f" and xp.isnan(flat[-1]) else (flat.shape[0] - 1) // 2]


median = defop("median", infer=_median_meta, grad_name="MedianBackward0", save=(0,),
               save_output=True)(_median)


median.def_backward(evenly_distributed)
