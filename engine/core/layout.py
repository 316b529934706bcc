"""Memory layout as torch sees it: element strides, and when a reshape can be a view.

Both tensor kinds know their strides without looking at data: each view op derives its
output's strides from its input's (the rules live beside the ops, in their shape rules), an
elementwise op lays its fresh result out as torch's TensorIterator does (`iterated`: its
operands' layout, so `x.t() * 2` is transposed too), and other fresh results are
contiguous. So the client can tell, exactly as the server does, whether `reshape` aliases
its input (and shares its version counter) or copies it; the engine's arrays hold the
layout the shape rule gave (`laid_out`).

Strides are in elements, as `torch.Tensor.stride()` gives them. Dims of size 1 may carry any
stride: nothing here depends on them.
"""

from __future__ import annotations

from collections.abc import Sequence


def contiguous(shape: Sequence[int]) -> tuple[int, ...]:
    """C-order strides of `shape` (a size-0 dim counts as 1, as torch computes them)."""
    if len(shape) == 2:  # matrices: most of what asks, per op
        return (max(shape[1], 1), 1)
    out = [1] * len(shape)
    acc = 1
    for i in range(len(shape) - 1, -1, -1):
        out[i] = acc
        acc *= max(shape[i], 1)
    return tuple(out)


def is_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether (shape, strides) is C-contiguous, ignoring size-1 dims (torch's rule)."""
    if 0 in shape:
        return True
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides), strict=True):
        if n != 1:
            if s != expected:
                return False
            expected *= n
    return True


def column_major(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether a matrix is laid out column by column (strides (1, rows), as `w.t()` of a
    contiguous `w`): torch's matrix products give such an input its gradient in that layout."""
    return len(shape) == 2 and strides[0] == 1 and strides[1] == max(1, shape[0])


def column_majors(inputs, which) -> tuple[bool, ...]:
    """`column_major` of each of `inputs[i]` for i in `which` (False for a number), written
    out here: per Linear. A contiguous input's strides are not computed: C-order strides
    (max(cols, 1), 1) equal (1, max(rows, 1)) only when both dims are at most 1."""
    out = []
    for i in which:
        x = inputs[i]
        strides = getattr(x, "_strides", _NOT_A_TENSOR)
        shape = x.shape if strides is not _NOT_A_TENSOR else ()
        if len(shape) != 2:
            out.append(False)
        elif strides is None:
            out.append(shape[0] <= 1 and shape[1] <= 1)
        else:
            out.append(strides[0] == 1 and strides[1] == max(1, shape[0]))
    return tuple(out)


_NOT_A_TENSOR = object()


def view_strides(shape: Sequence[int], strides: Sequence[int],
                 new_shape: Sequence[int]) -> tuple[int, ...] | None:
    """Strides under which `new_shape` views the memory of (shape, strides); None when the
    elements of the new shape cannot be laid over that memory, so reshape must copy.

    The old dims are cut into chunks that are each contiguous in memory; every chunk must be
    covered exactly by consecutive new dims, which then step through it in C order.
    """
    new_shape = tuple(new_shape)
    if not shape:
        return (1,) * len(new_shape)
    numel = 1
    for n in shape:
        numel *= n
    if numel == 0:
        return tuple(strides) if tuple(shape) == new_shape else contiguous(new_shape)
    out = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    base = strides[-1]  # the stride of the chunk being matched, in its innermost dim
    chunk = 1  # elements of the old chunk so far
    covered = 1  # elements of that chunk the new dims cover so far
    for d in range(len(shape) - 1, -1, -1):
        chunk *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != chunk * base):
            # the chunk ends at dim d: lay new dims over it, innermost first
            while view_d >= 0 and (covered < chunk or new_shape[view_d] == 1):
                out[view_d] = covered * base
                covered *= new_shape[view_d]
                view_d -= 1
            if covered != chunk:
                return None
            if d > 0:
                base = strides[d - 1]
                chunk = covered = 1
    if view_d != -1:
        return None
    return tuple(out)


