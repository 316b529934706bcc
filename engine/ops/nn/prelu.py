"""torch's _prelu_kernel: x where x > 0, weight * x elsewhere, the weight broadcast over the
input (gradserve.nn.functional.prelu shapes it as torch does). One PreluKernelBackward0 node
with edges to the input and the weight; the backward is written with tensor methods, so it is
differentiable again.

    >>> from gradserve import engine
    >>> x, w = engine.tensor([-2., 3.]), engine.tensor([0.25])
    >>> x._op("prelu_kernel", x, w)
    tensor([-0.5000,  3.0000])
"""

from __future__ import annotations

from ...core.dtype import TORCH_SCALAR_NAMES
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from ...surface.tensor_api import where


def _meta(x, w):
    if x.dtype is not w.dtype:
        raise InvalidArgumentError(
            f"prelu: Type promoting not supported. Got {TORCH_SCALAR_NAMES[x.dtype.name]} and "
            f"{TORCH_SCALAR_NAMES[w.dtype.name]}")
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"\"prelu_cpu\" not implemented for '{TORCH_SCALAR_NAMES[x.dtype.name]}'")
    return Meta(broadcast_shapes(x.shape, w.shape), x.dtype)


def _prelu(xp, x, w):
    return xp.where(x > 0, x, w * x).astype(x.dtype, copy=False)


prelu = defop("prelu_kernel", infer=_meta, grad_name="PreluKernelBackward0",
              grad_uses=((0, 1), (0,)))(_prelu)


@prelu.def_backward
def _(ctx, g):
    x, w = ctx.saved
    positive = x > 0
    gx = where(positive, g, w * g) if ctx.needs[0] else None
    gw = None
    if len(ctx.needs) > 1 and ctx.needs[1]:
        gw = where(positive, g * 0, x * g)  # summed to the weight's shape by the engine
    return gx, gw
