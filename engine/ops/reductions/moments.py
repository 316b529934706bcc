"""std_mean and var_mean as torch computes them: one node with two outputs
(StdMeanBackward0 / VarMeanBackward0), whose backward adds both outputs' gradients.

    >>> from gradserve import engine
    >>> x = engine.tensor([1.0, 2.0, 4.0], requires_grad=True)
    >>> s, m = engine.std_mean(x)
    >>> s.grad_fn.name(), s.grad_fn is m.grad_fn
    ('StdMeanBackward0', True)
"""

from __future__ import annotations

from ...core.registry import defop
from ...surface.tensor_api import where
from .reduce import _axis, _expand_back, _mean, _std, _var, _var_grad, _var_meta


def _moments_meta(a, dim=None, correction=1, keepdim=False):
    m = _var_meta(a, dim, correction, keepdim)
    return m, m


def _mean_grad(ctx, g):
    shape = ctx.in_shapes[0]
    dims = _axis(len(shape), ctx.attrs.get("dim"))
    n = 1
    for d in dims:
        n *= shape[d]
    return _expand_back(g, shape, dims, ctx.attrs.get("keepdim", False)) / n


def _moments(spread):
    def forward(xp, a, dim=None, correction=1, keepdim=False):
        return (spread(xp, a, dim, correction, keepdim),
                _mean(xp, a, _axis(a.ndim, dim), keepdim))

    return forward


def _backward(spread_grad):
    def backward(ctx, grads):
        total = None
        if grads.get(0) is not None:
            total = spread_grad(ctx, grads[0])
        if grads.get(1) is not None:
            m = _mean_grad(ctx, grads[1])
            total = m if total is None else total + m
        return (total,)

    return backward


def _std_grad(ctx, g):
    # std = sqrt(var): d std = d var / (2 std); no gradient where std is 0 (torch's)
    (a,) = ctx.saved
    out = a.std(ctx.attrs.get("dim"), correction=ctx.attrs.get("correction", 1),
                keepdim=ctx.attrs.get("keepdim", False))
    zero = out == 0
    return _var_grad(ctx, where(zero, 0.0, g / (2 * where(zero, 1.0, out))))


std_mean = defop("std_mean", infer=_moments_meta, grad_name="StdMeanBackward0", save=(0,),
                 multi_grad=True)(_moments(_std))
std_mean.def_backward(_backward(_std_grad))
var_mean = defop("var_mean", infer=_moments_meta, grad_name="VarMeanBackward0", save=(0,),
                 multi_grad=True)(_moments(_var))
var_mean.def_backward(_backward(_var_grad))
