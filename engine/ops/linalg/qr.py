"""torch.linalg.qr as an op with its gradient (modes reduced, complete, r).

For A = QR with m >= n (reduced): X = Q^T dA R^-1 has the skew part of Q^T dQ below its
diagonal and dR R^-1 (upper) above, which gives
    gA = [gQ + Q copyutl(gR R^T - Q^T gQ)] R^-T,
copyutl(M) being M with its strict upper triangle mirrored into the lower one. A wide A
(m < n) splits as [X | Y] with X square: Y = Q R2 adds Y gR2^T to X's gQ, and gY = Q gR2.
Backward recomputes Q and R from the saved input (Householder QR is deterministic).

    >>> from gradserve import engine
    >>> engine.linalg.qr(engine.tensor([[3., 0.], [4., 5.]])).R
    tensor([[-5., -4.],
            [ 0.,  3.]])
"""

from __future__ import annotations

from ...core.errors import AutogradError, InvalidArgumentError
from ...core.registry import Meta, defop
from .decompositions import _floating, _mT

_MODES = ("reduced", "complete", "r")


def _qr_meta(a, mode="reduced"):
    _floating("linalg.qr", a)
    if len(a.shape) < 2:
        raise InvalidArgumentError(
            "linalg.qr: The input tensor A must have at least 2 dimensions.")
    if mode not in _MODES:
        raise InvalidArgumentError(f"qr received unrecognized mode '{mode}' but expected one of "
                                   "'reduced' (default), 'r', or 'complete'")
    *batch, m, n = a.shape
    k = min(m, n)
    if mode == "r":
        return Meta((0,), a.dtype), Meta((*batch, k, n), a.dtype)
    cols = m if mode == "complete" else k
    return Meta((*batch, m, cols), a.dtype), Meta((*batch, cols, n), a.dtype)


def _qr(xp, a, mode="reduced"):
    if mode == "r":
        return xp.zeros((0,), a.dtype), xp.linalg.qr(a, mode="r")
    q, r = xp.linalg.qr(a, mode=mode)
    return q, r


qr = defop("linalg_qr", infer=_qr_meta, grad_name="LinalgQrBackward0", save=(0,),
           multi_grad=True)(_qr)


@qr.def_backward
def _(ctx, grads):
    (a,) = ctx.saved
    mode = ctx.attrs.get("mode", "reduced")
    m, n = a.shape[-2], a.shape[-1]
    if mode == "r":
        raise AutogradError(
            "The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
            "Please use linalg.qr(A, mode='reduced') if you are going to differentiate "
            "through linalg.qr.")
    if mode == "complete" and m > n:
        raise AutogradError(
            "The QR decomposition is not differentiable when mode='complete' and nrows > "
            "ncols.")
    q, r = a._op("linalg_qr", a, mode="reduced")
    gq, gr = grads.get(0), grads.get(1)
    if m >= n:
        return (_tall_grad(q, r, gq, gr),)
    # wide: A = [X | Y], X = Q R1 square, Y = Q R2
    r1 = r.narrow(-1, 0, m)
    y = a.narrow(-1, m, n - m)
    gr1 = gr.narrow(-1, 0, m) if gr is not None else None
    gr2 = gr.narrow(-1, m, n - m) if gr is not None else None
    if gr2 is not None:
        extra = y @ _mT(gr2)
        gq = extra if gq is None else gq + extra
    gx = _tall_grad(q, r1, gq, gr1)
    gy = q @ gr2 if gr2 is not None else gx.new_zeros(*y.shape)
    return (gx._op("cat", gx, gy, dim=-1),)


def _tall_grad(q, r, gq, gr):
    k = r.shape[-1]
    eye = r._op("eye", n=k, dtype=r.dtype.name, device=r.device)
    m = None
    if gr is not None:
        m = gr @ _mT(r)
    if gq is not None:
        qtg = _mT(q) @ gq
        m = -qtg if m is None else m - qtg
    # copyutl: the upper triangle (with the diagonal) mirrored below it
    upper = m.triu()
    sym = upper + _mT(upper) - upper * eye
    rinv_t = _mT(r._op("linalg_inv", r))
    ga = q @ sym @ rinv_t
    if gq is not None:
        ga = ga + gq @ rinv_t
    return ga
