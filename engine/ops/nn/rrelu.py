"""torch's randomized leaky ReLU (F.rrelu, nn.RReLU): a random op that draws the slopes and
the differentiable op that applies them, named as torch's node (RreluWithNoiseBackward0, or
RreluWithNoiseBackward1 in place), with one edge (to the input; torch's noise has none).

Training: every element <= 0 draws its slope from U(lower, upper) with torch's CPU kernel
(`_rrelu_with_noise_train`: one `uniform_real_distribution<double>` per such element, in the
input's row-major order, from the stream of wherever the tensor lives), and positive elements
keep slope 1, so a seeded script gets torch's slopes. Eval: a leaky ReLU whose slope is
(lower + upper) / 2, no draw. The backward multiplies by the slopes (a constant), so second
derivatives are zero, as torch's.

    >>> from gradserve import engine
    >>> x = engine.tensor([-2.0, 3.0], requires_grad=True)
    >>> x._op("rrelu_with_noise", x, lower=0.25, upper=0.75)
    tensor([-1.,  3.], grad_fn=<RreluWithNoiseBackward0>)
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import no_kernel
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...surface.tensor_api import where
from ..edges import edges_of

_MASK53 = np.uint64((1 << 53) - 1)


def _check_bounds(lower: float, upper: float) -> None:
    if not float(lower) <= float(upper):
        raise InvalidArgumentError("Lower bound should be less than or equal to the upper bound")


def _noise_meta(x, *, lower, upper):
    _check_bounds(lower, upper)
    if not x.dtype.is_floating_point or x.dtype.name == "float16":  # torch's CPU kernel too
        raise no_kernel("rrelu_with_noise_out", x.dtype)
    return Meta(x.shape, x.dtype)


def _opmath(dtype: np.dtype) -> np.dtype:
    """The type torch's CPU kernels compute a floating dtype in."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


@defop("rrelu_noise", infer=_noise_meta, random=True, attrs=("lower", "upper"))
def _rrelu_noise(xp, x, *, lower, upper, gen):
    """The slopes torch's training kernel draws: for each element <= 0 (row-major), the
    double `(random64 & (2^53 - 1)) * 2^-53 * (upper - lower) + lower`, rounded to the
    input's compute type and stored in its dtype; 1 elsewhere (NaN included). One draw per
    element <= 0, so how far the stream moves depends on the values, as torch's."""
    host = np.asarray(gen.host(x)).reshape(-1)
    hit = host <= 0
    words = gen.gen.random64(int(np.count_nonzero(hit)))
    # torch's kernel holds the bounds in the compute type and widens them to double
    op = _opmath(x.dtype)
    lo, hi = float(op.type(lower)), float(op.type(upper))
    r = (words & _MASK53).astype(np.float64) * 2.0 ** -53 * (hi - lo) + lo
    noise = np.ones(host.shape, x.dtype)
    noise[hit] = r.astype(op).astype(x.dtype)
    return gen.to_device(noise.reshape(x.shape))


def _slope(lower: float, upper: float) -> float:
    return (float(lower) + float(upper)) / 2


def _apply_meta(x, *noise, lower, upper):
    """Inputs: x, and the noise when training (none in eval)."""
    _check_bounds(lower, upper)
    if noise and x.dtype.name == "float16":
        raise no_kernel("rrelu_with_noise_out", x.dtype)
    if not x.dtype.is_floating_point:
        raise (no_kernel("rrelu_with_noise_out", x.dtype) if noise
               else no_kernel("leaky_relu", x.dtype))
    if noise and tuple(noise[0].shape) != tuple(x.shape):
        raise InvalidArgumentError(f"rrelu: noise of shape {list(noise[0].shape)} does not "
                                   f"match the input's {list(x.shape)}")
    return Meta(x.shape, x.dtype)


def _apply(xp, x, *noise, lower, upper):
    if noise:  # training: x * slope for x <= 0, x (times 1) elsewhere
        return x * noise[0]
    # eval: leaky_relu with the mean slope, computed as torch's kernel does (opmath)
    op = _opmath(x.dtype)
    slope = op.type(_slope(lower, upper))
    neg = (x.astype(op, copy=False) * slope).astype(x.dtype, copy=False)
    return xp.where(x > 0, x, neg)


def _grad(ctx, g, noise, positive):
    """rrelu_with_noise_backward: g * noise while training over a range wider than 1e-6,
    else leaky_relu_backward with the mean slope (`positive`: where the input was > 0)."""
    lower, upper = ctx.attrs["lower"], ctx.attrs["upper"]
    if noise is not None and float(upper) - float(lower) > 1e-6:
        return g * noise
    return where(positive, g, g * _slope(lower, upper))


# out of place: reads the input (eval's sign) and the noise, as torch's node saves both
rrelu_with_noise = defop(
    "rrelu_with_noise", infer=_apply_meta, grad_name=edges_of("RreluWithNoiseBackward0", (0,)),
    save=slice(0, 2), grad_uses=((0, 1),), attrs=("lower", "upper"))(_apply)


@rrelu_with_noise.def_backward
def _(ctx, g):
    x, *noise = ctx.saved  # (x, noise) training; (x,) in eval
    return (_grad(ctx, g, noise[0] if noise else None, x > 0),)


# in place (F.rrelu(..., inplace=True)): torch's node reads the result and the noise
rrelu_with_noise_ = defop(
    "rrelu_with_noise_", infer=_apply_meta, grad_name=edges_of("RreluWithNoiseBackward1", (0,)),
    save=slice(1, 2), save_output=True, grad_uses=((1, "out"),), attrs=("lower", "upper"))(_apply)


@rrelu_with_noise_.def_backward
def _(ctx, g):
    noise = ctx.saved[0] if ctx.saved else None  # (noise,) training; () in eval
    return (_grad(ctx, g, noise, ctx.output > 0),)
