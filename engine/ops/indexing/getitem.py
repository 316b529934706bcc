"""Indexing: basic keys as views (getitem), index tensors as copies (index), and the
scatter that is their backward."""

from __future__ import annotations

from ...core.backend import scatter_add
from ...core.errors import InvalidArgumentError
from ...core.indexing import basic_strides, check_masks, gather, has_mask, plan, resolve_masks
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from ..edges import edges_of, to_edges
from ..elementwise.arithmetic import operand


# -- indexing ---------------------------------------------------------------------------------
def _index_meta(a, *tensors, key):
    if has_mask(key):  # what a mask selects is data: the shape is known once it ran
        check_masks(a.shape, key, [t.shape for t in tensors])
        return Meta(None, a.dtype)
    _, _, shape, _ = plan(a.shape, key, [t.shape for t in tensors])
    return Meta(shape, a.dtype)


def _index(xp, a, *indices, key):
    key, indices = resolve_masks(xp, key, indices)
    basic, adv, _, _ = plan(a.shape, key, [i.shape for i in indices])
    out = a[basic + (Ellipsis,)]  # the Ellipsis keeps a view even when every dim gets an int
    if adv:
        out = gather(xp, out, adv, out.ndim, indices)
    return out


_INDEX = edges_of("IndexBackward0", (0,))  # index tensors have no edge in torch's node
_INDEX_PUT = edges_of("IndexPutBackward0", (0, 1))


def _index_name(a, *tensors, key):
    if has_mask(key):
        return _INDEX
    if len(key) == 1 and key[0][0] == "slice":
        return "SliceBackward0"  # x[a:b] alone is always a slice in torch, even x[:]
    return plan(a.shape, key, [t.shape for t in tensors])[3]


def _getitem_meta(a, *tensors, key):
    if tensors or any(s[0] in ("tensor", "list") for s in key):
        raise InvalidArgumentError("getitem takes basic indices only (ints, slices, None, "
                                   "Ellipsis); index tensors and lists go to 'index'")
    meta = _index_meta(a, key=key)
    return Meta(meta.shape, meta.dtype, basic_strides(a.shape, a.stride(), key))


getitem = defop("getitem", infer=_getitem_meta, grad_name=_index_name, view=True)(_index)
# index tensors are inputs 1.., and backward needs them
index = defop("index", infer=_index_meta, grad_name=_index_name, save=slice(1, None))(_index)


def _index_backward(ctx, g):
    indices = ctx.saved
    grad = g._op("index_put_zeros", g, *indices, key=ctx.attrs["key"],
                 shape=tuple(ctx.in_shapes[0]))
    return to_edges(ctx, (grad,) + (None,) * len(indices))


getitem.def_backward(_index_backward)
index.def_backward(_index_backward)


def _index_put_meta(g, *tensors, key, shape):
    return Meta(tuple(shape), g.dtype)


def _index_put_zeros(xp, g, *indices, key, shape):
    out = xp.zeros(tuple(shape), dtype=g.dtype)
    key, indices = resolve_masks(xp, key, indices)
    basic, adv, _, _ = plan(tuple(shape), key, [i.shape for i in indices])
    if not adv:
        out[basic] = g
        return out
    view = out[basic]
    akey = [slice(None)] * view.ndim
    for pos, ref, kind in adv:
        akey[pos] = indices[ref] if kind == "tensor" else xp.asarray(ref, dtype="int64")
    scatter_add(xp, view, tuple(akey), g)  # repeated indices accumulate, as torch's backward
    return out


index_put_zeros = defop("index_put_zeros", infer=_index_put_meta,
                        grad_name="IndexPutBackward0", save=slice(1, None))(_index_put_zeros)


@index_put_zeros.def_backward
def _(ctx, g):
    indices = ctx.saved
    key = ctx.attrs["key"]
    name = "index" if any(s[0] in ("tensor", "list", "mask") for s in key) else "getitem"
    return to_edges(ctx, (g._op(name, g, *indices, key=key),) + (None,) * len(indices))


# -- x[key] = value: index_put ---------------------------------------------------------------
def _index_put_meta(a, value, *tensors, key, accumulate=False):
    operand(value)
    if has_mask(key):
        check_masks(a.shape, key, [t.shape for t in tensors])
    else:
        plan(a.shape, key, [t.shape for t in tensors])
    return Meta(tuple(a.shape), a.dtype)


def _put(xp, out, value, indices, key, accumulate):
    """Write (or add) value into out[key], as torch's index_put_."""
    key, indices = resolve_masks(xp, key, indices)
    basic, adv, shape, _ = plan(out.shape, key, [i.shape for i in indices])
    view = out[basic + (Ellipsis,)]
    if adv:
        akey = [slice(None)] * view.ndim
        for pos, ref, kind in adv:
            akey[pos] = indices[ref] if kind == "tensor" else xp.asarray(ref, dtype="int64")
        where = tuple(akey)
    else:
        where = Ellipsis
    vshape = tuple(getattr(value, "shape", ()))
    try:
        target = broadcast_shapes(vshape, tuple(shape))
    except InvalidArgumentError:
        target = None
    if target != tuple(shape):
        raise InvalidArgumentError(f"shape mismatch: value tensor of shape {list(vshape)} cannot "
                                   f"be broadcast to indexing result of shape {list(shape)}")
    if accumulate:
        scatter_add(xp, view, where, xp.broadcast_to(value, shape).astype(out.dtype, copy=False))
    else:
        view[where] = value
    return out


def _index_put(xp, a, value, *indices, key, accumulate=False):
    return _put(xp, a.copy(), value, indices, key, accumulate)


index_put = defop("index_put", infer=_index_put_meta, grad_name="IndexPutBackward0",
                  save=slice(2, None))(_index_put)
index_put.def_forward_into(
    lambda xp, a, value, *indices, key, accumulate=False: _put(xp, a, value, indices, key,
                                                               accumulate))


@index_put.def_backward
def _(ctx, g):
    indices = ctx.saved
    key = ctx.attrs["key"]
    gx = None
    if ctx.needs[0]:
        gx = g if ctx.attrs.get("accumulate") else g._op("index_put", g, 0.0, *indices, key=key)
    gv = g._op("index", g, *indices, key=key) if ctx.needs[1] else None
    return to_edges(ctx, (gx, gv) + (None,) * len(indices))
