"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from gradserve.engine import no_grad

from ._optimizer import Optimizer, _check_nonnegative, _evaluate


class SGD(Optimizer):
    """torch.optim.SGD's update, step for step:

        g = grad + weight_decay * p
        buf = g                                 (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        g = g + momentum * buf if nesterov else buf  (when momentum != 0)
        p -= lr * g

    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("momentum value", momentum)
        _check_nonnegative("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self, closure=None):
        """One update of every parameter that has a .grad; returns closure's loss if given.

        >>> opt.step()
        """
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                lr, momentum = group["lr"], group["momentum"]
                dampening, decay = group["dampening"], group["weight_decay"]
                for p in group["params"]:  # `_params_with_grad`, without its generator
                    g = p.grad
                    if g is None:
                        continue
                    if decay != 0:
                        g = g + p * decay
                    if momentum != 0:
                        state = self.state.setdefault(p, {})
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = g.detach().clone()
                        else:  # buf.mul_(momentum).add_(g * (1 - dampening)), as one op
                            buf._inplace("optim_momentum", g, momentum=momentum,
                                         scale=1 - dampening)
                        g = g + buf * momentum if group["nesterov"] else buf
                    p._inplace("optim_sgd", g, lr=lr)  # p.sub_(g * lr), as one op
        return loss
