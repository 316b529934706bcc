"""View and layout ops (reshape, permute, expand, ...), in-place through views, cat, stack."""

from __future__ import annotations

import math

import numpy as np

from ...core.copyslices import backward as copy_slices_backward
from ...core.copyslices import restride_backward
from ...core.dtype import TORCH_TYPE_NAMES, result_type
from ...core.errors import InvalidArgumentError
from ...core.layout import contiguous, unsqueezed, view_strides
from ...core.registry import Meta, defop, fresh, get_op
from ...core.shape import infer_reshape, normalize_dim, normalize_dims


def _reshape_back(ctx, g):
    return (g.reshape(ctx.in_shapes[0]),)


# -- views ------------------------------------------------------------------------------------
# Each view op's shape rule also gives its output's strides (element strides, see core/layout),
# from which both tensor kinds know what aliases what; an output the rule gives no strides
# is a copy. numpy's views have exactly these strides (tests/engine/test_layout.py).
def _resized(a, new):
    """Meta of `a` reshaped to `new`: a view when memory allows, else a contiguous copy."""
    return Meta(new, a.dtype, view_strides(a.shape, a.stride(), new))


def _reshape_meta(a, shape):
    return _resized(a, infer_reshape(a.shape, shape))


def _reshaped_name(a, new) -> str:
    """torch's reshape: a view of a contiguous tensor (ViewBackward0), an alias with other
    strides of a non-contiguous one (ReshapeAliasBackward0), or, when no view fits the memory,
    a copy (torch's clone + _unsafe_view; the surface records those two nodes)."""
    if view_strides(a.shape, a.stride(), new) is None:
        return "UnsafeViewBackward0"
    return "ViewBackward0" if a.is_contiguous() else "ReshapeAliasBackward0"


def _reshape_name(a, shape):
    return _reshaped_name(a, infer_reshape(a.shape, shape))


reshape = defop("reshape", infer=_reshape_meta, grad_name=_reshape_name, view=True,
                attrs=("shape",))(
    lambda xp, a, shape: xp.reshape(a, infer_reshape(a.shape, shape))
)
reshape.def_backward(_reshape_back)


def _unsafe_view_meta(a, shape):
    return Meta(infer_reshape(a.shape, shape), a.dtype)


# torch's _unsafe_view: a reshape whose result autograd treats as a new tensor (no version
# counter shared): what torch's composite ops (kron, matmul) end in
unsafe_view = defop("_unsafe_view", infer=_unsafe_view_meta, grad_name="UnsafeViewBackward0",
                    attrs=("shape",))(
    lambda xp, a, shape: xp.reshape(a, infer_reshape(a.shape, shape))
)
unsafe_view.def_backward(_reshape_back)


def _view_meta(a, shape):
    meta = _reshape_meta(a, shape)
    if meta.strides is None:
        raise InvalidArgumentError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        )
    return meta


view = defop("view", infer=_view_meta, grad_name="ViewBackward0", view=True, attrs=("shape",))(
    lambda xp, a, shape: xp.reshape(a, infer_reshape(a.shape, shape))
)
view.def_backward(_reshape_back)


def _flatten_shape(shape, start_dim, end_dim):
    if not shape:
        return (1,)
    s, e = normalize_dim(start_dim, len(shape)), normalize_dim(end_dim, len(shape))
    if s > e:
        raise InvalidArgumentError(
            "flatten() has invalid args: start_dim cannot come after end_dim"
        )
    return tuple(shape[:s]) + (math.prod(shape[s:e + 1]),) + tuple(shape[e + 1:])


def _flatten_meta(a, start_dim=0, end_dim=-1):
    return _resized(a, _flatten_shape(a.shape, start_dim, end_dim))


flatten = defop("flatten", infer=_flatten_meta, view=True,
                grad_name=lambda a, start_dim=0, end_dim=-1: _reshaped_name(
                    a, _flatten_shape(a.shape, start_dim, end_dim)))(
    lambda xp, a, start_dim=0, end_dim=-1: xp.reshape(a, _flatten_shape(a.shape, start_dim,
                                                                        end_dim))
)
flatten.def_backward(_reshape_back)


