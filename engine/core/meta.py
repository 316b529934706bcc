"""The autograd bookkeeping both tensor kinds keep, written once.

`AutogradMeta` is the state torch keeps beside a tensor's data — requires_grad, grad_fn and
output number, the version counter shared with views, the view's base and how to replay its
history, retain_grad, the leaf's gradient accumulator — with the rules over it. The functions
below are the per-op bookkeeping: where an op runs (`placement`), which outputs alias their
input (`mark_views`), the graph node it records (`record`), and the checks and history
rewrites of an in-place op (`check_inplace`, `commit_inplace`). None of them touches data.

The engine's `Tensor` adds storage and computes; the client's `RemoteTensor` adds a session
and an id and sends. Both call these functions, so their `_version`, `is_leaf`, `grad_fn`
names and errors agree by construction.
"""

from __future__ import annotations

import re
import weakref

from . import grad_mode as _grad_mode
from .autograd import NODE_CLASSES, AccumulateGrad, Node, SavedTensor, node_class
from .copyslices import SavedViewOutput, copy_slices, realigned, replay
from .device import device
from .dtype import TORCH_C_TYPE_NAMES, TORCH_SCALAR_NAMES, DType, can_cast
from .errors import MIXED_KINDS, AutogradError, InvalidArgumentError
from .hooks import add_tensor_hook
from .layout import column_majors, contiguous, is_contiguous
from .registry import Meta, OpDef, get_op
from .shape import normalize_dim
from .warn import warn_user

NON_LEAF_GRAD = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
    "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
    "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. "
    "If you access the non-leaf Tensor by mistake, make sure you access the leaf Tensor "
    "instead."
)
_NO_GRAD_VIEW = (
    "A view was created in no_grad mode and is being modified inplace with grad mode enabled. "
    "Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify "
    "your code by moving both the view and the inplace either both inside the no_grad block "
    "(if you don't want the inplace to be tracked) or both outside (if you want the inplace "
    "to be tracked)."
)
_OVERLAP = (
    "unsupported operation: more than one element of the written-to tensor refers to a single "
    "memory location. Please clone() the tensor before performing the operation."
)
_new = object.__new__


