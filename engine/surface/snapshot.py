"""A session's tensors as plain arrays plus a JSON description, and back: what a draining
server writes to its state dir (server/_state.py) and another one restores. It lives in the
engine because it writes and reads everything autograd keeps beside the data (the graph as
core/graph.py describes it, version counters, views' histories), which only the engine may
touch; the server sees `pack`, `unpack` and `why_not_quiet` through the seam.

Only a session at a quiet point can be written (`why_not_quiet`): no graph its tensors lead
to holds saved tensors that backward could still use. Graph nodes that never saved anything
(sums, adds, views, ...) are written whole, so a later backward through them runs as it
would have; a node whose saved tensors backward already freed is written as a node of the
same op and name that is freed too, so reaching it fails as it would have (the SDK, which
keeps its own image of the graph, refuses such a backward before sending it anyway).

Everything else autograd keeps is written: values, grads, requires_grad, dtypes, strides,
version counters (shared by views and `detach()`), views' bases and histories (replayed when
their base changes in place), retain_grad, and storage sharing: every CPU array is written
as an offset and strides into the buffer it views, each buffer once, so tensors that shared
memory share it again. The session's random generator state goes along, so a seeded stream
continues where it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from ..core.autograd import AccumulateGrad, Node, node_class
from ..core.backend import backend
from ..core.dtype import as_dtype
from ..core.meta import Version
from ..core.random import Generator
from ..core.registry import OPS
from .tensor import Tensor

FORMAT = 1  # bumped when the description below changes incompatibly


class NotQuiet(Exception):
    """The session cannot be written now; the message says what holds it."""


def why_not_quiet(tensors: dict[str, Tensor]) -> str | None:
    """None when the session's tensors can be written, else what prevents it. Walks what
    `pack` writes: the bound tensors, their grads and views' bases, the graphs they lead to
    (up to freed nodes) and the leaves those reach."""
    seen: set[int] = set()
    for tid, t in tensors.items():
        stack: list = [t]
        while stack:
            x = stack.pop()
            if x is None or id(x) in seen:
                continue
            seen.add(id(x))
            if isinstance(x, Node):
                if x._hooks or x.op is None or OPS.get(x.op.name) is not x.op:
                    # the client's hooks and custom Functions are not written (yet)
                    return (f"tensor {tid[:80]!r} leads to a graph node ({x.name()}) with a "
                            "hook or a custom Function of the client")
                if x._freed:
                    continue
                if x._saved or x._saved_output is not None:
                    return (f"tensor {tid[:80]!r} leads to a recorded graph ({x.name()}) whose "
                            "saved tensors backward can still use")
                stack.extend(e[0] for e in x.next_functions)
                stack.append(getattr(x, "fn", None))  # a CopySlices' write node is in it
            elif isinstance(x, AccumulateGrad):
                stack.append(x.variable)
            else:
                if x._hooks:
                    return f"tensor {tid[:80]!r} has a hook of the client (not written yet)"
                # a view's grad_fn property replays its history if its base changed since
                stack += (x._grad, x._base, x.grad_fn if x._view_steps is not None
                          else x._grad_fn)
    return None


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class _Packer:
    """Collects the objects reachable from the bound ids into flat tables."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.arrays: dict[str, np.ndarray] = {}
        self.objects: list[dict] = []
        self.nodes: list[dict] = []
        self.versions: list[int] = []
        self._objects: dict[int, int] = {}
        self._nodes: dict[int, int] = {}
        self._versions: dict[int, int] = {}
        self._buffers: dict[int, tuple] = {}  # id(storage root) -> (key, root[, whole])
        self._pending: list[tuple[int, Node]] = []  # nodes numbered, not described yet
        self._keep: list = []  # what the ids above name, alive until packing ends

    def tensor(self, t: Tensor | None) -> int | None:
        if t is None:
            return None
        index = self._objects.get(id(t))
        if index is not None:
            return index
        index = self._objects[id(t)] = len(self.objects)
        self._keep.append(t)
        self.objects.append({})  # reserved: a grad or base may point back here
        node = t._grad_fn
        self.objects[index] = {
            **self._storage(t._data), "dtype": t.dtype.name, "rg": t._rg,
            "layout": None if t._strides is None else list(t._strides),
            "vc": self._version(t._vc), "retains_grad": t._retains_grad,
            "view_version": t._view_version, "output_nr": t._output_nr,
            "node": None if node is None else self._node(node),
            "grad": self.tensor(t._grad), "base": self.tensor(t._base),
            "view_steps": None if t._view_steps is None else _steps(t._view_steps),
        }
        return index

    def _node(self, node: Node) -> int:
        """The node's number; it is described by `nodes_left` (graphs may be deep)."""
        index = self._nodes.get(id(node))
        if index is None:
            index = self._nodes[id(node)] = len(self.nodes)
            self.nodes.append({})
            self._pending.append((index, node))
            self._keep.append(node)
        return index

    def _device_storage(self, data) -> dict:
        """A device array, written whole. Tensors that alias all of one buffer (`detach()`,
        `.data`, a transpose such as `weight.t()`) share it again; a view of part of a buffer
        another tensor also uses is not written (device arrays give no offsets to rebuild it
        from)."""
        root = data
        while getattr(root, "base", None) is not None:
            root = root.base
        perm = _permutation(data, root)  # data == root.transpose(perm), or None
        entry = self._buffers.get(id(root))
        if entry is None:
            key = f"b{len(self.arrays)}"
            self._buffers[id(root)] = entry = (key, root, perm is not None)
            self.arrays[key] = np.ascontiguousarray(
                backend(self.device).to_host(root if perm is not None else data))
        elif not (perm is not None and entry[2]):
            raise NotQuiet("a GPU tensor views part of another's storage; only CPU sessions "
                           "are written with such views")
        out = {"buffer": entry[0], "offset": 0, "shape": list(data.shape), "strides": None,
               "writeable": True}
        if perm is not None and list(perm) != sorted(perm):
            out["perm"] = list(perm)
        return out

    def nodes_left(self) -> None:
        """Describe every numbered node, numbering the ones they lead to."""
        live = []
        while self._pending:
            index, node = self._pending.pop()
            entry = {"op": node.op.name, "name": node.name(), "freed": node._freed,
                     "device": node.device, "edges": [], "in_shapes": [], "in_dtypes": [],
                     "attrs": {}, "retained": {}}
            if not node._freed:  # freed: reaching it fails, so where it led does not matter
                entry.update(
                    edges=[self._edge(e) for e in node.next_functions],
                    in_shapes=[None if s is None else list(s) for s in node.in_shapes],
                    in_dtypes=[None if d is None else d.name for d in node.in_dtypes],
                    attrs=_json(node.attrs, "a graph node's attrs"),
                    column_major=None if node.column_major is None else list(node.column_major))
                if getattr(node, "fn", None) is not None:  # CopySlices: the write's node
                    entry["fn"] = self._node(node.fn)
                live.append((entry, node))
            self.nodes[index] = entry
        for entry, node in live:  # tensors that retain_grad() through it, once all are packed
            entry["retained"] = {nr: self._objects[id(t)] for nr, ref in
                                 (node._retained or {}).items()
                                 if (t := ref()) is not None and id(t) in self._objects}

    def _edge(self, edge) -> list | None:
        target, nr = edge
        if target is None:
            return None
        if isinstance(target, AccumulateGrad):
            return ["leaf", self.tensor(target.variable), nr]
        return ["node", self._node(target), nr]

    def _version(self, vc: Version) -> int:
        index = self._versions.get(id(vc))
        if index is None:
            index = self._versions[id(vc)] = len(self.versions)
            self.versions.append(vc.value)
        return index

    def _storage(self, data) -> dict:
        if self.device != "cpu":
            return self._device_storage(data)
        root = _root(data)
        block = _block(root) if data.size else None
        if block is None:  # nothing to share, or memory with gaps: the tensor on its own
            root = block = np.ascontiguousarray(data)
            offset, strides = 0, block.strides
        else:
            offset, strides = _address(data) - _address(block), data.strides
        entry = self._buffers.get(id(root))
        if entry is None:
            entry = self._buffers[id(root)] = (f"b{len(self.arrays)}", root)
            self.arrays[entry[0]] = block
        return {"buffer": entry[0], "offset": offset, "shape": list(data.shape),
                "strides": list(strides), "writeable": bool(data.flags.writeable)}


