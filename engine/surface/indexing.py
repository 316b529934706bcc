"""`x[key]` as torch applies it, so the graph has torch's nodes.

A bare key is one op, as torch's fast paths: `x[i]` a select, `x[a:b]` a slice (even `x[:]`),
`x[None]` an unsqueeze, `x[...]` an alias, `x[idx]` an index. A tuple key is applied item by
item, left to right, one view per item that changes something (torch's applySlicing): an int
selects, a slice that is not the whole dim (start 0, step 1, stop past the end) slices, None
unsqueezes; index tensors, lists and masks are gathered last, by one index op on that view.
So `x[None, :, 0]` is an UnsqueezeBackward0 under a SelectBackward0, and `x[0, idx]` an
IndexBackward0 under a SelectBackward0, as in torch; a key that changes nothing is an alias.

    >>> from gradserve import engine
    >>> x = engine.ones(2, 3, requires_grad=True)
    >>> y = x[None, :, 0]
    >>> type(y.grad_fn).__name__, type(y.grad_fn.next_functions[0][0]).__name__
    ('SelectBackward0', 'UnsqueezeBackward0')
"""

from __future__ import annotations

from ..core.errors import TensorIndexError
from ..core.indexing import encode_key, expand_key

ADVANCED = ("tensor", "list", "mask")
_FULL = ("slice", None, None, None)


def _whole(s, size: int) -> bool:
    """torch skips a slice item that keeps the whole dim as it is."""
    _, start, stop, step = s
    return start in (None, 0) and step in (None, 1) and (stop is None or stop >= size)


def getitem(t, key):
    spec, tensors = encode_key(key)
    if not isinstance(key, tuple):
        _bare_on_0d(t, spec[0][0])
        if spec[0][0] in ADVANCED:  # a copy (with a mask its length is data)
            return t._op("index", t, *tensors, key=spec)
        return t._op("getitem", t, key=spec)  # a view sharing the version counter
    out, rest = _apply_slicing(t, spec)
    if not tensors and not any(s[0] == "list" for s in rest):
        # nothing changed: a fresh alias (torch's x[...] and x[:, :])
        return t._op("getitem", t, key=(("ellipsis",),)) if out is t else out
    return out._op("index", out, *tensors, key=rest)


def _apply_slicing(t, spec) -> tuple:
    """torch's applySlicing: the view the basic items of a tuple key make, item by item,
    and the key of what is left for one index op on it (advanced items, each at its dim;
    trailing full slices dropped)."""
    out, dim, rest = t, 0, []
    for s, real in expand_key(spec, len(t.shape)):
        kind = s[0]
        if dim >= len(out.shape) + (kind == "none"):  # past the dims: a key with two `...`
            if _past_the_dims(s, real, dim, len(out.shape)):
                rest.append(_FULL if kind == "slice" else s)
                dim += 1
            continue
        if kind == "int":
            size = out.shape[dim]
            if not -size <= s[1] < size:  # torch counts the key's items, Nones included
                raise TensorIndexError(f"index {s[1]} is out of bounds for dimension {real} "
                                       f"with size {size}")
            out = out._op("getitem", out, key=(_FULL,) * dim + (s,))
            continue
        if kind == "slice" and not _whole(s, out.shape[dim]):
            if s[3] in (None, 1) and slice(s[1], s[2]).indices(out.shape[dim])[:2] == (
                    0, out.shape[dim]):
                out = out.narrow(dim, 0, out.shape[dim])  # e.g. x[:, -n:]: still a slice
            else:
                out = out._op("getitem", out, key=(_FULL,) * dim + (s,))
        elif kind == "none":
            out = out._op("getitem", out, key=(_FULL,) * dim + (s,))
        rest.append(_FULL if kind in ("slice", "none") else s)
        dim += s[2] if kind == "mask" else 1
    while rest and rest[-1] == _FULL:
        rest.pop()
    if len(rest) > len(out.shape):  # an index past the dims
        raise TensorIndexError(f"too many indices for tensor of dimension {len(out.shape)} "
                               f"(got {len(rest)})")
    return out, tuple(rest)


def _past_the_dims(s, real: int, dim: int, n: int) -> bool:
    """What torch does with an item of a key (with two `...`) that lands at `dim`, past the
    `n` dims of the view so far: a full slice changes nothing (True: it still counts a dim,
    as an index tensor there does); an int, a partial slice or None is torch's error."""
    kind = s[0]
    if kind in ADVANCED or (kind == "slice" and s[1:] == (None, None, None)):
        return True
    if kind == "int":  # torch reads the size past the end: 0, in practice
        raise TensorIndexError(f"index {s[1]} is out of bounds for dimension {real} with size 0")
    lo, hi = (-(n + 1), n) if kind == "none" else (-n, n - 1)
    raise TensorIndexError(
        f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")


def setitem(t, key, value) -> None:
    """`t[key] = value` as torch's: the key's basic items make a view (none when they change
    nothing: `x[:] = v` and `x[...] = v` write into x itself), into which value is copied
    (`copy_to`), or, with index tensors, lists or masks, index_put_ on that view with value
    viewed without its leading ones."""
    spec, tensors = encode_key(key)
    if isinstance(key, tuple):
        dst, rest = _apply_slicing(t, spec)
    else:  # torch's set_item for one index: a whole slice and an ellipsis keep t itself
        kind, rest = spec[0][0], spec
        _bare_on_0d(t, kind)
        if kind in ADVANCED:
            dst = t
        else:
            dst = t if kind == "ellipsis" or (kind == "slice" and _whole(spec[0], t.shape[0])) \
                else t._op("getitem", t, key=spec)
            rest = ()
    if not tensors and not any(s[0] == "list" for s in rest):
        copy_to(dst, value)
        return
    if _is_tensor(value) and value.shape != (stripped := _prefix_ones_stripped(value.shape)):
        value = value.view(stripped)
    dst._inplace("index_put", value, *tensors, key=rest)


def _bare_on_0d(t, kind: str) -> None:
    """torch's errors for an int or a slice alone as the key of a 0-dim tensor."""
    if t.shape:
        return
    if kind == "int":
        raise TensorIndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in "
                               "Python or `tensor.item<T>()` in C++ to convert a 0-dim tensor "
                               "to a number")
    if kind == "slice":
        raise TensorIndexError("slice() cannot be applied to a 0-dim tensor.")


def copy_to(dst, src) -> None:
    """torch's copy_to, the write of `dst[...] = src`: a number fills (as a wrapped number);
    a tensor of dst's shape is copied; a 0-dim one on the cpu fills (FillBackward3);
    otherwise src, viewed without its leading ones and expanded to dst's shape, is copied,
    so the source's history gains torch's ViewBackward0 (and ExpandBackward0)."""
    if not _is_tensor(src):
        dst._inplace("fill", src, wrapped=True)
        return
    if src.shape == dst.shape:
        dst.copy_(src)
        return
    if not src.shape and src.device == "cpu":
        dst.fill_(src)
        return
    src = src.view(_prefix_ones_stripped(src.shape))
    if src.shape != dst.shape:
        src = src.expand(dst.shape)
    dst.copy_(src)


def _prefix_ones_stripped(shape) -> tuple:
    """torch's slicePrefix1sSize: the shape without its leading ones."""
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return tuple(shape[i:])


def _is_tensor(x) -> bool:
    return hasattr(x, "_vc") and hasattr(x, "shape")