class Version:
    """The version counter; views and detach() share one, `.data` gets a fresh one."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value


class AutogradMeta:
    """A tensor's autograd state and rules, without data. A tensor kind combines it with
    torch's methods (`TensorAPI`) and provides `shape`, `_saved_data()` (what a node keeps of
    its own output), `_snapshot(copy)`, `_home()` and the hooks `_set_leaf_requires_grad` /
    `_start_retaining_grad`."""

    __slots__ = ("dtype", "_device", "_strides", "_rg", "_grad_fn", "_output_nr", "_vc",
                 "_base", "_view_steps", "_view_version", "_retains_grad", "_acc", "_hooks",
                 "__weakref__")
    _kind = "meta"  # which tensor kind: tensors of two kinds never meet in one op

    def _init_meta(self, dtype: DType, device: str, strides: tuple | None = None) -> None:
        # a plain attribute, not a property: shape rules read it on every op
        self.dtype = dtype
        self._device = device
        # element strides, None when contiguous: what view ops' shape rules gave (see core/layout)
        self._strides = strides
        self._rg = False
        self._grad_fn = None
        self._output_nr = 0
        self._vc = vc = _new(Version)  # Version(), without a Python call: one per tensor
        vc.value = 0
        # A view made by view ops: its root tensor, the ((op, attrs, output_nr), ...) that
        # made it from the root (None when made under no_grad) and the version its recorded
        # history belongs to.
        self._base = None
        self._view_steps = None
        self._view_version = 0
        self._retains_grad = False
        self._acc = None
        self._hooks = None  # a leaf's tensor hooks (a non-leaf's live on its grad_fn)

    # -- metadata --------------------------------------------------------------------------
    @property
    def device(self) -> device:
        """Where the tensor lives: a `gradserve.device` (a str, "cpu" or "cuda:N")."""
        return device(self._device)

    @property
    def is_cuda(self) -> bool:
        return self._device != "cpu"

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize

    def _layout(self) -> tuple[int, ...]:
        return self._strides if self._strides is not None else contiguous(self.shape)

    def stride(self, dim: int | None = None):
        """Element strides, as torch's `stride()`: a tuple, or one dim's stride."""
        strides = self._layout()
        return strides if dim is None else strides[normalize_dim(dim, len(strides))]

    def is_contiguous(self) -> bool:
        return is_contiguous(self.shape, self._layout())

    # -- autograd state --------------------------------------------------------------------
    @property
    def grad_fn(self):
        """The node that made this tensor (None for leaves).

        A view whose base changed in place since its history was recorded gets that history
        rebuilt from the base's current one, as torch does, so gradients flow through the
        in-place op.
        """
        if self._view_steps is not None and self._view_version != self._vc.value:
            self._refresh_view_history()
        return self._grad_fn

    @grad_fn.setter
    def grad_fn(self, node) -> None:
        self._grad_fn = node

    def _refresh_view_history(self) -> None:
        self._view_steps = realigned(self)  # the root's own layout may have changed in place
        self._grad_fn, self._output_nr = replay_view(self._base, self._view_steps)
        self._view_version = self._vc.value
        if self._retains_grad and self._grad_fn is not None:
            self._grad_fn.retain(self)

    def _accumulator(self) -> AccumulateGrad:
        # Held weakly, as torch does: the graph keeps it alive, and a leaf <-> accumulator
        # cycle would leave freeing the leaf to the cyclic garbage collector.
        acc = self._acc() if self._acc is not None else None
        if acc is None:
            acc = AccumulateGrad(self)
            self._acc = weakref.ref(acc)
        return acc

    @property
    def requires_grad(self) -> bool:
        return self._rg or self.grad_fn is not None

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if self.grad_fn is not None:
            if not value:
                raise AutogradError(
                    "you can only change requires_grad flags of leaf variables. If you want to "
                    "use a computed variable in a subgraph that doesn't require differentiation "
                    "use var_no_grad = var.detach()."
                )
            return
        if value and not self.dtype.is_floating_point:
            raise AutogradError("only Tensors of floating point dtype can require gradients")
        if value != self._rg:
            self._set_leaf_requires_grad(value)

    def _set_leaf_requires_grad(self, value: bool) -> None:
        self._rg = value

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; it may return a
        replacement. Returns a handle whose `.remove()` unregisters it.

        >>> from gradserve import engine
        >>> x = engine.tensor(3.0, requires_grad=True)
        >>> _ = x.register_hook(print)
        >>> (x * x).backward()
        tensor(6.)
        """
        return add_tensor_hook(self, hook)

    def requires_grad_(self, requires_grad: bool = True):
        """Set requires_grad in place and return self. >>> w = x.detach().requires_grad_()"""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        return self._vc.value

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf after backward (a no-op on leaves)."""
        if not self.requires_grad:
            raise AutogradError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None and not self._retains_grad:
            self._start_retaining_grad()
            self._retains_grad = True

    def _start_retaining_grad(self) -> None:
        self.grad_fn.retain(self)

    def detach_(self):
        """Make this tensor a leaf outside the graph, in place (not for views)."""
        if self._base is not None:
            raise AutogradError("Can't detach views in-place. Use detach() instead.")
        self._grad_fn = None
        self._rg = False
        return self

    def _warn_if_non_leaf_grad(self, defined: bool) -> None:
        # torch warns only when the non-leaf's grad is actually missing
        if not defined and self.grad_fn is not None and not self._retains_grad:
            warn_user(NON_LEAF_GRAD)

    def _check_assigned_grad(self, value) -> None:
        """torch's checks for `x.grad = value` (value already known to be this kind)."""
        if value.shape != self.shape:
            raise InvalidArgumentError(
                f"attempting to assign a gradient of size '{list(value.shape)}' to a tensor "
                f"of size '{list(self.shape)}'. Please ensure that the gradient and the "
                "tensor are the same size"
            )
        if value.dtype is not self.dtype:
            raise InvalidArgumentError(
                "attempting to assign a gradient with dtype "
                f"'{TORCH_C_TYPE_NAMES[value.dtype.name]}' to a tensor with grad_dtype "
                f"'{TORCH_SCALAR_NAMES[self.dtype.name]}'. The gradient must match the "
                "tensor's grad_dtype (defaults to the tensor's dtype)."
            )
        if value.device != self.device:
            raise InvalidArgumentError(
                f"attempting to assign a gradient with device type '{value.device}' to a "
                f"tensor with device type '{self.device}'. Please ensure that the gradient "
                "and the tensor are on the same device"
            )

    def _check_numpy(self) -> None:
        if self.requires_grad:
            raise AutogradError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() "
                "instead."
            )
        if self.device != "cpu":
            raise InvalidArgumentError(
                f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to "
                "copy the tensor to host memory first."
            )

    def _repr_suffix(self) -> str:
        if self.grad_fn is not None:
            return f"grad_fn=<{type(self.grad_fn).__name__}>"  # torch's repr: the type
        if self._rg:
            return "requires_grad=True"
        return ""


class Shadow(AutogradMeta):
    """A stand-in without data for a tensor in a graph: its shape, dtype, strides and history,
    under its own version counter (what an in-place op saves of an input kept elsewhere)."""

    __slots__ = ("shape",)

    def __init__(self, t: AutogradMeta) -> None:
        self._init_meta(t.dtype, t._device, t._strides)
        self.shape = t.shape
        _copy_history(t, self)

    def _saved_data(self):
        return None


