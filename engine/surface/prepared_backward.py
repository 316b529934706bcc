"""A backward planned from one watched eager backward: the node order, the kernels each
node's backward ran and where each leaf's gradient comes from, known.

A captured step's backward (server/_plan.py) builds the same graph every run: the nodes are
the grad_fns of the step's tensors (its slots), with the same edges. `watch_backward` runs
the eager backward once on a tape (core/tape.py) and keeps, in the order eager ran them,
every op the walk computed (its backward rules, the reductions of broadcast gradients, the
sums of gradients that meet), each input named by where it came from: the root's gradient,
a slot's tensor (or its data: a saved output), or an earlier op's output. `BackwardPlan.run`
checks that the graph is the watched one (the same nodes in the same places, no hooks, no
retained grads, nothing freed or changed in place), then runs those ops with their shape
rules' results known (the same kernels in the same order, so the same bits), accumulates
each leaf's gradient as eager does (`_accumulate`) and frees the nodes. When the graph
differs it does nothing and says so: the caller runs the eager backward, which gives eager's
result or error.

Most of those ops' outputs are arrays nobody but the next op sees (the walk runs without
grad mode: no node, no history), so an op runs on arrays alone: its kernel and the layout
`_finish` gives its result, what eager's op makes its output tensor of. An op whose outputs
may be seen (a leaf's gradient, and the views a seen tensor is made from: a view remembers
its base) runs as eager's op does (`apply_known`, tensors in and out); an array it reads is
the tensor eager's op made of it (`_wrap`, as `_output` makes it).
"""

from __future__ import annotations

from ..core import anomaly as _anomaly
from ..core import grad_mode as _grad_mode
from ..core.autograd import AccumulateGrad, Node, _accumulate, _owner, node_check
from ..core.backend import backend
from ..core.dtype import DType
from ..core.registry import Meta
from ..core.tape import watching
from .grad_api import _beside, check_roots
from .prepared import apply_direct, apply_known, direct
from .tensor import Tensor, _finish, _wrap

_CONSTANTS = (int, float, bool, str, type(None))


