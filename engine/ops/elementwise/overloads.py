"""torch's ATen overloads that its C++ compositions call, as nodes of their own: a tensor and
a Scalar (`add(Tensor, Scalar)` is AddBackward1 and `mul(Tensor, Scalar)` MulBackward1, one
edge, where Python's `t + 2.0` wraps the
number in a tensor and is AddBackward0 with a None edge), `clamp_min`/`clamp_max`
(ClampMinBackward0 / ClampMaxBackward0, not clamp's ClampBackward1) and `at::norm(t, p, dim)`
(NormBackward1, not linalg's LinalgVectorNormBackward0). The losses composed as torch
composes them (margin_ranking_loss, triplet_margin_loss, cosine_embedding_loss, ...) use
these, so their grad_fn graphs are torch's node for node.

    >>> from gradserve import engine
    >>> x = engine.tensor([1., -2.], requires_grad=True)
    >>> x._op("clamp_min", x, bound=0.0).grad_fn.name()
    'ClampMinBackward0'
"""

from __future__ import annotations

import numbers

import numpy as np

from ...core.dtype import result_type
from ...core.errors import InvalidArgumentError
from ...core.layout import contiguous, is_contiguous
from ...core.registry import Meta, defop
from ...surface.tensor_api import where
from ..edges import input_needs
from ..reductions.stats import _norm_meta
from ..reductions.stats import norm as _vector_norm
from .arithmetic import _num_meta, binary_meta


def _scalar_meta(a, other=0.0):
    if not isinstance(other, numbers.Number):
        raise InvalidArgumentError(f"expected a number, got {type(other).__name__}")
    return Meta(a.shape, result_type(a, other))


def _bound_meta(a, bound=0.0):
    return _scalar_meta(a, bound)


add_scalar = defop("add_scalar", infer=_scalar_meta, grad_name="AddBackward1")(
    lambda xp, a, other=0.0: xp.add(a, other))


@add_scalar.def_backward
def _(ctx, g):
    return (g,)


sub_scalar = defop("sub_scalar", infer=_scalar_meta, grad_name="SubBackward1")(
    lambda xp, a, other=0.0: xp.subtract(a, other))


@sub_scalar.def_backward
def _(ctx, g):
    return (g,)


def kept_strides(a) -> tuple[int, ...] | None:
    """torch's elementwise result keeps its input's strides when that input is laid out
    densely without overlap (a transpose, a permute): those strides, else None (fresh and
    contiguous)."""
    stride = getattr(a, "stride", None)
    if stride is None:
        return None
    shape, strides = tuple(a.shape), tuple(stride())
    if is_contiguous(shape, strides):
        return None
    expected = 1
    for n, st in sorted(((n, st) for n, st in zip(shape, strides, strict=True) if n != 1),
                        key=lambda d: d[1]):
        if st != expected:
            return None
        expected *= n
    return strides


def _mul_scalar_meta(a, other=0.0):
    m = _scalar_meta(a, other)
    return Meta(m.shape, m.dtype, kept_strides(a))


def _mul_scalar(xp, a, other=0.0):
    if a.flags.c_contiguous:
        return xp.multiply(a, other)
    out = xp.empty_like(a, dtype=xp.result_type(a, other))  # a's layout, as the meta says
    return xp.multiply(a, other, out=out)


# mul(Tensor, Scalar): its result keeps a transposed input's layout, as torch's does
mul_scalar = defop("mul_scalar", infer=_mul_scalar_meta, grad_name="MulBackward1")(_mul_scalar)


@mul_scalar.def_backward
def _(ctx, g):
    return (g * ctx.attrs.get("other", 0.0),)


