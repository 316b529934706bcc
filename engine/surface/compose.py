"""torch's compositions of matmul, reshape and flatten, so their graphs have torch's nodes.

reshape: a view where the memory allows one (ViewBackward0 of a contiguous tensor,
ReshapeAliasBackward0 of another), else a contiguous clone `_unsafe_view`ed (CloneBackward0
under UnsafeViewBackward0), as torch's; flatten is that reshape (the tensor itself when it
flattens nothing).

matmul, as aten's `_matmul_impl`:
1-D @ 1-D, 2-D @ 1-D and 2-D @ 2-D are one kernel each (dot, mv, mm: one node, as torch's).
Otherwise, as torch: a vector @ matrix is `unsqueeze(0).mm(b).squeeze_(0)`; a 3-D or larger
tensor with a vector or matrix (either order) is folded into one mm or mv when torch folds it
(the matrix side needs a gradient, or the big side's leading dims fold without a copy):
`reshape` to rows, `mm`/`mv`, `_unsafe_view` back (and `mT().contiguous()` when the big
operand was on the right). The rest is batched, as torch's: both operands `expand`ed to the
broadcast batch and `reshape`d to 3-D, one `bmm`, `_unsafe_view` to the result's shape.

    >>> from gradserve import engine
    >>> a = engine.ones(5, 2, 3, requires_grad=True)
    >>> y = a @ engine.ones(3, 4)
    >>> type(y.grad_fn).__name__, type(y.grad_fn.next_functions[0][0]).__name__
    ('UnsafeViewBackward0', 'MmBackward0')
"""

from __future__ import annotations

import math

from ..core import grad_mode as _grad_mode
from ..core.dtype import TORCH_SCALAR_NAMES
from ..core.errors import InvalidArgumentError
from ..core.layout import contiguous, view_strides
from ..core.shape import broadcast_shapes, infer_reshape, normalize_dim


def _strides(t) -> tuple[int, ...]:
    stride = getattr(t, "stride", None)  # a test double may offer the bare tensor API
    return tuple(stride()) if stride is not None else contiguous(tuple(t.shape))


def reshape_is_view(t, shape) -> bool:
    """Whether `t.reshape(shape)` can be a view of t's memory (else torch copies)."""
    stride = getattr(t, "stride", None)
    if stride is None:
        return True
    return view_strides(tuple(t.shape), tuple(stride()), infer_reshape(tuple(t.shape),
                                                                        shape)) is not None


def reshape(t, shape):
    if not reshape_is_view(t, shape):
        copy = t._op("clone", t, contiguous=True)  # torch's clone(contiguous_format)
        return copy._op("_unsafe_view", copy, shape=shape)
    return t._op("reshape", t, shape=shape)


def flatten(t, start_dim=0, end_dim=-1):
    n = len(t.shape)
    if not n:
        return t._op("flatten", t, start_dim=int(start_dim), end_dim=int(end_dim))
    s, e = normalize_dim(int(start_dim), n), normalize_dim(int(end_dim), n)
    if s > e:
        raise InvalidArgumentError("flatten() has invalid args: start_dim cannot come after "
                                   "end_dim")
    if s == e:
        return t  # torch: nothing to flatten, the tensor itself
    shape = tuple(t.shape[:s]) + (math.prod(t.shape[s:e + 1]),) + tuple(t.shape[e + 1:])
    if reshape_is_view(t, shape):
        return t._op("flatten", t, start_dim=s, end_dim=e)
    return reshape(t, shape)


def _should_fold(a, b) -> bool:
    """torch's should_fold: the bigger operand is >= 3-D and the other <= 2-D, and folding
    it into rows keeps backward small (the other needs a gradient) or costs no copy."""
    a_larger = len(a.shape) >= len(b.shape)
    t1 = a if a_larger else b.mT
    other = b if a_larger else a
    if not (len(t1.shape) >= 3 and len(other.shape) <= 2):
        return False
    if other.requires_grad:
        return True
    if len(a.shape) == 2:  # the result would need a transposed copy
        return False
    shape, strides = tuple(t1.shape), _strides(t1)
    if math.prod(shape) == 0:
        return True
    return all(strides[i] == strides[i + 1] * shape[i + 1] for i in range(len(shape) - 2))


