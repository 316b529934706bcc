"""torch.linalg's decompositions and solvers as ops: cross, inv, det, slogdet, solve,
cholesky, eigh, svdvals and matrix_rank, with torch's grad_fn names and errors. Forwards are
numpy's/cupy's `linalg` (batched over leading dims); backwards are written in engine ops
(matmul, these ops), so second derivatives follow.

    >>> from gradserve import engine
    >>> a = engine.tensor([[2., 1.], [1., 3.]], requires_grad=True)
    >>> engine.linalg.det(a)
    tensor(5., grad_fn=<LinalgDetBackward0>)
"""

from __future__ import annotations

import numpy as np

from ...core.dtype import TORCH_SCALAR_NAMES, int64, result_type
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes, normalize_dim
from .det_grad import det_backward, slogdet_backward


def _floating(name: str, a) -> None:
    if not a.dtype.is_floating_point or a.dtype.name == "float16":
        raise InvalidArgumentError(
            f"{name}: Expected a floating point or complex tensor as input. Got "
            f"{TORCH_SCALAR_NAMES[a.dtype.name]}")


def _square(name: str, a) -> None:
    _floating(name, a)
    if len(a.shape) < 2:
        raise InvalidArgumentError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise InvalidArgumentError(
            f"{name}: A must be batches of square matrices, but they are {a.shape[-2]} by "
            f"{a.shape[-1]} matrices")


def _singular(xp, a, name: str):
    """torch's error for a singular matrix: the first zero pivot of its LU factorisation."""
    m = np.array(a.get() if hasattr(a, "get") else a, dtype=np.float64).reshape(
        -1, a.shape[-2], a.shape[-1])
    for mat in m:
        u = mat.copy()
        n = u.shape[0]
        for k in range(n):
            p = k + int(np.argmax(np.abs(u[k:, k])))
            if u[p, k] == 0:
                return InvalidArgumentError(
                    f"{name}: The diagonal element {k + 1} is zero, the inversion could not be "
                    "completed because the input matrix is singular.")
            u[[k, p]] = u[[p, k]]
            u[k + 1:] -= np.outer(u[k + 1:, k] / u[k, k], u[k])
    return InvalidArgumentError(f"{name}: The input matrix is singular.")


def _mT(x):
    return x.transpose(-1, -2)


# -- cross ------------------------------------------------------------------------------------
def _cross_meta(a, b, dim=-1):
    shape = broadcast_shapes(a.shape, b.shape)
    d = normalize_dim(dim, len(shape))
    if a.shape[normalize_dim(dim, len(a.shape))] != 3 or \
            b.shape[normalize_dim(dim, len(b.shape))] != 3:
        raise InvalidArgumentError(
            f"linalg.cross: inputs dimension {dim} must have length 3. Got "
            f"{a.shape[normalize_dim(dim, len(a.shape))]} and "
            f"{b.shape[normalize_dim(dim, len(b.shape))]}")
    if shape[d] != 3:
        raise InvalidArgumentError(f"linalg.cross: inputs dimension {dim} must have length 3")
    return Meta(shape, a.dtype if a.dtype is b.dtype else broadcast_dtype(a, b))


def broadcast_dtype(a, b):
    return result_type(a, b)


cross = defop("linalg_cross", infer=_cross_meta, grad_name="LinalgCrossBackward0",
              grad_uses=((1,), (0,)))(lambda xp, a, b, dim=-1: xp.cross(a, b, axis=dim))


@cross.def_backward
def _(ctx, g):
    a, b = ctx.saved
    d = ctx.attrs.get("dim", -1)
    return (b.cross(g, dim=d) if ctx.needs[0] else None,
            g.cross(a, dim=d) if ctx.needs[1] else None)


# -- inv, det, slogdet, solve -------------------------------------------------------------------
def _inv_meta(a):
    _square("linalg.inv", a)
    return Meta(a.shape, a.dtype)


def _inv(xp, a):
    try:
        return xp.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise _singular(xp, a, "linalg.inv") from None


inv = defop("linalg_inv", infer=_inv_meta, grad_name="LinalgInvExBackward0",
            save_output=True)(_inv)


@inv.def_backward
def _(ctx, g):
    out = ctx.output  # d(A^-1) = -A^-1 dA A^-1
    return (-(_mT(out) @ g @ _mT(out)),)


def _det_meta(a):
    _square("linalg.det", a)
    return Meta(a.shape[:-2], a.dtype)


det = defop("linalg_det", infer=_det_meta, grad_name="LinalgDetBackward0", save=(0,),
            save_output=True)(lambda xp, a: xp.linalg.det(a))


@det.def_backward
def _(ctx, g):
    (a,) = ctx.saved  # torch's two paths, singular matrices included (det_grad.py)
    return (det_backward(a, ctx.output, g),)


def _slogdet_meta(a):
    _square("linalg.slogdet", a)
    m = Meta(a.shape[:-2], a.dtype)
    return m, m


def _slogdet(xp, a):
    sign, logabs = xp.linalg.slogdet(a)
    return sign, logabs


