"""Fused optimizer updates: in-place ops that gradserve.optim sends instead of a dozen
small ones per parameter (on a remote session every op costs dispatch on both sides).

Each op writes only into its first input (`x._inplace(name, ...)`), has no gradient, and
computes in the order the unfused tensor expressions did, so results are bit-identical:

    optim_ema     x += (g - x) * (1 - beta)                 Adam's first moment (torch's lerp_)
    optim_ema_sq  x = x * beta + g * g * (1 - beta)         Adam's second moment
    optim_max     x = max(x, y)                             AMSGrad's running maximum
    optim_adam    p -= m / (sqrt(v) / bias2_sqrt + eps) * step_size
    optim_sgd     p -= g * lr                               SGD's update
    optim_momentum  b = b * momentum + g * scale            SGD's momentum buffer

    >>> from gradserve import engine
    >>> m = engine.zeros(2)
    >>> m._inplace("optim_ema", engine.tensor([1., 2.]), beta=0.9)
    tensor([0.1000, 0.2000])
"""

from __future__ import annotations

from ..core.registry import Meta, defop, fresh


def _like_first(x, *others, **_) -> Meta:
    return fresh((tuple(x.shape), x.dtype, None))  # per parameter per step


def _ema(xp, x, g, *, beta):
    return x + (g - x) * (1 - beta)


def _fresh(xp, a, like=None) -> bool:
    """Whether `a`, a ufunc's result, is a float array that later steps may write into
    without changing a result dtype (a 0-d numpy result is an immutable scalar)."""
    return (isinstance(a, xp.ndarray) and a.dtype.kind in "fc"
            and (like is None or a.dtype == like.dtype))


def _ema_into(xp, x, g, *, beta):
    step = g - x
    if _fresh(xp, step):  # scaled in place: the same ufuncs, one temporary fewer
        step *= 1 - beta
    else:
        step = step * (1 - beta)
    x += step


def _ema_sq(xp, x, g, *, beta):
    return x * beta + g * g * (1 - beta)


def _ema_sq_into(xp, x, g, *, beta):
    x *= beta
    sq = g * g
    if _fresh(xp, sq):
        sq *= 1 - beta
    else:
        sq = sq * (1 - beta)
    x += sq


def _adam(xp, p, m, v, *, step_size, bias2_sqrt, eps):
    return p - m / (xp.sqrt(v) / bias2_sqrt + eps) * step_size


def _adam_into(xp, p, m, v, *, step_size, bias2_sqrt, eps):
    denom = xp.sqrt(v)
    denom /= bias2_sqrt
    denom += eps
    # m / denom into denom when that keeps the quotient's dtype: one temporary fewer
    update = xp.divide(m, denom, out=denom) if _fresh(xp, denom, m) else m / denom
    update *= step_size
    p -= update


defop("optim_ema", infer=_like_first)(_ema).def_forward_into(_ema_into)
defop("optim_ema_sq", infer=_like_first)(_ema_sq).def_forward_into(_ema_sq_into)
defop("optim_max", infer=_like_first)(lambda xp, x, y: xp.maximum(x, y)).def_forward_into(
    lambda xp, x, y: xp.maximum(x, y, out=x))
defop("optim_adam", infer=_like_first)(_adam).def_forward_into(_adam_into)


def _sgd(xp, p, g, *, lr):
    return p - g * lr


def _sgd_into(xp, p, g, *, lr):
    p -= g * lr


def _momentum(xp, b, g, *, momentum, scale):
    return b * momentum + (g if scale == 1 else g * scale)


def _momentum_into(xp, b, g, *, momentum, scale):
    b *= momentum
    b += g if scale == 1 else g * scale


defop("optim_sgd", infer=_like_first)(_sgd).def_forward_into(_sgd_into)
defop("optim_momentum", infer=_like_first)(_momentum).def_forward_into(_momentum_into)