def _t_meta(a):
    if len(a.shape) > 2:
        raise InvalidArgumentError(f"t() expects a tensor with <= 2 dimensions, but self is "
                                   f"{len(a.shape)}D")
    # per Linear, forward and backward: `fresh`, without NamedTuple's Python-level __new__,
    # and a tensor's strides read, not asked for (`stride()` is two frames)
    strides = getattr(a, "_strides", _ASK)
    if strides is None:
        strides = contiguous(a.shape)
    elif strides is _ASK:  # a Meta: a view replayed on shapes alone
        strides = a.stride()
    return fresh((tuple(a.shape)[::-1], a.dtype, tuple(strides)[::-1]))


_ASK = object()


t = defop("t", infer=_t_meta, grad_name="TBackward0", view=True)(lambda xp, a: a.T)


@t.def_backward
def _(ctx, g):
    return (g._op("t", g),)  # g.t(), without its frame: per Linear per backward


def _perm(dims, ndim):
    dims = tuple(normalize_dim(d, ndim) for d in dims)
    if len(dims) != ndim or sorted(dims) != list(range(ndim)):
        raise InvalidArgumentError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {ndim} is not "
            f"equal to len(dims) = {len(dims)}" if len(dims) != ndim
            else "permute(): duplicate dims are not allowed."
        )
    return dims


def _permute_meta(a, dims):
    dims = _perm(dims, len(a.shape))
    strides = a.stride()
    return Meta(tuple(a.shape[d] for d in dims), a.dtype, tuple(strides[d] for d in dims))


permute = defop("permute", infer=_permute_meta, grad_name="PermuteBackward0", view=True,
                attrs=("dims",))(
    lambda xp, a, dims: xp.transpose(a, _perm(dims, a.ndim))
)


@permute.def_backward
def _(ctx, g):
    dims = _perm(ctx.attrs["dims"], len(ctx.in_shapes[0]))
    return (g.permute(tuple(int(i) for i in np.argsort(dims))),)


def _swap(shape, d0, d1):
    n = max(len(shape), 1)
    d0, d1 = normalize_dim(d0, n), normalize_dim(d1, n)
    s = list(shape)
    if s:
        s[d0], s[d1] = s[d1], s[d0]
    return tuple(s), d0, d1


def _transpose(xp, a, dim0, dim1):
    return xp.swapaxes(a, *_swap(a.shape, dim0, dim1)[1:]) if a.ndim else a.view()


def _transpose_meta(a, dim0, dim1):
    shape, d0, d1 = _swap(a.shape, dim0, dim1)
    strides = list(a.stride())
    if strides:
        strides[d0], strides[d1] = strides[d1], strides[d0]
    return Meta(shape, a.dtype, tuple(strides))


transpose = defop("transpose", infer=_transpose_meta, grad_name="TransposeBackward0",
                  view=True, attrs=("dim0", "dim1"))(_transpose)


@transpose.def_backward
def _(ctx, g):
    return (g.transpose(ctx.attrs["dim1"], ctx.attrs["dim0"]),)


def _squeezed(shape, dim):
    """The dims squeeze keeps."""
    if dim is None:
        return [i for i, n in enumerate(shape) if n != 1]
    dims = normalize_dims(dim, max(len(shape), 1)) if shape else ()
    return [i for i, n in enumerate(shape) if not (i in dims and n == 1)]


def _squeeze_shape(shape, dim):
    return tuple(shape[i] for i in _squeezed(shape, dim))


def _squeeze_meta(a, dim=None):
    keep, strides = _squeezed(a.shape, dim), a.stride()
    return Meta(tuple(a.shape[i] for i in keep), a.dtype, tuple(strides[i] for i in keep))


squeeze = defop("squeeze", infer=_squeeze_meta,
                grad_name=lambda a, dim=None: "SqueezeBackward0" if dim is None
                else "SqueezeBackward1", view=True)(
    lambda xp, a, dim=None: xp.reshape(a, _squeeze_shape(a.shape, dim))
)
squeeze.def_backward(_reshape_back)


def _squeeze_result_meta(a, dim):
    return Meta(_squeeze_shape(a.shape, dim), a.dtype)


# torch's `t.squeeze_(dim)` on a result nobody else holds (matmul's vector @ matrix ends so):
# a reshape to a fresh tensor (no view of a temporary), named as torch's in-place squeeze
squeeze_result = defop("squeeze_result", infer=_squeeze_result_meta,
                       grad_name="SqueezeBackward4", attrs=("dim",))(
    lambda xp, a, dim: xp.reshape(a, _squeeze_shape(a.shape, dim))
)
squeeze_result.def_backward(_reshape_back)


