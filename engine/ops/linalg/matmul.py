"""torch.matmul: the product of two tensors of any rank as torch folds them (dot, mv, mm,
batched), with torch's grad_fn for each fold."""

from __future__ import annotations

import numpy as np

from ...core.dtype import TORCH_C_TYPE_NAMES, TORCH_SCALAR_NAMES
from ...core.errors import InvalidArgumentError
from ...core.registry import Meta, defop, fresh
from ...core.shape import broadcast_shapes


def _matmul_meta(a, b) -> Meta:
    for x in (a, b):
        if not hasattr(x, "shape"):
            raise InvalidArgumentError("matmul expects tensors, not Python numbers")
        if len(x.shape) == 0:
            raise InvalidArgumentError(
                "both arguments to matmul need to be at least 1D, but they are "
                f"{len(a.shape)}D and {len(b.shape)}D"
            )
    sa, sb = tuple(a.shape), tuple(b.shape)
    if a.dtype is not b.dtype and len(sa) == len(sb) == 1:
        raise InvalidArgumentError(
            "dot : expected both vectors to have same dtype, but found "
            f"{TORCH_SCALAR_NAMES[a.dtype.name]} and {TORCH_SCALAR_NAMES[b.dtype.name]}"
        )
    if a.dtype is not b.dtype:
        raise InvalidArgumentError(
            "expected m1 and m2 to have the same dtype, but got: "
            f"{TORCH_C_TYPE_NAMES[a.dtype.name]} != {TORCH_C_TYPE_NAMES[b.dtype.name]}"
        )
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        if len(sa) == 1 and len(sb) == 1:
            raise InvalidArgumentError(
                f"inconsistent tensor size, expected tensor [{ka}] and src [{kb}] to have the "
                f"same number of elements, but got {ka} and {kb} elements respectively"
            )
        raise InvalidArgumentError(
            f"mat1 and mat2 shapes cannot be multiplied ({_rows(sa)}x{ka} and {kb}x{_cols(sb)})"
        )
    if len(sa) == 1 and len(sb) == 1:
        shape = ()
    elif len(sb) == 1:  # (..., n, k) @ (k,) -> (..., n)
        shape = sa[:-1]
    elif len(sa) == 1:  # (k,) @ (..., k, m) -> (..., m)
        shape = sb[:-2] + sb[-1:]
    else:
        shape = broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])
    return fresh((tuple(shape), a.dtype, None))


def _rows(s):
    return int(np.prod(s[:-1])) if len(s) > 1 else 1


def _cols(s):
    return s[-1] if len(s) > 1 else 1


_MATMUL_NAMES = {(1, 1): "DotBackward0", (2, 1): "MvBackward0", (2, 2): "MmBackward0",
                 (1, 2): "SqueezeBackward4"}


def _matmul_name(a, b):
    """The grad_fn torch's matmul ends with, which follows how it folds the operands."""
    na, nb = len(a.shape), len(b.shape)
    if (na, nb) in _MATMUL_NAMES:
        return _MATMUL_NAMES[na, nb]
    if na == 2 and getattr(a, "requires_grad", False):
        # torch computes (b^T @ a^T)^T, then makes it contiguous unless a size is 1
        return "TransposeBackward0" if 1 in (a.shape[0], b.shape[-1]) else "CloneBackward0"
    return "UnsafeViewBackward0"


matmul = defop("matmul", infer=_matmul_meta, grad_name=_matmul_name, grad_uses=((1,), (0,)))(
    lambda xp, a, b: xp.matmul(a, b)
)


@matmul.def_backward
def _(ctx, g):
    a, b = ctx.saved  # each only when the other's gradient is needed
    na, nb = len(ctx.in_shapes[0]), len(ctx.in_shapes[1])
    if na == 1 and nb == 1:  # dot product: g is a scalar
        return (g * b if ctx.needs[0] else None, g * a if ctx.needs[1] else None)
    # 1-D operands act as a row (left) or a column (right) matrix; the engine sums the
    # broadcast batch dims of each gradient back to its input's shape
    g2 = g.unsqueeze(-2) if na == 1 else g
    g2 = g2.unsqueeze(-1) if nb == 1 else g2
    ga = gb = None
    if ctx.needs[0]:
        b2 = b.unsqueeze(-1) if nb == 1 else b
        ga = g2 @ b2.transpose(-1, -2)
        if na == 1:
            ga = ga.squeeze(-2)
    if ctx.needs[1]:
        a2 = a.unsqueeze(0) if na == 1 else a
        gb = a2.transpose(-1, -2) @ g2
        if nb == 1:
            gb = gb.squeeze(-1)
    return ga, gb
