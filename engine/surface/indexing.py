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
from ..core.indexing import _expand_ellipsis, encode_key

ADVANCED = ("tensor", "list", "mask")
_FULL = ("slice", None, None, None)


def _whole(s, size: int) -> bool:
    """torch skips a slice item that keeps the whole dim as it is."""
    _, start, stop, step = s
    return start in (None, 0) and step in (None, 1) and (stop is None or stop >= size)


def getitem(t, key):
    spec, tensors = encode_key(key)
    if not isinstance(key, tuple):
        if spec[0][0] in ADVANCED:  # a copy (with a mask its length is data)
            return t._op("index", t, *tensors, key=spec)
        return t._op("getitem", t, key=spec)  # a view sharing the version counter
    out, dim, rest = t, 0, []
    for real, s in enumerate(_expand_ellipsis(spec, len(t.shape))):
        kind = s[0]
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
    if not tensors and not any(s[0] == "list" for s in rest):
        # nothing changed: a fresh alias (torch's x[...] and x[:, :])
        return t._op("getitem", t, key=(("ellipsis",),)) if out is t else out
    while rest[-1] == _FULL:
        rest.pop()
    return out._op("index", out, *tensors, key=tuple(rest))
