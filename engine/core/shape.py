"""Shape rules shared by the engine and the client (which infers shapes without the server)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .errors import InvalidArgumentError, TensorIndexError


def shape_of(x) -> tuple[int, ...]:
    """A tensor's shape; a Python scalar is zero-dim."""
    return tuple(getattr(x, "shape", ()))


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    if len(shapes) == 2 and shapes[0] == shapes[1]:
        return tuple(shapes[0])
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for which, s in enumerate(shapes):
        for i, n in enumerate(s, ndim - len(s)):
            if n == out[i] or n == 1:
                continue
            if out[i] == 1:
                out[i] = n
                continue
            raise InvalidArgumentError(
                f"The size of tensor a ({out[i]}) must match the size of tensor "
                f"{'b' if which == 1 else chr(ord('a') + which)} ({n}) at non-singleton "
                f"dimension {i}"
            )
    return tuple(out)


def normalize_dim(dim: int, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise InvalidArgumentError(f"dim must be an int, got {type(dim).__name__}")
    lo, hi = (-ndim, ndim - 1) if ndim else (-1, 0)
    if not lo <= dim <= hi:
        raise TensorIndexError(
            f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})"
        )
    return dim % ndim if ndim else 0


def normalize_dims(dim, ndim: int) -> tuple[int, ...]:
    """None or () -> every dim (as torch); int or sequence -> sorted, unique, non-negative."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim or ())
    if not dims:
        return tuple(range(ndim))
    out = sorted({normalize_dim(d, ndim) for d in dims})
    if len(out) != len(dims):
        raise InvalidArgumentError("dim appears multiple times in the list of dims")
    return tuple(out)


def reduced_shape(shape: Sequence[int], dims: Iterable[int], keepdim: bool) -> tuple[int, ...]:
    dims = set(dims)
    if keepdim:
        return tuple(1 if i in dims else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in dims)


def numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def check_shape(shape) -> tuple[int, ...]:
    """Validate a user-given shape (a tuple of non-negative ints)."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"shape must be a sequence of ints, got {shape!r}") from None
    if any(s < 0 for s in out):
        raise InvalidArgumentError(
            f"Trying to create tensor with negative dimension {min(out)}: {list(out)}"
        )
    return out


def parse_size(args) -> tuple[int, ...]:
    """Accept f(2, 3), f((2, 3)) and f([2, 3]) like torch."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    elif len(args) == 1 and hasattr(args[0], "__iter__") and not isinstance(args[0], str):
        args = tuple(args[0])
    return check_shape(args)


def infer_reshape(shape: Sequence[int], new: Sequence[int]) -> tuple[int, ...]:
    new = [int(s) for s in new]
    total = numel(shape)
    if new.count(-1) > 1:
        raise InvalidArgumentError("only one dimension can be inferred")
    if -1 in new:
        rest = numel(s for s in new if s != -1)
        if rest == 0 and total == 0:
            raise InvalidArgumentError(
                f"cannot reshape tensor of 0 elements into shape {list(new)} because the "
                "unspecified dimension size -1 can be any value and is ambiguous"
            )
        if rest == 0 or total % rest:
            raise InvalidArgumentError(
                f"shape '{list(new)}' is invalid for input of size {total}"
            )
        new[new.index(-1)] = total // rest
    if any(s < 0 for s in new) or numel(new) != total:
        raise InvalidArgumentError(f"shape '{list(new)}' is invalid for input of size {total}")
    return tuple(new)
