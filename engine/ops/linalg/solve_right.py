"""linalg.solve(A, B, left=False): X with X A = B, torch's one LinalgSolveExBackward0 node with
edges to A and B (a composition through transposes would show TransposeBackward0 nodes around
it). The backward is written with the left solve, so it is differentiable again.

    >>> from gradserve import engine
    >>> a, b = engine.tensor([[2., 0.], [0., 4.]]), engine.tensor([[2., 4.]])
    >>> a._op("linalg_solve_right", a, b)
    tensor([[1., 1.]])
"""

from __future__ import annotations

import numpy as np

from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop
from ...core.shape import broadcast_shapes
from .decompositions import _mT, _singular, _square, broadcast_dtype


def _meta(a, b):
    _square("linalg.solve", a)
    n = a.shape[-1]
    rows, cols = (b.shape[-2], b.shape[-1]) if len(b.shape) >= 2 else (b.shape[-1], 1)
    if len(b.shape) < 2 or cols != n:
        raise InvalidArgumentError(
            "linalg.solve: Incompatible shapes of A and B for the equation XA = B "
            f"({a.shape[-2]}x{n} and {rows}x{cols})")
    shape = broadcast_shapes(a.shape[:-2], b.shape[:-2]) + tuple(b.shape[-2:])
    return Meta(shape, a.dtype if a.dtype is b.dtype else broadcast_dtype(a, b))


def _solve_right(xp, a, b):
    try:
        return xp.swapaxes(xp.linalg.solve(xp.swapaxes(a, -1, -2), xp.swapaxes(b, -1, -2)),
                           -1, -2)
    except np.linalg.LinAlgError:
        raise _singular(xp, a, "linalg.solve") from None


solve_right = defop("linalg_solve_right", infer=_meta, grad_name="LinalgSolveExBackward0",
                    save_output=True, grad_uses=((0, "out"), (0,)))(_solve_right)


@solve_right.def_backward
def _(ctx, g):
    # X = B A^-1: dB gets g A^-T, dA gets -X^T g A^-T
    (a,) = ctx.saved
    gb = _mT(a._op("linalg_solve", a, _mT(g)))
    ga = -(_mT(ctx.output) @ gb) if ctx.needs[0] else None
    return ga, gb if ctx.needs[1] else None
