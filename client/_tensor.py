"""RemoteTensor: a proxy for a tensor that lives in a server session.

A proxy knows its id, shape, dtype, device and autograd state without asking the server: the
client picks the ids and runs the engine's shape rules (`op.infer`) locally, so building a
graph only appends ops to the session's buffer. The autograd bookkeeping (requires_grad,
grad_fn names, next_functions, the version counter shared by views, the in-place checks)
mirrors `gradserve.engine._tensor.apply`/`apply_inplace` rule for rule, so an error a torch
user expects at the offending line is raised there, not at the next round trip.

This module imports neither grpc nor protobuf; the session turns what it records into
messages.
"""

from __future__ import annotations

import numbers
import os
import sys
import weakref

import numpy as np
from gradserve.engine import (
    AutogradError,
    DType,
    InvalidArgumentError,
    Meta,
    TensorAPI,
    get_op,
    is_grad_enabled,
)
from gradserve.engine._autograd import backward_graph
from gradserve.engine._dtype import TORCH_SCALAR_NAMES

from ._errors import SessionLostError


# -- where the user's code called us ----------------------------------------------------------
def _package_dirs() -> tuple[str, ...]:
    import gradserve.engine

    here = os.path.dirname(os.path.abspath(__file__))
    engine = os.path.dirname(os.path.abspath(gradserve.engine.__file__))
    return tuple(d + os.sep for d in (here, engine))


_PACKAGE_DIRS = _package_dirs()
_INTERNAL: dict[str, bool] = {}


def caller_site() -> str:
    """"file.py:LINE" of the innermost stack frame outside the gradserve package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        internal = _INTERNAL.get(filename)
        if internal is None:
            internal = _INTERNAL[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIRS)
        if not internal:
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


# -- graph nodes, as the user sees them ---------------------------------------------------------
class RemoteAccumulateGrad:
    """The node through which gradients reach a leaf; appears in `next_functions`.

    It holds its leaf weakly: a strong reference would make leaf and node a cycle, delaying the
    leaf's release on the server until Python's cycle collector runs.
    """

    __slots__ = ("_variable", "__weakref__")
    next_functions: tuple = ()

    def __init__(self, variable: RemoteTensor) -> None:
        self._variable = weakref.ref(variable)

    @property
    def variable(self) -> RemoteTensor | None:
        return self._variable()

    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


class RemoteNode:
    """The local image of a server graph node: `tensor.grad_fn`.

    `next_functions` is known for nodes this client recorded; a node rebuilt from the server's
    TensorInfo (`Session.get`) knows only its name and has empty `next_functions`.
    """

    __slots__ = ("_name", "next_functions", "__weakref__")

    def __init__(self, name: str, edges: tuple = ()) -> None:
        self._name = name
        self.next_functions = tuple(edges)

    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name} object at {id(self):#x}>"


def _edge(x) -> tuple:
    """The (node, output_nr) a graph edge to input `x` points at, as torch's next_functions."""
    if isinstance(x, RemoteTensor):
        grad_fn = x.grad_fn
        if grad_fn is not None:
            return (grad_fn, x._output_nr)
        if x._rg:
            return (x._accumulator(), 0)
    return (None, 0)


def _edges(inputs) -> tuple:
    return tuple(_edge(x) for x in inputs)


def backward_nodes(roots, inputs=None) -> set | None:
    """The nodes a backward from `roots` runs (the engine's own walk, on the local image of
    the graph). None when the graph holds a node rebuilt from the server's description,
    whose inputs only the server knows."""
    targets = None if inputs is None else {e[0] for e in _edges(inputs)}
    children, needed = backward_graph([e[0] for e in _edges(roots) if e[0] is not None],
                                      targets)
    if any(isinstance(n, RemoteNode) and not n.next_functions for n in children):
        return None  # a recorded node always has an edge per input
    return needed


