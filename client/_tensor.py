"""RemoteTensor: a proxy for a tensor that lives in a server session.

A proxy is the engine's autograd bookkeeping (`AutogradMeta`) plus a session and an id: it
knows its shape, dtype, strides, device, grad_fn and version without asking the server, because
the client picks the ids and runs the very same shape rules and bookkeeping functions as the
engine (see `_record`). Building a graph therefore only appends ops to the session's buffer;
only values wait.

This module imports neither grpc nor protobuf.
"""

from __future__ import annotations

import weakref
from operator import attrgetter

import numpy as np
from gradserve.engine import (
    AutogradError,
    AutogradMeta,
    DType,
    InvalidArgumentError,
    Size,
    TensorAPI,
    as_dtype,
    get_op,
    no_grad,
)
from gradserve.engine.seam import Shadow, format_tensor, node_class, shown

from . import _callbacks


class Held(weakref.ref):
    """A session's weak reference to one of its proxies, under the proxy's id (`tid`): when
    the proxy is collected its callback, the append of the session's `_releases` queue,
    queues it, and the next request releases the id (the server frees the tensor). A
    `Borrowed` one releases nothing: its proxy is for a tensor this client did not make. No
    `__del__` on the proxy and no Python callback: a C callable costs no Python call per
    collected proxy, a finalizer two and a resurrection check."""

    __slots__ = ("tid",)


class Borrowed(Held):
    __slots__ = ()


