"""Reductions, softmax/log_softmax and sum_to (which reduces broadcast gradients)."""

from __future__ import annotations

import functools
import math

import numpy as np

from ...core.dtype import TORCH_SCALAR_NAMES, int64
from ...core.errors import InvalidArgumentError, KernelNotImplementedError, TensorIndexError
from ...core.registry import Meta, defop, fresh
from ...core.shape import normalize_dim, normalize_dims, numel, reduced_shape
from ...core.warn import warn_user
from ...surface.tensor_api import where


def _dims(a, dim):
    return normalize_dims(dim, len(a.shape))


def _reduce_meta(dtype_rule):
    def infer(a, dim=None, keepdim=False, **_):
        return Meta(reduced_shape(a.shape, _dims(a, dim), keepdim), dtype_rule(a.dtype))

    return infer


def _sum_dtype(dt):
    return int64 if dt.kind < 2 else dt


def _mean_dtype(dt):
    if not dt.is_floating_point:
        raise InvalidArgumentError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {'Long' if dt is int64 else 'Bool'}"
        )
    return dt


def _axis(a_ndim, dim):
    # torch accepts dim 0 / -1 on a zero-dim tensor; numpy wants no axis there
    return tuple(normalize_dims(dim, a_ndim)) if a_ndim else ()


def _keep_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _expand_back(g, in_shape, dims, keepdim):
    """Undo a reduction's shape change: a gradient shaped like the output -> like the input."""
    if not keepdim:
        g = g.reshape(_keep_shape(in_shape, dims))
    return g.expand(in_shape)


def _name(full, part):
    return lambda a, dim=None, **_: full if dim is None else part


sum_ = defop("sum", infer=_reduce_meta(_sum_dtype), grad_name=_name("SumBackward0",
                                                                     "SumBackward1"))(
    lambda xp, a, dim=None, keepdim=False: a.sum(  # the method: no Python wrapper per call
        axis=_axis(a.ndim, dim), keepdims=keepdim, dtype=np.int64 if a.dtype.kind in "bi"
        else None)
)


@sum_.def_backward
def _(ctx, g):
    shape = ctx.in_shapes[0]
    return (_expand_back(g, shape, _axis(len(shape), ctx.attrs.get("dim")),
                         ctx.attrs.get("keepdim", False)),)


def _mean(xp, a, dim=None, keepdim=False):
    axis = _axis(a.ndim, dim)
    return xp.sum(a, axis=axis, keepdims=keepdim) / numel(a.shape[d] for d in axis)  # 0/0 nan


mean = defop("mean", infer=_reduce_meta(_mean_dtype), grad_name=_name("MeanBackward0",
                                                                       "MeanBackward1"))(_mean)


@mean.def_backward
def _(ctx, g):
    shape = ctx.in_shapes[0]
    dims = _axis(len(shape), ctx.attrs.get("dim"))
    n = numel(shape[d] for d in dims)
    return (_expand_back(g, shape, dims, ctx.attrs.get("keepdim", False)) / n,)


def _var_meta(a, dim=None, correction=1, keepdim=False):
    if not a.dtype.is_floating_point:
        raise InvalidArgumentError(
            "std and var only support floating point and complex dtypes"
        )
    dims = _dims(a, dim)
    if numel(a.shape[d] for d in dims) - correction <= 0:
        warn_user("var(): degrees of freedom is <= 0. Correction should be strictly less than "
                  "the reduction factor (input numel divided by output numel).")
    return Meta(reduced_shape(a.shape, dims, keepdim), a.dtype)


def _var(xp, a, dim=None, correction=1, keepdim=False):
    axis = _axis(a.ndim, dim)
    centered = a - _mean(xp, a, axis, keepdim=True)
    dof = max(0, numel(a.shape[d] for d in axis) - correction)  # 0 gives inf/nan, as torch
    return xp.sum(centered * centered, axis=axis, keepdims=keepdim) / dof


def _std(xp, a, dim=None, correction=1, keepdim=False):
    return xp.sqrt(_var(xp, a, dim, correction, keepdim))


var = defop("var", infer=_var_meta, grad_name="VarBackward0", save=(0,))(_var)
std = defop("std", infer=_var_meta, grad_name="StdBackward0", save=(0,), save_output=True)(_std)


def _var_grad(ctx, g):
    """d var / d a = 2 (a - mean) / dof, with g shaped like var's output."""
    (a,) = ctx.saved
    shape = ctx.in_shapes[0]
    dims = _axis(len(shape), ctx.attrs.get("dim"))
    dof = max(0, numel(shape[d] for d in dims) - ctx.attrs.get("correction", 1))
    centered = a - a.mean(dims, keepdim=True)
    scale = 2.0 / dof if dof else math.inf
    return _expand_back(g, shape, dims, ctx.attrs.get("keepdim", False)) * centered * scale


