"""torch.tensordot and torch.cdist for both tensor kinds: compositions of existing ops
(permute, reshape, mm; subtraction and the norm op) with torch's results and gradients."""

from __future__ import annotations

import math

from ..core.errors import InvalidArgumentError
from ..core.layout import view_strides
from ..core.shape import infer_reshape
from ..ops.linalg.distance import use_mm


def torch_reshape(t, shape):
    """t.reshape(shape) as torch's C++ records it: a view of a contiguous tensor
    (ViewBackward0), `_reshape_alias` of one that is not but can be viewed
    (ReshapeAliasBackward0), else a clone's UnsafeViewBackward0."""
    if t.is_contiguous():
        return t.reshape(shape)
    if view_strides(tuple(t.shape), t.stride(), infer_reshape(tuple(t.shape), shape)) is None:
        copy = t.clone()  # aten's copy: _unsafe_view of a contiguous clone
        return copy._op("_unsafe_view", copy, shape=tuple(shape))
    return t._op("_reshape_alias", t, shape=tuple(shape))


def tensordot(a, b, dims=2):
    """torch.tensordot: contract `dims` trailing dims of a with leading dims of b, or the
    dims the two lists name."""
    if isinstance(dims, int):
        if dims < 0:
            raise InvalidArgumentError(
                f"tensordot expects dims >= 0, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = dims
        da = [da] if isinstance(da, int) else list(da)
        db = [db] if isinstance(db, int) else list(db)
        if len(da) != len(db):
            raise InvalidArgumentError("both dimension lists should have same length")
    da = [d % a.ndim for d in da]
    db = [d % b.ndim for d in db]
    for x, y in zip(da, db, strict=True):
        if a.shape[x] != b.shape[y]:
            raise InvalidArgumentError(
                f"contracted dimensions need to match, but first has size {a.shape[x]} in dim "
                f"{x} and second has size {b.shape[y]} in dim {y}")
    free_a = [d for d in range(a.ndim) if d not in da]
    free_b = [d for d in range(b.ndim) if d not in db]
    k = math.prod(a.shape[d] for d in da)
    left = torch_reshape(a.permute(*free_a, *da), (-1, k))
    right = torch_reshape(b.permute(*db, *free_b), (k, -1))
    return left.mm(right).reshape([a.shape[d] for d in free_a] + [b.shape[d] for d in free_b])


def cdist(x1, x2, p=2.0, compute_mode=None):
    """torch.cdist: the p-norm distance between each row of x1 and each row of x2, through
    torch's kernels (`CdistBackward0`, or for p = 2 on many rows `EuclideanDistBackward0`
    under a view)."""
    if x1.ndim >= 2 and x2.ndim >= 2 and use_mm(float(p), x1.shape[-2], x2.shape[-2],
                                                   compute_mode):
        out = x1._op("euclidean_dist", x1, x2)
        return out.view(out.shape)
    return x1._op("cdist", x1, x2, p=float(p), compute_mode=compute_mode)