slogdet = defop("linalg_slogdet", infer=_slogdet_meta, grad_name="LinalgSlogdetBackward0",
                save=(0,), multi_grad=True, grads_from=(1,))(_slogdet)


@slogdet.def_backward
def _(ctx, grads):
    (a,) = ctx.saved
    g = grads.get(1)  # the sign is piecewise constant
    if g is None:
        return (None,)
    return (slogdet_backward(a, g),)  # singular matrices as torch's (det_grad.py)


def _solve_meta(a, b):
    _square("linalg.solve", a)
    n = a.shape[-1]
    vector = len(b.shape) == 1 or (len(b.shape) == len(a.shape) - 1
                                   and tuple(b.shape) == tuple(a.shape[:-1]))
    rows = b.shape[-1] if vector else b.shape[-2]
    if rows != n:
        cols = 1 if vector else b.shape[-1]
        raise InvalidArgumentError(
            "linalg.solve: Incompatible shapes of A and B for the equation AX = B "
            f"({a.shape[-2]}x{n} and {rows}x{cols})")
    if vector:
        shape = broadcast_shapes(a.shape[:-2], b.shape[:-1]) + (n,)
    else:
        shape = broadcast_shapes(a.shape[:-2], b.shape[:-2]) + tuple(b.shape[-2:])
    return Meta(shape, a.dtype if a.dtype is b.dtype else broadcast_dtype(a, b))


def _solve(xp, a, b):
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1])
    try:
        if vector:
            return xp.linalg.solve(a, b[..., None])[..., 0]
        return xp.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise _singular(xp, a, "linalg.solve") from None


solve = defop("linalg_solve", infer=_solve_meta, grad_name="LinalgSolveExBackward0",
              save_output=True, grad_uses=((0, "out"), (0,)))(_solve)


@solve.def_backward
def _(ctx, g):
    (a,) = ctx.saved
    gb = a._op("linalg_solve", _mT(a), g)
    ga = None
    if ctx.needs[0]:
        x = ctx.output
        if len(ctx.in_shapes[1]) == 1 or len(x.shape) == len(ctx.in_shapes[0]) - 1:
            ga = -(gb.unsqueeze(-1) @ x.unsqueeze(-2))
        else:
            ga = -(gb @ _mT(x))
    return ga, gb if ctx.needs[1] else None


# -- cholesky, eigh, svdvals ------------------------------------------------------------------
def _cholesky_meta(a, upper=False):
    _square("linalg.cholesky", a)
    return Meta(a.shape, a.dtype)


def _cholesky(xp, a, upper=False):
    try:
        low = xp.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        host = np.asarray(a.get() if hasattr(a, "get") else a).reshape(
            -1, a.shape[-2], a.shape[-1])
        order = a.shape[-1]
        for mat in host:
            for k in range(1, mat.shape[0] + 1):
                try:
                    np.linalg.cholesky(mat[:k, :k])
                except np.linalg.LinAlgError:
                    order = min(order, k)
                    break
        raise InvalidArgumentError(
            "linalg.cholesky: The factorization could not be completed because the input is "
            f"not positive-definite (the leading minor of order {order} is not "
            "positive-definite).") from None
    return xp.swapaxes(low, -1, -2).copy() if upper else low


cholesky = defop("linalg_cholesky", infer=_cholesky_meta, grad_name="LinalgCholeskyExBackward0",
                 save_output=True)(_cholesky)


@cholesky.def_backward
def _(ctx, g):
    low = ctx.output
    if ctx.attrs.get("upper", False):
        low, g = _mT(low), _mT(g)
    # torch's cholesky_backward: A^-1-free form L^-H phi(L^H gL) L^-1, symmetrised
    phi = (_mT(low) @ g).tril()
    phi = phi - 0.5 * (phi * _eye_like(phi))  # the diagonal halved
    inv_low = low._op("linalg_inv", low)
    ga = _mT(inv_low) @ phi @ inv_low
    return (0.5 * (ga + _mT(ga)),)


def _eye_like(x):
    return x._op("eye", n=x.shape[-1], dtype=x.dtype.name, device=x.device)


def _eigh_meta(a, UPLO="L"):
    _square("linalg.eigh", a)
    if UPLO not in ("L", "U"):
        raise InvalidArgumentError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return Meta(a.shape[:-1], a.dtype), Meta(a.shape, a.dtype)


# backward recomputes the decomposition from the saved input (deterministic, so the same
# eigenvectors): a node keeps one output of its own, and eigh's gradient reads both
eigh = defop("linalg_eigh", infer=_eigh_meta, grad_name="LinalgEighBackward0", save=(0,),
             multi_grad=True)(lambda xp, a, UPLO="L": tuple(xp.linalg.eigh(a, UPLO=UPLO)))