class BackwardPlan:
    """The watched backward from slot `root`'s tensor (see the module doc)."""

    __slots__ = ("root", "root_nr", "start", "edges", "ops", "acc", "leaves", "device",
                 "steps", "reads", "order", "links")

    def __init__(self, root: int, root_nr: int, start: int, edges: dict, ops: list,
                 acc: list, leaves: tuple, device: str) -> None:
        self.root, self.root_nr = root, root_nr
        self.start = start  # the slot whose grad_fn the root's is (the first that holds it)
        self.edges = edges  # slot k -> the edges of slot k's grad_fn, as refs
        self.ops = ops  # (op, input refs, attrs, meta, device)
        self.acc = acc  # (leaf slot, ref of its gradient)
        self.leaves = leaves
        self.device = device  # the root's: where the ops on arrays run
        self.steps = _steps(ops, acc, device)
        # the slots whose tensors (or arrays) the ops read: a step's earlier batches may
        # hold only their nodes now (server/_chain.py)
        self.reads = tuple(sorted({ref[1] for _, refs, _, _, _ in ops for ref in refs
                                   if ref[0] == "s"}))
        # the graph check's data, made once: the slots of the nodes (the start's first) and,
        # per node, its edges as (None, 0) for no edge, (node index, output number), or
        # (-1, leaf slot) for an AccumulateGrad
        self.order = (start, *(k for k in edges if k != start))
        at = {k: i for i, k in enumerate(self.order)}
        self.links = tuple(tuple(
            (None, 0) if ref is None else (at[ref[1]], ref[2]) if ref[0] == "n"
            else (-1, ref[1]) for ref in edges[k]) for k in self.order)

    def run(self, slots: list) -> bool:
        """The backward on this run's slot tensors; False (having changed nothing) when its
        graph is not the watched one or anything fails: run the eager backward then."""
        if _anomaly.active() is not None:  # eager's walk checks each node
            return False
        nodes = [None if t is None else t.grad_fn for t in [slots[k] for k in self.order]]
        start = nodes[0]
        root = slots[self.root]
        if start is None or root is None or root.grad_fn is not start \
                or root._output_nr != self.root_nr:
            return False
        for node, links in zip(nodes, self.links, strict=True):
            if type(node) is AccumulateGrad or node is None or node._hooks is not None \
                    or node._retained or len(node.next_functions) != len(links):
                return False
            for (nxt, nr), (i, b) in zip(node.next_functions, links, strict=True):
                if i is None:
                    if nxt is not None:
                        return False
                elif i >= 0:
                    if nxt is not nodes[i] or nr != b:
                        return False
                elif type(nxt) is not AccumulateGrad or nxt.variable is not slots[b]:
                    return False
        for k in self.leaves:
            t = slots[k]
            if t._hooks is not None or t._grad is not None:
                return False
        for k in self.reads:
            t = slots[k]
            if t is None or t._data is None:
                return False
        try:
            for node in nodes:
                node.check_saved()
            check_roots((root,), (None,))  # as `_root_grads` for one root and no gradient
            grads = [_beside(root)]
            values = self._values(slots, grads)
        except _Stopped as stopped:  # the budget ends this backward as it ends eager's
            raise stopped.error from None
        except Exception:  # nothing changed yet: the eager backward says what is wrong
            return False
        seen = {_owner(g) for g in grads}
        for k, ref in self.acc:
            _accumulate(slots[k], _value(ref, values, slots, grads), False, seen, None)
        for node in nodes:
            node.free()
        return True

    def _values(self, slots: list, grads: list) -> list:
        """Each op's outputs: arrays for an op run on arrays, tensors for one run as eager's
        (see the module doc)."""
        values, wrapped = [], {}
        check = node_check()  # the server's compute budget holds here as in eager's walk
        be = backend(self.device)
        xp, device = be.xp, self.device
        with _grad_mode.set_grad_enabled(False):  # as the walk runs without create_graph
            token = be.enter()  # numpy's quiet floating point (a GPU: its device), as per op
            try:
                for op, args, attrs, meta, on_arrays, plain in self.steps:
                    if check is not None:
                        try:
                            check()
                        except Exception as e:
                            raise _Stopped(e) from None
                    inputs = []
                    for kind, a, b in args:
                        if kind is _VALUE:
                            inputs.append(values[a][b])
                        elif kind is _DATA:
                            inputs.append(values[a][b]._data)
                        elif kind is _SLOT:
                            x = slots[a]
                            inputs.append(x._data if on_arrays else x)
                        elif kind is _ROOT:
                            x = grads[a]
                            inputs.append(x._data if on_arrays else x)
                        elif kind is _WRAP:  # an array as the tensor eager's op made of it
                            x = wrapped.get(a)  # one tensor, however many ops read it
                            if x is None:
                                x = wrapped[a] = _wrap(values[a[0]][a[1]], b, device)
                            inputs.append(x)
                        else:
                            inputs.append(a)
                    if plain:
                        values.append(apply_direct(op, inputs, attrs, meta))
                    elif not on_arrays:
                        values.append(apply_known(op, tuple(inputs), attrs, meta))
                    elif type(meta) is Meta:
                        values.append((_finish(xp, op.forward(xp, *inputs, **attrs), meta,
                                               op),))
                    else:
                        values.append(tuple(
                            _finish(xp, out, m, op) for out, m in
                            zip(op.forward(xp, *inputs, **attrs), meta, strict=True)))
            finally:
                be.exit(token)
        return values


