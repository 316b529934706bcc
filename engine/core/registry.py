"""The op registry: one entry per op, its forward, backward and shape rule side by side.

An op is data with a name (the name the wire uses). Each op declares:
  infer(*inputs, **attrs) -> Meta | tuple[Meta, ...]   shape and dtype, computed without data;
                                                        the client calls it to know shapes
                                                        without a round trip
  forward(xp, *arrays, **attrs) -> array | tuple       the computation, on numpy or cupy
  backward(ctx, grad) -> tuple[Tensor | None, ...]     written in engine ops, so that
                                                        create_graph gives higher derivatives
`save` names the inputs (and `save_output` the output) backward reads; nothing else is kept.
`grad_uses` narrows that per call, as torch does: one entry per input, the inputs (and
"out", the saved output) that input's gradient reads. A call keeps only what the gradients
of the inputs that need one read, so `v * 2.0` keeps nothing of `v` and an in-place change
to `v` afterwards is no error; backward finds None in the places it does not read.

A few wire ops change a tensor's autograd state rather than compute (`requires_grad_`,
`retain_grad`, `grad`, ...): `defcommand` registers them in the same table, so every op name
a caller can send is a key here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

from .dtype import DType
from .errors import InvalidArgumentError
from .layout import contiguous


class Meta(NamedTuple):
    """What infer returns: the shape and dtype of one output, and its element strides: a
    view op's output's (it aliases its input), or a fresh result's layout when it is not
    contiguous (an elementwise op's, `core/layout.iterated`); None means contiguous."""

    shape: tuple[int, ...]
    dtype: DType
    strides: tuple[int, ...] | None = None

    def stride(self) -> tuple[int, ...]:
        return self.strides if self.strides is not None else contiguous(self.shape)


# `fresh((shape, dtype, None))` is `Meta(shape, dtype)` (all three fields given) without
# NamedTuple's Python-level __new__ (a tenth of a microsecond): for shape rules run per op
fresh = partial(tuple.__new__, Meta)

class OpDef:
    """One op. Created by `defop` (or `defcommand`); the backward is attached with
    `@opdef.def_backward`."""

    __slots__ = ("name", "infer", "forward", "backward", "forward_into", "grad_name", "save",
                 "save_output", "view", "random", "needs_device", "differentiable", "run",
                 "arity", "name_from_meta", "multi_grad", "attrs", "grad_uses", "_kept",
                 "node_cls", "layouts", "grads_from", "grad_outputs")

    def __init__(self, name, infer, forward, grad_name, save, save_output, view, random,
                 needs_device, differentiable):
        self.run = None  # a command's function over engine tensors (see defcommand)
        self.arity = None
        self.attrs = None  # what the op declares its attrs are (see defop, defcommand)
        self.name_from_meta = False
        self.multi_grad = False
        self.name = name
        self.infer = infer
        self.forward = forward
        self.backward = None
        self.forward_into = None
        self.grad_name = grad_name
        self.save = save if isinstance(save, slice) else tuple(save)
        self.save_output = save_output
        self.view = view
        self.random = random
        self.needs_device = needs_device
        self.differentiable = differentiable
        self.grad_uses = None
        self._kept = {}
        # the Node subclass of a fixed grad_fn name, found once (see core/meta.record)
        self.node_cls = None
        self.layouts = ()  # inputs whose column-majorness the backward reads (see defop)
        self.grads_from = None  # the outputs whose gradients reach the inputs (see defop)
        self.grad_outputs = None  # the outputs that are outputs of the node (see defop)

    def kept(self, needs: tuple[bool, ...]) -> tuple[frozenset, bool] | None:
        """Which inputs (by index) and whether the output a call keeps, given which inputs
        need a gradient; None: everything `save` and `save_output` name."""
        uses = self.grad_uses
        if uses is None:
            return None
        hit = self._kept.get(needs)
        if hit is None:
            wanted = set()
            for i, need in enumerate(needs):
                if need and i < len(uses):
                    wanted.update(uses[i])
            out = "out" in wanted
            wanted.discard("out")
            hit = self._kept[needs] = (frozenset(wanted), out)
        return hit

    def output_kept(self, needs: tuple[bool, ...]):
        """save_output (which output backward reads), or False when this call keeps none."""
        if self.grad_uses is None or not self.save_output:
            return self.save_output
        return self.save_output if self.kept(needs)[1] else False

    def saved_slot(self, i: int, n_inputs: int) -> int | None:
        """Where input i sits among the saved tensors (None: not saved)."""
        which = list(self.saved_indices(n_inputs))
        return which.index(i) if i in which else None

    def def_backward(self, fn: Callable) -> Callable:
        self.backward = fn
        return fn

    def def_forward_into(self, fn: Callable) -> Callable:
        """An in-place forward, `fn(xp, a, *args, **attrs)` writing into `a`: what `op_` runs
        when no graph is recorded (an optimizer step), saving a temporary and a copy."""
        self.forward_into = fn
        return fn

    def saved_indices(self, n_inputs: int):
        save = self.save
        return save if type(save) is tuple else range(n_inputs)[save]

    def node_name(self, inputs: Sequence, attrs: dict, meta) -> str:
        """The grad_fn name of one call: a fixed name, or one that depends on the inputs and
        attrs, or (name_from_meta) on the inferred output."""
        g = self.grad_name
        if type(g) is str:
            return g
        return g(meta) if self.name_from_meta else g(*inputs, **attrs)

    def check_arity(self, n_inputs: int, n_outputs: int) -> None:
        """A command's input and output id counts, checked before it runs."""
        for what, got, (lo, hi) in (("input", n_inputs, self.arity[0]),
                                    ("output id", n_outputs, self.arity[1])):
            if not lo <= got <= hi:
                want = str(lo) if lo == hi else f"{lo} to {hi}"
                raise InvalidArgumentError(f"'{self.name}' takes {want} {what}(s), got {got}")

    def __repr__(self) -> str:
        return f"<op {self.name}>"


class _Registry(dict):
    """name -> OpDef; a missing name is the caller's error, raised as such."""

    __slots__ = ()

    def __missing__(self, name: str):
        raise InvalidArgumentError(f"unknown op {name!r}")


OPS: dict[str, OpDef] = _Registry()


def defop(name: str, *, infer: Callable, grad_name: str | Callable | None = None,
          save: Sequence[int] | slice = (), save_output: bool | int = False, view: bool = False,
          random: bool = False, needs_device: bool = False, differentiable: bool = True,
          name_from_meta: bool = False,
          multi_grad: bool = False,
          attrs: Sequence[str] | None = None,
          grad_uses: Sequence[Sequence[int | str]] | None = None,
          layouts: Sequence[int] = (),
          grads_from: Sequence[int] | Callable | None = None,
          grad_outputs: Sequence[int] | None = None) -> Callable[[Callable], OpDef]:
    """Register `forward` under `name`. Returns the OpDef, ready for `.def_backward`.

    view: the output aliases input 0's storage (shares its version counter).
    random: forward gets `gen=`, the current generator drawing onto the op's device
        (`_backend.Draws`: numpy Generator methods).
    needs_device: forward gets `device=` (factories that create arrays from nothing).
    name_from_meta: grad_name is called with the inferred output (Meta), not the inputs.
    multi_grad: every floating output is an output of the node (split, unbind), and backward
    gets `{output_nr: grad}` instead of output 0's gradient.

    An infer may leave a shape unknown (`Meta(None, dtype)`) when it depends on the data
    (`nonzero`, masks): the engine takes it from the result, a client asks the server.
    attrs: which of infer's parameters are attrs (passed by keyword) rather than inputs; only
      describes the op (ListOps). Omitted: those with a default value or keyword-only.
    grad_uses: per input, the inputs ("out": the saved output) its gradient reads; `save`
      defaults to all of them. Omitted: every call keeps all of `save` (and the output).
    layouts: inputs whose layout the backward reads (`ctx.column_major[k]`, noted when the op
      is recorded, whether or not the input is saved), as torch's matrix products give a
      column-major input its gradient column-major.
    grads_from: (multi_grad) the outputs whose gradients reach the inputs; a backward given
      only others' returns None for every input (lstsq's residuals, slogdet's sign), so a
      leaf reached only that way keeps `.grad` None. The walk without data (a client's image
      of the graph) reads it to know which leaves get a `.grad`. Omitted: every output's. A
      callable takes the node's attrs and returns them (lstsq: its residuals when filled;
      norm: none at p=0, as torch's).
    grad_outputs: (multi_grad) the outputs that are outputs of the node (torch's
      output_differentiability); the others are plain tensors. Omitted: every floating one.
    """
    if grad_uses is not None:
        grad_uses = tuple(tuple(u) for u in grad_uses)
        if not save:
            save = tuple(sorted({i for u in grad_uses for i in u if i != "out"}))

    if view and (save or save_output):
        # a view's history is replayed on shapes alone (see core/meta.replay_view)
        raise ValueError(f"view op {name!r} must not save tensors for backward")

    def register(forward: Callable) -> OpDef:
        opdef = OpDef(name, infer, forward, grad_name, save, save_output, view, random,
                      needs_device, differentiable and grad_name is not None)
        opdef.name_from_meta = name_from_meta
        opdef.multi_grad = multi_grad
        opdef.attrs = None if attrs is None else tuple(attrs)
        opdef.grad_uses = grad_uses
        opdef.layouts = tuple(layouts)
        opdef.grads_from = grads_from if grads_from is None or callable(grads_from) else \
            frozenset(grads_from)
        opdef.grad_outputs = None if grad_outputs is None else frozenset(grad_outputs)
        return _add(opdef)

    return register


def defcommand(name: str, *, inputs: tuple[int, int], outputs: tuple[int, int],
               needs_device: bool = False,
               attrs: dict[str, object] | None = None) -> Callable[[Callable], OpDef]:
    """Register `run(inputs, attrs) -> tuple of tensors` as the wire op `name`: a change to
    autograd state, run on engine tensors. `inputs` and `outputs` are inclusive count ranges;
    a caller binds as many of the returned tensors as it names output ids. `attrs`: the attrs
    `run` reads and their defaults (`...`: required); only describes the command (ListOps)."""

    def register(run: Callable) -> OpDef:
        opdef = OpDef(name, None, None, None, (), False, False, False, needs_device, False)
        opdef.run, opdef.arity = run, (inputs, outputs)
        opdef.attrs = dict(attrs or {})
        return _add(opdef)

    return register


def _add(opdef: OpDef) -> OpDef:
    if opdef.name in OPS:
        raise ValueError(f"op {opdef.name!r} registered twice")
    OPS[opdef.name] = opdef
    return opdef


# The op of a name (InvalidArgumentError when there is none): the registry's own lookup, so
# a hit costs no Python call (this runs on every op).
get_op = OPS.__getitem__