class _Block:
    """Lends numpy a memory block by address (kept alive through `owner`)."""

    def __init__(self, address: int, nbytes: int, owner: np.ndarray) -> None:
        self.__array_interface__ = {"data": (address, False), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}
        self.owner = owner


def _block(root: np.ndarray) -> np.ndarray | None:
    """`root`'s memory as a C-contiguous array starting at its lowest address (itself, its
    transpose, or its bytes), or None when that memory has gaps."""
    if root.flags.c_contiguous:
        return root
    if root.flags.f_contiguous:
        return root.T
    if all(s > 0 for s in root.strides) and max(
            (n - 1) * s for n, s in zip(root.shape, root.strides, strict=True)
    ) + root.itemsize == root.nbytes:  # an owned block in another axis order
        return np.asarray(_Block(_address(root), root.nbytes, root))
    return None


def _steps(steps) -> list:
    """A view's history ((op name, attrs, output nr), ...) as JSON."""
    return _json([[name, attrs, nr] for name, attrs, nr in steps], "a view's history")


def _tuples(attrs: dict) -> dict:
    """Attrs read back as the wire gives them to the server (gradserve.v1.codec): lists in
    its values become tuples."""
    return {k: _tuple(v) if type(v) is list else v for k, v in attrs.items()}


def _tuple(value: list) -> tuple:
    return tuple(_tuple(v) if type(v) is list else v for v in value)