def _unsqueeze_shape(shape, dim):
    d = normalize_dim(dim, len(shape) + 1)
    return tuple(shape[:d]) + (1,) + tuple(shape[d:])


def _unsqueeze_meta(a, dim):
    shape = _unsqueeze_shape(a.shape, dim)
    return Meta(shape, a.dtype, unsqueezed(a.shape, a.stride(), normalize_dim(dim, len(shape))))


unsqueeze = defop("unsqueeze", infer=_unsqueeze_meta,
                  grad_name="UnsqueezeBackward0", view=True, attrs=("dim",))(
    lambda xp, a, dim: xp.reshape(a, _unsqueeze_shape(a.shape, dim))
)
unsqueeze.def_backward(_reshape_back)


def _expand_shape(shape, sizes, dtype=None):
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < len(shape):
        kind = TORCH_TYPE_NAMES[dtype.name] if dtype is not None else "FloatTensor"
        raise InvalidArgumentError(
            f"expand(torch.{kind}{{{list(shape)}}}, size={list(sizes)}): the number of sizes "
            f"provided ({len(sizes)}) must be greater or equal to the number of dimensions in the "
            f"tensor ({len(shape)})"
        )
    lead = len(sizes) - len(shape)
    out = []
    for i, n in enumerate(sizes):
        have = shape[i - lead] if i >= lead else None
        if n == -1:
            if have is None:
                raise InvalidArgumentError(
                    f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                    f"non-existing dimension {i}"
                )
            n = have
        elif have is not None and have != n and have != 1:
            raise InvalidArgumentError(
                f"The expanded size of the tensor ({n}) must match the existing size ({have}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(shape)}"
            )
        out.append(n)
    return tuple(out)


def _expand_meta(a, shape):
    out = _expand_shape(a.shape, shape, a.dtype)
    lead = len(out) - len(a.shape)
    old = a.stride()
    strides = tuple(0 if i < lead or a.shape[i - lead] != n else old[i - lead]
                    for i, n in enumerate(out))
    return Meta(out, a.dtype, strides)


expand = defop("expand", infer=_expand_meta,
               grad_name="ExpandBackward0", view=True, attrs=("shape",))(
    lambda xp, a, shape: xp.broadcast_to(a, _expand_shape(a.shape, shape))
)


@expand.def_backward
def _(ctx, g):
    return (g._op("sum_to", g, shape=tuple(ctx.in_shapes[0])),)


def _alias_meta(a):
    return Meta(a.shape, a.dtype, a.stride())


# `.detach()`: the same storage and version counter, outside the graph
detach = defop("detach", infer=_alias_meta, view=True)(lambda xp, a: a.view())
# `.data`: the same storage under a fresh version counter (so not flagged as a view)
data = defop("data", infer=_alias_meta)(lambda xp, a: a.view())


# -- in-place through a view: torch's CopySlices -------------------------------------------
def _replay_meta(meta, steps):
    for name, attrs, nr in steps:
        meta = get_op(name).infer(meta, **attrs)
        if type(meta) is not Meta:
            meta = meta[nr]
    return meta


def _view_scatter_meta(base, src, steps):
    region = _replay_meta(Meta(tuple(base.shape), base.dtype), steps)
    if tuple(src.shape) != region.shape:
        raise InvalidArgumentError(
            f"view_scatter: source of shape {list(src.shape)} for a view of shape "
            f"{list(region.shape)}"
        )
    return Meta(tuple(base.shape), base.dtype)


def _view_scatter(xp, base, src, steps):
    out = base.copy()
    region = out
    for name, attrs, nr in steps:  # view ops: region stays a view into out
        region = get_op(name).forward(xp, region, **attrs)
        if isinstance(region, tuple):
            region = region[nr]
    region[...] = src
    return out


def _replay_meta_strided(base, steps):
    return _replay_meta(Meta(tuple(base.shape), base.dtype, base.stride()), steps)


def _restride(xp, base, steps):
    region = base
    for name, attrs, nr in steps:
        region = get_op(name).forward(xp, region, **attrs)
        if isinstance(region, tuple):
            region = region[nr]
    return region


