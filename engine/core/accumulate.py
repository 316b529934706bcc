"""AccumulateGrad's work: a gradient that reaches a leaf (or a tensor that retains its grad)
becomes its `.grad`, or is added into the one it has, keeping torch's rules on identity,
aliasing and layout. The backward walk (`autograd.run_backward`) and a server's planned
backward (`surface/prepared_backward.py`) both call it.
"""

from __future__ import annotations

from .backend import writable


def _owner(t):
    a = t._data
    return id(a.base if a.base is not None else a)


def _accumulate(t, g, create_graph: bool, seen_owners: set, written: list | None,
                retained: bool = False) -> None:
    """AccumulateGrad: t.grad becomes g, or the sum with the grad t has (added in place when
    that grad is outside the graph and writable, as torch keeps .grad's identity). Without
    data (`written` a list) it only notes t and whether that add would be in place.
    `retained`: t is a non-leaf that retains its grad (torch keeps a contiguous copy)."""
    if written is not None:
        written.append((t, not create_graph and t._grad_accepts_add()))
        return
    if create_graph:
        if t._grad is None and (retained or t._data.flags.c_contiguous) \
                and not g._data.flags.c_contiguous:
            g = g.contiguous()  # the layout contract (`_owned`), as a differentiable copy
        t._grad = g if t._grad is None else t._grad + g
        return
    if (g._grad_fn if g._view_steps is None else g.grad_fn) is not None:  # per leaf per step
        g = g.detach()
    current = t._grad
    if current is None:
        t._grad = _owned(g, seen_owners, retained or t._data.flags.c_contiguous)
    elif t._grad_accepts_add():  # as torch: .grad keeps its identity across backward calls
        current._inplace("add", g)
    else:
        t._grad = current + g


def addable(a) -> bool:
    """Whether `a` may take in-place adds: writable memory, and not a broadcast view."""
    strides = a.strides
    return writable(a) and (0 not in strides or all(
        st != 0 or n <= 1 for st, n in zip(strides, a.shape, strict=True)))


def _owned(g, seen_owners: set, contiguous: bool):
    """g, or a copy of it, that may become a .grad: writable, aliasing no other .grad (a
    backward may hand one array to several leaves), not a broadcast view, and contiguous
    where torch's gradient layout contract says so (`contiguous`: for a contiguous leaf, and
    for a retained grad)."""
    a = g._data
    owner = id(a.base if a.base is not None else a)  # `_owner(g)`, inline: per leaf per step
    if contiguous and not a.flags.c_contiguous:
        g = g.contiguous()
        owner = _owner(g)
    elif owner in seen_owners or not addable(a):
        g = g.clone()
        owner = _owner(g)
    seen_owners.add(owner)
    return g
