"""More elementwise functions of two operands: atan2, remainder, fmod, floor_divide,
maximum, minimum, lerp; the logical and bitwise families (never differentiable).

    >>> from gradserve import engine
    >>> a = engine.tensor([1., 2., 3.], requires_grad=True)
    >>> m = engine.maximum(a, engine.tensor([1., 1., 5.]))
    >>> m.sum().backward()
    >>> a.grad  # a tie shares the gradient, as torch
    tensor([0.5000, 1.0000, 0.0000])
"""

from __future__ import annotations

from ...core.dtype import TORCH_SCALAR_NAMES, bool_, no_kernel
from ...core.errors import AutogradError, InvalidArgumentError
from ...core.layout import iterated
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from ..edges import edges_of, to_edges, zero_grads
from .arithmetic import _shape_dtype, binary_float_meta, binary_meta, same_meta

NOT_IMPLEMENTED = "torch::autograd::NotImplemented"


def _is_tensor(x) -> bool:
    return hasattr(x, "shape")


def no_derivative(op, torch_name: str):
    """Give `op` torch's backward for functions it has no derivative of: it raises."""
    def backward(ctx, g):
        raise AutogradError(f"the derivative for '{torch_name}' is not implemented.")

    backward.not_implemented = True
    op.def_backward(backward)
    return op


atan2 = defop("atan2", infer=binary_float_meta, grad_name="Atan2Backward0", save=(0, 1))(
    lambda xp, a, b: xp.arctan2(a, b))


@atan2.def_backward
def _(ctx, g):
    a, b = ctx.saved
    denom = a * a + b * b
    return (g * b / denom if ctx.needs[0] else None, -g * a / denom if ctx.needs[1] else None)


def _by_operands(name: str):
    """torch's names for x.op(number) (...Backward0) and x.op(tensor) (...Backward1); with a
    number on the left torch records a node without a derivative."""
    def grad_name(a, b):
        if not _is_tensor(a):
            return NOT_IMPLEMENTED
        return f"{name}Backward1" if _is_tensor(b) else scalar

    scalar = edges_of(f"{name}Backward0", (0,))  # the number has no edge
    return grad_name


def _rounded_quotient(method: str):
    def backward(ctx, g):
        a, b = ctx.saved  # only when b's gradient is needed
        if ctx.in_shapes[0] is None:  # a number on the left
            raise AutogradError(f"the derivative for '{ctx.op.name}' is not implemented.")
        gb = -g * getattr(a / b, method)() if len(ctx.needs) > 1 and ctx.needs[1] else None
        return to_edges(ctx, (g, gb))

    return backward


