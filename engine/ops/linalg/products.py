"""torch's named matrix products: mm, bmm, mv, dot, vdot, addmm, addmv, baddbmm, addbmm and
trace, each one op with torch's grad_fn name and shape errors (matmul folds operands of any
rank; these check theirs). Each keeps an operand only when the other's gradient needs it,
as torch's do, and their backwards are these same ops, so higher derivatives follow.

    >>> from gradserve import engine
    >>> a = engine.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> a.mm(a).grad_fn
    <MmBackward0 object at ...>
"""

from __future__ import annotations

import numpy as np

from ...core import grad_mode as _grad_mode
from ...core.dtype import TORCH_SCALAR_NAMES, bool_, int64
from ...core.errors import InvalidArgumentError, KernelNotImplementedError
from ...core.registry import Meta, defop, fresh
from ...core.shape import broadcast_shapes


def _same_dtype(a, b, what: str):
    if a.dtype is not b.dtype:
        raise InvalidArgumentError(
            f"{what}, but got: {TORCH_SCALAR_NAMES[a.dtype.name]} != "
            f"{TORCH_SCALAR_NAMES[b.dtype.name]}")
    return a.dtype


def _mm_shape(a, b) -> tuple[int, int]:
    if len(a.shape) != 2:
        raise InvalidArgumentError("self must be a matrix")
    if len(b.shape) != 2:
        raise InvalidArgumentError("mat2 must be a matrix")
    if a.shape[1] != b.shape[0]:
        raise InvalidArgumentError(
            f"mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and "
            f"{b.shape[0]}x{b.shape[1]})")
    return a.shape[0], b.shape[1]


def _mm_meta(a, b) -> Meta:
    shape = _mm_shape(a, b)
    return Meta(shape, _same_dtype(a, b, "expected m1 and m2 to have the same dtype"))


def _bmm_shape(a, b) -> tuple[int, int, int]:
    for name, x in (("batch1", a), ("batch2", b)):
        if len(x.shape) != 3:
            raise InvalidArgumentError(f"{name} must be a 3D tensor")
    if (b.shape[0], b.shape[1]) != (a.shape[0], a.shape[2]):
        raise InvalidArgumentError(
            "Expected size for first two dimensions of batch2 tensor to be: "
            f"[{a.shape[0]}, {a.shape[2]}] but got: [{b.shape[0]}, {b.shape[1]}].")
    return a.shape[0], a.shape[1], b.shape[2]


def _bmm_meta(a, b) -> Meta:
    shape = _bmm_shape(a, b)
    if a.dtype is not b.dtype:
        raise InvalidArgumentError(f"expected scalar type {TORCH_SCALAR_NAMES[a.dtype.name]} "
                                   f"but found {TORCH_SCALAR_NAMES[b.dtype.name]}")
    return Meta(shape, a.dtype)


def _mv_shape(a, v) -> tuple[int]:
    if len(a.shape) != 2 or len(v.shape) != 1:
        raise InvalidArgumentError(
            f"vector + matrix @ vector expected, got 1, {len(a.shape)}, {len(v.shape)}")
    if a.shape[1] != v.shape[0]:
        raise InvalidArgumentError(
            f"size mismatch, got input ({a.shape[0]}), mat ({a.shape[0]}x{a.shape[1]}), "
            f"vec ({v.shape[0]})")
    return (a.shape[0],)


def _mv_meta(a, v) -> Meta:
    return Meta(_mv_shape(a, v), _same_dtype(a, v, "expected m1 and m2 to have the same dtype"))


def _dot_meta(name: str):
    def infer(a, b) -> Meta:
        if len(a.shape) != 1 or len(b.shape) != 1:
            raise InvalidArgumentError(
                f"1D tensors expected, but got {len(a.shape)}D and {len(b.shape)}D tensors")
        if a.shape[0] != b.shape[0]:
            raise InvalidArgumentError(
                f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src "
                f"[{b.shape[0]}] to have the same number of elements, but got {a.shape[0]} "
                f"and {b.shape[0]} elements respectively")
        if a.dtype is not b.dtype:
            raise InvalidArgumentError(
                f"{name} : expected both vectors to have same dtype, but found "
                f"{TORCH_SCALAR_NAMES[a.dtype.name]} and {TORCH_SCALAR_NAMES[b.dtype.name]}")
        return Meta((), a.dtype)

    return infer