def _copy_history(src: AutogradMeta, dst: AutogradMeta) -> None:
    dst._rg, dst._grad_fn, dst._output_nr, dst._acc = src._rg, src.grad_fn, src._output_nr, src._acc


# -- per-op bookkeeping -----------------------------------------------------------------------
def placement(inputs, default: str) -> tuple[str, bool]:
    """The device the tensor inputs share (`default` when there are none) and whether any of
    them requires grad; raises torch's error when devices differ."""
    device = kind = None
    any_grad = False
    for x in inputs:
        if isinstance(x, AutogradMeta):
            if device is None:
                device, kind = x._device, x._kind
            elif x._device != device or x._kind is not kind:
                if x._kind is not kind:  # never a silent download, whichever comes first
                    raise InvalidArgumentError(MIXED_KINDS)
                raise InvalidArgumentError(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, {device} and {x._device}!"
                )
            if not any_grad:
                any_grad = x._rg or (x._grad_fn if x._view_steps is None else x.grad_fn) \
                    is not None
    return (default if device is None else device), any_grad


def mark_views(op: OpDef, src: AutogradMeta, outputs, metas, attrs: dict) -> None:
    """Outputs that alias src (their shape rule gave strides) share its version counter;
    differentiable views also remember their root and the view ops that lead there, for
    in-place ops through them. A view op that had to copy (reshape of a non-contiguous
    tensor) gives a tensor of its own."""
    for nr, (o, m) in enumerate(zip(outputs, metas, strict=True)):
        if m.strides is None:
            continue
        o._vc = src._vc
        if not op.differentiable:  # detach: an alias outside the graph
            continue
        o._base = src._base if src._base is not None else src
        if _grad_mode._state.enabled and (src._base is None or src._view_steps is not None):
            o._view_steps = (src._view_steps or ()) + ((op.name, attrs, nr),)
            o._view_version = o._vc.value


def edge(x) -> tuple:
    """The (node, output_nr) a graph edge to input `x` points at, as torch's next_functions."""
    if isinstance(x, AutogradMeta):
        fn = x._grad_fn if x._view_steps is None else x.grad_fn
        if fn is not None:
            return (fn, x._output_nr)
        if x._rg:
            return (x._accumulator(), 0)
    return _NO_EDGE


_NO_EDGE = (None, 0)  # an input that is a number, or a tensor outside the graph


def record(op: OpDef, inputs: tuple, attrs: dict, device: str, meta) -> Node:
    """The graph node for one op: edges to the inputs' nodes and the tensors backward reads."""
    n = len(inputs)  # one or two inputs, the first a tensor (most ops): the lists made whole
    if n == 2 and isinstance(a := inputs[0], AutogradMeta):
        edges, b = edge(a), inputs[1]
        if isinstance(b, AutogradMeta):
            edges, shapes, dtypes = (edges, edge(b)), [a.shape, b.shape], [a.dtype, b.dtype]
        else:
            edges, shapes, dtypes = (edges, _NO_EDGE), [a.shape, None], [a.dtype, None]
    elif n == 1 and isinstance(a := inputs[0], AutogradMeta):
        edges, shapes, dtypes = (edge(a),), [a.shape], [a.dtype]
    else:  # one pass (addmm's three inputs, cat's list)
        edges, shapes, dtypes = [], [], []
        for x in inputs:
            m = isinstance(x, AutogradMeta)
            edges.append(edge(x) if m else _NO_EDGE)
            shapes.append(x.shape if m else None)
            dtypes.append(x.dtype if m else None)
        edges = tuple(edges)
    which, saved = op.save if type(op.save) is tuple else op.saved_indices(n), ()
    if which:  # loops: a comprehension reading `inputs` would make cells on every call
        keep = range(n) if op.grad_uses is None else op.kept((
            edges[0][0] is not None, edges[1][0] is not None) if n == 2 else tuple(
            [e[0] is not None for e in edges]))[0]
        saved = []
        for i in which:
            x = inputs[i] if i in keep else None
            saved.append(SavedTensor(x) if isinstance(x, AutogradMeta) else x)
        saved = tuple(saved)
    cls, name = op.node_cls, op.grad_name  # a fixed grad_fn name: its class found once
    if cls is None:
        name = op.node_name(inputs, attrs, meta)
        cls = NODE_CLASSES.get(name) or node_class(name)
        if type(op.grad_name) is str:
            op.node_cls = cls
    node = cls(op, name, edges, shapes, dtypes, saved, attrs, device)
    if op.layouts:
        node.column_major = column_majors(inputs, op.layouts)
    return node