# base with the region that `steps` (view ops) select replaced by src
view_scatter = defop("view_scatter", infer=_view_scatter_meta, grad_name="CopySlices",
                     attrs=("steps",))(
    _view_scatter
)


@view_scatter.def_backward
def _(ctx, g):
    if getattr(ctx, "fn", None) is not None:  # a write through a view: the node wraps the op's
        return copy_slices_backward(ctx, g)
    steps = ctx.attrs["steps"]
    region = g
    for name, attrs, nr in steps:
        region = region._op(name, region, **attrs)
        if isinstance(region, tuple):
            region = region[nr]
    g_base = g._op("view_scatter", g, region * 0, steps=steps) if ctx.needs[0] else None
    return g_base, region if ctx.needs[1] else None


# A view whose base changed in place after it was made: its view ops again, under torch's
# one node for that (core/copyslices.replay). Saves nothing: steps are shapes alone.
restride = defop("restride", infer=_replay_meta_strided, grad_name="AsStridedBackward0",
                 view=True, attrs=("steps",))(_restride)
restride.def_backward(restride_backward)


# -- cat / stack ------------------------------------------------------------------------------
def _cat_meta(*tensors, dim):
    shapes = [tuple(t.shape) for t in tensors]
    ref = next((s for s in shapes if s != (0,)), shapes[0])
    if not ref:
        raise InvalidArgumentError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = normalize_dim(dim, len(ref))
    total = 0
    for i, s in enumerate(shapes):
        if s == (0,) and ref != (0,):
            continue
        if len(s) != len(ref):
            raise InvalidArgumentError(
                f"Tensors must have same number of dimensions: got {len(ref)} and {len(s)}"
            )
        for j, (n, m) in enumerate(zip(s, ref, strict=True)):
            if j != d and n != m:
                raise InvalidArgumentError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size {m} but "
                    f"got size {n} for tensor number {i} in the list."
                )
        total += s[d]
    out = list(ref)
    out[d] = total
    return Meta(tuple(out), result_type(*[t for t in tensors if len(t.shape)]) if any(
        len(t.shape) for t in tensors) else tensors[0].dtype)


def _cat(xp, *arrays, dim):
    arrays = [a for a in arrays if a.shape != (0,)] or list(arrays[:1])
    dtype = np.result_type(*(a.dtype for a in arrays))
    return xp.concatenate([a.astype(dtype, copy=False) for a in arrays],
                          axis=normalize_dim(dim, arrays[0].ndim))


cat = defop("cat", infer=_cat_meta, grad_name="CatBackward0")(_cat)


@cat.def_backward
def _(ctx, g):
    shapes = ctx.in_shapes
    ref = next((s for s in shapes if s != (0,)), shapes[0])
    d = normalize_dim(ctx.attrs["dim"], len(ref))
    out, start = [], 0
    for s, need in zip(shapes, ctx.needs, strict=True):
        if s == (0,) and ref != (0,):  # a legacy empty tensor, skipped by cat: an empty grad
            out.append(g.reshape(-1)[:0] if need else None)
            continue
        stop = start + s[d]
        key = (("slice", None, None, None),) * d + (("slice", start, stop, 1),)
        out.append(g._op("getitem", g, key=key) if need else None)
        start = stop
    return tuple(out)


def _stack_meta(*tensors, dim):
    ref = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        if tuple(t.shape) != ref:
            raise InvalidArgumentError(
                f"stack expects each tensor to be equal size, but got {list(ref)} at entry 0 and "
                f"{list(t.shape)} at entry {i}"
            )
    d = normalize_dim(dim, len(ref) + 1)
    return Meta(ref[:d] + (len(tensors),) + ref[d:], result_type(*tensors))


def _stack(xp, *arrays, dim):
    dtype = np.result_type(*(a.dtype for a in arrays))
    return xp.stack([a.astype(dtype, copy=False) for a in arrays],
                    axis=normalize_dim(dim, arrays[0].ndim + 1))


stack = defop("stack", infer=_stack_meta, grad_name="StackBackward0")(_stack)


@stack.def_backward
def _(ctx, g):
    d = normalize_dim(ctx.attrs["dim"], len(ctx.in_shapes[0]) + 1)
    key = (("slice", None, None, None),) * d
    return tuple(g._op("getitem", g, key=key + (("int", i),)) if need else None
                 for i, need in enumerate(ctx.needs))
