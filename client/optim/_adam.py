"""Adam: per-parameter steps scaled by running moments of the gradient."""

from __future__ import annotations

import math

from gradserve.engine import no_grad

from ._optimizer import Optimizer, _check_nonnegative, _evaluate, zeros_like


class Adam(Optimizer):
    """torch.optim.Adam's update (amsgrad=False), step for step, with t counting from 1:

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    >>> opt = optim.Adam(model.parameters(), lr=1e-3)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("epsilon value", eps)
        _check_nonnegative("weight_decay value", weight_decay)
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def step(self, closure=None):
        """One update of every parameter that has a .grad; returns closure's loss if given.

        >>> opt.step()
        """
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, (beta1, beta2) = group["lr"], group["betas"]
                eps, decay = group["eps"], group["weight_decay"]
                for p, g in self._params_with_grad(group):
                    state = self.state.setdefault(p, {})
                    if not state:
                        # The step count stays a Python int: reading it costs no round trip.
                        state.update(step=0, exp_avg=zeros_like(p), exp_avg_sq=zeros_like(p))
                    state["step"] += 1
                    t = state["step"]
                    if decay != 0:
                        g = g + p * decay
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    m.mul_(beta1).add_(g * (1 - beta1))
                    v.mul_(beta2).add_(g * g * (1 - beta2))
                    step_size = lr / (1 - beta1**t)
                    denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                    p.sub_(m / denom * step_size)
        return loss
