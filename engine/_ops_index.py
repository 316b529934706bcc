"""Indexing: basic keys as views (getitem), index tensors as copies (index), and the
scatter that is their backward."""

from __future__ import annotations

from ._backend import scatter_add
from ._errors import InvalidArgumentError
from ._index import basic_strides, gather, plan
from ._registry import Meta, defop


# -- indexing ---------------------------------------------------------------------------------
def _index_meta(a, *tensors, key):
    _, _, shape, _ = plan(a.shape, key, [t.shape for t in tensors])
    return Meta(shape, a.dtype)


def _index(xp, a, *indices, key):
    basic, adv, _, _ = plan(a.shape, key, [i.shape for i in indices])
    out = a[basic + (Ellipsis,)]  # the Ellipsis keeps a view even when every dim gets an int
    if adv:
        out = gather(xp, out, adv, out.ndim, indices)
    return out


def _index_name(a, *tensors, key):
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
    return (grad,) + (None,) * len(indices)


getitem.def_backward(_index_backward)
index.def_backward(_index_backward)


def _index_put_meta(g, *tensors, key, shape):
    return Meta(tuple(shape), g.dtype)


def _index_put_zeros(xp, g, *indices, key, shape):
    out = xp.zeros(tuple(shape), dtype=g.dtype)
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
    name = "index" if any(s[0] in ("tensor", "list") for s in key) else "getitem"
    return (g._op(name, g, *indices, key=key),) + (None,) * len(indices)
