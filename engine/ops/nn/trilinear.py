"""torch's _trilinear, the kernel F.bilinear calls: each of three tensors unsqueezed at its
`expand` dims, multiplied with broadcasting, summed over `sumdim`. One TrilinearBackward0
node with an edge to each; the backward is written with tensor methods (differentiable
again): each input's gradient is the upstream gradient times the other two, summed back to
its own shape.

    >>> from gradserve import engine
    >>> x, w, y = engine.ones(1, 2), engine.ones(3, 2, 2), engine.ones(1, 2)
    >>> x._op("_trilinear", x, w, y, expand1=(1, 3), expand2=(0,), expand3=(1, 2),
    ...       sumdim=(2, 3)).shape
    gradserve.Size([1, 3])
"""

from __future__ import annotations

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes


def _expanded(shape, dims):
    shape = list(shape)
    for d in sorted(dims):
        shape.insert(d, 1)
    return tuple(shape)


def _full_shape(a, b, c, expand1, expand2, expand3):
    shapes = [_expanded(t.shape, e) for t, e in ((a, expand1), (b, expand2), (c, expand3))]
    if len({len(s) for s in shapes}) != 1:
        raise InvalidArgumentError("_trilinear: the expanded inputs must have the same number "
                                   "of dimensions")
    return broadcast_shapes(*shapes)


def _meta(a, b, c, expand1=(), expand2=(), expand3=(), sumdim=(), unroll_dim=1):
    full = _full_shape(a, b, c, expand1, expand2, expand3)
    return Meta(tuple(n for d, n in enumerate(full) if d not in sumdim), a.dtype)


def _trilinear(xp, a, b, c, expand1=(), expand2=(), expand3=(), sumdim=(), unroll_dim=1):
    ea = a.reshape(_expanded(a.shape, expand1))
    eb = b.reshape(_expanded(b.shape, expand2))
    ec = c.reshape(_expanded(c.shape, expand3))
    product = ea * eb * ec
    return product.sum(axis=tuple(sumdim)).astype(a.dtype, copy=False) if sumdim else product


trilinear = defop("_trilinear", infer=_meta, grad_name="TrilinearBackward0", save=(0, 1, 2),
                  attrs=("expand1", "expand2", "expand3", "sumdim", "unroll_dim"))(_trilinear)


@trilinear.def_backward
def _(ctx, g):
    saved = ctx.saved
    expands = [ctx.attrs.get(k, ()) for k in ("expand1", "expand2", "expand3")]
    sumdim = ctx.attrs.get("sumdim", ())
    for d in sorted(sumdim):
        g = g.unsqueeze(d)
    expanded = [t.reshape(_expanded(t.shape, e)) if t is not None else None
                for t, e in zip(saved, expands, strict=True)]
    grads = []
    for i in range(3):
        if i >= len(ctx.needs) or not ctx.needs[i]:
            grads.append(None)
            continue
        others = [expanded[j] for j in range(3) if j != i]
        full = g * others[0] * others[1]
        grads.append(full.sum_to_size(*_expanded(ctx.in_shapes[i], expands[i]))
                     .reshape(tuple(ctx.in_shapes[i])))
    return tuple(grads)
