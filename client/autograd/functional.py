"""gradserve.autograd.functional: jacobian, hessian, vjp and jvp (torch.autograd.functional).

    >>> from gradserve.autograd.functional import jacobian
    >>> jacobian(lambda x: x * x, gs.tensor([1., 2.]))
    tensor([[2., 0.],
            [0., 4.]])
"""

from __future__ import annotations

from gradserve.engine.seam import functional as _functional

hessian, jacobian, jvp, vjp = (_functional.hessian, _functional.jacobian, _functional.jvp,
                               _functional.vjp)

__all__ = ["hessian", "jacobian", "jvp", "vjp"]
