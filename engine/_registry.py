"""The op registry: one entry per op, its forward, backward and shape rule side by side.

An op is data with a name (the name the wire uses). Each op declares:
  infer(*inputs, **attrs) -> Meta | tuple[Meta, ...]   shape and dtype, computed without data;
                                                        the client calls it to know shapes
                                                        without a round trip
  forward(xp, *arrays, **attrs) -> array | tuple       the computation, on numpy or cupy
  backward(ctx, grad) -> tuple[Tensor | None, ...]     written in engine ops, so that
                                                        create_graph gives higher derivatives
`save` names the inputs (and `save_output` the output) backward reads; nothing else is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from ._dtype import DType
from ._errors import InvalidArgumentError


class Meta(NamedTuple):
    """What infer returns: the shape and dtype of one output."""

    shape: tuple[int, ...]
    dtype: DType


class OpDef:
    """One op. Created by `defop`; the backward is attached with `@opdef.def_backward`."""

    __slots__ = ("name", "infer", "forward", "backward", "forward_into", "grad_name", "save",
                 "save_output", "view", "random", "needs_device", "differentiable")

    def __init__(self, name, infer, forward, grad_name, save, save_output, view, random,
                 needs_device, differentiable):
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

    def node_name(self, inputs: Sequence, attrs: dict) -> str:
        g = self.grad_name
        return g if type(g) is str else g(*inputs, **attrs)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


OPS: dict[str, OpDef] = {}


def defop(name: str, *, infer: Callable, grad_name: str | Callable | None = None,
          save: Sequence[int] | slice = (), save_output: bool = False, view: bool = False,
          random: bool = False, needs_device: bool = False,
          differentiable: bool = True) -> Callable[[Callable], OpDef]:
    """Register `forward` under `name`. Returns the OpDef, ready for `.def_backward`.

    view: the output aliases input 0's storage (shares its version counter).
    random: forward gets `gen=` (the current numpy Generator).
    needs_device: forward gets `device=` (factories that create arrays from nothing).
    """

    def register(forward: Callable) -> OpDef:
        if name in OPS:
            raise ValueError(f"op {name!r} registered twice")
        opdef = OpDef(name, infer, forward, grad_name, save, save_output, view, random,
                      needs_device, differentiable and grad_name is not None)
        OPS[name] = opdef
        return opdef

    return register


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise InvalidArgumentError(f"unknown op {name!r}") from None
