"""Tensor indexing (`x[key]`) as data: a key becomes a JSON-friendly spec plus index tensors.

torch semantics: ints, slices, None and Ellipsis are applied first as views; integer index
tensors then gather along the dims they stand for (advanced indexing, a copy). Keeping the
key as plain data lets the client send it over the wire and infer the result's shape locally.
"""

from __future__ import annotations

import numbers

from .dtype import DType, bool_, uint8
from .errors import InvalidArgumentError, TensorIndexError
from .shape import broadcast_shapes


def _is_tensor(x) -> bool:
    return isinstance(getattr(x, "dtype", None), DType)


def encode_key(key) -> tuple[tuple, list]:
    """x[key] -> (spec, index tensors). spec items: ["int", i], ["slice", a, b, c], ["none"],
    ["ellipsis"], ["tensor", k] (k-th index tensor), ["list", [ints]], ["mask", k, ndim]
    (k-th index tensor, a bool mask over ndim dims)."""
    if not isinstance(key, tuple):
        key = (key,)
    spec, tensors = [], []
    for k in key:
        if _is_tensor(k):
            if k.dtype is bool_ and len(k.shape):
                # a mask stands for as many dims as it has; what it selects is data
                spec.append(("mask", len(tensors), len(k.shape)))
            elif k.dtype.kind == 1 and k.dtype is not uint8:
                spec.append(("tensor", len(tensors)))
            else:
                raise InvalidArgumentError(
                    "tensors used as indices must be long, int, byte or bool tensors")
            tensors.append(k)
        elif k is None:
            spec.append(("none",))
        elif k is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(k, slice):
            spec.append(("slice", *(_opt_int(v) for v in (k.start, k.stop, k.step))))
        elif isinstance(k, bool):
            raise InvalidArgumentError("indexing with a Python bool is not supported")
        elif isinstance(k, numbers.Integral):
            spec.append(("int", int(k)))
        elif isinstance(k, (list, tuple)) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in k
        ):
            spec.append(("list", [int(v) for v in k]))
        else:
            raise InvalidArgumentError(
                "only integers, slices (`:`), ellipsis (`...`), None and long or index tensors "
                f"are valid indices (got {type(k).__name__})"
            )
    return tuple(spec), tensors


def _opt_int(v):
    if v is None:
        return None
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return int(v)
    if _is_tensor(v):
        raise InvalidArgumentError("slice bounds must be Python ints, not tensors")
    raise InvalidArgumentError(f"slice indices must be integers or None, got {type(v).__name__}")


def expand_key(spec, ndim) -> list[tuple[tuple, int]]:
    """Each item of the key with its position in the key, every `...` replaced by the full
    slices it stands for and full slices appended for the dims left over. As torch's
    applySlicing, each `...` skips the dims the key does not name (ndim less the dims its
    ints, slices, index tensors and masks take), so a key with two of them reaches past
    the tensor's dims; `plan` and the surface's `_apply_slicing` say what that does."""
    consumed = sum(s[2] if s[0] == "mask" else 1 for s in spec
                   if s[0] not in ("none", "ellipsis"))
    if consumed > ndim:
        raise TensorIndexError(
            f"too many indices for tensor of dimension {ndim}"
        )
    out = []
    for real, s in enumerate(spec):
        if s[0] == "ellipsis":
            out.extend([(("slice", None, None, None), real)] * (ndim - consumed))
        else:
            out.append((tuple(s) if not isinstance(s, tuple) else s, real))
    out.extend([(("slice", None, None, None), len(spec))] * (ndim - sum(
        s[2] if s[0] == "mask" else 1 for s, _ in out if s[0] != "none")))
    return out


def _expand_ellipsis(spec, ndim):
    """The key's items with every `...` expanded (see `expand_key`). An op's key (a wire
    request's) that reaches past the tensor's dims keeps only the items that fit: full
    slices past them change nothing, anything else there is torch's IndexError."""
    out, dim = [], 0
    for s, _ in expand_key(spec, ndim):
        if s[0] != "none" and dim >= ndim and s[1:] == (None, None, None):
            continue
        out.append(s)
        if s[0] not in ("none", "int"):
            dim += s[2] if s[0] == "mask" else 1
        elif s[0] == "int":
            dim += 1
    if dim > ndim:
        raise TensorIndexError(f"too many indices for tensor of dimension {ndim}")
    return out


def has_mask(spec) -> bool:
    return any(s[0] == "mask" for s in spec)


