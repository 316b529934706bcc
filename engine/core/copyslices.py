"""torch's CopySlices: the node a base takes when an in-place op writes through one of its
views (`x[0] = v`, `x.narrow(0, 1, 2).copy_(v)`, `x[:, 1].mul_(w)`).

As torch's, it holds the in-place op's own node (`fn`) inside it rather than as an edge: its
edges are the base's previous history followed by fn's edges past the first (fn's first
input is the view's old value, which the base's edge stands for). Its backward hands the
gradient outside the view's region through to the base, runs fn's backward on the region
and puts fn's gradient for the old value back there; fn's other gradients go to fn's other
inputs. fn's saved tensors are checked and freed with it, so a second backward or a later
write to a saved tensor raises as torch's does. An in-place op that keeps its output (exp_)
keeps the view as torch does: unpacked for a double backward it has the view's history over
this node, never the write's own node (which runs only inside this one).
"""

from __future__ import annotations

import weakref

from . import grad_mode as _grad_mode
from .autograd import NODE_CLASSES, Node, SavedTensor, _call, node_class
from .registry import Meta, get_op


class CopySlices(Node):
    """A base's grad_fn after a write through its view; `fn` is the write's node (None for
    the plain scatter op of that name, whose edges are its two inputs)."""

    __slots__ = ("fn",)

    def __init__(self, *args, fn: Node | None = None) -> None:
        super().__init__(*args)
        self.fn = fn

    def name(self) -> str:
        return "torch::autograd::CopySlices"  # torch's name(); its type is CopySlices

    def check_saved(self) -> None:
        super().check_saved()
        if self.fn is not None:
            self.fn.check_saved()

    def free(self) -> None:
        super().free()
        if self.fn is not None:
            self.fn.free()


NODE_CLASSES["CopySlices"] = NODE_CLASSES["torch::autograd::CopySlices"] = CopySlices


def copy_slices(scatter, base, base_edge: tuple, steps, fn: Node) -> CopySlices:
    """The node `base` (whose history `base_edge` was) takes after the in-place op whose
    node is `fn` wrote through its view that `steps` make (`scatter`: the view_scatter op,
    whose backward runs this node's)."""
    return CopySlices(scatter, scatter.grad_name, (base_edge, *fn.next_functions[1:]),
                      [base.shape, *fn.in_shapes[1:]], [base.dtype, *fn.in_dtypes[1:]], (),
                      {"steps": steps}, base._device, fn=fn)


def backward(ctx: CopySlices, g) -> tuple:
    """The gradients of a CopySlices node's edges from its output's gradient `g`."""
    steps = ctx.attrs["steps"]
    region = g
    for name, attrs, nr in steps:  # the view's region of g (views of g, no copy)
        region = region._op(name, region, **attrs)
        if isinstance(region, tuple):
            region = region[nr]
    fn = ctx.fn
    inner = _call(fn, {0: region})
    inner = list(inner) + [None] * (len(fn.next_functions) - len(inner))
    g_base = None
    if ctx.needs[0]:
        g_old = inner[0] if inner[0] is not None else region * 0
        g_base = g._op("view_scatter", g, g_old, steps=steps)
    return (g_base, *inner[1:])


def replay(cur: Meta, e: tuple, device: str, steps) -> tuple[Node, int]:
    """The grad_fn (and output number) of the view that `steps` (view ops) make of a tensor
    of meta `cur` whose history is the edge `e`, once that tensor changed in place since the
    view's history was recorded: as torch's (which keeps no view function for views of
    strided tensors), one AsStridedBackward0 over the base's current history, whatever view
    ops made it. Its backward runs those ops' backwards (`view_nodes`)."""
    op = get_op("restride")  # engine/ops/shape/views.py
    return node_class(op.grad_name)(op, op.grad_name, (e,), [cur.shape], [cur.dtype], (),
                                    {"steps": steps}, device), 0


_ANY = object()  # the edge of a node that only runs its backward: "needs a gradient"


def view_nodes(cur: Meta, device: str, steps) -> list[tuple[Node, int]]:
    """The nodes (and output numbers) that recording the view ops `steps` on a tensor of meta
    `cur` gives, on shapes alone (view ops save nothing for backward), first to last."""
    nodes, e = [], (_ANY, 0)
    for name, attrs, nr in steps:
        op = get_op(name)
        out = op.infer(cur, **attrs)
        name = op.node_name((cur,), attrs, out)
        node = node_class(name)(op, name, (e,), [cur.shape], [cur.dtype], (), attrs, device)
        nodes.append((node, nr))
        cur, e = (out if type(out) is Meta else out[nr]), (node, nr)
    return nodes


def restride_backward(ctx: Node, g) -> tuple:
    """AsStridedBackward0's gradient for the base: g through each view op's backward, last
    to first (so a view that reads an element twice, as expand's, adds both)."""
    steps = ctx.attrs["steps"]
    for node, nr in reversed(view_nodes(Meta(tuple(ctx.in_shapes[0]), ctx.in_dtypes[0]),
                                        ctx.device, steps)):
        g = _call(node, {nr: g})[0]
        if g is None:
            return (None,)
    return (g,)


# A root whose own dims an in-place view op (transpose_) changed, by id: (a weak reference
# to it, [(its version after the change, the view step that takes its new layout back to
# the old)], latest last). Views made before keep steps from the old layout; `realigned`
# puts those steps in front of theirs. (Keyed by id: tensors compare elementwise.)
RELAID: dict[int, tuple] = {}


def relaid(root, version: int, step: tuple) -> None:
    """Note that `root`'s layout changed in place at `version`; `step` undoes it."""
    key = id(root)
    entry = RELAID.get(key)
    if entry is None or entry[0]() is not root:
        entry = RELAID[key] = (weakref.ref(root, lambda _, k=key: RELAID.pop(k, None)), [])
    entry[1].append((version, step))


def realigned(view):
    """The view's steps from its root's current layout (its own `_view_steps` unless the
    root was transposed in place since they were recorded, at `_view_version`)."""
    entry = RELAID.get(id(view._base)) if RELAID else None
    if entry is None or entry[0]() is not view._base:
        return view._view_steps
    since = view._view_version
    back = tuple(step for version, step in reversed(entry[1]) if version > since)
    return back + view._view_steps


class SavedViewOutput(SavedTensor):
    """The output an in-place op through a view keeps: unpacked with grad mode on, it has
    the view's history over the base's CopySlices node (held weakly: that node holds the one
    this is saved on, and it is alive whenever that one's backward runs)."""

    __slots__ = ("node", "base", "steps")

    def __init__(self, view, node: CopySlices, base: Meta, steps) -> None:
        super().__init__(view, output_nr=0)
        self.node, self.base, self.steps = weakref.ref(node), base, steps

    def unpack(self, owner: Node):
        out = super().unpack(owner)
        node = self.node()
        if node is not None and _grad_mode.is_grad_enabled() and out.grad_fn is owner:
            out.grad_fn, out._output_nr = replay(self.base, (node, 0), node.device, self.steps)
        return out
