"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from gradserve.engine import no_grad
from gradserve.engine.seam import sgd_update

from .._grads import grad_defined
from ._foreach import record_sgd_step
from ._optimizer import Optimizer, _check_nonnegative, _evaluate


class SGD(Optimizer):
    """torch.optim.SGD's update, step for step:

        g = grad + weight_decay * p
        buf = g                                 (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        g = g + momentum * buf if nesterov else buf  (when momentum != 0)
        p -= lr * g

    On a remote session a group's step is one op for all its parameters (torch's foreach
    form: each parameter is updated by its .grad where it lives, no gradient is bound to an
    id); `foreach=False` records it parameter by parameter instead. Both end bit for bit
    alike, each parameter one version up.

    >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *,
                 foreach: bool | None = None) -> None:
        _check_nonnegative("learning rate", lr)
        _check_nonnegative("momentum value", momentum)
        _check_nonnegative("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      foreach=foreach))

    def step(self, closure=None):
        """One update of every parameter that has a .grad; returns closure's loss if given.

        >>> opt.step()
        """
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if grad_defined(p)]
                if not params:
                    continue
                momentum = group["momentum"]
                hyper = dict(lr=group["lr"], momentum=momentum, dampening=group["dampening"],
                             weight_decay=group["weight_decay"], nesterov=group["nesterov"])
                state = self.state
                buffers = [state[p].get("momentum_buffer") if p in state else None
                           for p in params] if momentum != 0 else [None] * len(params)
                fused = None if group.get("foreach") is False else record_sgd_step(
                    params, buffers, hyper)
                if fused is None:
                    fused = sgd_update(params, [p.grad for p in params], buffers, **hyper)
                if momentum != 0:
                    for p, buf in zip(params, fused, strict=True):
                        state.setdefault(p, {})["momentum_buffer"] = buf
        return loss
