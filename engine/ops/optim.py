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

Commands cover many parameters in one op (torch's foreach optimizers; on a remote session
one entry instead of two to four per parameter): `optim_sgd_step` and `optim_adam_step`
(a step, each parameter by its own .grad, read on the side that holds it, through the same
per-parameter rules the step op by op uses: `sgd_update`, `adam_update`) and `clear_grads`
(zero_grad with set_to_none).

    >>> from gradserve import engine
    >>> m = engine.zeros(2)
    >>> m._inplace("optim_ema", engine.tensor([1., 2.]), beta=0.9)
    tensor([0.1000, 0.2000])
"""

from __future__ import annotations

from ..core.autograd import node_check
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


def decayed(p, g, lr: float, decay: float, decoupled: bool):
    """The gradient after weight decay: decoupled (AdamW's) shrinks the weight itself, in
    place, else the decay is added to the gradient."""
    if decay == 0:
        return g
    if decoupled:
        p.mul_(1 - lr * decay)
        return g
    return g + p * decay


def adam_update(p, g, m, v, v_max, *, lr, beta1, beta2, eps, weight_decay, decoupled,
                step_size, bias2_sqrt) -> None:
    """torch.optim.Adam's update of one parameter (AdamW's when `decoupled`) by its gradient,
    in place on it and its moments `m`, `v` (and AMSGrad's running maximum `v_max`, or None);
    `step_size` is lr / (1 - beta1**t), `bias2_sqrt` sqrt(1 - beta2**t) at step t."""
    g = decayed(p, g, lr, weight_decay, decoupled)
    m._inplace("optim_ema", g, beta=beta1)  # torch's lerp_ toward g
    v._inplace("optim_ema_sq", g, beta=beta2)
    if v_max is not None:
        v = v_max._inplace("optim_max", v)
    p._inplace("optim_adam", m, v, step_size=step_size, bias2_sqrt=bias2_sqrt, eps=eps)


def _number(op: str, attrs: dict, name: str, default: float | None) -> float:
    value = attrs.get(name, default)
    if value is None:
        raise InvalidArgumentError(f"'{op}' needs a number as attr {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"attr {name!r} of '{op}' must be a number, got {value!r}")
    return value


def _flag(op: str, attrs: dict, name: str) -> bool:
    value = attrs.get(name, False)
    if value is not True and value is not False:
        raise InvalidArgumentError(f"attr {name!r} of '{op}' must be true or false")
    return value


def _parameters(op: str, inputs: tuple, groups: int) -> tuple[list, list]:
    """(the parameters, their .grads) of a command whose inputs are `groups` equal runs: the
    parameters, then one state tensor of each per run."""
    if len(inputs) % groups:
        raise InvalidArgumentError(f"'{op}' takes the parameters, then {groups - 1} state "
                                   f"tensor(s) of each, got {len(inputs)} inputs")
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise InvalidArgumentError(f"input {i} of '{op}' must be a tensor id")
    params = list(inputs[:len(inputs) // groups])
    grads = [p._grad for p in params]
    if any(g is None for g in grads):
        raise AutogradError("the tensor has no grad (its .grad is None)")
    return params, grads


@defcommand("optim_sgd_step", inputs=(1, 1 << 20), outputs=(0, 1 << 20),
            attrs={"lr": ..., "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                   "nesterov": False, "buffers": False})
def _sgd_step(inputs, attrs):
    """One SGD step over many parameters, each by its own .grad (read here, so no gradient
    is bound to an id): the inputs are the parameters, then, with attr `buffers`, their
    momentum buffers; with momentum and no buffers it returns the new ones (bind one id
    each). Each parameter (and buffer) takes the in-place ops `sgd_update` gives, so it ends
    bit for bit as the step op by op leaves it, one version up, as torch's _foreach ops."""
    op = "optim_sgd_step"
    with_buffers = _flag(op, attrs, "buffers")
    hyper = dict(lr=_number(op, attrs, "lr", None), momentum=_number(op, attrs, "momentum", 0.0),
                 dampening=_number(op, attrs, "dampening", 0.0),
                 weight_decay=_number(op, attrs, "weight_decay", 0.0),
                 nesterov=_flag(op, attrs, "nesterov"))
    params, grads = _parameters(op, inputs, 2 if with_buffers else 1)
    state = inputs[len(params):] if with_buffers else [None] * len(params)
    check, buffers = node_check(), []
    with no_grad():
        for p, g, buf in zip(params, grads, state, strict=True):
            if check is not None:  # a server's compute budget holds between parameters,
                check("optimizer step")  # as between the ops of the step op by op
            buffers += sgd_update((p,), (g,), (buf,), **hyper)
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


@defcommand("optim_adam_step", inputs=(3, 1 << 20), outputs=(0, 0),
            attrs={"lr": ..., "beta1": ..., "beta2": ..., "eps": ..., "weight_decay": 0.0,
                   "step_size": ..., "bias2_sqrt": ..., "decoupled": False, "amsgrad": False,
                   "maximize": False})
def _adam_step(inputs, attrs):
    """One Adam (AdamW: attr decoupled) step over many parameters at the same step count,
    each by its own .grad (negated with attr maximize): the inputs are the parameters, then
    their first moments, second moments and (attr amsgrad) running maxima of the second.
    Each takes the in-place ops `adam_update` gives, bit for bit as the step op by op."""
    op = "optim_adam_step"
    amsgrad, maximize = _flag(op, attrs, "amsgrad"), _flag(op, attrs, "maximize")
    hyper = {name: _number(op, attrs, name, None) for name in (
        "lr", "beta1", "beta2", "eps", "step_size", "bias2_sqrt")}
    hyper["weight_decay"] = _number(op, attrs, "weight_decay", 0.0)
    hyper["decoupled"] = _flag(op, attrs, "decoupled")
    params, grads = _parameters(op, inputs, 4 if amsgrad else 3)
    n, check = len(params), node_check()
    with no_grad():
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if check is not None:  # the compute budget, as in `_sgd_step`
                check("optimizer step")
            adam_update(p, -g if maximize else g, inputs[n + i], inputs[2 * n + i],
                        inputs[3 * n + i] if amsgrad else None, **hyper)
    return ()
