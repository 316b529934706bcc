"""linalg.pinv as torch's one LinalgPinvBackward0 node: the pseudo-inverse from an SVD, the
singular values at or below max(atol, rtol * the largest) dropped; the backward is torch's
pinv_backward, written with matrix products so it is differentiable again.

    >>> from gradserve import engine
    >>> a = engine.tensor([[2., 0.], [0., 0.]])
    >>> a._op("linalg_pinv", a, atol=0.0, rtol=1e-6)
    tensor([[0.5000, 0.0000],
            [0.0000, 0.0000]])
"""

from __future__ import annotations

from ...core.registry import Meta, defop
from .decompositions import _mT


def _meta(a, atol=0.0, rtol=0.0, hermitian=False):
    return Meta(tuple(a.shape[:-2]) + (a.shape[-1], a.shape[-2]), a.dtype)


def _pinv(xp, a, atol=0.0, rtol=0.0, hermitian=False):
    shape = a.shape[:-2] + (a.shape[-1], a.shape[-2])
    if a.size == 0:
        return xp.zeros(shape, a.dtype)
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    tol = xp.maximum(s.max(-1, keepdims=True) * rtol, atol)
    keep = s > tol
    s_inv = xp.where(keep, 1 / xp.where(keep, s, 1), 0).astype(a.dtype, copy=False)
    return (xp.swapaxes(vh, -1, -2) * s_inv[..., None, :]) @ xp.swapaxes(u, -1, -2)


pinv = defop("linalg_pinv", infer=_meta, grad_name="LinalgPinvBackward0", save=(0,),
             save_output=True)(_pinv)


def pinv_backward(g, p, a):
    """torch's pinv_backward: the gradient reaching A = `a` through P = pinv(A) = `p`, arranged
    so the products are of the smaller dimension."""
    ph, gh = _mT(p), _mT(g)
    if a.shape[-2] <= a.shape[-1]:
        k = gh @ p
        kph = k @ ph
        return -_mT(p @ k) + kph - (a @ p) @ kph + (ph @ p) @ (gh - k @ a)
    k = p @ gh
    phk = ph @ k
    return -_mT(k @ p) + phk - (phk @ p) @ a + (gh - a @ k) @ p @ ph


@pinv.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    return (pinv_backward(g, ctx.output, a),)