class RemoteTensor(AutogradMeta, TensorAPI):
    """A tensor held by a server session, used exactly like `torch.Tensor`.

    Operators, methods and autograd attributes are computed locally where they can be and
    recorded for the server; only `item()`, `tolist()`, `numpy()` and `repr()` wait for it.

    >>> x = s.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    >>> y = (x * 2).sum()           # no round trip: shape (), grad_fn SumBackward0
    >>> y.backward()                # sent, not waited for
    >>> x.grad.tolist()             # waits
    [[2.0, 2.0], [2.0, 2.0]]
    """

    __slots__ = ("_session", "_id", "_shape", "_has_grad", "_grad_graph", "_grad_owned",
                 "_grad_cache", "_held")
    _kind = "remote"

    def __init__(self, session, tensor_id: str, shape: tuple, dtype: DType, device: str,
                 strides: tuple | None = None, *, owned: bool = True) -> None:
        self._init_meta(dtype, device, strides)
        self._session = session
        self._id = tensor_id
        # None: known after a fetch; a shape rule's Size (an input's) is shared, not copied
        self._shape = shape if shape is None or type(shape) is Size else Size(shape)
        self._has_grad = False  # whether the server's tensor has a .grad, as far as we know
        self._grad_graph = False  # whether that grad was made with create_graph=True
        # whether that grad was made by a backward without create_graph (so it is writable and
        # later backwards accumulate into it in place, as the engine and torch do)
        self._grad_owned = False
        self._grad_cache = None  # (grad epoch, proxy bound to the grad)
        # owned: released on the server when this proxy is collected. The proxy keeps its
        # reference alive, so the callback comes even if the session's table lets it go.
        self._held = held = (Held if owned else Borrowed)(self, session._on_collected)
        held.tid = tensor_id
        session._proxies[tensor_id] = held

    # -- metadata --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The tensor's id in its session (what grpcurl and the wire API call it)."""
        return self._id

    @property
    def session(self):
        """The Session that holds this tensor."""
        return self._session

    # a C getter, not a Python frame: shape rules read it several times per recorded op
    shape = property(attrgetter("_shape"), doc="The tensor's size, a gradserve.Size.")

    def _saved_data(self):
        return None  # the data lives on the server; the local graph keeps versions only

    def _relayout(self, name: str, attrs: dict, meta) -> None:
        """An in-place view op's change of layout (engine/surface/inplace_views.py): the
        server's tensor makes the same change (its command of the op's name)."""
        self._session._send(f"{name}_", (self,), (), attrs)
        self._shape = Size(meta.shape)

    def _snapshot(self, copy: bool) -> Shadow:
        return Shadow(self)

    # -- autograd state ----------------------------------------------------------------------
    def _set_leaf_requires_grad(self, value: bool) -> None:
        self._session._send("requires_grad_", (self,), (), {"requires_grad": value})
        self._rg = value

    def _start_retaining_grad(self) -> None:
        self._session._send("retain_grad", (self,), (), {})
        self.grad_fn.retain(self)

    @property
    def grad(self) -> RemoteTensor | None:
        """The accumulated gradient (a RemoteTensor) or None; no round trip either way."""
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

    def _grad_accepts_add(self) -> bool:
        """Whether backward may add into .grad in place (see the engine's `_accumulate`):
        it was made by a backward without create_graph, and is outside the graph."""
        cached = self._grad_cache
        return self._has_grad and self._grad_owned and (
            cached is None or not cached[1].requires_grad)

    @grad.setter
    def grad(self, value: RemoteTensor | None) -> None:
        if value is None:
            self._session._send("set_grad", (self,), (), {})
            self._grad_dropped()
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

    def _grad_dropped(self) -> None:
        """The client's side of `.grad = None` (sent by the caller)."""
        self._has_grad = False
        self._grad_cache = None

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` on the server.

        torch's checks run here; the backward itself is sent without waiting (an error only
        the server can see is raised at the next call that waits).

        >>> loss = (s.tensor([1., 2.], requires_grad=True) ** 2).sum()
        >>> loss.backward()
        """
        self._session._backward([self], None if gradient is None else [gradient], retain_graph,
                                create_graph, inputs)

    # -- aliasing --------------------------------------------------------------------------
    def detach(self) -> RemoteTensor:
        """A tensor with the same storage and version counter, outside the graph."""
        return self._op("detach", self)

    def detach_(self) -> RemoteTensor:
        super().detach_()
        self._session._send("detach_", (self,), (), {})
        return self

    @property
    def data(self) -> RemoteTensor:
        """Same storage, a fresh version counter: in-place changes through it go unnoticed."""
        return self._op("data", self)

    @data.setter
    def data(self, value: RemoteTensor) -> None:
        if not isinstance(value, RemoteTensor) or value._session is not self._session:
            raise InvalidArgumentError("data must be set to a RemoteTensor of the same session")
        if value.device != self.device:
            raise InvalidArgumentError("data set to a tensor that requires gradients must match")
        self._session._send("set_data", (self, value), (), {})
        self._shape, self.dtype, self._strides = value._shape, value.dtype, value._strides

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
        if self._session.closed:
            return f"<RemoteTensor {self._id!r} of closed session {self._session.id!r}>"
        part, cut = shown(self)  # only the elements shown cross the wire
        values = self._session._fetch([part])[0]
        return format_tensor(values, self.dtype, self._device, self._repr_suffix(), cut)

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
        with no_grad():
            out = self.clone()
        if self._rg:
            out.requires_grad_(True)
        memo[id(self)] = out
        return out

    def _home(self):
        return self._session

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed (it may return a
        replacement); on a remote session the server's backward waits while this client
        runs it (one round trip per call). Returns a handle with `.remove()`.

        >>> x = s.tensor(3.0, requires_grad=True)
        >>> _ = x.register_hook(lambda g: print("grad", g.item()))
        >>> (x * x).backward()
        grad 6.0
        """
        if not self.requires_grad:
            raise AutogradError(
                "cannot register a hook on a tensor that doesn't require gradient")
        return _callbacks.register_hook(self, hook)

    def _record_function(self, node, inputs, outputs) -> None:
        _callbacks.record_function(node, inputs, outputs)

    # -- the two primitives of TensorAPI -----------------------------------------------------
    def _op(self, name, *inputs, **attrs):
        return self._session._kind.apply(get_op(name), inputs, attrs)

    def _inplace(self, name, *others, **attrs):
        return self._session._kind.apply_inplace(get_op(name), self, others, attrs)


_new = object.__new__


def output_proxy(session, tensor_id: str, shape, dtype: DType, device: str,
                 strides: tuple | None) -> RemoteTensor:
    """`RemoteTensor(session, tensor_id, shape, dtype, device, strides)` for a recorded op's
    output (a shape rule's shape: a Size, or None until fetched), without the calls of a
    constructor: this runs for every op. tests/client/test_per_op_paths.py holds its state to
    the constructor's."""
    t = _new(RemoteTensor)
    t._init_meta(dtype, device, strides)
    t._session = session
    t._id = tensor_id
    t._shape = shape if shape is None or type(shape) is Size else Size(shape)
    t._has_grad = t._grad_graph = t._grad_owned = False
    t._grad_cache = None
    t._held = held = Held(t, session._on_collected)
    held.tid = tensor_id
    session._proxies[tensor_id] = held
    return t


def from_info(session, info, owned: bool = False) -> RemoteTensor:
    """A proxy for a tensor the server describes (TensorInfo), e.g. one made with grpcurl.
    Its grad_fn, if any, is known by name only: the server made it."""
    t = RemoteTensor(session, info.id, tuple(info.shape), as_dtype(info.dtype or "float32"),
                     info.device or session.device, strides=tuple(info.strides) or None,
                     owned=owned)
    if info.is_leaf or not info.grad_fn:
        t._rg = bool(info.requires_grad)
    else:
        t._grad_fn = node_class(info.grad_fn)(None, info.grad_fn, (), [], [], (), {}, t._device)
    t._vc.value = int(info.version)
    t._has_grad = bool(info.has_grad)
    return t

