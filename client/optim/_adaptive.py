"""Adadelta, Adamax, NAdam and RAdam: torch's updates, step for step (its single-tensor
code path), as tensor ops on the parameters where they live. Step counts and other scalars
are Python numbers, so on a remote session a step is buffered ops only, no round trip."""

from __future__ import annotations

import math

import numpy as np
from gradserve.engine import get_default_dtype

from ._optimizer import Optimizer, _check_betas, _check_nonnegative, zeros_like


class Adadelta(Optimizer):
    """torch.optim.Adadelta:

        g += weight_decay * p
        sq = rho * sq + (1 - rho) * g * g
        delta = sqrt(acc + eps) / sqrt(sq + eps) * g
        acc = rho * acc + (1 - rho) * delta * delta
        p -= lr * delta

    >>> opt = optim.Adadelta(model.parameters())
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, group, p, g, state) -> None:
        lr, rho, eps, decay = group["lr"], group["rho"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, square_avg=zeros_like(p), acc_delta=zeros_like(p))
        state["step"] += 1
        if decay != 0:
            g = g + p * decay
        sq, acc = state["square_avg"], state["acc_delta"]
        sq.mul_(rho).add_(g * g * (1 - rho))
        delta = (acc + eps).sqrt_().div_((sq + eps).sqrt_()).mul_(g)
        acc.mul_(rho).add_(delta * delta * (1 - rho))
        p.sub_(delta * lr)


class Adamax(Optimizer):
    """torch.optim.Adamax (Adam with the infinity norm), t counting from 1:

        g += weight_decay * p
        m = lerp(m, g, 1 - beta1)
        u = max(beta2 * u, |g| + eps)
        p -= lr / (1 - beta1**t) * m / u

    >>> opt = optim.Adamax(model.parameters(), lr=2e-3)
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, foreach=None, *,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=_check_betas(betas), eps=eps,
                                      weight_decay=weight_decay, maximize=maximize))

    def _update(self, group, p, g, state) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if not state:
            state.update(step=0, exp_avg=zeros_like(p), exp_inf=zeros_like(p))
        state["step"] += 1
        if group["weight_decay"] != 0:
            g = g + p * group["weight_decay"]
        m, u = state["exp_avg"], state["exp_inf"]
        m._inplace("optim_ema", g, beta=beta1)
        u.mul_(beta2)._inplace("optim_max", g.abs().add_(eps))
        p.sub_(m / u * (lr / (1 - beta1 ** state["step"])))


def _scalar(value: float) -> float:
    """`value` rounded as torch's 0-dim state tensors of the default dtype hold it."""
    return float(np.asarray(value, dtype=get_default_dtype().np))


class NAdam(Optimizer):
    """torch.optim.NAdam (Adam with Nesterov momentum and momentum decay), t from 1:

        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay)); prod *= mu_t
        m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p -= lr * (1 - mu_t) / (1 - prod) * g / denom
        p -= lr * mu_{t+1} / (1 - prod * mu_{t+1}) * m / denom

    `prod` is kept rounded to the default dtype, as torch's `mu_product` tensor.

    >>> opt = optim.NAdam(model.parameters(), lr=2e-3)
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        _check_nonnegative("momentum_decay value", momentum_decay)
        super().__init__(params, dict(lr=lr, betas=_check_betas(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _update(self, group, p, g, state) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        decay, psi = group["weight_decay"], group["momentum_decay"]
        if not state:
            state.update(step=0, mu_product=1.0, exp_avg=zeros_like(p),
                         exp_avg_sq=zeros_like(p))
        state["step"] += 1
        t = state["step"]
        g = self._decayed(p, g, lr, decay, group["decoupled_weight_decay"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] = prod = _scalar(state["mu_product"] * _scalar(mu))
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m._inplace("optim_ema", g, beta=beta1)
        v.mul_(beta2).add_(g * g * (1 - beta2))
        denom = (v / (1 - beta2 ** t)).sqrt_().add_(eps)
        p.sub_(g / denom * (lr * (1.0 - mu) / (1.0 - prod)))
        p.sub_(m / denom * (lr * mu_next / (1.0 - prod * mu_next)))


class RAdam(Optimizer):
    """torch.optim.RAdam (Adam with the variance rectified), t from 1:

        m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g
        rho_inf = 2 / (1 - beta2) - 1; rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        if rho_t > 5: p -= lr * m / (1 - beta1**t) * sqrt(1 - beta2**t) / (sqrt(v) + eps) * r_t
        else:         p -= lr * m / (1 - beta1**t)

    >>> opt = optim.RAdam(model.parameters(), lr=1e-3)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=_check_betas(betas), eps=eps,
                                      weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def _update(self, group, p, g, state) -> None:
        lr, (beta1, beta2), eps, decay = (group["lr"], group["betas"], group["eps"],
                                          group["weight_decay"])
        if not state:
            state.update(step=0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
        state["step"] += 1
        t = state["step"]
        g = self._decayed(p, g, lr, decay, group["decoupled_weight_decay"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m._inplace("optim_ema", g, beta=beta1)
        v.mul_(beta2).add_(g * g * (1 - beta2))
        bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
        corrected = m / bias1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * (beta2 ** t) / bias2
        if rho_t > 5.0:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            adaptive = (bias2 ** 0.5) / v.sqrt().add_(eps)
            p.sub_(corrected * lr * adaptive * rect)
        else:
            p.sub_(corrected * lr)