@eigh.def_backward
def _(ctx, grads):
    (a,) = ctx.saved
    lam, v = a._op("linalg_eigh", a, **ctx.attrs)
    gl, gv = grads.get(0), grads.get(1)
    if gl is None and gv is None:
        return (None,)
    inner = None
    if gl is not None:
        inner = _eye_like(v) * gl.unsqueeze(-2)  # diag(gl)
    if gv is not None:
        # E_ij = 1 / (lam_j - lam_i) off the diagonal, 0 on it
        diff = lam.unsqueeze(-2) - lam.unsqueeze(-1)
        eye = _eye_like(diff)
        e = (1 - eye) / (diff + eye)
        x = _mT(v) @ gv
        # torch's gradient is the symmetric one: E o skew(V^T gV), E being antisymmetric
        term = e * (0.5 * (x - _mT(x)))
        inner = term if inner is None else inner + term
    return (v @ inner @ _mT(v),)


def _rank_meta(a, atol=None, rtol=None, hermitian=False):
    _floating("linalg.matrix_rank", a)
    if len(a.shape) < 2:
        raise InvalidArgumentError(
            "linalg.matrix_rank: The input tensor input must have at least 2 dimensions.")
    return Meta(a.shape[:-2], int64)


def _rank(xp, a, atol=None, rtol=None, hermitian=False):
    s = xp.abs(xp.linalg.eigvalsh(a)) if hermitian else xp.linalg.svd(a, compute_uv=False)
    top = s.max(axis=-1, initial=0.0) if s.shape[-1] else xp.zeros(s.shape[:-1], s.dtype)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else \
            np.finfo(a.dtype).eps * max(a.shape[-2], a.shape[-1])
    tol = xp.maximum(atol or 0.0, rtol * top)
    return (s > tol[..., None]).sum(axis=-1)


defop("linalg_matrix_rank", infer=_rank_meta)(_rank)


# -- svd --------------------------------------------------------------------------------------
def _svd_meta(a, full_matrices=True):
    _floating("linalg.svd", a)
    if len(a.shape) < 2:
        raise InvalidArgumentError(
            "linalg.svd: The input tensor A must have at least 2 dimensions.")
    *batch, m, n = a.shape
    k = min(m, n)
    u, vh = (m, m) if full_matrices else (m, k), (n, n) if full_matrices else (k, n)
    return (Meta((*batch, *u), a.dtype, _column_major((*batch, *u))),
            Meta((*batch, k), a.dtype), Meta((*batch, *vh), a.dtype, _column_major((*batch, *vh))))


def _column_major(shape: tuple) -> tuple:
    """Strides of matrices stored column by column, as LAPACK leaves torch's U and Vh (a later
    reshape of them copies, as torch's does)."""
    r, c = shape[-2], shape[-1]
    strides, step = [1, max(r, 1)], max(r * c, 1)
    for size in reversed(shape[:-2]):
        strides.insert(0, step)
        step *= max(size, 1)
    return tuple(strides)


# like eigh, backward recomputes the (deterministic) factors from the saved input
def _svd(xp, a, full_matrices=True):
    u, s, vh = xp.linalg.svd(a, full_matrices=full_matrices)
    return _stored_by_columns(xp, u), s, _stored_by_columns(xp, vh)


def _stored_by_columns(xp, x):
    return xp.swapaxes(xp.ascontiguousarray(xp.swapaxes(x, -1, -2)), -1, -2)


svd = defop("linalg_svd", infer=_svd_meta, grad_name="LinalgSvdBackward0", save=(0,),
            multi_grad=True)(_svd)


@svd.def_backward
def _(ctx, grads):
    (a,) = ctx.saved
    gu, gs, gvh = grads.get(0), grads.get(1), grads.get(2)
    u, s, vh = a._op("linalg_svd", a, full_matrices=False)
    m, n = a.shape[-2], a.shape[-1]
    k = min(m, n)
    if gu is None and gvh is None:
        return ((u * gs.unsqueeze(-2)) @ vh,)
    # torch's svd_backward (real case); the columns past k of full U/Vh get no gradient
    if gu is not None and gu.shape[-1] != k:
        gu = gu.narrow(-1, 0, k)
    if gvh is not None and gvh.shape[-2] != k:
        gvh = gvh.narrow(-2, 0, k)
    s2 = s * s
    eye = _eye_like(s.unsqueeze(-1) * s.unsqueeze(-2))
    e = s2.unsqueeze(-2) - s2.unsqueeze(-1) + eye
    inner = None
    if gu is not None:
        x = _mT(u) @ gu
        inner = (x - _mT(x)) * s.unsqueeze(-2)
    if gvh is not None:
        y = vh @ _mT(gvh)
        term = s.unsqueeze(-1) * (y - _mT(y))
        inner = term if inner is None else inner + term
    inner = inner / e
    if gs is not None:
        inner = inner + eye * gs.unsqueeze(-2)
    if m > k and gu is not None:
        ga = u @ inner
        gu_s = gu / s.unsqueeze(-2)
        ga = (ga + gu_s - u @ (_mT(u) @ gu_s)) @ vh
    elif n > k and gvh is not None:
        ga = inner @ vh
        s_gvh = gvh / s.unsqueeze(-1)
        ga = u @ (ga + s_gvh - (s_gvh @ _mT(vh)) @ vh)
    else:
        ga = u @ inner @ vh
    return (ga,)