def _mm_grads(g, a, b, needs, column_major) -> tuple:
    """Both factors' gradients, each laid out as torch lays it out: a column-major factor
    (`w.t()` of a contiguous weight, as F.linear passes it) gets a column-major gradient, so
    the weight's own gradient comes out contiguous (no copy, and an optimizer walks rows).

    Recording (create_graph), they are torch's graph of mm and t; otherwise each is one op
    running the same matmul on the same operands (the same bits), not up to three."""
    ga = gb = None
    if not _grad_mode._state.enabled:
        if needs[0]:
            ga = g._op("mm_mat1_grad", g, b, column_major=bool(column_major[0]))
        if needs[1]:
            gb = g._op("mm_mat2_grad", g, a, column_major=bool(column_major[1]))
        return ga, gb
    if needs[0]:
        ga = b.mm(g.t()).t() if column_major[0] else g.mm(b.t())
    if needs[1]:
        gb = g.t().mm(a).t() if column_major[1] else a.t().mm(g)
    return ga, gb


def _factor_grad_meta(g, x, factor: int, column_major: bool) -> Meta:
    """The shape rule of factor 1's gradient g @ b.T (x: b) or factor 2's a.T @ g (x: a),
    with its strides when column-major (the transpose of a fresh C-ordered result)."""
    gs, xs = tuple(g.shape), tuple(x.shape)
    if len(gs) != 2 or len(xs) != 2 or (gs[1] != xs[1] if factor == 1 else gs[0] != xs[0]):
        raise InvalidArgumentError(
            f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, gs))} and "
            f"{'x'.join(map(str, xs))})")
    shape = (gs[0], xs[0]) if factor == 1 else (xs[1], gs[1])
    dtype = _same_dtype(g, x, "expected m1 and m2 to have the same dtype")
    return fresh((shape, dtype, (1, max(shape[0], 1)) if column_major else None))


# mm's factor gradients outside a recorded graph (torch's mm_mat1/mat2_backward): each is one
# op, the matmul its graph of mm and t would run, on the same operands
defop("mm_mat1_grad", differentiable=False, attrs=("column_major",),
      infer=lambda g, b, column_major=False: _factor_grad_meta(g, b, 1, column_major))(
    lambda xp, g, b, column_major=False: xp.matmul(b, g.T).T if column_major
    else xp.matmul(g, b.T))
defop("mm_mat2_grad", differentiable=False, attrs=("column_major",),
      infer=lambda g, a, column_major=False: _factor_grad_meta(g, a, 2, column_major))(
    lambda xp, g, a, column_major=False: xp.matmul(g.T, a).T if column_major
    else xp.matmul(a.T, g))


mm = defop("mm", infer=_mm_meta, grad_name="MmBackward0", grad_uses=((1,), (0,)),
           layouts=(0, 1))(lambda xp, a, b: xp.matmul(a, b))


@mm.def_backward
def _(ctx, g):
    a, b = ctx.saved
    return _mm_grads(g, a, b, ctx.needs, ctx.column_major or (False, False))


bmm = defop("bmm", infer=_bmm_meta, grad_name="BmmBackward0", grad_uses=((1,), (0,)))(
    lambda xp, a, b: xp.matmul(a, b))


@bmm.def_backward
def _(ctx, g):
    a, b = ctx.saved
    return (g.bmm(b.transpose(1, 2)) if ctx.needs[0] else None,
            a.transpose(1, 2).bmm(g) if ctx.needs[1] else None)


mv = defop("mv", infer=_mv_meta, grad_name="MvBackward0", grad_uses=((1,), (0,)))(
    lambda xp, a, v: xp.matmul(a, v))


@mv.def_backward
def _(ctx, g):
    a, v = ctx.saved
    return (g.unsqueeze(1) * v if ctx.needs[0] else None,
            a.t().mv(g) if ctx.needs[1] else None)


for _name, _grad in (("dot", "DotBackward0"), ("vdot", "VdotBackward0")):
    _op = defop(_name, infer=_dot_meta(_name), grad_name=_grad, grad_uses=((1,), (0,)))(
        lambda xp, a, b: xp.dot(a, b))
    # real tensors only: vdot's conjugate is the identity
    _op.def_backward(lambda ctx, g: (g * ctx.saved[1] if ctx.needs[0] else None,
                                     g * ctx.saved[0] if ctx.needs[1] else None))


def _expand_to(input, shape) -> None:
    """torch's check that addmm's input broadcasts to the product's shape."""
    s = tuple(input.shape) if hasattr(input, "shape") else ()
    if s == tuple(shape)[len(shape) - len(s):]:  # a bias, or the product's own shape
        return
    try:
        if broadcast_shapes(s, shape) == tuple(shape):
            return
    except InvalidArgumentError:
        pass
    k = len(shape) - len(s)
    # torch's expand checks from the last dim
    dim = next((i for i in reversed(range(len(s))) if s[i] not in (1, shape[k + i])), 0)
    raise InvalidArgumentError(
        f"The expanded size of the tensor ({shape[k + dim]}) must match the existing size "
        f"({s[dim]}) at non-singleton dimension {k + dim}.  Target sizes: {list(shape)}.  "
        f"Tensor sizes: {list(s)}")


