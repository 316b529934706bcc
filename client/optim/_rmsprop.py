"""RMSprop and Adagrad: steps scaled by accumulated squared gradients."""

from __future__ import annotations

from gradserve.engine import no_grad

from ._optimizer import Optimizer, _check_nonnegative, _evaluate, zeros_like


class RMSprop(Optimizer):
    """torch.optim.RMSprop's update:

        g = grad + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        a = alpha * a + (1 - alpha) * g;  avg = sqrt(s - a * a) + eps   (centered)
        avg = sqrt(s) + eps                                             (otherwise)
        buf = momentum * buf + g / avg;  p -= lr * buf                  (momentum > 0)
        p -= lr * g / avg                                               (otherwise)

    >>> opt = optim.RMSprop(model.parameters(), lr=1e-2, momentum=0.9, centered=True)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        for name, value in (("learning rate", lr), ("epsilon value", eps),
                            ("momentum value", momentum), ("weight_decay value", weight_decay),
                            ("alpha value", alpha)):
            _check_nonnegative(name, value)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def step(self, closure=None):
        """One update of every parameter that has a .grad. >>> opt.step()"""
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
                decay, momentum = group["weight_decay"], group["momentum"]
                for p, g in self._params_with_grad(group):
                    g = -g if group["maximize"] else g
                    state = self.state.setdefault(p, {})
                    if not state:
                        state.update(step=0, square_avg=zeros_like(p))
                        if momentum > 0:
                            state["momentum_buffer"] = zeros_like(p)
                        if group["centered"]:
                            state["grad_avg"] = zeros_like(p)
                    state["step"] += 1
                    if decay != 0:
                        g = g + p * decay
                    sq = state["square_avg"]
                    sq.mul_(alpha).add_(g * g * (1 - alpha))
                    if group["centered"]:
                        ga = state["grad_avg"]
                        ga.add_((g - ga) * (1 - alpha))
                        avg = (sq - ga * ga).sqrt().add_(eps)
                    else:
                        avg = sq.sqrt().add_(eps)
                    if momentum > 0:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(g / avg)
                        p.sub_(buf * lr)
                    else:
                        p.sub_(g / avg * lr)
        return loss


class Adagrad(Optimizer):
    """torch.optim.Adagrad's update, with t counting from 1:

        g = grad + weight_decay * p
        sum += g * g
        p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    >>> opt = optim.Adagrad(model.parameters(), lr=0.1)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        for name, value in (("learning rate", lr), ("lr_decay", lr_decay),
                            ("weight_decay value", weight_decay),
                            ("initial_accumulator_value", initial_accumulator_value),
                            ("epsilon value", eps)):
            _check_nonnegative(name, value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize))
        with no_grad():  # torch makes the accumulators up front
            for group in self.param_groups:
                for p in group["params"]:
                    acc = zeros_like(p)
                    if initial_accumulator_value:
                        acc.add_(initial_accumulator_value)
                    self.state[p] = {"step": 0, "sum": acc}

    def step(self, closure=None):
        """One update of every parameter that has a .grad. >>> opt.step()"""
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
                for p, g in self._params_with_grad(group):
                    g = -g if group["maximize"] else g
                    state = self.state.get(p)
                    if state is None:  # a parameter of a group added after __init__
                        acc = zeros_like(p).add_(group["initial_accumulator_value"])
                        state = self.state[p] = {"step": 0, "sum": acc}
                    state["step"] += 1
                    if group["weight_decay"] != 0:
                        g = g + p * group["weight_decay"]
                    clr = lr / (1 + (state["step"] - 1) * lr_decay)
                    state["sum"].add_(g * g)
                    p.sub_(g / state["sum"].sqrt().add_(eps) * clr)
        return loss
