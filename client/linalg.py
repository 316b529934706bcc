"""gradserve.linalg: torch.linalg for both tensor kinds (the engine's functions; each runs
where its operand lives: in process, or as ops on its session).

    >>> import gradserve as gs
    >>> gs.linalg.det(gs.tensor([[2., 1.], [1., 3.]]))
    tensor(5.)
"""

from gradserve.engine import linalg as _linalg

__all__ = ["cholesky", "cross", "det", "eigh", "eigvalsh", "inv", "lstsq", "matrix_norm",
           "matrix_power", "matrix_rank", "norm", "pinv", "qr", "slogdet", "solve", "svd",
           "svdvals", "vector_norm"]

(cholesky, cross, det, eigh, eigvalsh, inv, lstsq, matrix_norm, matrix_power, matrix_rank,
 norm, pinv, qr, slogdet, solve, svd, svdvals, vector_norm) = (getattr(_linalg, name)
                                                              for name in __all__)
