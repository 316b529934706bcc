"""Graph nodes and the backward pass.

A Node is one recorded op: its edges to the nodes that produced its inputs (`next_functions`),
the tensors its backward needs (saved with their versions) and its attrs. `run_backward` walks
the graph iteratively in topological order using dependency counts, so graphs of any depth
work, accumulates into leaves (through AccumulateGrad nodes, as torch shows them) and frees
each node's saved tensors once it has run unless retain_graph.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence

from . import anomaly as _anomaly
from . import grad_mode as _grad_mode
from . import tape as _tape
from .accumulate import _accumulate, _owner
from .dtype import TORCH_TYPE_NAMES
from .errors import AutogradError

_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward."
)


def _describe(shape, dtype) -> str:
    return f"[gradserve.{TORCH_TYPE_NAMES[dtype.name]} [{', '.join(map(str, shape))}]]"


class SavedTensor:
    """A tensor kept for backward, with the version it had when saved.

    An op's own output is kept as its data and version counter only (`_saved_data()`: the
    array in the engine, nothing in the client's image of the graph), not as the tensor nor
    with a link to the node (either would be a Node -> ... -> Node cycle that only the cyclic
    garbage collector frees); unpack rebuilds it, wired to the node that asks.
    """

    __slots__ = ("tensor", "data", "kind", "vc", "version", "output_nr", "shape", "dtype")

    def __init__(self, tensor, output_nr: int | None = None):
        self.vc = tensor._vc
        self.version = tensor._vc.value
        self.output_nr = output_nr  # None: an input of the node; else which of its outputs
        if output_nr is None:
            self.tensor, self.data = tensor, None
        else:
            self.tensor, self.data = None, tensor._saved_data()
            self.kind, self.shape, self.dtype = type(tensor), tensor.shape, tensor.dtype

    def unpack(self, owner: Node):
        t = self.tensor
        if self.vc.value != self.version:
            self._raise_modified(owner)
        if t is not None:
            return t
        out = self.kind._from_saved(self.data, owner.device, self.dtype)
        out._vc = self.vc
        if _grad_mode._state.enabled and self.dtype.is_floating_point:
            # create_graph: the output keeps its history
            out.grad_fn, out._output_nr = owner, self.output_nr
        return out

    def check(self, owner: Node) -> None:
        if self.vc.value != self.version:
            self._raise_modified(owner)

    def _raise_modified(self, owner: Node):
        t = self.tensor
        if t is not None:
            shape, dtype, producer, nr = t.shape, t.dtype, t.grad_fn, t._output_nr
        else:
            shape, dtype, producer, nr = self.shape, self.dtype, owner, self.output_nr
        where = ""
        if producer is not None:  # torch names the function without "Backward0"
            fn = re.sub(r"Backward\d*$", "", producer.name())
            where = f", which is output {nr} of {fn},"
        raise AutogradError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: {_describe(shape, dtype)}{where} is at version "
            f"{self.vc.value}; expected version {self.version} instead.{_anomaly.version_hint()}"
        )


class Node:
    """One recorded op in the graph; what `tensor.grad_fn` returns.

    Its class is named as torch's (`type(y.grad_fn).__name__ == "MulBackward0"`): nodes are
    made as `node_class(name)(...)`, a subclass per grad_fn name that adds only the name."""

    __slots__ = ("op", "attrs", "next_functions", "in_shapes", "in_dtypes", "device", "_name",
                 "_saved", "_saved_output", "_freed", "_retained", "_needs", "_hooks",
                 "column_major", "__weakref__")

    def __init__(self, op, name, edges, in_shapes, in_dtypes, saved, attrs, device):
        self.op = op  # None for a node known only by name (described by a server)
        self._name = name
        self.next_functions = edges
        self.in_shapes = in_shapes
        self.in_dtypes = in_dtypes
        self._saved = saved
        self.attrs = attrs
        self.device = device
        self._saved_output = None
        self._freed = False
        self._retained = None
        self._needs = None
        self._hooks = None  # {output_nr: [fn, ...]}: hooks of the non-leaf tensors it made
        self.column_major = None  # per `op.layouts` input, when the op declares any

    def name(self) -> str:
        return self._name

    @property
    def needs(self) -> tuple[bool, ...]:
        """Which inputs need a gradient (computed when backward asks, not per op)."""
        needs = self._needs
        if needs is None:
            needs = []  # loops, not comprehensions, here and in `saved`: read per node run
            for n, _ in self.next_functions:
                needs.append(n is not None)
            self._needs = needs = tuple(needs)
        return needs

    def __repr__(self) -> str:
        return f"<{self._name} object at {id(self):#x}>"

    # -- what op backward functions read --------------------------------------------------
    @property
    def saved(self) -> tuple:
        if self._freed:
            raise AutogradError(_FREED)
        out = []
        for s in self._saved:
            out.append(s.unpack(self) if type(s) is SavedTensor else s)
        return tuple(out)

    @property
    def output(self):
        if self._freed:
            raise AutogradError(_FREED)
        return self._saved_output.unpack(self)

    def check_saved(self) -> None:
        """Raise what unpacking the saved tensors would: freed, or modified in place."""
        if self._freed:
            raise AutogradError(_FREED)
        for s in self._saved:  # `s.check(self)`, inline: per saved tensor per backward
            if isinstance(s, SavedTensor) and s.vc.value != s.version:
                s._raise_modified(self)
        if self._saved_output is not None:
            self._saved_output.check(self)

    def free(self) -> None:
        # a node that kept nothing (its gradients read no input) can run again, as torch's
        if self._saved_output is not None or self._saved.count(None) != len(self._saved):
            self._saved = ()
            self._saved_output = None
            self._freed = True

    def retain(self, tensor) -> None:
        if self._retained is None:
            self._retained = {}
        self._retained[tensor._output_nr] = weakref.ref(tensor)


NODE_CLASSES: dict[str, type] = {}  # grad_fn name -> its Node subclass


def node_class(name: str) -> type:
    """The Node subclass named `name` (made on first use)."""
    cls = NODE_CLASSES.get(name)
    if cls is None:
        cls = NODE_CLASSES[name] = type(name, (Node,), {"__slots__": (),
                                                        "__module__": Node.__module__})
    return cls


class AccumulateGrad:
    """The node through which gradients reach a leaf; shown in next_functions like torch."""

    __slots__ = ("variable", "__weakref__")
    next_functions: tuple = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"  # torch's; its type is AccumulateGrad

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


def _root_edge(t):
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    if t._rg:
        return (t._accumulator(), 0)
    return None


def backward_graph(roots, targets=None) -> dict:
    """The nodes a backward from the nodes `roots` runs, roots first, each with its
    dependency count (the edges into it from nodes that run): all the nodes below the roots,
    or with `targets` only those that lead to one. One depth-first walk counts them (per
    step). The client's image of the server's graph is walked by it too, so both agree on
    what runs (and check it in the same order)."""
    counts: dict = {}
    children = None if targets is None else {}  # what feeds whom: to find the nodes needed
    expanded = set()
    order = []  # post-order: a node after everything it feeds
    for root in roots:
        if root in expanded:
            continue
        expanded.add(root)
        if children is not None:
            children[root] = []
        stack = [(root, iter(root.next_functions))]
        while stack:
            node, rest = stack[-1]
            for c, _ in rest:
                if c is None:
                    continue
                counts[c] = counts.get(c, 0) + 1
                if children is not None:
                    children[node].append(c)
                if c not in expanded:
                    expanded.add(c)
                    if children is not None:
                        children[c] = []
                    if c.next_functions:
                        stack.append((c, iter(c.next_functions)))
                        break
                    order.append(c)  # feeds nothing (an accumulator): done, no stack entry
            else:
                stack.pop()
                order.append(node)
    if targets is None:
        order.reverse()
        return {n: counts.get(n, 0) for n in order}
    needed = set()
    for node in order:
        # a node known by name only (op None: the client's image of one the server made)
        # may lead anywhere
        if node in targets or getattr(node, "op", 0) is None or any(
                c in needed for c in children[node]):
            needed.add(node)
    deps = {n: 0 for n in reversed(order) if n in needed}
    for node in deps:
        for c in children[node]:
            if c in deps:
                deps[c] += 1
    return deps


def plan_backward(roots: Sequence, inputs: Sequence | None = None):
    """What a backward from the tensors `roots` will do, with torch's checks raised first:
    the root edges, the `inputs` as target nodes ({node: [(output_nr, k)]}) and the dependency
    counts of the nodes it runs (roots first). A node whose saved tensors were freed or
    changed in place raises here, before anything ran."""
    edges = []
    for i, t in enumerate(roots):
        e = _root_edge(t)
        if e is None:
            raise AutogradError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
        edges.append(e)
    targets = None
    if inputs is not None:
        targets = {}
        for k, t in enumerate(inputs):
            e = _root_edge(t)
            if e is None:
                raise AutogradError("One of the differentiated Tensors does not require grad")
            targets.setdefault(e[0], []).append((e[1], k))
    deps = backward_graph(list(dict.fromkeys(e[0] for e in edges)), targets)
    for node in deps:  # roots first, as `backward_graph` orders them
        if type(node) is not AccumulateGrad:
            node.check_saved()
    return edges, targets, deps


# Called before each node of a backward with data, when set (`set_node_check`): a server's
# compute budget per request raises from it, so a long backward stops between two nodes.
_node_check = None


def set_node_check(check) -> None:
    """Run `check()` (None: nothing) before each node of every backward with data, and
    `check(step)` between the parameters of an optimizer step over many (`step` names it:
    engine/ops/optim.py); what it raises ends that backward or step."""
    global _node_check
    _node_check = check


def node_check():
    """The check `set_node_check` set (None: none): a planned backward runs it too."""
    return _node_check


def run_backward(roots: Sequence, grads: Sequence | None, *, retain_graph: bool,
                 create_graph: bool, inputs: Sequence | None = None, accumulate: bool = True,
                 plan=None):
    """Backpropagate `grads` from `roots`. Accumulates into leaves (or only into `inputs`)
    when `accumulate`; returns the gradients that reached `inputs` (None where none did).

    With `grads` None the walk runs without data, over a graph of tensors that have none (the
    client's image of its server's graph): every edge carries a gradient but where an op drops
    them (`grads_from`), nodes are freed as the real walk frees them, and it returns (the
    tensors whose .grad it writes, each with whether it adds into the existing one in place;
    per input whether a gradient reaches it), or (None, None) for nodes known by name only.
    `plan`: what `plan_backward` returned for these roots and inputs, if already asked."""
    edges, targets, deps = plan if plan is not None else plan_backward(roots, inputs)
    dry = grads is None
    log = _tape.log()
    if log is not None and not dry:  # watched: where the gradients start (core/tape.py)
        log.append(("roots", tuple(grads)))
    if dry and any(type(n) is not AccumulateGrad and n.op is None for n in deps):
        free_graph(deps, retain_graph)  # the server's walk frees them: its image follows
        return None, None
    captured = None if inputs is None else [None] * len(inputs)
    written = [] if dry else None
    buffers: dict = {}
    for (node, nr), g in zip(edges, [True] * len(edges) if dry else grads, strict=True):
        _add(buffers, node, nr, g)

    seen_owners = set() if dry else {_owner(g) for g in grads}  # arrays a leaf must not alias
    ready = [n for n in dict.fromkeys(e[0] for e in edges) if deps.get(n, 0) == 0]
    check, call = (None, _call) if dry else (_node_check, _anomaly.caller(_call))
    with _grad_mode.set_grad_enabled(create_graph):
        while ready:
            if check is not None:
                check()
            node = ready.pop()
            out_grads = buffers.pop(node, None)
            if not dry and out_grads and (node._hooks if type(node) is not AccumulateGrad
                                          else node.variable._hooks):
                _run_hooks(node, out_grads)
            if targets is not None and node in targets:
                for nr, k in targets[node]:
                    g = out_grads.get(nr) if out_grads else None
                    if g is not None:
                        captured[k] = g if captured[k] is None else captured[k] + g
            if isinstance(node, AccumulateGrad):
                if accumulate and out_grads and (targets is None or node in targets):
                    _accumulate(node.variable, out_grads[0], create_graph, seen_owners,
                                written)
                continue
            if node._retained and out_grads:
                for nr, ref in node._retained.items():
                    t = ref()
                    if t is not None and nr in out_grads and (targets is None or accumulate):
                        _accumulate(t, out_grads[nr], create_graph, seen_owners, written,
                                    True)
            if not out_grads:
                in_grads = ()
            elif dry:  # every input with a node gets one, unless the op drops them all
                keep = getattr(node.op, "grads_from", None)
                if callable(keep):
                    keep = keep(node.attrs)
                gone = out_grads.keys().isdisjoint(out_grads if keep is None else keep)
                in_grads = () if gone else (True,) * len(node.next_functions)
            else:
                in_grads = call(node, out_grads)
            if not retain_graph:
                node.free()
            n_in = len(in_grads)
            for i, (nxt, nr) in enumerate(node.next_functions):
                left = deps.get(nxt) if nxt is not None else None
                if left is None:  # no node, or one this backward does not run
                    continue
                g = in_grads[i] if i < n_in else None
                if g is not None:  # `_add`, inline: this runs per edge
                    slot = buffers.get(nxt)
                    if slot is None:
                        buffers[nxt] = {nr: g}
                    else:
                        prev = slot.get(nr)
                        slot[nr] = g if prev is None else prev + g
                deps[nxt] = left - 1
                if left == 1:
                    ready.append(nxt)
        if accumulate and inputs is not None:  # non-leaf inputs get a .grad too, as in torch
            for t, g in zip(inputs, captured, strict=True):
                if g is not None and t.grad_fn is not None and not t._retains_grad:
                    _accumulate(t, g, create_graph, seen_owners, written)
    if dry:
        return written, (None if inputs is None else [g is not None for g in captured])
    return captured


def free_graph(deps, retain_graph: bool) -> None:
    """Free the saved tensors of the nodes a backward ran (unless retain_graph)."""
    if not retain_graph:
        for node in deps:
            if type(node) is not AccumulateGrad:
                node.free()


def _add(buffers, node, nr, g):
    slot = buffers.setdefault(node, {})
    prev = slot.get(nr)
    slot[nr] = g if prev is None else prev + g


def _run_hooks(node, out_grads: dict) -> None:
    """Tensor hooks see the gradient of their tensor before anything else does (capture,
    retain_grad, the node's backward) and may replace it."""
    if type(node) is AccumulateGrad:
        hooks = node.variable._hooks
        if hooks and 0 in out_grads:
            out_grads[0] = call_hooks(hooks, out_grads[0])
    elif node._hooks:
        for nr, hooks in node._hooks.items():
            if hooks and nr in out_grads:
                out_grads[nr] = call_hooks(hooks, out_grads[nr])


def call_hooks(hooks: list, g):
    """Run tensor hooks in order; each may return a replacement (same shape and dtype)."""
    for hook in list(hooks):
        out = hook(g)
        if out is None:
            continue
        name = getattr(hook, "__name__", type(hook).__name__)
        if not hasattr(out, "shape") or not hasattr(out, "_vc"):
            raise AutogradError(f"hook '{name}' returned a {type(out).__name__}, expected a "
                                "Tensor or None")
        if tuple(out.shape) != tuple(g.shape):
            raise AutogradError(f"hook '{name}' has changed the size of value")
        if out.dtype is not g.dtype:
            raise AutogradError(
                f"hook '{name}' has changed the type of value (was {g.dtype!r} got "
                f"{out.dtype!r})")
        g = out
    return g


def _call(node: Node, out_grads: dict):
    op = node.op
    if op.multi_grad:  # backward takes every output's gradient
        result = op.backward(node, out_grads)
    else:
        g = out_grads.get(0)
        if g is None:
            return ()
        result = op.backward(node, g)
    if not isinstance(result, tuple):
        result = (result,)
    edges = node.next_functions
    if len(result) != len(edges):
        raise AutogradError(
            f"function {node.name()} returned an incorrect number of gradients "
            f"(expected {len(edges)}, got {len(result)})"
        )
    shapes, dtypes = node.in_shapes, node.in_dtypes
    out = []
    for i, g in enumerate(result):
        if g is None or edges[i][0] is None:
            g = None
        elif g.dtype is not dtypes[i] or g._data.shape != shapes[i]:  # else: as it is
            g = _validate(node, i, g)
        out.append(g)
    return out


def _validate(node: Node, i: int, g):
    """Reduce a broadcast gradient to its input's shape and cast it to its dtype (g is not
    None and its input has an edge)."""
    shape, dtype = node.in_shapes[i], node.in_dtypes[i]
    if g.dtype is dtype and g._data.shape == shape:  # the usual case: as it is
        return g
    if g._data.shape != shape:
        try:
            g = g._op("sum_to", g, shape=tuple(shape))  # the generic reduction
        except AutogradError:
            raise AutogradError(
                f"Function {node.name()} returned an invalid gradient at index {i} - got "
                f"{list(g.shape)} but expected shape compatible with {list(shape)}"
            ) from None
    if g.dtype is not dtype:
        g = g.to(dtype=dtype)
    return g
