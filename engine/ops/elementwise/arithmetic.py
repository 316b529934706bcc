"""Elementwise ops and comparisons: forward, backward and shape rule."""

from __future__ import annotations

import numbers

import numpy as np

from ...core.dtype import (
    DType,
    bool_,
    float_result,
    result_type,
)
from ...core.errors import InvalidArgumentError
from ...core.layout import iterated
from ...core.registry import Meta, defop, fresh
from ...core.shape import broadcast_shapes
from ...surface.tensor_api import where
from ..edges import edges_of, input_needs, to_edges, zeros_like


def _shape_dtype(x):
    """(shape, dtype) of a tensor, ((), None) of a real number; anything else is an error."""
    dt = getattr(x, "dtype", None)
    if isinstance(dt, DType):
        return x.shape, dt
    if isinstance(x, numbers.Real) and not isinstance(x, np.ndarray):
        return (), None
    raise InvalidArgumentError(
        f"expected a Tensor or a number as operand, but got {type(x).__name__}"
    )


def operand(x):
    """Check that x is a tensor or a real Python/numpy number (what ops accept as inputs)."""
    _shape_dtype(x)
    return x


def _shape(x):
    return x.shape if isinstance(getattr(x, "dtype", None), DType) else ()


def binary_meta(a, b) -> Meta:
    """A two-operand elementwise result: broadcast shape, promoted dtype, and the layout
    torch's TensorIterator gives it (`core/layout.iterated`)."""
    da = getattr(a, "dtype", None)
    if da is getattr(b, "dtype", None) and type(da) is DType:
        # two tensors of one dtype (most ops, per op): it promotes to itself, and nothing
        # else about the operands needs checking
        sa, sb = a.shape, b.shape
        shape = sa if sa == sb else broadcast_shapes(sa, sb)
        if a._strides is None and b._strides is None and (sa == sb or 0 not in shape):
            return fresh((shape, da, None))  # contiguous operands: a contiguous result
        return fresh((shape, da, iterated(shape, (a, b), da)))
    sa, da = _shape_dtype(a)
    sb, db = _shape_dtype(b)
    if da is not db or da is None:
        da = result_type(a, b)
    shape = sa if sa == sb else broadcast_shapes(sa, sb)
    if getattr(a, "_strides", None) is None and getattr(b, "_strides", None) is None and \
            0 not in shape:  # contiguous operands and numbers (`iterated`'s first check)
        return fresh((shape, da, None))
    return fresh((shape, da, iterated(shape, (a, b), da)))


def binary_float_meta(a, b) -> Meta:
    m = binary_meta(a, b)
    dtype = float_result(m.dtype)
    if dtype is m.dtype:
        return m
    return fresh((m.shape, dtype, iterated(m.shape, (a, b), dtype)))  # ints as float copies


def compare_meta(a, b) -> Meta:
    m = binary_meta(a, b)
    return fresh((m.shape, bool_, m.strides))


def same_meta(a, **_) -> Meta:
    """A one-operand elementwise result of a's dtype, laid out as torch's iterator lays it."""
    if a._strides is None:
        return fresh((a.shape, a.dtype, None))
    return fresh((a.shape, a.dtype, iterated(a.shape, (a,))))


def float_meta(a, **_) -> Meta:
    dtype = float_result(a.dtype)
    if a._strides is None:
        return fresh((a.shape, dtype, None))
    return fresh((a.shape, dtype, iterated(a.shape, (a,), dtype)))


# torch's nodes for a Python number operand: no edge for the number
_RSUB = edges_of("RsubBackward1", (1,))
_POW_SCALAR_EXP, _POW_SCALAR_BASE = edges_of("PowBackward0", (0,)), edges_of("PowBackward2", (1,))


def _sub_name(a, b):
    return _RSUB if not hasattr(a, "shape") else "SubBackward0"


def _pow_name(a, b):
    if not hasattr(a, "shape"):
        return _POW_SCALAR_BASE
    return "PowBackward1" if hasattr(b, "shape") else _POW_SCALAR_EXP


def _num_meta(a, b) -> Meta:
    m = binary_meta(a, b)
    if m.dtype is bool_:
        raise InvalidArgumentError(
            "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` "
            "or `logical_xor()` operator instead."
        )
    return m


# -- arithmetic -------------------------------------------------------------------------------
add = defop("add", infer=binary_meta, grad_name="AddBackward0")(lambda xp, a, b: xp.add(a, b))


# the result dtype is torch's, already checked to cast to a's (check_inplace); numpy's own
# promotion may differ (uint8 - int8 0-dim is int16 to numpy, uint8 to torch)
add.def_forward_into(lambda xp, a, b: xp.add(a, b, out=a, casting="unsafe"))


