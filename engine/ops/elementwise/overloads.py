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

from ...core.dtype import result_type
from ...core.errors import InvalidArgumentError
from ...core.layout import iterated
from ...core.registry import Meta, defop
from ...surface.tensor_api import where
from ..edges import input_needs
from ..reductions.stats import _norm_meta
from ..reductions.stats import norm as _vector_norm
from .arithmetic import _num_meta, binary_meta


def _scalar_meta(a, other=0.0):
    if not isinstance(other, numbers.Number):
        raise InvalidArgumentError(f"expected a number, got {type(other).__name__}")
    dtype = result_type(a, other)
    return Meta(a.shape, dtype, iterated(a.shape, (a, other), dtype))  # the number wrapped


def _bound_meta(a, bound=0.0):
    m = _scalar_meta(a, bound)
    return Meta(m.shape, m.dtype, iterated(m.shape, (a,), m.dtype))  # clamp_min: one operand


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


mul_scalar = defop("mul_scalar", infer=_scalar_meta, grad_name="MulBackward1")(
    lambda xp, a, other=0.0: xp.multiply(a, other))


@mul_scalar.def_backward
def _(ctx, g):
    return (g * ctx.attrs.get("other", 0.0),)


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