def iterator_strides(shape, operands) -> tuple[int, ...] | None:
    """The strides torch's TensorIterator gives a fresh result of `shape` from operands of
    other shapes (broadcast): its dims ordered by the operands' strides (insertion sort,
    fastest first; a broadcast dim decides nothing; equal strides put the smaller dim
    first), laid out densely in that order. None when that is the contiguous layout."""
    ndim = len(shape)
    strides = []
    for op in operands:
        pad = ndim - len(op.shape)
        own = tuple(op.stride())
        strides.append([0] * pad + [0 if n == 1 and shape[pad + i] != 1 else own[i]
                                    for i, n in enumerate(op.shape)])

    def should_swap(d0, d1):
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(ndim - 1, -1, -1))
    for i in range(1, ndim):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    out, step = [0] * ndim, 1
    for d in perm:
        out[d] = step
        step *= shape[d]
    # exactly: a size-one dim's stride decides the next product's order
    return None if tuple(out) == contiguous(tuple(shape)) else tuple(out)


def _mul_laid_meta(a, b, strides=()):
    m = binary_meta(a, b)
    if strides and len(strides) != len(m.shape):
        raise InvalidArgumentError(f"mul_laid: strides {list(strides)} for a result of "
                                   f"{len(m.shape)} dims")
    return Meta(m.shape, m.dtype, tuple(strides) or None)


def _mul_laid(xp, a, b, strides=()):
    if not strides:
        return xp.multiply(a, b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    order = sorted(range(len(shape)), key=lambda d: (-strides[d], shape[d]))  # slowest first
    out = xp.empty(tuple(shape[d] for d in order), xp.result_type(a, b))
    return xp.multiply(a, b, out=out.transpose([order.index(d) for d in range(len(shape))]))


# a * b laid out as `strides` says (iterator_strides: torch's TensorIterator layout, which
# einsum's products of permuted operands need so that a later reshape is a view or a copy
# as torch's); MulBackward0 as mul's
mul_laid = defop("mul_laid", infer=_mul_laid_meta, grad_name="MulBackward0",
                 grad_uses=((1,), (0,)), attrs=("strides",))(_mul_laid)


@mul_laid.def_backward
def _(ctx, g):
    a, b = ctx.saved
    return (g * b if ctx.needs[0] else None, g * a if ctx.needs[1] else None)


# add/sub(Tensor, Tensor, alpha): torch's one node (AddBackward0 / SubBackward0) where
# `other * alpha` would record a multiply first; alpha 1 stays the plain op
def _alpha_checked(m: Meta, alpha) -> Meta:
    if isinstance(alpha, float) and not m.dtype.is_floating_point:
        raise InvalidArgumentError(
            "For integral input tensors, argument alpha must not be a floating point number.")
    return m


add_alpha = defop("add_alpha", grad_name="AddBackward0",
                  infer=lambda a, b, alpha=1: _alpha_checked(binary_meta(a, b), alpha))(
    lambda xp, a, b, alpha=1: xp.add(a, xp.multiply(b, alpha)))


@add_alpha.def_backward
def _(ctx, g):
    return g, g * ctx.attrs["alpha"] if input_needs(ctx, 2)[1] else None


sub_alpha = defop("sub_alpha", grad_name="SubBackward0",
                  infer=lambda a, b, alpha=1: _alpha_checked(_num_meta(a, b), alpha))(
    lambda xp, a, b, alpha=1: xp.subtract(a, xp.multiply(b, alpha)))


@sub_alpha.def_backward
def _(ctx, g):
    return g, g * -ctx.attrs["alpha"] if input_needs(ctx, 2)[1] else None


clamp_min = defop("clamp_min", infer=_bound_meta, grad_name="ClampMinBackward0", save=(0,))(
    lambda xp, a, bound=0.0: xp.maximum(a, bound))


@clamp_min.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (where(a >= ctx.attrs.get("bound", 0.0), g, 0.0),)  # torch's: the bound passes


clamp_max = defop("clamp_max", infer=_bound_meta, grad_name="ClampMaxBackward0", save=(0,))(
    lambda xp, a, bound=0.0: xp.minimum(a, bound))


@clamp_max.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (where(a <= ctx.attrs.get("bound", 0.0), g, 0.0),)


# at::norm(t, p, dim, keepdim): linalg.vector_norm's values and gradient under torch's other name
norm_dim = defop("norm_dim", infer=_norm_meta, grad_name="NormBackward1", save=(0,),
                 save_output=True)(_vector_norm.forward)
norm_dim.def_backward(_vector_norm.backward)
