"""Module: the container that owns parameters and submodules (torch.nn.Module's role).

A parameter is a leaf tensor of either kind that requires grad (or an `nn.Parameter`).
Assigning one to a module attribute registers it, as assigning an nn.Parameter does in
torch, and marks it a Parameter (see `parameter`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from gradserve.engine import DType, TensorAPI, as_dtype, canonical_device, no_grad
from gradserve.engine.seam import is_dtype_name

from .._default import session_of, values_of
from .._grads import clear_grads
from .parameter import Parameter, mark_parameter


class _IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (f"_IncompatibleKeys(missing_keys={self.missing_keys}, "
                f"unexpected_keys={self.unexpected_keys})")


def _is_tensor(value) -> bool:
    return isinstance(value, TensorAPI)


def _is_parameter(value) -> bool:
    return _is_tensor(value) and (isinstance(value, Parameter)
                                  or (value.requires_grad and value.is_leaf))


class Module:
    """Base class of every layer and model; subclasses define `forward`.

    >>> class TwoLayer(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = nn.Linear(4, 8)
    ...         self.fc2 = nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.fc2(self.fc1(x).relu())
    >>> [name for name, _ in TwoLayer().named_parameters()]
    ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        """The computation; subclasses override it and callers use `module(x)`.

        >>> nn.Linear(2, 1)(engine.ones(3, 2)).shape
        gradserve.Size([3, 1])
        """
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- registration --------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Module) or _is_parameter(value):
            self.__dict__.pop(name, None)
            for table in (params, buffers, modules):
                table.pop(name, None)
            if isinstance(value, Module):
                modules[name] = value
            else:
                params[name] = mark_parameter(value)
        elif name in params:
            if value is not None and not _is_tensor(value):
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(a tensor or None expected)")
            params[name] = mark_parameter(value)
        elif name in buffers:
            if value is not None and not _is_tensor(value):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(a tensor or None expected)")
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (a Module or None expected)")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the registered tables hold the rest.
        d = self.__dict__
        params = d.get("_parameters")
        if params is not None and name in params:  # first: what a layer's forward reads
            return params[name]
        for table in ("_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        """Register `param` (a tensor or None) as parameter `name`.

        >>> m = nn.Module(); m.register_parameter("scale", engine.ones(1, requires_grad=True))
        """
        if param is not None and not _is_tensor(param):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (a tensor or None required)")
        self.__dict__.pop(name, None)
        self._parameters[name] = mark_parameter(param)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a tensor that is state but not a parameter (saved in state_dict).

        >>> m = nn.Module(); m.register_buffer("steps", engine.zeros(1))
        """
        if tensor is not None and not _is_tensor(tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (a tensor or None required)")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under `name`. >>> seq.add_module("head", nn.Linear(4, 2))"""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    # -- traversal -----------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, each once, with dotted names.

        >>> [n for n, _ in nn.Sequential(nn.Linear(2, 2)).named_modules()]
        ['', '0']
        """
        seen = set()
        stack = [(prefix, self)]
        while stack:  # iterative pre-order, children in registration order
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m)
                        for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every descendant. >>> len(list(model.modules()))"""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct submodules with their names. >>> dict(model.named_children())"""
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        """Direct submodules. >>> list(nn.Sequential(nn.ReLU()).children())"""
        for _, m in self.named_children():
            yield m

    def _named_members(self, table: str, prefix: str, recurse: bool):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, module in modules:
            for name, t in getattr(module, table).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mod_name}.{name}" if mod_name else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(name, parameter) pairs, shared parameters once, named like torch ('0.weight').

        >>> [n for n, _ in nn.Linear(2, 3).named_parameters()]
        ['weight', 'bias']
        """
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        """Every parameter, e.g. to hand to an optimizer.

        >>> opt = optim.SGD(model.parameters(), lr=0.1)
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        """(name, buffer) pairs. >>> dict(model.named_buffers())"""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        """Every buffer. >>> list(model.buffers())"""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every submodule (children first) and on self; returns self.

        >>> model.apply(lambda m: print(type(m).__name__))
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode here and below (Dropout acts only in it); returns self.

        >>> model.train().training
        True
        """
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (train(False)); returns self.

        >>> model.eval().training
        False
        """
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradient recording of every parameter. >>> model.requires_grad_(False)"""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, dtype=None, device=None) -> Module:
        """Cast floating-point parameters and buffers to `dtype` and/or move everything to
        `device` (`to("cuda")`, `to(gs.float64)`, `to("cuda", gs.float64)`); returns self.

        A cast on the same device keeps each parameter's identity (optimizers built before
        still hold it), as torch; a move to another device makes new leaf tensors, so build
        optimizers after moving, as torch's docs advise.

        >>> nn.Linear(2, 2).to(engine.float64).weight.dtype
        gradserve.float64
        """
        for a in args:
            if isinstance(a, DType) or (isinstance(a, str) and is_dtype_name(a)):
                dtype = a
            elif _is_tensor(a):
                dtype, device = a.dtype, a.device
            else:
                device = a
        dtype = None if dtype is None else as_dtype(dtype)
        device = None if device is None else canonical_device(device)
        for module in self.modules():
            for name, t in module._parameters.items():
                if t is not None:
                    module._parameters[name] = mark_parameter(_converted(t, dtype, device))
            for name, t in module._buffers.items():
                if t is not None:
                    module._buffers[name] = _converted(t, dtype, device)
        return self

    def float(self) -> Module:
        """Floating-point parameters and buffers to float32. >>> model.float()"""
        return self.to("float32")

    def double(self) -> Module:
        """Floating-point parameters and buffers to float64. >>> model.double()"""
        return self.to("float64")

    def cpu(self) -> Module:
        """Everything to the CPU. >>> model.cpu()"""
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        """Everything to a GPU. >>> model.cuda()"""
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero in place) every parameter's .grad.

        >>> model.zero_grad()
        """
        _zero_grads(self.parameters(), set_to_none)

    # -- state ---------------------------------------------------------------------------------
    def _state_items(self):
        for mod_name, module in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            for name, p in module._parameters.items():
                if p is not None:
                    yield module, prefix + name, p
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent:
                    yield module, prefix + name, b

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Every parameter and persistent buffer as a numpy copy, keyed like torch.

        Remote tensors are fetched together, one round trip per session.

        >>> sorted(nn.Sequential(nn.Linear(2, 1)).state_dict())
        ['0.bias', '0.weight']
        """
        items = {}
        for _, key, t in self._state_items():
            items.setdefault(key, t)
        return OrderedDict(zip(items, values_of(items.values()), strict=True))

    def load_state_dict(self, state_dict, strict: bool = True) -> _IncompatibleKeys:
        """Copy values (numpy arrays, or anything np.asarray takes) into the parameters and
        buffers in place, under no_grad, so optimizers holding them keep working.

        >>> model.load_state_dict(other.state_dict())
        <All keys matched successfully>
        """
        state_dict = dict(state_dict)
        targets = list(self._state_items())
        expected = {key for _, key, _ in targets}
        missing = [key for _, key, _ in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.append("Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
        values = {}
        for _, key, t in targets:
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not _is_tensor(value):
                value = np.asarray(value)
            if tuple(value.shape) != tuple(t.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{_size(value.shape)} from checkpoint, the shape in current "
                              f"model is {_size(t.shape)}.")
                continue
            values[key] = (t, value)
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for t, value in values.values():
                t.copy_(_beside(t, value))
        return _IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """What goes between this module's parentheses in repr (torch's hook).

        >>> nn.Linear(2, 3).extra_repr()
        'in_features=2, out_features=3, bias=True'
        """
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = self.extra_repr().split("\n") if self.extra_repr() else []
        for name, module in self._modules.items():
            lines.append(f"({name}): " + _indent(repr(module), 2))
        if not lines:
            return f"{self._get_name()}()"
        if len(lines) == 1 and not self._modules:
            return f"{self._get_name()}({lines[0]})"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))


