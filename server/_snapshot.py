"""A session's tensors as plain arrays plus a JSON description, and back: what a draining
server writes to the state dir (`_state`) and another one restores.

Only a session at a quiet point can be written (`why_not_quiet`): no tensor it holds has a
recorded graph that backward could still use. A tensor whose graph backward already
consumed (its node freed) is written with a stand-in node of the same name that is freed
too, so using that graph again fails as it would have (the SDK refuses it before sending).

Everything else autograd keeps is written: values, grads, requires_grad, dtypes, strides,
version counters (shared by views and `detach()`), views' bases, retain_grad, and storage
sharing: every CPU array is written as an offset and strides into the buffer it views, each
buffer once, so tensors that shared memory share it again. The session's random generator
state goes along, so a seeded stream continues where it was.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from gradserve.engine import Tensor
from gradserve.engine._autograd import Node
from gradserve.engine._backend import backend
from gradserve.engine._dtype import as_dtype
from gradserve.engine._meta import Version
from gradserve.engine._random import Generator

FORMAT = 1  # bumped when the description below changes incompatibly


class NotQuiet(Exception):
    """The session cannot be written now; the message says what holds it."""


def why_not_quiet(tensors: dict[str, Tensor]) -> str | None:
    """None when the session's tensors can be written, else what prevents it."""
    for tid, t in tensors.items():
        for what, x in (("tensor", t), ("the grad of", t._grad)):
            if x is None:
                continue
            node = x._grad_fn
            if x._view_steps is not None or (node is not None and not node._freed):
                name = node.name() if node is not None else "a view's history"
                return (f"{what} {tid[:80]!r} holds a recorded graph ({name}) that backward "
                        "can still use")
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
        self.nodes: list[str] = []
        self.versions: list[int] = []
        self._objects: dict[int, int] = {}
        self._nodes: dict[int, int] = {}
        self._versions: dict[int, int] = {}
        self._buffers: dict[int, tuple[str, np.ndarray]] = {}

    def tensor(self, t: Tensor | None) -> int | None:
        if t is None:
            return None
        index = self._objects.get(id(t))
        if index is not None:
            return index
        index = self._objects[id(t)] = len(self.objects)
        self.objects.append({})  # reserved: a grad or base may point back here
        node = t._grad_fn
        self.objects[index] = {
            **self._storage(t._data), "dtype": t.dtype.name, "rg": t._rg,
            "layout": None if t._strides is None else list(t._strides),
            "vc": self._version(t._vc), "retains_grad": t._retains_grad,
            "view_version": t._view_version, "output_nr": t._output_nr,
            "node": None if node is None else self._node(node),
            "grad": self.tensor(t._grad), "base": self.tensor(t._base),
        }
        return index

    def _node(self, node: Node) -> int:
        index = self._nodes.get(id(node))
        if index is None:
            index = self._nodes[id(node)] = len(self.nodes)
            self.nodes.append(node.name())
        return index

    def _version(self, vc: Version) -> int:
        index = self._versions.get(id(vc))
        if index is None:
            index = self._versions[id(vc)] = len(self.versions)
            self.versions.append(vc.value)
        return index

    def _storage(self, data) -> dict:
        if self.device != "cpu":
            # Device arrays are written one by one (no storage sharing across tensors): a
            # GPU session whose tensors alias each other is refused by `pack`.
            host = np.ascontiguousarray(backend(self.device).to_host(data))
            if getattr(data, "base", None) is not None:
                raise NotQuiet("a GPU tensor shares storage with another (a view); only CPU "
                               "sessions can be written with views")
            key = f"b{len(self.arrays)}"
            self.arrays[key] = host
            return {"buffer": key, "offset": 0, "shape": list(host.shape),
                    "strides": list(host.strides), "writeable": True}
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


def pack(tensors: dict[str, Tensor], device: str, generator: Generator) -> tuple[dict, dict]:
    """(arrays by key, description) of a quiet session; NotQuiet when it is not."""
    problem = why_not_quiet(tensors)
    if problem is not None:
        raise NotQuiet(problem)
    packer = _Packer(device)
    bound = [[tid, packer.tensor(t)] for tid, t in tensors.items()]
    meta = {"format": FORMAT, "device": device, "bound": bound, "objects": packer.objects,
            "nodes": packer.nodes, "versions": packer.versions,
            "buffers": {k: [str(a.dtype), list(a.shape)] for k, a in packer.arrays.items()},
            "generator": generator.rng.bit_generator.state}
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
    for name in meta["nodes"]:
        node = Node(None, name, (), (), (), (), {}, device)
        node._freed = True  # its graph was consumed before the move: it stays so
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
    bound = {tid: tensors[i] for tid, i in meta["bound"]}
    generator = Generator()
    generator.rng.bit_generator.state = meta["generator"]
    return bound, generator


def _array(o: dict, buffers: dict, device: str):
    buf = buffers[o["buffer"]]
    dtype = as_dtype(o["dtype"]).np
    if device != "cpu":
        return buf.view(dtype).reshape(o["shape"])
    a = np.ndarray(tuple(o["shape"]), dtype=dtype, buffer=buf, offset=o["offset"],
                   strides=tuple(o["strides"]))
    if not o["writeable"]:
        a.flags.writeable = False
    return a


def array_bytes(arrays: Iterable[np.ndarray]) -> int:
    """Bytes `pack` wrote (for logs and metrics)."""
    return sum(a.nbytes for a in arrays)