def _add_product_meta(product_shape, names):
    def infer(input, a, b, beta=1, alpha=1) -> Meta:
        shape = product_shape(a, b)
        _expand_to(input, shape)
        dtype = a.dtype
        if b.dtype is not dtype:  # `_same_dtype`'s error; its call only then (per Linear)
            _same_dtype(a, b, "expected m1 and m2 to have the same dtype")
        if input.dtype is not dtype:
            raise InvalidArgumentError(
                f"expected {names} to have the same dtype, but got: "
                f"{TORCH_SCALAR_NAMES[input.dtype.name]} != {TORCH_SCALAR_NAMES[dtype.name]}")
        return fresh((shape, dtype, None))  # NamedTuple's __new__ is a Python frame

    return infer


def _scaled_sum(xp, input, product, beta, alpha):
    # beta == 0 ignores input entirely (its nan and inf too), as torch
    out = product if alpha == 1 else product * alpha
    if beta == 1:  # into the fresh product (input has its dtype): the same sum, no new array
        out += input
    elif beta != 0:
        out = out + input * beta
    return out


def _addbmm_shape(a, b):
    return _bmm_shape(a, b)[1:]


def _add_product(name, grad_name, shape_rule, product, grads, layouts=()):
    op = defop(name, infer=_add_product_meta(shape_rule, "self and mat2"), grad_name=grad_name,
               grad_uses=((), (2,), (1,)), attrs=("beta", "alpha"), layouts=layouts)(
        lambda xp, input, a, b, beta=1, alpha=1: _scaled_sum(xp, input, product(xp, a, b),
                                                             beta, alpha))

    @op.def_backward
    def _(ctx, g):
        a, b = ctx.saved  # save: inputs 1 and 2, each when the other needs a gradient
        beta, alpha = ctx.attrs.get("beta", 1), ctx.attrs.get("alpha", 1)
        gi = (g * beta if beta != 1 else g) if ctx.needs[0] else None
        if gi is not None and gi.shape != ctx.in_shapes[0]:  # a bias: the sum `_validate`
            gi = gi._op("sum_to", gi, shape=tuple(ctx.in_shapes[0]))  # would run, here
        ga, gb = grads(g if alpha == 1 else g * alpha, a, b, ctx.needs[1:],
                       ctx.column_major or (False, False))  # None: a node made elsewhere
        return gi, ga, gb

    return op


_add_product("addmm", "AddmmBackward0", _mm_shape, lambda xp, a, b: xp.matmul(a, b),
             _mm_grads, layouts=(1, 2))
_add_product("addmv", "AddmvBackward0", _mv_shape, lambda xp, a, v: xp.matmul(a, v),
             lambda g, a, v, n, _: (g.unsqueeze(1) * v if n[0] else None,
                                    a.t().mv(g) if n[1] else None))
_add_product("baddbmm", "BaddbmmBackward0", _bmm_shape, lambda xp, a, b: xp.matmul(a, b),
             lambda g, a, b, n, _: (g.bmm(b.transpose(1, 2)) if n[0] else None,
                                    a.transpose(1, 2).bmm(g) if n[1] else None))
_add_product("addbmm", "AddbmmBackward0", _addbmm_shape,
             lambda xp, a, b: xp.matmul(a, b).sum(0),
             lambda g, a, b, n, _: (
                 g.unsqueeze(0).expand(b.shape[0], *g.shape).bmm(b.transpose(1, 2))
                 if n[0] else None,
                 a.transpose(1, 2).bmm(g.unsqueeze(0).expand(a.shape[0], *g.shape))
                 if n[1] else None))


def _trace_meta(a) -> Meta:
    if len(a.shape) != 2:
        raise InvalidArgumentError(
            f"trace: expected a matrix, but got tensor with dim {len(a.shape)}")
    if a.dtype == bool_:
        raise KernelNotImplementedError('"trace" not implemented for \'Bool\'')
    return Meta((), a.dtype if a.dtype.is_floating_point else int64)  # integers: as sum's


trace = defop("trace", infer=_trace_meta, grad_name="TraceBackward0")(
    lambda xp, a: xp.trace(a, dtype=None if a.dtype.kind == "f" else np.int64))


@trace.def_backward
def _(ctx, g):
    n, m = ctx.in_shapes[0]
    return (g * g._op("eye", n=n, m=m, dtype=g.dtype.name, device=g.device),)
