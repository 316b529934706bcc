"""Adam and AdamW: per-parameter steps scaled by running moments of the gradient."""

from __future__ import annotations

import math

from ._optimizer import Optimizer, _check_betas, _check_nonnegative, zeros_like


class Adam(Optimizer):
    """torch.optim.Adam's update, step for step, with t counting from 1:

        g = grad (negated if maximize) + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                                  (amsgrad)
        p -= lr / (1 - beta1**t) * m / (sqrt(v or v_max) / sqrt(1 - beta2**t) + eps)

    The step count stays a Python number, so on a remote session a step is buffered ops only.

    >>> opt = optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    _decoupled = False  # AdamW: decay the weights directly instead of adding to the gradient

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=_check_betas(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _update(self, group, p, g, state) -> None:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, decay, amsgrad = group["eps"], group["weight_decay"], group["amsgrad"]
        if not state:
            state.update(step=0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
            if amsgrad:
                state["max_exp_avg_sq"] = zeros_like(p)
        state["step"] += 1
        t = state["step"]
        g = self._decayed(p, g, lr, decay, self._decoupled)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        # fused in-place ops (engine/ops/optim.py): three ops per parameter, not a dozen
        m._inplace("optim_ema", g, beta=beta1)  # torch's lerp_ toward g
        v._inplace("optim_ema_sq", g, beta=beta2)
        if amsgrad:
            v = state["max_exp_avg_sq"]._inplace("optim_max", v)
        p._inplace("optim_adam", m, v, step_size=lr / (1 - beta1**t),
                   bias2_sqrt=math.sqrt(1 - beta2**t), eps=eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): p *= 1 - lr * weight_decay
    before the Adam step, which then sees the bare gradient. Default weight_decay 0.01.

    >>> opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
