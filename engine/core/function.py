"""`autograd.Function`: a differentiable function with a hand-written backward.

`apply` runs `forward(ctx, *args)` without recording, then (when an input requires grad)
makes one graph node, `<Name>Backward`, whose backward calls `backward(ctx, *grads)`; the
outputs become its outputs. `function_node` builds that node from the tensors alone, so the
engine, a client's image of a remote graph and the server build the same one (a remote
session's node calls back to the client for the backward: see `core/callbacks`).

    >>> from gradserve import engine
    >>> class Cube(engine.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x * x * g
    >>> x = engine.tensor(2.0, requires_grad=True)
    >>> y = Cube.apply(x)
    >>> y.backward(); y.grad_fn.name(), x.grad
    ('CubeBackward', tensor(12.))
"""

from __future__ import annotations

from . import grad_mode as _grad_mode
from .autograd import Node, SavedTensor, node_class
from .errors import AutogradError
from .meta import AutogradMeta, edge


class FunctionCtx:
    """The `ctx` forward and backward share (torch's)."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self.to_save: tuple = ()
        self.dirty: tuple = ()
        self.non_differentiable: tuple = ()
        self.materialize_grads = True
        self._node: Node | None = None

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors for backward; they are checked for in-place changes on use."""
        self.to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        if self._node is None:
            return tuple(self.to_save)
        return self._node.saved

    def mark_dirty(self, *tensors) -> None:
        """Inputs that forward modified in place (and returns)."""
        self.dirty = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        self.non_differentiable = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """Whether backward gets zeros (True, the default) or None for unused outputs."""
        self.materialize_grads = bool(value)


class FunctionOp:
    """The op of a custom Function's nodes: its backward calls the user's."""

    multi_grad = True
    differentiable = True
    view = False
    custom = True  # a Python backward (a remote session's node asks its client for it)

    def __init__(self, cls) -> None:
        self.cls = cls
        self.name = cls.__name__

    def backward(self, node: Node, grads: dict):
        attrs = node.attrs
        ctx = attrs["ctx"]
        gs = []
        for nr, (shape, dtype, device) in enumerate(attrs["outputs"]):
            g = grads.get(nr)
            if g is None and ctx.materialize_grads:  # zeros where the tensor kind lives
                g = attrs["home"].zeros(shape, dtype=dtype, device=device)
            gs.append(g)
        result = self.cls.backward(ctx, *gs)
        if not isinstance(result, tuple):
            result = (result,)
        n, positions = attrs["n_args"], attrs["positions"]
        if len(result) < n or any(r is not None for r in result[n:]):
            raise AutogradError(
                f"function {node.name()} returned an incorrect number of gradients (expected "
                f"{n}, got {len(result)})")
        for i, r in enumerate(result[:n]):
            if r is not None and i not in positions:
                raise AutogradError(
                    f"function {node.name()} returned a gradient different than None at "
                    f"position {i + 1}, but the corresponding forward input was not a Variable")
        return tuple(result[p] for p in positions)


def function_node(op, name: str, inputs, outputs, saved=(), dirty=(), non_diff=(),
                  attrs: dict | None = None) -> Node:
    """The node of one custom Function call: edges to the tensor inputs (their histories
    before this call), the saved tensors at their current versions; the floating outputs
    (but the non-differentiable ones) become its outputs."""
    for t in dirty:
        if t._rg and t.grad_fn is None:
            raise AutogradError(
                "a leaf Variable that requires grad has been used in an in-place operation.")
    edges = tuple(edge(x) for x in inputs)
    node = node_class(name)(op, name, edges, [x.shape for x in inputs], [x.dtype for x in inputs],
                tuple(SavedTensor(t) for t in saved), attrs or {}, inputs[0]._device)
    for nr, o in enumerate(outputs):
        if o.dtype.is_floating_point and not any(o is n for n in non_diff):
            o._grad_fn, o._output_nr = node, nr
    return node


class _FunctionMeta(type):
    def __init__(cls, name, bases, ns) -> None:
        super().__init__(name, bases, ns)
        cls._op = FunctionOp(cls)


class Function(metaclass=_FunctionMeta):
    """Subclass with static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)` (or
    `forward(*args)` and `setup_context(ctx, inputs, output)`); call `apply`."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    setup_context = None

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward without recording, then record one node for the call."""
        tensors = [a for a in args if isinstance(a, AutogradMeta)]
        ctx = FunctionCtx(tuple(isinstance(a, AutogradMeta) and a.requires_grad
                                for a in args))
        with _grad_mode.no_grad():
            if cls.setup_context is not None:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not (_grad_mode.is_grad_enabled() and any(t.requires_grad for t in tensors)):
            return out
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        with _grad_mode.no_grad():  # an input returned as it is comes back as an alias
            outs = tuple(o.detach() if isinstance(o, AutogradMeta) and any(
                o is t for t in tensors) and not any(o is d for d in ctx.dirty) else o
                for o in outs)
        made = [o for o in outs if isinstance(o, AutogradMeta)]
        attrs = {"ctx": ctx, "positions": [i for i, a in enumerate(args)
                                           if isinstance(a, AutogradMeta)],
                 "n_args": len(args), "home": tensors[0]._home(),
                 "outputs": [(o.shape, o.dtype, o._device) for o in made]}
        node = function_node(cls._op, f"{cls.__name__}Backward", tensors, made,
                             ctx.to_save, ctx.dirty, ctx.non_differentiable, attrs)
        ctx._node = node
        tensors[0]._record_function(node, tensors, made)
        return outs[0] if single else outs
