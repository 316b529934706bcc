"""linalg.lstsq's solution as torch's one LinalgLstsqBackward0 node with edges to A and B:
the minimum-norm least-squares solution pinv(A) B (singular values at or below rcond times
the largest dropped, as the CPU default driver gelsy decides the rank). The backward is
torch's linalg_lstsq_backward (through pinv's), differentiable again.

    >>> from gradserve import engine
    >>> a, b = engine.tensor([[1., 0.], [0., 2.], [0., 0.]]), engine.tensor([1., 4., 5.])
    >>> a._op("linalg_lstsq", a, b, rcond=1e-6)[0]
    tensor([1., 2.])
"""

from __future__ import annotations

import numpy as np

from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from .decompositions import _mT
from .pinv import _pinv, pinv_backward


def is_vector_rhs(a_shape, b_shape) -> bool:
    """aten's lstsq rule: B is one vector per matrix of A when it has one dim fewer."""
    return len(b_shape) == len(a_shape) - 1


def _meta(a, b, rcond=0.0):
    n = a.shape[-1]
    empty = Meta((0,), a.dtype)  # gelsy's residuals
    if is_vector_rhs(a.shape, b.shape):
        return Meta(broadcast_shapes(a.shape[:-2], b.shape[:-1]) + (n,), a.dtype), empty
    return (Meta(broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (n, b.shape[-1]), a.dtype),
            empty)


def _lstsq(xp, a, b, rcond=0.0):
    p = _pinv(xp, a, atol=0.0, rtol=rcond)
    empty = xp.zeros((0,), a.dtype)
    if is_vector_rhs(a.shape, b.shape):
        return (p @ b[..., None])[..., 0], empty
    return p @ b, empty


# the solution and the (empty) residuals are both outputs of torch's one node
lstsq = defop("linalg_lstsq", infer=_meta, grad_name="LinalgLstsqBackward0",
              grad_uses=((0, 1), (0,)), multi_grad=True, grads_from=(0,))(_lstsq)


@lstsq.def_backward
def _(ctx, grads):
    g = grads.get(0)  # the empty residuals carry no gradient
    if g is None:
        return None, None
    a, b = ctx.saved
    vector = is_vector_rhs(*ctx.in_shapes[:2])
    if vector:
        g = g.unsqueeze(-1)
        b = None if b is None else b.unsqueeze(-1)
    m, n = a.shape[-2], a.shape[-1]
    # torch differentiates through pinv(A) at its default tolerance, not rcond
    rtol = float(np.finfo(a.dtype.np).eps) * max(m, n)
    p = a._op("linalg_pinv", a, atol=0.0, rtol=rtol, hermitian=False)
    ga = pinv_backward(g @ _mT(b), p, a) if ctx.needs[0] else None
    gb = None
    if len(ctx.needs) > 1 and ctx.needs[1]:
        gb = _mT(p) @ g
        gb = gb.squeeze(-1) if vector else gb
    return ga, gb
