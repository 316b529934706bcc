"""grad_fn nodes with torch's edges: one per differentiable argument of torch's kernel.

A node made by `record` has an edge per op input. torch's node has edges only for the
arguments its derivative formula covers, so `where(c, x, y)`'s has none for `c`,
`gather(x, d, index)`'s none for `index` and `x ** 2`'s none for the exponent, and
`next_functions` is shorter than the op's inputs. An op whose torch node is so declares it
where the op is defined: `edges_of("WhereBackward0", (1, 2))` registers the node class of
that name, whose nodes keep the edges (and the input shapes and dtypes backward's checks
read) of those inputs only. `needs` stays per input, as every node's (what a call saves is
chosen from it), and backward returns one gradient per kept edge: `to_edges` cuts its
per-input gradients, so one backward serves nodes of different edges (pow's overloads).

    >>> from gradserve import engine
    >>> x = engine.ones(2, requires_grad=True)
    >>> [type(n).__name__ for n, _ in engine.where(x > 0, x, 0.0).grad_fn.next_functions]
    ['AccumulateGrad', 'NoneType']
"""

from __future__ import annotations

from ..core.autograd import NODE_CLASSES, Node


class EdgeSubset(Node):
    """A node whose edges are the inputs `keep` of its op (a class attribute)."""

    __slots__ = ()
    keep: tuple[int, ...] = ()

    def __init__(self, op, name, edges, in_shapes, in_dtypes, saved, attrs, device):
        needs = None
        if edges:  # a node rebuilt from a description (state dir, server) is already cut
            needs = tuple([e[0] is not None for e in edges])
            keep = [i for i in self.keep if i < len(edges)]
            edges = tuple([edges[i] for i in keep])
            in_shapes = [in_shapes[i] for i in keep]
            in_dtypes = [in_dtypes[i] for i in keep]
        super().__init__(op, name, edges, in_shapes, in_dtypes, saved, attrs, device)
        self._needs = needs

    @property
    def needs(self) -> tuple[bool, ...]:
        """Per input of the op, as every node's (what a call saves and backward reads)."""
        if self._needs is None:
            out = [False] * (max(self.keep, default=-1) + 1)
            for (fn, _), i in zip(self.next_functions, self.keep, strict=False):
                out[i] = fn is not None
            self._needs = tuple(out)
        return self._needs


def edges_of(name: str, keep: tuple[int, ...]) -> str:
    """Make the grad_fn class `name` keep edges to the inputs `keep` only; returns `name`."""
    found = NODE_CLASSES.get(name)
    if found is not None and getattr(found, "keep", None) != tuple(keep):
        raise ValueError(f"grad_fn {name!r} is declared twice with different edges")
    NODE_CLASSES[name] = type(name, (EdgeSubset,), {"__slots__": (), "keep": tuple(keep),
                                                    "__module__": Node.__module__})
    return name


def zeros_like(g):
    """Zeros shaped like g, as a factory op (nothing recorded for a second derivative): torch's
    `zeros_like(grad)`, which stays 0 where `g * 0` would be NaN (an infinite gradient)."""
    return g._op("zeros", shape=tuple(g.shape), dtype=g.dtype.name, device=g.device)


def zeros_of(ctx, g, k: int):
    """Zeros shaped as the node's k-th kept input (torch's `zeros_like(input)`), on g's device."""
    return g._op("zeros", shape=tuple(ctx.in_shapes[k]), dtype=ctx.in_dtypes[k].name,
                 device=g.device)


def zero_grads(ctx, g) -> tuple:
    """torch's `zeros_like(input)` for each input that needs a gradient, for a derivative
    defined as zero (samplers, fills, rounded division). The node's edges must be its op's
    first inputs (`zeros_of` reads the kept inputs' shapes by position)."""
    return to_edges(ctx, tuple([zeros_of(ctx, g, k) if need else None
                                for k, need in enumerate(ctx.needs)]))


def input_needs(ctx, n: int) -> tuple[bool, ...]:
    """Which of the op's `n` inputs need a gradient (`ctx.needs`, padded to `n`)."""
    needs = tuple(ctx.needs)
    return needs + (False,) * (n - len(needs))


def to_edges(ctx, grads: tuple) -> tuple:
    """Per-input gradients cut to the node's edges."""
    keep = getattr(type(ctx), "keep", None)
    if keep is None:
        return grads[:len(ctx.next_functions)]
    return tuple([grads[i] for i in keep if i < len(grads)])