class _Stopped(Exception):
    """What the node check raised, kept apart from a kernel's failure (which means: let
    the eager backward run and say what is wrong)."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _constant(value) -> bool:
    """Whether an attr is a value a plan may keep: numbers, strings, dtypes and tuples of
    them (never a tensor or an array, whose data would be the watched run's)."""
    if type(value) in _CONSTANTS or isinstance(value, (str, DType)):  # gs.device is a str
        return True
    return type(value) is tuple and all(_constant(v) for v in value)


_VALUE, _DATA, _SLOT, _ROOT, _WRAP, _CONSTANT = "value", "data", "slot", "root", "wrap", "c"


def _steps(ops: list, acc: list, device: str) -> list:
    """`ops` as `_values` runs them: (op, inputs as (kind, a, b), attrs, meta, whether it
    runs on arrays, whether it runs as eager's through `apply_direct`). An op runs as eager's
    when its outputs may be seen: a leaf's gradient, or a view that such an op reads (its
    base is seen through it); and when it is anything but a plain kernel on the root's
    device (random, or one that names a device)."""
    eager = {ref[1] for _, ref in acc if ref[0] == "v"}
    eager.update(i for i, (op, _, _, _, dev) in enumerate(ops)
                 if op.random or op.needs_device or dev != device)
    for j in range(len(ops) - 1, -1, -1):  # the views an eager op reads, and theirs
        if j in eager:
            eager.update(ref[1] for ref in ops[j][1] if ref[0] == "v" and ops[ref[1]][0].view)
    steps = []
    for j, (op, refs, attrs, meta, dev) in enumerate(ops):
        on_arrays = j not in eager
        args = []
        for ref in refs:
            kind = ref[0]
            if kind == "v":
                i, nr = ref[1], ref[2]
                if i in eager:  # a tensor: its array, or itself
                    args.append((_DATA if on_arrays else _VALUE, i, nr))
                elif on_arrays:
                    args.append((_VALUE, i, nr))
                else:
                    made = ops[i][3]
                    args.append((_WRAP, (i, nr), made if type(made) is Meta else made[nr]))
            elif kind == "s":
                args.append((_SLOT, ref[1], None))
            elif kind == "r":
                args.append((_ROOT, ref[1], None))
            else:
                args.append((_CONSTANT, ref[1], None))
        steps.append((op, tuple(args), attrs, meta, on_arrays,
                       not on_arrays and direct(op, dev)))
    return steps


def _value(ref, values: list, slots: list, grads: list):
    kind = ref[0]
    if kind == "v":
        return values[ref[1]][ref[2]]
    if kind == "s":
        return slots[ref[1]]
    if kind == "r":
        return grads[ref[1]]
    return ref[1]


def watch_backward(root: int, slots: list, run, made) -> BackwardPlan | None:
    """Run `run()` (the eager backward from slot `root`'s tensor, without inputs, retain_graph
    or create_graph) on a tape; its plan, or None when it cannot be planned. Whatever `run`
    raises is raised. `made`: the slots whose grad_fns the step itself made, with the same
    op, attrs and shapes every run; a graph that reaches any other node is not planned."""
    t = slots[root]
    graph = _graph(t, slots, made) if isinstance(t, Tensor) else None
    with watching() as tape:
        run()
    if graph is None or not tape or tape[0] is None or tape[0][0] != "roots":
        return None
    start, edges, leaves = graph
    grads = tape[0][1]
    if len(grads) != 1:
        return None
    by_object = {id(g): ("r", i) for i, g in enumerate(grads)}
    by_data = {}
    for k, s in enumerate(slots):
        if isinstance(s, Tensor):
            by_object.setdefault(id(s), ("s", k))
            by_data.setdefault(id(s._data), ("s", k))
    ops = []
    for entry in tape[1:]:
        if entry is None or entry[0] == "roots":  # an in-place write, data-dependent shapes
            return None
        op, inputs, attrs, _, meta, outputs = entry
        refs = []
        for x in inputs:
            if isinstance(x, Tensor):
                ref = by_object.get(id(x)) or by_data.get(id(x._data))
                if ref is None:  # made outside the tape: nothing to make it again from
                    return None
            elif type(x) in _CONSTANTS:
                ref = ("c", x)
            else:
                return None
            refs.append(ref)
        if not all(_constant(v) for v in attrs.values()):
            return None
        for nr, o in enumerate(outputs):
            by_object[id(o)] = ("v", len(ops), nr)
        ops.append((op, tuple(refs), attrs, meta, entry[3]))
    acc, owners = [], {_owner(g) for g in grads}
    for k in leaves:
        g = slots[k]._grad
        if g is None:
            continue
        ref = by_object.get(id(g))
        if ref is None or ref[0] != "v" or _owner(g) in owners:
            return None  # a gradient that is not one op's own output: eager decides each time
        owners.add(_owner(g))
        acc.append((k, ref))
    return BackwardPlan(root, t._output_nr, start, edges, ops, acc, tuple(leaves), t._device)


def _graph(root: Tensor, slots: list, made):
    """The graph below `root` as refs between slots: the slot of root's grad_fn, {slot: its
    grad_fn's edges} and the leaf slots it accumulates into; None when it reaches anything
    else (a node the step did not make (`made`), a hook, a retained grad, a leaf that has a
    grad already)."""
    by_node, by_leaf = {}, {}
    for k, s in enumerate(slots):
        if isinstance(s, Tensor):
            fn = s.grad_fn
            if fn is not None and k in made:
                by_node.setdefault(id(fn), k)
            by_leaf.setdefault(id(s), k)
    start = root.grad_fn
    if start is None or id(start) not in by_node:
        return None
    edges, leaves, todo = {}, [], [start]
    while todo:
        node = todo.pop()
        k = by_node[id(node)]
        if k in edges:
            continue
        if not isinstance(node, Node) or node.op is None or node.op.backward is None \
                or node._hooks is not None or node._retained:
            return None
        refs = []
        for nxt, nr in node.next_functions:
            if nxt is None:
                refs.append(None)
            elif type(nxt) is AccumulateGrad:
                leaf = by_leaf.get(id(nxt.variable))
                v = nxt.variable
                if leaf is None or v._hooks is not None or v._grad is not None:
                    return None
                if leaf not in leaves:
                    leaves.append(leaf)
                refs.append(("a", leaf))
            else:
                j = by_node.get(id(nxt))
                if j is None:
                    return None
                refs.append(("n", j, nr))
                todo.append(nxt)
        edges[k] = tuple(refs)
    return by_node[id(start)], edges, leaves