def of_array(a) -> tuple[int, ...] | None:
    """The element strides of a numpy/cupy array, or None when it is C-contiguous."""
    if a.flags.c_contiguous:
        return None
    return tuple(s // a.itemsize for s in a.strides)


def unsqueezed(shape: Sequence[int], strides: Sequence[int], dim: int) -> tuple[int, ...]:
    """Strides after inserting a size-1 dim at `dim` (torch's choice for its stride)."""
    s = strides[dim] * shape[dim] if dim < len(shape) else 1
    return tuple(strides[:dim]) + (s,) + tuple(strides[dim:])


# -- a fresh elementwise result, laid out as torch's TensorIterator lays it out ---------------
def iterated(shape: Sequence[int], operands, dtype=None,
             own: int = -1) -> tuple[int, ...] | None:
    """The strides torch's TensorIterator gives the result of `shape` of an elementwise op
    over `operands` (tensors; a number counts as the 0-dim tensor torch wraps it in), None
    when they are the contiguous ones. An operand whose dtype is not `dtype` (the dtype the
    op computes in) counts as the copy torch's CPU iterator first makes of it (`preserved`);
    operand `own` is read in its own dtype (where's condition).

    torch's fast setups: operands all of the result's shape and all contiguous give a
    contiguous result, all channels-last (4 dims) a channels-last one, all non-overlapping
    and dense with equal strides those strides. Otherwise the dims are sorted fastest first
    by the operands' strides (`_iteration_order`) and the result is dense in that order.
    Contiguous operands give a contiguous result unless it is empty (checked first: per op)."""
    for x in operands:
        if getattr(x, "_strides", None) is not None:
            break
    else:
        if 0 not in shape:
            return None
    shape = tuple(shape)
    ops = [_operand(x, None if i == own else dtype) for i, x in enumerate(operands)]
    if all(s == shape for s, _ in ops):
        if all(is_contiguous(shape, st) for _, st in ops):
            return None
        if len(shape) == 4 and all(_channels_last_contiguous(shape, st) for _, st in ops):
            return _fresh(shape, _channels_last(shape))
        first = ops[0][1]
        if all(st == first for _, st in ops) and non_overlapping_and_dense(shape, first):
            return _fresh(shape, first)
    nd = len(shape)
    broadcast = []
    for s, st in ops:  # each operand's strides over the result's dims: 0 where broadcast
        pad = nd - len(s)
        broadcast.append((0,) * pad + tuple(0 if n == 1 and shape[pad + i] != 1 else st[i]
                                            for i, n in enumerate(s)))
    perm = _iteration_order(shape, broadcast)
    if perm == list(range(nd - 1, -1, -1)):
        return None
    out, step = [0] * nd, 1
    for d in perm:  # torch multiplies by the size as it is: a size-0 dim zeroes the rest
        out[d] = step
        step *= shape[d]
    return _fresh(shape, tuple(out))


def preserved(shape: Sequence[int], strides: Sequence[int] | None) -> tuple[int, ...] | None:
    """The strides of torch's `empty_like(x)` (memory_format=preserve_format: what a dtype
    cast inside an elementwise op makes): x's own when x is non-overlapping and dense, else
    dense in the order of x's strides (torch's `infer_dense_strides`). None: contiguous."""
    if strides is None:
        return None
    shape, strides = tuple(shape), tuple(strides)
    if is_contiguous(shape, strides) or _channels_last_contiguous(shape, strides) or \
            non_overlapping_and_dense(shape, strides):
        return _fresh(shape, strides)
    nd = len(shape)

    def should_swap(d0: int, d1: int) -> int:
        s0, s1 = strides[d0], strides[d1]
        if s0 == 0 or s1 == 0:  # an expanded dim keeps its place
            return 0
        if s0 != s1:
            return -1 if s0 < s1 else 1
        return 1 if shape[d0] > shape[d1] else 0

    perm = _insertion_sorted(nd, should_swap)
    out, step = [0] * nd, 1
    for d in perm:
        out[d] = step
        if shape[d] > 1:
            step *= shape[d]
    return tuple(out)


def _operand(x, dtype) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, strides) of an operand as the iterator sees it."""
    strides = getattr(x, "_strides", _NOT_A_TENSOR)
    if strides is _NOT_A_TENSOR:  # a number: torch's wrapped 0-dim tensor
        return (), ()
    shape = tuple(x.shape)
    if strides is None:
        return shape, contiguous(shape)
    if dtype is not None and x.dtype is not dtype:
        return shape, preserved(shape, strides) or contiguous(shape)
    return shape, tuple(strides)


def _iteration_order(shape: tuple[int, ...], strides: list) -> list[int]:
    """torch's `TensorIteratorBase::reorder_dimensions`: the dims, fastest first. Two dims
    are ordered by the first operand that strides both (neither broadcast) differently; an
    operand with equal strides there puts the larger dim later."""

    def should_swap(d0: int, d1: int) -> int:
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    return _insertion_sorted(len(shape), should_swap)


def _insertion_sorted(nd: int, should_swap) -> list[int]:
    """The dims from the last to the first, insertion-sorted as torch sorts them: an
    ambiguous comparison (0) moves on to the next dim down without stopping."""
    perm = list(range(nd - 1, -1, -1))
    for i in range(1, nd):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    return perm


def _fresh(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, ...] | None:
    return None if strides == contiguous(shape) else strides


def _channels_last_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    if len(shape) != 4:
        return False
    expected = 1
    for d in (1, 3, 2, 0):
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def _channels_last(shape: Sequence[int]) -> tuple[int, ...]:
    _, c, h, w = shape
    return (c * w * h, 1, c * w, c)


def non_overlapping_and_dense(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """torch's `is_non_overlapping_and_dense` (dims of size below 2 are free)."""
    if len(shape) == 1:
        return shape[0] < 2 or strides[0] == 1
    expected = 1
    for st, n in sorted((st, n) for n, st in zip(shape, strides, strict=True) if n >= 2):
        if st != expected:
            return False
        expected *= n
    return True


def laid_out(xp, arr, strides: Sequence[int]):
    """`arr`, or a copy of it, whose memory is laid out as `strides` (a dense layout, in
    elements) says in its dims of more than one element: what a fresh result's shape rule
    said. numpy's own choice for a ufunc's result (its order "K") mostly agrees already."""
    shape, item = arr.shape, arr.itemsize
    for n, s, got in zip(shape, strides, arr.strides, strict=True):  # a loop: per Linear
        if n > 1 and s * item != got:
            break
    else:
        return arr
    if arr.size == 0:
        return arr
    # slowest first; a size-1 dim ties with the next slower one and goes after it
    order = sorted(range(arr.ndim), key=lambda d: (-strides[d], shape[d] == 1))
    out = xp.empty(tuple(shape[d] for d in order), arr.dtype)
    out = out.transpose(tuple(order.index(d) for d in range(arr.ndim)))
    out[...] = arr
    return out