@add.def_backward
def _(ctx, g):
    return g, g


sub = defop("sub", infer=_num_meta, grad_name=_sub_name)(lambda xp, a, b: xp.subtract(a, b))


sub.def_forward_into(lambda xp, a, b: xp.subtract(a, b, out=a, casting="unsafe"))


@sub.def_backward
def _(ctx, g):
    return to_edges(ctx, (g, -g if input_needs(ctx, 2)[1] else None))


mul = defop("mul", infer=binary_meta, grad_name="MulBackward0", grad_uses=((1,), (0,)))(
    lambda xp, a, b: xp.multiply(a, b)
)


mul.def_forward_into(lambda xp, a, b: xp.multiply(a, b, out=a, casting="unsafe"))


@mul.def_backward
def _(ctx, g):
    a, b = ctx.saved
    return (g * b if ctx.needs[0] else None, g * a if ctx.needs[1] else None)


div = defop("div", infer=binary_float_meta, grad_name="DivBackward0",
            grad_uses=((1,), (0, 1)))(
    lambda xp, a, b: xp.true_divide(a, b)
)


div.def_forward_into(lambda xp, a, b: xp.true_divide(a, b, out=a, casting="unsafe"))


@div.def_backward
def _(ctx, g):
    a, b = ctx.saved
    ga = g / b if ctx.needs[0] else None
    gb = -g * a / (b * b) if ctx.needs[1] else None
    return ga, gb


def _pow_meta(a, b) -> Meta:
    m = binary_meta(a, b)
    if m.dtype.kind == 1 and isinstance(b, numbers.Real) and not hasattr(b, "shape") and b < 0:
        raise InvalidArgumentError("Integers to negative integer powers are not allowed.")
    if not hasattr(b, "shape") and m.strides is not None:  # pow(Tensor, Scalar): one operand
        return fresh((m.shape, m.dtype, iterated(m.shape, (a,), m.dtype)))
    return m


def _power(xp, a, b):
    try:
        return xp.power(a, b)
    except ValueError:  # numpy refuses integers to negative integer powers (a tensor of them:
        # the shape rule refuses a negative number): torch's are 0, or +-1 for a base of +-1
        base = xp.asarray(a)
        neg = b < 0
        out = xp.power(base, xp.where(neg, 0, b))
        ones = xp.where(b % 2 == 0, 1, -1)
        special = xp.where(base == 1, 1, xp.where(base == -1, ones, 0))
        return xp.where(neg, special, out).astype(out.dtype)


pow_ = defop("pow", infer=_pow_meta, grad_name=_pow_name, save_output=True,
             grad_uses=((0, 1), (0, 1, "out")))(_power)


@pow_.def_backward
def _(ctx, g):
    a, b = ctx.saved
    ga = gb = None
    needs = input_needs(ctx, 2)
    if needs[0]:  # b a^(b-1), and 0 where b == 0 (even at a == 0), as torch
        if not hasattr(b, "shape"):
            ga = zeros_like(g) if b == 0 else g * b * a ** (b - 1)
        else:
            ga = where(b == 0, 0.0, g * b * a ** (b - 1))
    if needs[1]:
        out = ctx.output
        # d(a^b)/db = a^b log a; torch defines it as 0 where a == 0 and b >= 0
        if hasattr(a, "shape"):
            safe = where(a == 0, 1.0, a)
            gb = where((a == 0) * (b >= 0), 0.0, g * out * safe.log())
        else:
            gb = g * out * float(np.log(a)) if a != 0 else g * 0.0
    return to_edges(ctx, (ga, gb))


def _neg_meta(a) -> Meta:
    if a.dtype is bool_:
        raise InvalidArgumentError(
            "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
            "invert a mask, use the `~` or `logical_not()` operator instead."
        )
    return same_meta(a)


neg = defop("neg", infer=_neg_meta, grad_name="NegBackward0")(lambda xp, a: xp.negative(a))


@neg.def_backward
def _(ctx, g):
    return (-g,)


abs_ = defop("abs", infer=same_meta, grad_name="AbsBackward0", save=(0,))(
    lambda xp, a: xp.abs(a)
)


@abs_.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (g * a._op("sign", a),)


def _float_unary(name, grad_name, fn, **kw):
    return defop(name, infer=float_meta, grad_name=grad_name, **kw)(fn)


exp = _float_unary("exp", "ExpBackward0", lambda xp, a: xp.exp(a), save_output=True)


@exp.def_backward
def _(ctx, g):
    return (g * ctx.output,)


log = _float_unary("log", "LogBackward0", lambda xp, a: xp.log(a), save=(0,))


@log.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (g / a,)