@var.def_backward
def _(ctx, g):
    return (_var_grad(ctx, g),)


@std.def_backward
def _(ctx, g):
    # std = sqrt(var): d std = d var / (2 std); torch gives no gradient where std is 0
    out = ctx.output
    zero = out == 0
    return (_var_grad(ctx, where(zero, 0.0, g / (2 * where(zero, 1.0, out)))),)


# -- prod -------------------------------------------------------------------------------------
def _prod_meta(a, dim=None, keepdim=False):
    dims = () if dim is None else (normalize_dim(dim, len(a.shape)),)
    if dim is None:
        return Meta(reduced_shape(a.shape, range(len(a.shape)), False), _sum_dtype(a.dtype))
    return Meta(reduced_shape(a.shape, dims, keepdim), _sum_dtype(a.dtype))


def _prod(xp, a, dim=None, keepdim=False):
    if dim is None:
        return xp.prod(a, dtype=np.int64 if a.dtype.kind in "bi" else None)
    return xp.prod(a, axis=_axis(a.ndim, dim), keepdims=keepdim,
                   dtype=np.int64 if a.dtype.kind in "bi" else None)


prod = defop("prod", infer=_prod_meta, grad_name=_name("ProdBackward0", "ProdBackward1"),
             save=(0,))(_prod)