def _json(value, what: str):
    """`value` when JSON can hold it: attrs came from the wire, so they are JSON values
    (lists read back as tuples, as the wire's do)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise NotQuiet(f"{what} holds attrs the state dir cannot write") from None
    return value


def pack(tensors: dict[str, Tensor], device: str, generator: Generator) -> tuple[dict, dict]:
    """(arrays by key, description) of a quiet session; NotQuiet when it is not."""
    problem = why_not_quiet(tensors)
    if problem is not None:
        raise NotQuiet(problem)
    packer = _Packer(device)
    bound = [[tid, packer.tensor(t)] for tid, t in tensors.items()]
    packer.nodes_left()
    meta = {"format": FORMAT, "device": device, "bound": bound, "objects": packer.objects,
            "nodes": packer.nodes, "versions": packer.versions,
            "buffers": {k: [str(a.dtype), list(a.shape)] for k, a in packer.arrays.items()},
            "generator": generator.cpu.get_state().hex(),  # torch's state bytes
            "default_dtype": None if generator.default_dtype is None
            else generator.default_dtype.name}
    return packer.arrays, meta


def unpack(arrays: dict[str, np.ndarray], meta: dict, device: str) -> tuple[dict, Generator]:
    """The bound tensors (in binding order) and the generator `pack` described."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"state format {meta.get('format')!r} is not {FORMAT}")
    be = backend(device)
    buffers = {k: (np.array(arrays[k]) if device == "cpu" else be.from_host(arrays[k]))
               for k in meta["buffers"]}
    versions = [Version(v) for v in meta["versions"]]
    nodes = []
    for n in meta["nodes"]:
        node = node_class(n["name"])(OPS[n["op"]], n["name"], (),
                    [None if s is None else tuple(s) for s in n["in_shapes"]],
                    [None if d is None else as_dtype(d) for d in n["in_dtypes"]], (),
                    _tuples(n["attrs"]), n["device"])
        node._freed = n["freed"]  # a graph backward consumed before the move stays so
        if n.get("column_major") is not None:  # so its gradients keep their layout too
            node.column_major = tuple(n["column_major"])
        nodes.append(node)
    objects = [_array(o, buffers, device) for o in meta["objects"]]
    tensors = [Tensor(a, device, dtype=as_dtype(o["dtype"]))
               for a, o in zip(objects, meta["objects"], strict=True)]
    for t, o in zip(tensors, meta["objects"], strict=True):
        t._rg = o["rg"]
        t._strides = None if o["layout"] is None else tuple(o["layout"])
        t._vc = versions[o["vc"]]
        t._retains_grad = o["retains_grad"]
        t._view_version = o["view_version"]
        t._output_nr = o["output_nr"]
        t._grad_fn = None if o["node"] is None else nodes[o["node"]]
        t._grad = None if o["grad"] is None else tensors[o["grad"]]
        t._base = None if o["base"] is None else tensors[o["base"]]
        t._view_steps = None if o["view_steps"] is None else tuple(
            (name, _tuples(attrs), nr) for name, attrs, nr in o["view_steps"])
    for node, n in zip(nodes, meta["nodes"], strict=True):
        node.next_functions = tuple(
            (None, 0) if e is None else
            (tensors[e[1]]._accumulator(), e[2]) if e[0] == "leaf" else (nodes[e[1]], e[2])
            for e in n["edges"])
        if n.get("fn") is not None:
            node.fn = nodes[n["fn"]]
        for i in n["retained"].values():
            node.retain(tensors[i])  # keyed by the tensor's output number, as recorded
    bound = {tid: tensors[i] for tid, i in meta["bound"]}
    generator = Generator()
    generator.cpu.set_state(bytes.fromhex(meta["generator"]))
    if meta.get("default_dtype"):  # the session's set_default_dtype goes along
        generator.default_dtype = as_dtype(meta["default_dtype"])
    return bound, generator


