"""Gradient clipping (see the package doc)."""

from __future__ import annotations

import math

from gradserve.engine import TensorAPI, no_grad, stack

from ..._default import default_session

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters) -> list:
    if isinstance(parameters, TensorAPI):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None):
    """Scale the gradients together so that their joint norm is at most max_norm; returns
    the norm before clipping (a tensor), as torch.

    >>> total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return default_session(None).tensor(0.0)
    with no_grad():
        if math.isinf(norm_type):
            per = [g.abs().max() for g in grads]
            total = stack(per).max() if len(per) > 1 else per[0]
        else:
            per = [(g.abs() ** norm_type).sum() for g in grads]
            total = (stack(per).sum() if len(per) > 1 else per[0]) ** (1.0 / norm_type)
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is "
                "non-finite, so it cannot be clipped. To disable this error and scale the "
                "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value].

    >>> nn.utils.clip_grad_value_(model.parameters(), 0.5)
    """
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)