def set_history(outputs, node: Node, op: OpDef) -> None:
    """Make `node` the grad_fn of the (first) output, or of every floating output of a
    multi_grad op, keeping the output itself if backward reads it."""
    head = outputs[0]
    head._grad_fn = node
    if op.multi_grad:
        only = op.grad_outputs
        for nr in range(1, len(outputs)):
            o = outputs[nr]
            if o.dtype.is_floating_point and (only is None or nr in only):
                o._grad_fn, o._output_nr = node, nr
    saved = op.save_output and op.output_kept(node.needs)
    if saved:  # True: output 0; an int: that output (sort keeps its indices)
        nr = 0 if saved is True else saved
        node._saved_output = SavedTensor(outputs[nr], output_nr=nr)


def replay_view(base: AutogradMeta, steps) -> tuple[Node | None, int]:
    """The grad_fn (and output number) a view gets from its base's current history: its view
    ops recorded again, on shapes alone (view ops save nothing for backward). None when the
    base needs no grad, as recording them would make no node either."""
    if not base.requires_grad:
        return None, 0
    return replay(Meta(base.shape, base.dtype, base.stride()), edge(base), base._device, steps)


# -- in-place ops ---------------------------------------------------------------------------
def check_inplace(op: OpDef, self: AutogradMeta, others: tuple, attrs: dict):
    """torch's checks before `self.op_(*others)`; returns the op's inferred result (as if out
    of place) when it is recorded for autograd, else None."""
    grad_on = _grad_mode._state.enabled
    if grad_on and self._rg and self.grad_fn is None:
        raise AutogradError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    meta = op.infer(self, *others, **attrs)
    shape = self.shape
    if meta.shape != shape:
        raise InvalidArgumentError(
            f"output with shape {list(shape)} doesn't match the broadcast shape "
            f"{list(meta.shape)}"
        )
    if meta.dtype is not self.dtype and not can_cast(meta.dtype, self.dtype):
        raise InvalidArgumentError(
            f"result type {TORCH_SCALAR_NAMES[meta.dtype.name]} can't be cast to the desired "
            f"output type {TORCH_SCALAR_NAMES[self.dtype.name]}"
        )
    strides = self._strides or ()  # None: contiguous, where no stride is 0
    if 0 in strides and any(s == 0 and n > 1 for s, n in zip(strides, shape, strict=True)):
        raise InvalidArgumentError(_OVERLAP)
    record = grad_on and op.differentiable and (self.requires_grad or any(
        isinstance(o, AutogradMeta) and o.requires_grad for o in others))
    base = self._base
    if record and base is not None:
        if base._rg and base.grad_fn is None:
            raise AutogradError(
                "a view of a leaf Variable that requires grad is being used in an in-place "
                "operation."
            )
        if self._view_steps is None:
            raise AutogradError(_NO_GRAD_VIEW)
        if any(get_op(name).multi_grad for name, _, _ in self._view_steps):
            fn = re.sub(r"Backward\d*$", "", self.grad_fn.name())
            raise AutogradError(
                f"Output {self._output_nr} of {fn} is a view and is being modified inplace. "
                "This view is the output of a function that returns multiple views. Such "
                "functions do not allow the output views to be modified inplace. You should "
                "replace the inplace operation by an out-of-place one."
            )
    return meta if record else None


def inplace_node(op: OpDef, self: AutogradMeta, others: tuple, attrs: dict,
                 meta: Meta) -> Node | None:
    """The node a recorded in-place op gives: the op applied to a stand-in for self's old
    value (a copy when backward reads it). None when the result is not floating point."""
    if not self.dtype.is_floating_point:
        return None
    node = record(op, (self._snapshot(copy=False), *others), attrs, self._device, meta)
    k = op.saved_slot(0, 1 + len(others))
    if k is not None and node._saved[k] is not None:  # backward reads self's old value
        node._saved = (*node._saved[:k], SavedTensor(self._snapshot(copy=True)),
                       *node._saved[k + 1:])
    return node


def commit_inplace(op: OpDef, self: AutogradMeta, node: Node | None) -> None:
    """After the write: bump the version and move self's (or its base's) history onto the
    in-place op. Through a view the base takes a CopySlices node holding the op's node
    (core/copyslices.py) and the view's history is rebuilt from it on next use."""
    if node is not None and self._retains_grad:  # .grad follows the newest value, as torch
        old = self.grad_fn
        if old is not None and old._retained:
            old._retained.pop(self._output_nr, None)
    self._vc.value += 1
    if node is None:
        return
    base = self._base
    if base is None:
        self._grad_fn, self._output_nr = node, 0
        if self._retains_grad:
            node.retain(self)
        if op.output_kept(node.needs):
            node._saved_output = SavedTensor(self, output_nr=0)
        return
    steps = self._view_steps
    slices = copy_slices(get_op("view_scatter"), base, edge(base), steps, node)
    if op.output_kept(node.needs):
        node._saved_output = SavedViewOutput(
            self, slices, Meta(base.shape, base.dtype, base.stride()), steps)
    base._grad_fn, base._output_nr = slices, 0
