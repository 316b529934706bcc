"""Adam and AdamW: per-parameter steps scaled by running moments of the gradient."""

from __future__ import annotations

import math

from gradserve.engine import no_grad
from gradserve.engine.seam import adam_update

from .._grads import grad_defined
from ._foreach import record_adam_step
from ._optimizer import Optimizer, _check_betas, _check_nonnegative, _evaluate, zeros_like


class Adam(Optimizer):
    """torch.optim.Adam's update, step for step, with t counting from 1:

        g = grad (negated if maximize) + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                                  (amsgrad)
        p -= lr / (1 - beta1**t) * m / (sqrt(v or v_max) / sqrt(1 - beta2**t) + eps)

    The step count stays a Python number, so on a remote session a step is buffered ops only:
    from the second step on one op for all of a group's parameters (`foreach=False`: three
    or four per parameter).

    >>> opt = optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    _decoupled = False  # AdamW: decay the weights directly instead of adding to the gradient

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=_check_betas(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      foreach=foreach, maximize=maximize))

    def step(self, closure=None):
        """One update of every parameter that has a .grad; returns closure's loss if given.
        On a remote session a group's step after the first is one op (`optim_adam_step`)
        unless the group says `foreach=False`.

        >>> opt.step()
        """
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if grad_defined(p)]
                states = [self.state.setdefault(p, {}) for p in params]
                if not params or group.get("foreach") is not False and record_adam_step(
                        params, states, group, self._decoupled):
                    continue
                for p, state in zip(params, states, strict=True):
                    g = p.grad
                    self._update(group, p, -g if group.get("maximize") else g, state)
        return loss

    def _update(self, group, p, g, state) -> None:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        if not state:
            state.update(step=0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_like(p)
        state["step"] += 1
        t = state["step"]
        # fused in-place ops (engine/ops/optim.py): three ops per parameter, not a dozen
        adam_update(p, g, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                    lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], decoupled=self._decoupled,
                    step_size=lr / (1 - beta1**t), bias2_sqrt=math.sqrt(1 - beta2**t))


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): p *= 1 - lr * weight_decay
    before the Adam step, which then sees the bare gradient. Default weight_decay 0.01.

    >>> opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize)
