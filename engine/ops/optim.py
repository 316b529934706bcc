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

Two commands cover many parameters in one op (torch's foreach optimizers; on a remote
session one entry instead of two per parameter): `optim_sgd_step` (SGD's step, each
parameter by its own .grad, read on the side that holds it) and `clear_grads` (zero_grad
with set_to_none).

    >>> from gradserve import engine
    >>> m = engine.zeros(2)
    >>> m._inplace("optim_ema", engine.tensor([1., 2.]), beta=0.9)
    tensor([0.1000, 0.2000])
"""

from __future__ import annotations

from ..core.errors import AutogradError, InvalidArgumentError
from ..core.grad_mode import no_grad
from ..core.registry import Meta, defcommand, defop, fresh
from ..surface.tensor import Tensor


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


# -- SGD's step, written once for both tensor kinds --------------------------------------------
def sgd_update(params, grads, buffers, *, lr, momentum, dampening, weight_decay,
               nesterov) -> list:
    """torch.optim.SGD's update of each parameter by its gradient, as tensor ops on the
    parameters where they live (the caller holds no_grad): recorded op by op on proxies,
    computed on engine tensors, and run by the `optim_sgd_step` command on a server.
    `buffers` holds each parameter's momentum buffer, None where it has none yet; returns
    them after the step (a first step's buffer is the gradient's copy, as torch's)."""
    out = []
    for p, g, buf in zip(params, grads, buffers, strict=True):
        if weight_decay != 0:
            g = g + p * weight_decay
        if momentum != 0:
            if buf is None:
                buf = g.detach().clone()
            else:  # buf.mul_(momentum).add_(g * (1 - dampening)), as one op
                buf._inplace("optim_momentum", g, momentum=momentum, scale=1 - dampening)
            g = g + buf * momentum if nesterov else buf
        p._inplace("optim_sgd", g, lr=lr)  # p.sub_(g * lr), as one op
        out.append(buf)
    return out


def _number(attrs: dict, name: str, default: float | None) -> float:
    value = attrs.get(name, default)
    if value is None:
        raise InvalidArgumentError(f"'optim_sgd_step' needs a number as attr {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"attr {name!r} of 'optim_sgd_step' must be a number, "
                                   f"got {value!r}")
    return value


@defcommand("optim_sgd_step", inputs=(1, 1 << 20), outputs=(0, 1 << 20),
            attrs={"lr": ..., "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                   "nesterov": False, "buffers": False})
def _sgd_step(inputs, attrs):
    """One SGD step over many parameters, each by its own .grad (read here, so no gradient
    is bound to an id): the inputs are the parameters, then, with attr `buffers`, their
    momentum buffers; with momentum and no buffers it returns the new ones (bind one id
    each). Each parameter (and buffer) takes the in-place ops `sgd_update` gives, so it ends
    bit for bit as the step op by op leaves it, one version up, as torch's _foreach ops."""
    n = len(inputs)
    with_buffers = attrs.get("buffers", False)
    if with_buffers not in (True, False) or with_buffers and n % 2:
        raise InvalidArgumentError("'optim_sgd_step' takes the parameters, then (attr "
                                   "buffers: true) one momentum buffer per parameter")
    k = n // 2 if with_buffers else n
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise InvalidArgumentError(f"input {i} of 'optim_sgd_step' must be a tensor id")
    nesterov = attrs.get("nesterov", False)
    if nesterov not in (True, False):
        raise InvalidArgumentError("attr 'nesterov' of 'optim_sgd_step' must be true or false")
    hyper = dict(lr=_number(attrs, "lr", None), momentum=_number(attrs, "momentum", 0.0),
                 dampening=_number(attrs, "dampening", 0.0),
                 weight_decay=_number(attrs, "weight_decay", 0.0), nesterov=nesterov)
    params = inputs[:k]
    grads = [p._grad for p in params]
    if any(g is None for g in grads):
        raise AutogradError("the tensor has no grad (its .grad is None)")
    with no_grad():
        buffers = sgd_update(params, grads, inputs[k:] if with_buffers else [None] * k, **hyper)
    return () if with_buffers or buffers[0] is None else tuple(buffers)


@defcommand("clear_grads", inputs=(1, 1 << 20), outputs=(0, 0))
def _clear_grads(inputs, attrs):
    """Every input's .grad set to None: `zero_grad()` over many tensors as one op."""
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise InvalidArgumentError(f"input {i} of 'clear_grads' must be a tensor id")
    for t in inputs:
        t.grad = None
    return ()