def _converted(t, dtype, device):
    """t cast (when floating point) and moved; t itself, re-pointed, when it stays put."""
    new_dtype = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
    new_device = device or t.device
    if new_dtype is t.dtype and new_device == t.device:
        return t
    grad = t.grad if t.is_leaf else None
    with no_grad():
        moved = t.detach().to(new_device, new_dtype)
        new_grad = None if grad is None else grad.detach().to(new_device, new_dtype)
    if new_device == t.device:
        t.data = moved
        out = t
    else:
        out = moved.requires_grad_(t.requires_grad)
    if new_grad is not None:
        out.grad = new_grad
    return out


def _beside(t, value):
    """`value` (a tensor of any session, or an array) as a tensor in t's session and device:
    as it is when it already lives there, else through its values."""
    where = session_of(t)
    if _is_tensor(value):
        if session_of(value) is where and value.device == t.device:
            return value.detach()
        value = value.detach().numpy()
    out = where.tensor(np.asarray(value), dtype=t.dtype)
    return out if out.device == t.device else out.to(t.device)


def _indent(text: str, spaces: int) -> str:
    first, *rest = text.split("\n")
    return "\n".join([first] + [" " * spaces + line for line in rest])


def _size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"


def _zero_grads(params, set_to_none: bool) -> None:
    """Shared by Module.zero_grad and Optimizer.zero_grad."""
    params = list(params)
    if set_to_none and clear_grads(params):  # one session's proxies: one op for them all
        return
    for p in params:
        if set_to_none:
            p.grad = None
            continue
        g = p.grad
        if g is None:
            continue
        with no_grad():
            if g.grad_fn is not None:  # a create_graph gradient: cut it from its graph
                g = g.detach()
                p.grad = g
            g.zero_()