sqrt = _float_unary("sqrt", "SqrtBackward0", lambda xp, a: xp.sqrt(a),
                    save_output=True)


@sqrt.def_backward
def _(ctx, g):
    return (g / (2 * ctx.output),)


sin = _float_unary("sin", "SinBackward0", lambda xp, a: xp.sin(a), save=(0,))


@sin.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (g * a.cos(),)


cos = _float_unary("cos", "CosBackward0", lambda xp, a: xp.cos(a), save=(0,))


@cos.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (-g * a.sin(),)


tanh = _float_unary("tanh", "TanhBackward0", lambda xp, a: xp.tanh(a), save_output=True)


@tanh.def_backward
def _(ctx, g):
    out = ctx.output
    return (g * (1 - out * out),)


def _sigmoid(xp, a):
    # exp of a negative argument only, so large |a| neither overflows nor loses precision
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


sigmoid = _float_unary("sigmoid", "SigmoidBackward0", _sigmoid, save_output=True)


@sigmoid.def_backward
def _(ctx, g):
    out = ctx.output
    return (g * out * (1 - out),)


relu = defop("relu", infer=same_meta, grad_name="ReluBackward0", save_output=True)(
    lambda xp, a: xp.maximum(a, 0)
)


@relu.def_backward
def _(ctx, g):
    return (g._op("threshold_backward", g, ctx.output),)


_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _threshold_backward(xp, g, x, threshold=0.0):
    """torch's threshold_backward: g where x > threshold, else +0 (whatever g holds there:
    a product with the mask would give -0 for a negative g and NaN for an infinite one)."""
    keep = x > threshold
    if xp is not np:
        return xp.where(keep, g, xp.zeros((), g.dtype))
    # numpy's where() with a random mask costs ~5x a product; g's bits as unsigned words
    # times the 0/1 mask is ~1.15x (a negated mask ANDed in was one more pass). The mask
    # cast to those words first, and the product written over it: the multiply's own
    # buffered bool cast cost more than astype's pass (~10% at 64x512), and no third array
    u = _UINT[g.dtype.itemsize]
    if g.ndim and keep.shape == g.shape and keep.flags.c_contiguous and g.flags.c_contiguous:
        words = keep.astype(u)
        np.multiply(g.view(u), words, out=words)
        return words.view(g.dtype)
    out = np.empty_like(g)  # g's layout, whatever x's (broadcast, strided, 0-d: a scalar) is
    np.multiply(g.view(u), keep, out=out.view(u))
    return out


# relu's (and threshold's) gradient in one pass
threshold_backward = defop("threshold_backward", infer=lambda g, x, threshold=0.0: fresh(
                               (g.shape, g.dtype, iterated(g.shape, (g, x)))),
                           grad_name="ThresholdBackwardBackward0", save=(1,))(
    _threshold_backward)


@threshold_backward.def_backward
def _(ctx, h):
    (x,) = ctx.saved
    return (h._op("threshold_backward", h, x, **ctx.attrs) if ctx.needs[0] else None, None)


reciprocal = _float_unary("reciprocal", "ReciprocalBackward0",
                          lambda xp, a: xp.true_divide(1.0, a),
                          save_output=True)


@reciprocal.def_backward
def _(ctx, g):
    out = ctx.output
    return (-g * out * out,)


def _clamp_meta(a, min=None, max=None):
    for v in (min, max):
        if v is not None and not isinstance(v, numbers.Real):
            raise InvalidArgumentError(f"clamp bounds must be numbers, got {type(v).__name__}")
    dtype = result_type(a, *(v for v in (min, max) if v is not None))
    return Meta(a.shape, dtype, iterated(a.shape, (a,), dtype))  # the bounds are no operands


def _clamp(xp, a, min=None, max=None):
    out = a
    if min is not None:
        out = xp.maximum(out, min)
    if max is not None:
        out = xp.minimum(out, max)
    return out if out is not a else a.copy()


# torch names clamp(min=), clamp(max=) and clamp(min, max) all ClampBackward1
clamp = defop("clamp", infer=_clamp_meta, grad_name="ClampBackward1", save=(0,))(_clamp)


@clamp.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    lo, hi = ctx.attrs.get("min"), ctx.attrs.get("max")
    mask = None
    if lo is not None:
        mask = a >= lo
    if hi is not None:
        mask = (a <= hi) if mask is None else mask & (a <= hi)
    return (where(mask, g, 0.0),)  # torch's: 0 outside, even where g is not finite


# -- comparisons (never differentiable) -------------------------------------------------------
for _name, _fn in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
    defop(_name, infer=compare_meta)(
        lambda xp, a, b, _n=_fn.__name__: getattr(xp, _n)(a, b)
    )
