"""Memory layout as torch sees it: element strides, and when a reshape can be a view.

Both tensor kinds know their strides without looking at data: a fresh result of a non-view op
is contiguous, and each view op derives its output's strides from its input's (the rules live
beside the ops, in their shape rules). So the client can tell, exactly as the server does,
whether `reshape` aliases its input (and shares its version counter) or copies it.

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
    """`column_major` of each of `inputs[i]` for i in `which` (False for a number)."""
    out = []
    for i in which:
        x = inputs[i]
        strides = getattr(x, "_strides", _NOT_A_TENSOR)
        if strides is None:  # contiguous (most matmul inputs): no strides computed, per op
            out.append(_contiguous_column_major(x.shape))
        else:
            out.append(strides is not _NOT_A_TENSOR and column_major(x.shape, strides))
    return tuple(out)


_NOT_A_TENSOR = object()


def _contiguous_column_major(shape: Sequence[int]) -> bool:
    """`column_major(shape, contiguous(shape))` without the strides: C-order strides
    (max(cols, 1), 1) equal (1, max(rows, 1)) only when both dims are at most 1."""
    return len(shape) == 2 and shape[0] <= 1 and shape[1] <= 1


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