def _permutation(data, root) -> tuple[int, ...] | None:
    """p such that data is root.transpose(p) (all of its elements, dims reordered), or None.
    Same size and its strides a reordering of root's: the view starts where root does."""
    if data.ndim != root.ndim or data.size != root.size or data.dtype.itemsize != \
            root.dtype.itemsize:
        return None
    free = list(range(root.ndim))
    perm = [None] * data.ndim
    for i, (n, st) in enumerate(zip(data.shape, data.strides, strict=True)):
        if n != 1:  # a size-1 dim's stride says nothing: matched by size below
            j = next((j for j in free if root.shape[j] == n and root.strides[j] == st), None)
            if j is None:
                return None
            perm[i] = j
            free.remove(j)
    for i, n in enumerate(data.shape):
        if n == 1:
            j = next((j for j in free if root.shape[j] == 1), None)
            if j is None:
                return None
            perm[i] = j
            free.remove(j)
    return tuple(perm)


def _array(o: dict, buffers: dict, device: str):
    buf = buffers[o["buffer"]]
    dtype = as_dtype(o["dtype"]).np
    if device != "cpu":  # the buffer itself: tensors that shared it share it again
        if o.get("perm"):
            buf = buf.transpose(o["perm"])
        return buf if buf.dtype == dtype else buf.view(dtype).reshape(o["shape"])
    a = np.ndarray(tuple(o["shape"]), dtype=dtype, buffer=buf, offset=o["offset"],
                   strides=tuple(o["strides"]))
    if not o["writeable"]:
        a.flags.writeable = False
    return a


def array_bytes(arrays: Iterable[np.ndarray]) -> int:
    """Bytes `pack` wrote (for logs and metrics)."""
    return sum(a.nbytes for a in arrays)