def _replay_view(base: RemoteTensor, steps) -> RemoteNode:
    """The grad_fn a view gets when its history is rebuilt from its base's current one
    (engine's replay_view): each recorded view op applied again, on shapes alone. None when
    the base needs no grad: the replayed ops record nothing then, as in the engine."""
    if not base.requires_grad:
        return None
    edge, cur = _edge(base), Meta(base.shape, base.dtype)
    node = None
    for name, attrs in steps:
        op = get_op(name)
        node = RemoteNode(op.node_name((cur,), attrs), (edge,))
        cur, edge = op.infer(cur, **attrs), (node, 0)
    return node


class _Version:
    """The version counter; views and detach() share one, `.data` gets a fresh one."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value


# -- the proxy --------------------------------------------------------------------------------
class RemoteTensor(TensorAPI):
    """A tensor held by a server session, used exactly like `torch.Tensor`.

    Operators, methods and autograd attributes are computed locally where they can be and
    recorded for the server; only `item()`, `tolist()`, `numpy()`, `repr()`, `backward()`
    and reading values wait for it.

    >>> x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> y = (x * 2).sum()           # no round trip: shape (), grad_fn SumBackward0
    >>> y.backward()                # waits
    >>> x.grad.tolist()
    [[2.0, 2.0], [2.0, 2.0]]
    """

    __slots__ = ("_session", "_id", "_shape", "_dtype", "_device", "_rg", "_grad_fn",
                 "_output_nr", "_vc", "_base", "_view_steps", "_view_version", "_retains_grad",
                 "_has_grad", "_grad_graph", "_grad_owned", "_grad_cache", "_acc", "_owned",
                 "__weakref__")

    def __init__(self, session, tensor_id: str, shape: tuple, dtype: DType, device: str, *,
                 requires_grad: bool = False, owned: bool = True) -> None:
        self._session = session
        self._id = tensor_id
        self._shape = tuple(shape)
        self._dtype = dtype
        self._device = device
        self._rg = requires_grad
        self._grad_fn = None
        self._output_nr = 0
        self._vc = _Version()
        # A view made by a differentiable view op: its root, the ((op, attrs), ...) that made
        # it from the root (None when made under no_grad), and the version that history is of.
        self._base = None
        self._view_steps = None
        self._view_version = 0
        self._retains_grad = False
        self._has_grad = False  # whether the server's tensor has a .grad, as far as we know
        self._grad_graph = False  # whether that grad was made with create_graph=True
        # whether that grad was made by a backward without create_graph (so it is writable and
        # later backwards accumulate into it in place, as the engine and torch do)
        self._grad_owned = False
        self._grad_cache = None  # (grad epoch, proxy bound to the grad)
        self._acc = None
        self._owned = owned  # released on the server when this proxy is collected
        session._track(self)

    def __del__(self) -> None:
        # Cheap and non-blocking: the id rides along with the session's next request.
        try:
            if self._owned:
                self._session._release_later(self._id)
        except Exception:  # interpreter shutdown: the session may be half torn down
            pass

    # -- metadata --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The tensor's id in its session (what grpcurl and the wire API call it)."""
        return self._id

    @property
    def session(self):
        """The Session that holds this tensor."""
        return self._session

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def device(self) -> str:
        return self._device

    @property
    def is_cuda(self) -> bool:
        return self._device != "cpu"

    def is_floating_point(self) -> bool:
        return self._dtype.is_floating_point

    def element_size(self) -> int:
        return self._dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.numel() * self._dtype.itemsize

    # -- autograd state ----------------------------------------------------------------------
    @property
    def grad_fn(self) -> RemoteNode | None:
        """The node that made this tensor (None for leaves), as the server's graph has it.

        A view whose base changed in place since its history was recorded gets that history
        rebuilt from the base's, as the engine (and torch) do.
        """
        if self._view_steps is not None and self._view_version != self._vc.value:
            self._grad_fn, self._output_nr = _replay_view(self._base, self._view_steps), 0
            self._view_version = self._vc.value
        return self._grad_fn

    @grad_fn.setter
    def grad_fn(self, node: RemoteNode | None) -> None:
        self._grad_fn = node

    def _set_leaf_requires_grad(self, value: bool) -> None:
        self._session._send("requires_grad_", (self,), (), {"requires_grad": value})
        self._rg = value

    def _start_retaining_grad(self) -> None:
        self._session._send("retain_grad", (self,), (), {})

    def _grad_written(self, nodes: set, inputs) -> bool:
        """Whether a backward that runs `nodes` (backward_nodes) accumulates into self.grad."""
        if self._grad_fn is None:
            return (self._acc in nodes
                    and (inputs is None or any(t is self for t in inputs)))
        return self._grad_fn in nodes and (
            self._retains_grad or (inputs is not None and any(t is self for t in inputs)))

    def _accumulator(self) -> RemoteAccumulateGrad:
        acc = self._acc
        if acc is None:
            acc = self._acc = RemoteAccumulateGrad(self)
        return acc

    @property
    def grad(self) -> RemoteTensor | None:
        """The accumulated gradient (a RemoteTensor) or None; no round trip when it is None."""
        self._warn_if_non_leaf_grad(self._has_grad)
        if not self._has_grad:
            return None
        session = self._session
        cached = self._grad_cache
        if cached is not None and cached[0] == session._grad_epoch:
            return cached[1]
        proxy = session._bind_grad(self)
        self._grad_cache = (session._grad_epoch, proxy)
        return proxy

    @grad.setter
    def grad(self, value: RemoteTensor | None) -> None:
        if value is None:
            self._session._send("set_grad", (self,), (), {})
            self._has_grad = False
            self._grad_cache = None
            return
        if not isinstance(value, RemoteTensor):
            raise InvalidArgumentError("assigned grad expected to be a Tensor or None")
        if value._session is not self._session:
            raise InvalidArgumentError("assigned grad lives in another session")
        self._check_assigned_grad(value)
        self._session._send("set_grad", (self, value), (), {})
        self._has_grad = True
        self._grad_graph = value.requires_grad
        self._grad_owned = False  # the user's tensor: it may be a read-only broadcast
        self._grad_cache = (self._session._grad_epoch, value)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` on the server (waits).

        >>> loss = (s.tensor([1., 2.], requires_grad=True) ** 2).sum()
        >>> loss.backward()
        """
        self._session._backward([self], None if gradient is None else [gradient], retain_graph,
                                create_graph, inputs)

    # -- aliasing --------------------------------------------------------------------------
    def detach(self) -> RemoteTensor:
        """A tensor with the same storage and version counter, outside the graph."""
        out = self._like("detach")
        out._vc = self._vc  # in-place changes through either are caught by backward
        return out

    def detach_(self) -> RemoteTensor:
        if self._base is not None:
            raise AutogradError("Can't detach views in-place. Use detach() instead.")
        self._session._send("detach_", (self,), (), {})
        self.grad_fn = None
        self._rg = False
        return self

    @property
    def data(self) -> RemoteTensor:
        """Same storage, a fresh version counter: in-place changes through it go unnoticed."""
        return self._like("data")

    @data.setter
    def data(self, value: RemoteTensor) -> None:
        if not isinstance(value, RemoteTensor) or value._session is not self._session:
            raise InvalidArgumentError("data must be set to a RemoteTensor of the same session")
        if value.device != self.device:
            raise InvalidArgumentError("data set to a tensor that requires gradients must match")
        self._session._send("set_data", (self, value), (), {})
        self._shape, self._dtype = value._shape, value._dtype

    def _like(self, command: str) -> RemoteTensor:
        session = self._session
        out = RemoteTensor(session, session._new_id(), self._shape, self._dtype, self._device)
        session._send(command, (self,), (out._id,), {})
        return out

    # -- values (these wait for the server) ------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a new numpy array (waits); refuses, like torch, if grad is needed.

        >>> s.tensor([1., 2.]).numpy()
        array([1., 2.], dtype=float32)
        """
        self._check_numpy()
        return self._session._fetch([self])[0]

    def item(self):
        """The single value as a Python float, int or bool (waits).

        >>> s.tensor([[2.5]]).item()
        2.5
        """
        n = self.numel()
        if n != 1:
            raise InvalidArgumentError(f"a Tensor with {n} elements cannot be converted to Scalar")
        return self._session._fetch([self])[0].reshape(()).item()

    def tolist(self):
        """The values as (nested) Python lists (waits)."""
        return self._session._fetch([self])[0].tolist()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        from gradserve.engine._format import format_tensor

        if self._session.closed:
            return f"<RemoteTensor {self._id!r} of closed session {self._session.id!r}>"
        values = self._session._fetch([self])[0]
        return format_tensor(values, self._dtype, self._device, self._repr_suffix())

    def __format__(self, spec: str) -> str:
        if spec and self.numel() == 1:
            return format(self.item(), spec)
        return repr(self)

    def _repr_suffix(self) -> str:
        if self.grad_fn is not None:
            return f"grad_fn=<{self.grad_fn.name()}>"
        if self._rg:
            return "requires_grad=True"
        return ""

    def __reduce__(self):
        raise TypeError("a RemoteTensor cannot be pickled; fetch its values with .numpy()")

    def __deepcopy__(self, memo) -> RemoteTensor:
        # torch's rule: leaves only; the copy is a new leaf on the same session (copy.deepcopy
        # of a module copies its parameters server-side, without a round trip)
        if not self.is_leaf:
            raise AutogradError(
                "Only Tensors created explicitly by the user (graph leaves) support the "
                "deepcopy protocol at the moment."
            )
        from gradserve.engine import no_grad

        with no_grad():
            out = self.clone()
        if self._rg:
            out.requires_grad_(True)
        memo[id(self)] = out
        return out

    # -- the two primitives of TensorAPI -----------------------------------------------------
    def _op(self, name, *inputs, **attrs):
        return apply(get_op(name), inputs, attrs)

    def _inplace(self, name, *others, **attrs):
        return apply_inplace(get_op(name), self, others, attrs)


# -- recording ops ------------------------------------------------------------------------------
_PLAIN = (int, float, bool)


def _plain(x):
    """Inputs as the wire carries them: proxies stay, numpy scalars become Python numbers."""
    if type(x) in _PLAIN or isinstance(x, RemoteTensor):
        return x
    if isinstance(x, np.generic) and x.ndim == 0:
        return x.item()
    if isinstance(x, numbers.Real) and not isinstance(x, np.ndarray):
        return x
    if isinstance(x, TensorAPI):
        raise InvalidArgumentError(
            f"a RemoteTensor can't be combined with an in-process {type(x).__name__}; create "
            "it on the session (s.tensor(...)) or fetch the remote one (.numpy())"
        )
    raise InvalidArgumentError(
        f"expected a Tensor or a number as operand, but got {type(x).__name__}"
    )


def _placement(inputs: tuple, session=None) -> tuple:
    """The session and device the inputs share; raises like torch when devices differ."""
    device = None
    for x in inputs:
        if not isinstance(x, RemoteTensor):
            continue
        if session is None:
            session = x._session
        elif x._session is not session:
            raise InvalidArgumentError(
                "Expected all tensors to be in the same session, but found at least two "
                f"sessions, {session.id} and {x._session.id}!"
            )
        if device is None:
            device = x._device
        elif x._device != device:
            raise InvalidArgumentError(
                "Expected all tensors to be on the same device, but found at least two "
                f"devices, {device} and {x._device}!"
            )
    if session is None:
        raise InvalidArgumentError("expected at least one RemoteTensor argument")
    if session.closed:
        raise SessionLostError(f"session {session.id} is closed")
    return session, device


def apply(op, inputs: tuple, attrs: dict, session=None):
    """Record `op(*inputs, **attrs)` on the session and return proxies for its outputs.

    The rules are those of `gradserve.engine._tensor.apply`: the same shape inference and the
    same requires_grad / grad_fn / view decisions, with the computation left to the server.
    """
    inputs = tuple(_plain(x) for x in inputs)
    session, device = _placement(inputs, session)
    meta = op.infer(*inputs, **attrs)
    metas = (meta,) if type(meta) is Meta else meta
    out_device = attrs["device"] if op.needs_device else device
    outputs = tuple(RemoteTensor(session, session._new_id(), m.shape, m.dtype, out_device)
                    for m in metas)
    if op.view:
        _mark_views(op, inputs[0], outputs, attrs)
    head = outputs[0]
    if (op.differentiable and is_grad_enabled() and head._dtype.is_floating_point
            and any(isinstance(x, RemoteTensor) and x.requires_grad for x in inputs)):
        head.grad_fn = RemoteNode(op.node_name(inputs, attrs), _edges(inputs))
    session._send(op.name, inputs, tuple(o._id for o in outputs), attrs)
    return head if type(meta) is Meta else outputs


def _mark_views(op, src: RemoteTensor, outputs: tuple, attrs: dict) -> None:
    """Outputs of a view op share src's version counter; differentiable views also remember
    their root and the view ops that lead there (engine's _mark_views).

    The engine skips outputs that had to copy (reshape of a non-contiguous array); the client
    cannot see memory layout and treats every view op's output as a view.
    """
    for o in outputs:
        o._vc = src._vc
        if not op.differentiable:  # detach: an alias outside the graph
            continue
        o._base = src._base if src._base is not None else src
        if is_grad_enabled() and (src._base is None or src._view_steps is not None):
            o._view_steps = (src._view_steps or ()) + ((op.name, attrs),)
            o._view_version = o._vc.value


_NO_GRAD_VIEW = (
    "A view was created in no_grad mode and is being modified inplace with grad mode enabled. "
    "Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify "
    "your code by moving both the view and the inplace either both inside the no_grad block "
    "(if you don't want the inplace to be tracked) or both outside (if you want the inplace "
    "to be tracked)."
)


def apply_inplace(op, self: RemoteTensor, others: tuple, attrs: dict) -> RemoteTensor:
    """Record `self.op_(*others)` with the checks and bookkeeping of engine's apply_inplace.

    Through a view, the base takes a CopySlices node and the view's own history is rebuilt
    from the base's on its next use, as the engine does on the server.
    """
    grad_on = is_grad_enabled()
    if grad_on and self._rg and self.grad_fn is None:
        raise AutogradError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    others = tuple(_plain(x) for x in others)
    inputs = (self, *others)
    session, _ = _placement(inputs)
    meta = op.infer(*inputs, **attrs)
    if meta.shape != self._shape:
        raise InvalidArgumentError(
            f"output with shape {list(self._shape)} doesn't match the broadcast shape "
            f"{list(meta.shape)}"
        )
    if meta.dtype is not self._dtype and meta.dtype.rank > self._dtype.rank:
        raise InvalidArgumentError(
            f"result type {TORCH_SCALAR_NAMES[meta.dtype.name]} can't be cast to the desired "
            f"output type {TORCH_SCALAR_NAMES[self._dtype.name]}"
        )
    record = grad_on and op.differentiable and any(
        isinstance(x, RemoteTensor) and x.requires_grad for x in inputs
    )
    base = self._base
    if record and base is not None:
        if base._rg and base.grad_fn is None:
            raise AutogradError(
                "a view of a leaf Variable that requires grad is being used in an in-place "
                "operation."
            )
        if self._view_steps is None:
            raise AutogradError(_NO_GRAD_VIEW)
    node = base_node = None
    if record and meta.dtype.is_floating_point:
        node = RemoteNode(op.node_name(inputs, attrs), _edges(inputs))  # self's old history
        if base is not None:
            base_node = RemoteNode("CopySlices", (_edge(base), (node, 0)))
    session._send(op.name, inputs, (), attrs, inplace=True)
    self._vc.value += 1
    if base_node is not None:  # self's history is rebuilt from base's on its next use
        base._grad_fn, base._output_nr = base_node, 0
    elif node is not None:
        self._grad_fn, self._output_nr = node, 0
    return self


def from_info(session, info, owned: bool = False) -> RemoteTensor:
    """A proxy for a tensor the server describes (TensorInfo), e.g. one made with grpcurl."""
    from gradserve.engine import as_dtype

    t = RemoteTensor(session, info.id, tuple(info.shape), as_dtype(info.dtype or "float32"),
                     info.device or session.device, owned=owned)
    if info.is_leaf or not info.grad_fn:
        t._rg = bool(info.requires_grad)
    else:
        t.grad_fn = RemoteNode(info.grad_fn)
    t._vc.value = int(info.version)
    t._has_grad = bool(info.has_grad)
    return t