def check_masks(shape, spec, index_shapes) -> None:
    """torch's check that each mask matches the dims it stands for."""
    dim = 0
    for s in _expand_ellipsis(spec, len(shape)):
        if s[0] == "none":
            continue
        if s[0] != "mask":
            dim += 1
            continue
        mshape = tuple(index_shapes[s[1]])
        for j, n in enumerate(mshape):
            if dim + j >= len(shape) or shape[dim + j] != n:
                raise TensorIndexError(
                    f"The shape of the mask {list(mshape)} at index {j} does not match the "
                    f"shape of the indexed tensor {list(shape)} at index {dim + j}")
        dim += len(mshape)


def resolve_masks(xp, spec, arrays) -> tuple[tuple, list]:
    """With the data at hand, each mask becomes the integer index tensors of its true
    elements (one per dim it stands for), as numpy and torch read a mask."""
    if not has_mask(spec):
        return spec, list(arrays)
    out, tensors = [], []
    for s in spec:
        if s[0] == "tensor":
            out.append(("tensor", len(tensors)))
            tensors.append(arrays[s[1]])
        elif s[0] == "mask":
            for idx in xp.nonzero(arrays[s[1]]):
                out.append(("tensor", len(tensors)))
                tensors.append(idx)
        else:
            out.append(s)
    return tuple(out), tensors


def plan(shape, spec, index_shapes):
    """Return (basic key, advanced positions, result shape, grad_fn name).

    basic key: a tuple for numpy basic indexing, with index tensors replaced by full slices;
    advanced: [(dim in the basic result, tensor number or list)] to gather afterwards.
    """
    spec = _expand_ellipsis(spec, len(shape))
    key, adv, out_shape = [], [], []
    dim = 0
    name = "AliasBackward0"
    for s in spec:
        kind = s[0]
        if kind == "none":
            key.append(None)
            out_shape.append(1)
            name = "UnsqueezeBackward0"
            continue
        size = shape[dim]
        if kind == "int":
            i = s[1]
            if not -size <= i < size:
                raise TensorIndexError(
                    f"index {i} is out of bounds for dimension {dim} with size {size}"
                )
            key.append(i)
            name = "SelectBackward0"
        elif kind == "slice":
            start, stop, step = s[1], s[2], s[3]
            if step is not None and step <= 0:
                raise InvalidArgumentError("step must be greater than zero")
            sl = slice(start, stop, step)
            key.append(sl)
            n = len(range(*sl.indices(size)))
            out_shape.append(n)
            if sl.indices(size) != (0, size, 1):
                name = "SliceBackward0"
        else:  # tensor or list: a full slice now, a gather later
            key.append(slice(None))
            adv.append((len(out_shape), s[1] if kind == "tensor" else list(s[1]), kind))
            out_shape.append(size)
        dim += 1
    if adv:
        shapes = [index_shapes[a[1]] if a[2] == "tensor" else (len(a[1]),) for a in adv]
        for a in adv:
            if a[2] == "list":
                size = out_shape[a[0]]
                for v in a[1]:
                    if not -size <= v < size:
                        raise TensorIndexError(
                            f"index {v} is out of bounds for dimension with size {size}"
                        )
        bshape = broadcast_shapes(*shapes)
        positions = [a[0] for a in adv]
        adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
        rest = [n for i, n in enumerate(out_shape) if i not in positions]
        if adjacent:
            at = positions[0]
            out_shape = rest[:at] + list(bshape) + rest[at:]
        else:
            out_shape = list(bshape) + rest
        name = "IndexBackward0"
    return tuple(key), adv, tuple(out_shape), name


def basic_strides(shape, strides, spec) -> tuple[int, ...]:
    """Element strides of x[key] for a basic key: ints drop a dim, slices step through it,
    None inserts one (with unsqueeze's stride)."""
    spec = _expand_ellipsis(spec, len(shape))
    out, dim = [], 0
    for s in spec:
        kind = s[0]
        if kind == "none":
            out.append(strides[dim] * shape[dim] if dim < len(shape) else 1)
            continue
        if kind == "slice":
            out.append(strides[dim] * (s[3] or 1))
        dim += 1
    return tuple(out)


def gather(xp, basic, adv, ndim, index_arrays):
    """Apply the advanced part of a plan to the basic-indexed array."""
    key = [slice(None)] * ndim
    for pos, ref, kind in adv:
        key[pos] = index_arrays[ref] if kind == "tensor" else xp.asarray(ref, dtype="int64")
        size, idx = basic.shape[pos], key[pos]
        out_of_range = (idx < -size) | (idx >= size)
        if out_of_range.any():  # torch's message rather than numpy's
            raise TensorIndexError(
                f"index {int(idx[out_of_range].reshape(-1)[0])} is out of bounds for dimension "
                f"{pos} with size {size}"
            )
    return basic[tuple(key)]
