"""torch.linalg for both tensor kinds: `gradserve.linalg` and `engine.linalg` are this module.

Decompositions and solvers are ops (see _ops_linalg); norms are compositions of the norm,
abs, sum and amax ops with torch's results and gradients.

    >>> from gradserve import engine
    >>> engine.linalg.vector_norm(engine.tensor([3., 4.]))
    tensor(5.)
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..core.dtype import TORCH_SCALAR_NAMES
from ..core.errors import InvalidArgumentError
from ..ops.linalg.decompositions import _floating
from ..ops.linalg.lstsq import DRIVERS, is_vector_rhs, svd_tolerances


def _result(name: str, fields: tuple):
    base = namedtuple(name, fields)

    def __repr__(self) -> str:
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(fields, self, strict=True))
        return f"gradserve.return_types.linalg_{name}(\n{body})"

    return type(f"linalg_{name}", (base,), {"__slots__": (), "__repr__": __repr__,
                                           "__module__": "gradserve.return_types"})


_slogdet = _result("slogdet", ("sign", "logabsdet"))
_eigh = _result("eigh", ("eigenvalues", "eigenvectors"))
_svd = _result("svd", ("U", "S", "Vh"))
_qr = _result("qr", ("Q", "R"))
_lstsq = _result("lstsq", ("solution", "residuals", "rank", "singular_values"))

__all__ = ["cholesky", "cross", "det", "eigh", "eigvalsh", "inv", "lstsq", "matrix_norm",
           "matrix_power", "matrix_rank", "norm", "pinv", "qr", "slogdet", "solve", "svd",
           "svdvals", "vector_norm"]


def _mT(x):
    return x.transpose(-1, -2)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    _floating("linalg.vector_norm", x)
    if dtype is not None:
        x = x.to(dtype)
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None and not keepdim:  # every dim at once: one node on x, as torch's
        dim = tuple(range(x.ndim)) or None
    return x.norm(ord, dim=dim, keepdim=keepdim)


def matrix_norm(a, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    _floating("linalg.matrix_norm", a)
    if a.ndim < 2:
        raise InvalidArgumentError(
            "linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    if dtype is not None:
        a = a.to(dtype)
    d0, d1 = (d % a.ndim for d in dim)
    if ord == "fro":
        return a.norm(2, dim=(d0, d1), keepdim=keepdim)
    if ord in ("nuc", 2, -2):
        moved = a.movedim((d0, d1), (-2, -1))
        s = svdvals(moved)
        out = s.sum(-1) if ord == "nuc" else (s.amax(-1) if ord == 2 else s.amin(-1))
        if keepdim:
            out = out.unsqueeze(min(d0, d1)).unsqueeze(max(d0, d1))
        return out
    if ord in (1, -1, math.inf, -math.inf):
        # 1: the largest column sum of |a|; inf: the largest row sum
        summed, other = (d0, d1) if ord in (1, -1) else (d1, d0)
        sums = a.norm(1, dim=summed, keepdim=keepdim)  # torch's: a vector norm, then amax
        if not keepdim and summed < other:
            other -= 1
        return sums.amax(other, keepdim=keepdim) if ord > 0 else \
            sums.amin(other, keepdim=keepdim)
    raise InvalidArgumentError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(a, ord=None, dim=None, keepdim=False, *, dtype=None):
    if isinstance(dim, int):
        dim = (dim,)
    if ord is None:
        return vector_norm(a, 2, dim, keepdim, dtype=dtype)
    if (dim is not None and len(dim) == 2) or (dim is None and a.ndim == 2):
        return matrix_norm(a, ord, dim if dim is not None else (-2, -1), keepdim, dtype=dtype)
    if isinstance(ord, str) or (dim is None and a.ndim != 1):
        raise InvalidArgumentError(
            "linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. "
            f"Got {a.ndim}D.")
    return vector_norm(a, ord, dim, keepdim, dtype=dtype)


def inv(a):
    return a._op("linalg_inv", a)


def det(a):
    return a._op("linalg_det", a)


def slogdet(a):
    return _slogdet(*a._op("linalg_slogdet", a))


def solve(a, b, *, left=True):
    if left:
        return a._op("linalg_solve", a, b)
    return a._op("linalg_solve_right", a, b)  # XA = B: torch's one node


def cholesky(a, *, upper=False):
    return a._op("linalg_cholesky", a, upper=bool(upper))


def eigh(a, UPLO="L"):
    return _eigh(*a._op("linalg_eigh", a, UPLO=UPLO))


def eigvalsh(a, UPLO="L"):
    return a._op("linalg_eigh", a, UPLO=UPLO)[0]


def svd(a, full_matrices=True):
    return _svd(*a._op("linalg_svd", a, full_matrices=bool(full_matrices)))


def qr(a, mode="reduced"):
    return _qr(*a._op("linalg_qr", a, mode=mode))


def svdvals(a):
    return a._op("linalg_svd", a, full_matrices=False)[1]


def pinv(a, *, atol=None, rtol=None, hermitian=False):
    """torch.linalg.pinv: V diag(1/s) U^T over the singular values above the tolerance
    (rtol defaults to eps * max(m, n), relative to the largest): torch's one node."""
    if a.ndim < 2 or not a.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"linalg.pinv({_type_text(a)}): expected a tensor with 2 or more dimensions of "
            "float, double, cfloat or cdouble types")
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else \
            float(np.finfo(a.dtype.np).eps) * max(a.shape[-2], a.shape[-1])
    return a._op("linalg_pinv", a, atol=float(atol or 0.0), rtol=float(rtol),
                 hermitian=bool(hermitian))


