"""Transposed convolution (ConvTranspose1d/2d/3d): the adjoint of `convolution` with
respect to its input, as its own op so that its grad_fn is torch's (ConvolutionBackward0).

`conv_transpose(x, w[, b])` takes x (N, Cin, *L) and w (Cin, Cout/groups, *K) with attrs
stride, padding ((lo, hi) per dim, torch's padding on both sides), dilation, groups and
output_size (the spatial output, which carries output_padding). Its forward is the input
gradient of a convolution whose output is x; its gradients are that convolution (for x)
and its weight gradient (for w), so backward of backward stays exact.

    >>> from gradserve import engine
    >>> x, w = engine.ones(1, 1, 2), engine.ones(1, 1, 2)
    >>> x._op("conv_transpose", x, w, stride=(1,), padding=((0, 0),), dilation=(1,),
    ...       groups=1, output_size=(3,))
    tensor([[[1., 2., 1.]]])
"""

from __future__ import annotations

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from .conv import _check_dtypes, _conv_out_shape, _input_grad, tensor_bias


def _full_shape(x, w, output_size, groups):
    return (x.shape[0], w.shape[1] * groups) + tuple(output_size)


def _meta(x, w, b=None, *, stride, padding, dilation, groups, output_size):
    b = b if hasattr(b, "shape") else None
    _check_dtypes(x, w, *(() if b is None else (b,)))
    nd = len(w.shape) - 2
    if len(x.shape) != nd + 2:
        raise InvalidArgumentError(
            f"Expected {nd + 2}D (batched) input to conv_transpose{nd}d, but got input of "
            f"size: {list(x.shape)}")
    if x.shape[1] != w.shape[0]:
        raise InvalidArgumentError(
            f"Given transposed=1, weight of size {list(w.shape)}, expected input"
            f"{list(x.shape)} to have {w.shape[0]} channels, but got {x.shape[1]} channels "
            "instead")
    shape = _full_shape(x, w, output_size, groups)
    if b is not None and tuple(b.shape) != (shape[1],):
        raise InvalidArgumentError(f"Given weight of size {list(w.shape)}, expected bias to be "
                                   f"1-dimensional with {shape[1]} elements, but got bias of "
                                   f"size {list(b.shape)} instead")
    # the convolution whose input gradient this is must map the output back onto x
    back = _conv_out_shape(shape, w.shape, stride, padding, dilation, groups)
    if tuple(back) != tuple(x.shape):
        raise InvalidArgumentError(f"conv_transpose: output size {list(output_size)} does not "
                                   f"map back to the input size {list(x.shape[2:])}")
    return Meta(shape, x.dtype)


def _forward(xp, x, w, b=None, *, stride, padding, dilation, groups, output_size):
    shape = _full_shape(x, w, output_size, groups)
    y = _input_grad(xp, x, w, input_shape=shape, stride=stride, padding=padding,
                    dilation=dilation, groups=groups)
    b = tensor_bias(b)
    if b is not None:
        y = y + (b.reshape((-1,) + (1,) * (len(shape) - 2)) if hasattr(b, "shape") else b)
    return y


conv_transpose = defop("conv_transpose", infer=_meta, grad_name="ConvolutionBackward0",
                       save=(0, 1))(_forward)


@conv_transpose.def_backward
def _(ctx, g):
    x, w = ctx.saved
    a = ctx.attrs
    geo = dict(stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
               groups=a["groups"])
    gx = g._op("convolution", g, w, **geo) if ctx.needs[0] else None
    gw = g._op("conv_weight_grad", g, x, weight_shape=tuple(w.shape), **geo) \
        if ctx.needs[1] else None
    gb = g.sum((0,) + tuple(range(2, len(g.shape)))) \
        if len(ctx.needs) > 2 and ctx.needs[2] else None
    return (gx, gw, gb)[: len(ctx.needs)]