def _others_product(xp, a, dim):
    """Product of every element but itself along `dim`, exact when some elements are zero."""
    if a.ndim == 0:
        return xp.ones_like(a)
    if a.shape[dim] == 0:
        return a.copy()
    a = xp.moveaxis(a, dim, -1)
    ones = xp.ones_like(a[..., :1])
    before = xp.cumprod(xp.concatenate([ones, a[..., :-1]], axis=-1), axis=-1)
    after = xp.cumprod(xp.concatenate([ones, a[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return xp.moveaxis(before * after, -1, dim)


def _prod_others_meta(a, dim):
    normalize_dim(dim, len(a.shape))
    return Meta(a.shape, a.dtype)


# others[i] = prod_{k != i} a[k]: prod's gradient without dividing by a (which may be 0)
prod_others = defop("prod_others", infer=_prod_others_meta, grad_name="ProdBackward1",
                    save=(0,), attrs=("dim",))(_others_product)


@prod_others.def_backward
def _(ctx, g):
    # d others[i] / d a[j] = prod_{k != i, j} a[k] (i != j). Row j of `rows` is a with a[j]
    # set to 1, so prod_others(rows)[j, i] is exactly that product; the diagonal is masked.
    # O(n^2) memory, but only second derivatives of prod come here.
    (a,) = ctx.saved
    if a.ndim == 0:
        return (g * 0.0,)
    d = normalize_dim(ctx.attrs["dim"], a.ndim)
    n = a.shape[d]
    am, gm = a.transpose(d, -1), g.transpose(d, -1)
    diag = g._op("eye", n=n, dtype="bool", device=g.device)
    rows = where(diag, 1.0, am.unsqueeze(-2).expand(*am.shape[:-1], n, n))
    others = rows._op("prod_others", rows, dim=-1)
    return ((where(diag, 0.0, others) * gm.unsqueeze(-2)).sum(-1).transpose(d, -1),)


@prod.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    dim = ctx.attrs.get("dim")
    if dim is None:
        flat = a.reshape(-1)
        return ((g * flat._op("prod_others", flat, dim=0)).reshape(a.shape),)
    if a.ndim == 0:
        return (g,)
    d = normalize_dim(dim, a.ndim)
    g = g if ctx.attrs.get("keepdim") else g.unsqueeze(d)
    return (g * a._op("prod_others", a, dim=d),)


# -- max / min --------------------------------------------------------------------------------
def _full_extreme_meta(a):
    if numel(a.shape) == 0:
        raise InvalidArgumentError(
            "max(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
            "reduction dim with the 'dim' argument."
        )
    return Meta((), a.dtype)


def _full_extreme(fn, name):
    op = defop(name, infer=_full_extreme_meta, grad_name=name.capitalize() + "Backward1",
               save=(0,), save_output=True)(lambda xp, a: getattr(xp, fn)(a))

    op.def_backward(evenly_distributed)
    return op


def evenly_distributed(ctx, g):
    """torch's CPU `evenly_distribute_backward`: the elements equal to the result (the NaNs,
    when the result is NaN) share g evenly; the others get 0, even where g is not finite."""
    (a,) = ctx.saved
    out = ctx.output
    mask = (a == out) | (a.isnan() & out.isnan())
    return (where(mask, g / mask.sum(), 0.0),)


_full_extreme("max", "max")
_full_extreme("min", "min")


def _dim_extreme_meta(a, dim, keepdim=False):
    d = normalize_dim(dim, len(a.shape))
    if len(a.shape) and a.shape[d] == 0:
        raise TensorIndexError(f"max(): Expected reduction dim {d} to have non-zero size.")
    shape = reduced_shape(a.shape, (d,), keepdim)
    return (Meta(shape, a.dtype), Meta(shape, int64))


def _dim_extreme(arg):
    def forward(xp, a, dim, keepdim=False):
        if a.ndim == 0:
            return a.copy(), xp.zeros((), np.int64)
        idx = getattr(xp, arg)(a, axis=dim, keepdims=True)
        vals = xp.take_along_axis(a, idx, axis=dim)
        if not keepdim:
            idx, vals = idx.squeeze(dim), vals.squeeze(dim)
        return vals, idx

    return forward


def scatter_dim(g, idx, shape, dim, keepdim):
    """A zeros tensor of `shape` holding g at the positions idx selects along dim (torch's
    value_selecting_reduction_backward: a scatter, so the rest is 0 whatever g holds)."""
    if not shape:
        return g
    d = normalize_dim(dim, len(shape))
    if not keepdim:
        g, idx = g.unsqueeze(d), idx.unsqueeze(d)
    zeros = g._op("zeros", shape=tuple(shape), dtype=g.dtype.name, device=g.device)
    return zeros._op("scatter", zeros, idx, g, dim=d)


for _n, _a in (("max_dim", "argmax"), ("min_dim", "argmin")):
    _op = defop(_n, infer=_dim_extreme_meta, grad_name=_n[:3].capitalize() + "Backward0",
                save_output=1, attrs=("dim", "keepdim"))(_dim_extreme(_a))
    _op.def_backward(lambda ctx, g: (_indices_grad(ctx, g),))


def _indices_grad(ctx, g):
    # torch keeps the indices it returned, not the input (which may change in place after)
    dim, keepdim = ctx.attrs["dim"], ctx.attrs.get("keepdim", False)
    idx = ctx.output
    return scatter_dim(g, idx, ctx.in_shapes[0], dim, keepdim)


def _arg_meta(a, dim=None, keepdim=False):
    if dim is None:
        if numel(a.shape) == 0:
            raise InvalidArgumentError("argmax(): Expected reduction dim to be specified for "
                                       "input.numel() == 0.")
        return Meta((1,) * len(a.shape) if keepdim else (), int64)
    d = normalize_dim(dim, len(a.shape))
    return Meta(reduced_shape(a.shape, (d,), keepdim), int64)


def _arg(fn):
    def forward(xp, a, dim=None, keepdim=False):
        if dim is None:
            out = getattr(xp, fn)(a)
            return out.reshape((1,) * a.ndim) if keepdim else out
        if a.ndim == 0:
            return xp.zeros((), np.int64)
        return getattr(xp, fn)(a, axis=dim, keepdims=keepdim)

    return forward


defop("argmax", infer=_arg_meta)(_arg("argmax"))
defop("argmin", infer=_arg_meta)(_arg("argmin"))


# -- softmax ----------------------------------------------------------------------------------
def _softmax_meta(kernel: str):
    def infer(a, dim):
        d = normalize_dim(dim, len(a.shape))
        if not a.dtype.is_floating_point:  # torch's kernels: float types only, no promotion
            last = "_lastdim" if d == max(len(a.shape) - 1, 0) else ""
            raise KernelNotImplementedError(f'"{kernel}{last}_kernel_impl" not implemented for '
                                            f"'{TORCH_SCALAR_NAMES[a.dtype.name]}'")
        return fresh((a.shape, a.dtype, None))  # per step: no NamedTuple __new__ frame

    return infer


def _softmax(xp, a, dim):
    if a.size == 0:
        return a.astype(np.result_type(a.dtype, np.float32))
    if a.ndim == 0:
        return xp.ones_like(a, dtype=np.result_type(a.dtype, np.float32))
    shifted = a - xp.max(a, axis=dim, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=dim, keepdims=True)


def _log_softmax(xp, a, dim):
    if a.size == 0:
        return a.astype(np.result_type(a.dtype, np.float32))
    if a.ndim == 0:
        return xp.zeros_like(a, dtype=np.result_type(a.dtype, np.float32))
    # the array methods: the reductions xp.max/xp.sum run, without their Python wrappers
    shifted = a - a.max(axis=dim, keepdims=True)
    total = xp.exp(shifted).sum(axis=dim, keepdims=True)
    if shifted.dtype.kind != "f":
        return shifted - xp.log(total)
    shifted -= xp.log(total, out=total)  # into the fresh arrays: the same ufuncs, same bits
    return shifted


softmax = defop("softmax", infer=_softmax_meta("softmax"), grad_name="SoftmaxBackward0",
                save_output=True, attrs=("dim",))(_softmax)
log_softmax = defop("log_softmax", infer=_softmax_meta("log_softmax"),
                    grad_name="LogSoftmaxBackward0",
                    save_output=True, attrs=("dim",))(_log_softmax)


@softmax.def_backward
def _(ctx, g):
    out = ctx.output
    dim = ctx.attrs["dim"] if out.ndim else None
    return (out * (g - (g * out).sum(dim, keepdim=True)),)


@log_softmax.def_backward
def _(ctx, g):
    out = ctx.output
    return (g._op("log_softmax_backward_data", g, out, dim=ctx.attrs["dim"]),)


def _log_softmax_grad_meta(g, out, dim):
    normalize_dim(dim, len(out.shape))
    return fresh((out.shape, out.dtype, None))


def _log_softmax_grad(xp, g, out, dim):
    """g - exp(out) * sum(g over dim): the ufuncs the composed form ran, in its order, so
    the gradient has the same bits, in one op instead of four."""
    axis = dim if out.ndim else ()  # an int the meta checked: numpy takes it as it is
    e = xp.exp(out)
    total = g.sum(axis=axis, keepdims=True)
    if out.ndim == 0 or e.dtype != g.dtype:  # no array to reuse, or a dtype to promote to
        return xp.subtract(g, xp.multiply(e, total))
    e *= total  # into exp's fresh array: the same ufuncs in the same order, the same bits
    return xp.subtract(g, e, out=e)


# torch's _log_softmax_backward_data: LogSoftmaxBackward0 runs it, and its node under
# create_graph is torch's LogSoftmaxBackwardDataBackward0 with torch's formulas
log_softmax_backward_data = defop(
    "log_softmax_backward_data", infer=_log_softmax_grad_meta,
    grad_name="LogSoftmaxBackwardDataBackward0", save=(0, 1), attrs=("dim",))(_log_softmax_grad)


@log_softmax_backward_data.def_backward
def _(ctx, h):
    g, out = ctx.saved
    dim = ctx.attrs["dim"] if out.ndim else None
    e = out.exp()
    gg = h - (h * e).sum(dim, keepdim=True) if ctx.needs[0] else None
    go = -(g.sum(dim, keepdim=True) * e * h) if ctx.needs[1] else None
    return gg, go


# -- sum_to: the reduction autograd applies to broadcast gradients ----------------------------
def _sum_to_dims(shape, target):
    return _sum_to_plan(tuple(shape), tuple(target))


@functools.lru_cache(maxsize=512)  # a model's few (shape, target) pairs, every step
def _sum_to_plan(shape, target):
    lead = len(shape) - len(target)
    if lead < 0:
        raise InvalidArgumentError(f"can't sum shape {list(shape)} to {list(target)}")
    dims = list(range(lead))
    for i, n in enumerate(target):
        if n == 1 and shape[lead + i] != 1:
            dims.append(lead + i)
        elif n != shape[lead + i]:
            raise InvalidArgumentError(f"can't sum shape {list(shape)} to {list(target)}")
    return tuple(dims), lead


def _sum_to_meta(a, shape):
    _sum_to_dims(a.shape, shape)
    return fresh((tuple(shape), a.dtype, None))  # a bias's gradient, per step


def _sum_to(xp, a, shape):
    dims, lead = _sum_to_dims(a.shape, shape)
    if not dims:
        return a.reshape(shape)
    if len(dims) == lead:  # only leading dims (a bias's gradient): no size-1 dims to keep
        return a.sum(axis=dims)
    return a.sum(axis=dims, keepdims=True).reshape(shape)


sum_to = defop("sum_to", infer=_sum_to_meta, grad_name="SumBackward1", attrs=("shape",))(_sum_to)


@sum_to.def_backward
def _(ctx, g):
    shape = ctx.in_shapes[0]
    dims, lead = _sum_to_dims(shape, ctx.attrs["shape"])
    return (g.reshape((1,) * lead + tuple(ctx.attrs["shape"])).expand(shape),)