def _fold(a, b):
    transpose = len(b.shape) > len(a.shape)
    t1 = b.mT if transpose else a
    t2 = (a.t() if len(a.shape) == 2 else a) if transpose else b
    out_shape = tuple(t1.shape[:-1])
    rows = t1.reshape(math.prod(out_shape), t1.shape[-1])
    if len(t2.shape) == 2:
        product = rows.mm(t2)
        out = product._op("_unsafe_view", product, shape=out_shape + (t2.shape[1],))
        return out.mT.contiguous() if transpose else out
    product = rows.mv(t2)
    return product._op("_unsafe_view", product, shape=out_shape)


def matmul(a, b):
    """a @ b for tensors of one kind, with torch's graph."""
    da, db = len(a.shape), len(b.shape)
    if da == 0 or db == 0 or (da <= 2 and db <= 2 and (da, db) != (1, 2)):
        return a._op("matmul", a, b)  # one kernel (its errors are torch's)
    if (da, db) == (1, 2):
        product = a.unsqueeze(0).mm(b)
        return product._op("squeeze_result", product, dim=0)
    if not (_grad_mode.is_grad_enabled() and (a.requires_grad or b.requires_grad)) and (
            a.dtype is b.dtype and a.shape[-1] == b.shape[-2 if db > 1 else 0]):
        # no graph to show: the same product in one op (a bad operand goes torch's way, to
        # the kernel whose error torch raises)
        return a._op("matmul", a, b)
    a, b = _squeeze_batch_of_one(a, b)
    if _should_fold(a, b):
        return _fold(a, b)
    return _batched(a, b)


def _squeeze_batch_of_one(a, b):
    """torch (2.13) squeezes the batch of one of a 3-D operand that needs a gradient when the
    other's batch is larger, so that it folds into one mm and its gradient is not summed
    from a broadcast."""
    if len(a.shape) == len(b.shape) == 3 and a.shape[0] != b.shape[0]:
        if b.shape[0] == 1 and b.requires_grad:
            return a, b.squeeze(0)
        if a.shape[0] == 1 and a.requires_grad:
            return a.squeeze(0), b
    return a, b


def _batched(a, b):
    """torch's batched path: both operands expanded to the broadcast batch and reshaped to
    3-D, one bmm, `_unsafe_view` to the result's shape (a vector on the right as a column)."""
    da, db = len(a.shape), len(b.shape)
    n, m1 = (a.shape[-2] if da > 1 else 1), a.shape[-1]
    m2, p = (b.shape[-2], b.shape[-1]) if db > 1 else (b.shape[0], 1)
    batch = broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    if a.dtype is not b.dtype:  # bmm's check, before any node is recorded
        raise InvalidArgumentError(f"expected scalar type {TORCH_SCALAR_NAMES[a.dtype.name]} "
                                   f"but found {TORCH_SCALAR_NAMES[b.dtype.name]}")
    count = math.prod(batch)
    a3 = reshape(a.expand(batch + (n, m1)), (count, n, m1))
    if db == 1:
        b3 = reshape(b.expand(batch + (m2,)), (count, m2)).unsqueeze(2)
    else:
        b3 = reshape(b.expand(batch + (m2, p)), (count, m2, p))
    product = a3.bmm(b3)
    if db == 1:
        product = product.squeeze(-1)
    shape = batch + ((n,) if da > 1 else ()) + ((p,) if db > 1 else ())
    return product._op("_unsafe_view", product, shape=shape)


def with_alpha(t, name: str, other, alpha, inplace: bool = False):
    """t.add/sub(other, alpha=...) (alpha not 1): a number is scaled and added as torch
    wraps it; a tensor goes to the one op torch records (`add_alpha`, `sub_alpha`)."""
    if not hasattr(other, "shape"):
        other = other * alpha
        return t._inplace(name, other) if inplace else t._op(name, t, other)
    name += "_alpha"
    if inplace:
        return t._inplace(name, other, alpha=alpha)
    return t._op(name, t, other, alpha=alpha)