def _integer(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype.kind in "iub" if dtype is not None else isinstance(x, int)


def _integral(fn):
    """A quotient kernel that raises torch's error for an integer division by zero (numpy
    would give 0 and a warning)."""
    def kernel(xp, a, b, **attrs):
        if _integer(a) and _integer(b) and bool(xp.any(xp.asarray(b) == 0)):
            raise InvalidArgumentError("ZeroDivisionError")
        return fn(xp, a, b, **attrs)

    return kernel


def _trunc_divide(xp, a, b):
    """a / b rounded toward zero: C's integer division for integers (exact at any size),
    trunc(a / b) for floats, as torch's div_trunc."""
    if not (_integer(a) and _integer(b)):
        return xp.trunc(xp.true_divide(a, b))
    q = xp.floor_divide(a, b)
    return q + ((xp.remainder(a, b) != 0) & ((xp.asarray(a) < 0) != (xp.asarray(b) < 0)))


remainder = defop("remainder", infer=binary_meta, grad_name=_by_operands("Remainder"),
                  grad_uses=((), (0, 1)))(_integral(lambda xp, a, b: xp.remainder(a, b)))
remainder.def_backward(_rounded_quotient("floor"))
fmod = defop("fmod", infer=binary_meta, grad_name=_by_operands("Fmod"), grad_uses=((), (0, 1)))(
    _integral(lambda xp, a, b: xp.fmod(a, b)))
fmod.def_backward(_rounded_quotient("trunc"))

no_derivative(defop("floor_divide", infer=binary_meta, grad_name=NOT_IMPLEMENTED)(
    _integral(lambda xp, a, b: xp.floor_divide(a, b))), "floor_divide")


def _div_mode_meta(a, b, mode):
    if mode not in ("floor", "trunc"):
        raise InvalidArgumentError("div expected rounding_mode to be one of None, 'trunc', or "
                                   f"'floor' but found '{mode}'")
    meta = binary_meta(a, b)
    if meta.dtype == bool_:
        raise no_kernel(f"div_{mode}_cpu", meta.dtype)
    return meta


# div(a, b, rounding_mode=): torch's quotient rounded down or toward zero, whose gradient is
# zeros for both operands (DivBackward2; a number operand has a None edge)
div_mode = defop("div_mode", infer=_div_mode_meta, grad_name="DivBackward2", attrs=("mode",))(
    _integral(lambda xp, a, b, mode: xp.floor_divide(a, b) if mode == "floor"
              else _trunc_divide(xp, a, b)))


div_mode.def_backward(zero_grads)


def _extreme(name: str, grad_name: str, fn: str, wins: str):
    op = defop(name, infer=binary_meta, grad_name=grad_name, save=(0, 1))(
        lambda xp, a, b: getattr(xp, fn)(a, b))

    @op.def_backward
    def _(ctx, g):
        a, b = ctx.saved
        ga, gb = g._op("extremum_backward", g, a, b, wins=wins)
        return ga if ctx.needs[0] else None, gb if ctx.needs[1] else None

    return op


def _extremum_grad_meta(g, a, b, wins):
    shape = broadcast_shapes(g.shape, _shape_dtype(a)[0], _shape_dtype(b)[0])
    return Meta(shape, g.dtype), Meta(shape, g.dtype)


def _extremum_grad(xp, g, a, b, wins):
    """maximum/minimum's gradients in one pass: g to the operand that alone wins, half of it
    to each at a tie (torch's convention)."""
    first = getattr(xp, "greater" if wins == "gt" else "less")(a, b)
    tie = xp.equal(a, b)
    half = g * 0.5
    zero = xp.zeros((), g.dtype)
    return (xp.where(first, g, xp.where(tie, half, zero)),
            xp.where(first, zero, xp.where(tie, half, g)))


# the gradient is linear in g and piecewise constant in a and b: its own derivative is itself
extremum_backward = defop("extremum_backward", infer=_extremum_grad_meta, save=(1, 2),
                          grad_name="MaximumBackwardBackward0", multi_grad=True)(_extremum_grad)


@extremum_backward.def_backward
def _(ctx, grads):
    a, b = ctx.saved
    wins = ctx.attrs["wins"]
    gg = None
    for nr, h in grads.items():
        if h is not None:
            part = h._op("extremum_backward", h, a, b, wins=wins)[nr]
            gg = part if gg is None else gg + part
    return gg, None, None


_extreme("maximum", "MaximumBackward0", "maximum", "gt")
_extreme("minimum", "MinimumBackward0", "minimum", "lt")


def _lerp_meta(a, end, weight) -> Meta:
    _shape_dtype(weight)
    for x in (a, end):
        if not _is_tensor(x):
            raise InvalidArgumentError("lerp expects tensors for input and end")
    if a.dtype is not end.dtype:
        raise InvalidArgumentError(
            f"expected dtype {TORCH_SCALAR_NAMES[a.dtype.name].lower()} for `end` but got dtype "
            f"{TORCH_SCALAR_NAMES[end.dtype.name].lower()}")
    if not a.dtype.is_floating_point:
        raise no_kernel("lerp_kernel_scalar", a.dtype)
    shape = broadcast_shapes(a.shape, end.shape, getattr(weight, "shape", ()))
    # a number weight is no operand of torch's iterator (lerp.Scalar)
    operands = (a, end, weight) if _is_tensor(weight) else (a, end)
    return Meta(shape, a.dtype, iterated(shape, operands, a.dtype))


_LERP_SCALAR = edges_of("LerpBackward0", (0, 1))  # a number weight has no edge
lerp = defop("lerp", infer=_lerp_meta, grad_uses=((2,), (2,), (0, 1, 2)),
             grad_name=lambda a, e, w: "LerpBackward1" if _is_tensor(w) else _LERP_SCALAR)(
    lambda xp, a, end, weight: a + weight * (end - a))


@lerp.def_backward
def _(ctx, g):
    a, end, w = ctx.saved
    return to_edges(ctx, (g * (1 - w) if ctx.needs[0] else None,
                          g * w if ctx.needs[1] else None,
                          g * (end - a) if len(ctx.needs) > 2 and ctx.needs[2] else None))


# -- logical and bitwise (no gradients) ------------------------------------------------------
def _logical_meta(a, b=None) -> Meta:
    m = same_meta(a) if b is None else binary_meta(a, b)
    return Meta(m.shape, bool_, m.strides)


def _truth(xp, x):
    return x != 0 if hasattr(x, "dtype") and x.dtype.kind != "b" else x


defop("logical_and", infer=_logical_meta)(
    lambda xp, a, b: xp.logical_and(_truth(xp, a), _truth(xp, b)))
defop("logical_or", infer=_logical_meta)(
    lambda xp, a, b: xp.logical_or(_truth(xp, a), _truth(xp, b)))
defop("logical_xor", infer=_logical_meta)(
    lambda xp, a, b: xp.logical_xor(_truth(xp, a), _truth(xp, b)))
defop("logical_not", infer=_logical_meta)(lambda xp, a: xp.logical_not(a))


def _bitwise_meta(name: str):
    def infer(a, b=None) -> Meta:
        m = binary_meta(a, b) if b is not None else same_meta(a)
        if m.dtype.is_floating_point:
            raise no_kernel(name, m.dtype)
        return m

    return infer


for _name, _fn in (("bitwise_and", "bitwise_and"), ("bitwise_or", "bitwise_or"),
                   ("bitwise_xor", "bitwise_xor")):
    defop(_name, infer=_bitwise_meta(_name))(lambda xp, a, b, _f=_fn: getattr(xp, _f)(a, b))
# shifts: numpy's, like torch's, give 0 (or -1 shifting a negative right) for a count that
# is negative or not less than the width
defop("lshift", infer=_bitwise_meta("lshift"))(lambda xp, a, b: xp.left_shift(a, b))
defop("rshift", infer=_bitwise_meta("rshift"))(lambda xp, a, b: xp.right_shift(a, b))
defop("bitwise_not", infer=_bitwise_meta("bitwise_not"))(
    lambda xp, a: xp.logical_not(a) if a.dtype.kind == "b" else xp.invert(a))


def _isclose_meta(a, b, rtol=1e-5, atol=1e-8, equal_nan=False) -> Meta:
    if _is_tensor(b) and a.dtype is not b.dtype:
        raise InvalidArgumentError(
            f"{TORCH_SCALAR_NAMES[a.dtype.name]} did not match "
            f"{TORCH_SCALAR_NAMES[b.dtype.name]}")
    m = binary_meta(a, b)
    return Meta(m.shape, bool_, m.strides)


defop("isclose", infer=_isclose_meta)(
    lambda xp, a, b, rtol=1e-5, atol=1e-8, equal_nan=False: xp.isclose(
        a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