def _type_text(a) -> str:
    return f"{TORCH_SCALAR_NAMES[a.dtype.name]}{{{list(a.shape)}}}".replace(" ", "")


def lstsq(a, b, rcond=None, *, driver=None):
    """torch.linalg.lstsq with torch's CPU drivers (gelsy when None): the solution, the
    residuals (filled when m > n for gels, and for gelsd/gelss when every matrix has full
    column rank: that rank read first, one wait on a session, as torch reads it), the rank
    (not gels) and the singular values (gelsd, gelss). The solution and the residuals are
    outputs of torch's one node."""
    if a.ndim < 2:
        raise InvalidArgumentError("torch.linalg.lstsq: input must have at least 2 dimensions.")
    if b.ndim < 1:
        raise InvalidArgumentError("torch.linalg.lstsq: other must have at least 1 dimension.")
    if a.dtype is not b.dtype:
        raise InvalidArgumentError(
            "torch.linalg.lstsq: Expected input and other to have the same dtype, but got "
            f"input's dtype {TORCH_SCALAR_NAMES[a.dtype.name]} and other's dtype "
            f"{TORCH_SCALAR_NAMES[b.dtype.name]}")
    if a.dtype.name not in ("float32", "float64"):
        raise InvalidArgumentError("This function doesn't handle types other than float and "
                                   "double")
    if not 0 <= a.ndim - b.ndim <= 1:
        raise InvalidArgumentError(
            "torch.linalg.lstsq: input.dim() must be greater or equal to other.dim() and "
            "(input.dim() - other.dim()) <= 1")
    vector = is_vector_rhs(a.shape, b.shape)
    if (b.shape[-1] if vector else b.shape[-2]) != a.shape[-2]:
        raise InvalidArgumentError("torch.linalg.lstsq: input.size(-2) should match "
                                   f"other.size({-1 if vector else -2})")
    if driver is None:
        driver = "gelsy"
    elif driver.lower() not in DRIVERS:
        raise InvalidArgumentError("torch.linalg.lstsq: parameter `driver` should be one of "
                                   "(gels, gelsy, gelsd, gelss)")
    driver = driver.lower()
    m, n = a.shape[-2], a.shape[-1]
    if rcond is None:
        rcond = float(np.finfo(a.dtype.np).eps) * max(m, n)
    residuals = m > n and driver != "gelsy"
    if residuals and driver != "gels":  # only where every matrix has full column rank
        atol, rtol = svd_tolerances(driver, float(rcond), a.dtype.np)
        rank = matrix_rank(a.detach(), atol=atol, rtol=rtol)
        residuals = bool((rank == n).all().item())
    return _lstsq(*a._op("linalg_lstsq", a, b, rcond=float(rcond), driver=driver,
                         residuals=residuals))


def matrix_rank(a, *, atol=None, rtol=None, hermitian=False):
    return a._op("linalg_matrix_rank", a, atol=atol, rtol=rtol, hermitian=bool(hermitian))


def cross(a, b, *, dim=-1):
    return a._op("linalg_cross", a, b, dim=int(dim))


def matrix_power(a, n):
    return a.matrix_power(n)
