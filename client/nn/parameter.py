"""gradserve.nn.parameter: `Parameter`, a leaf tensor that a Module registers.

Parameters are the ordinary tensors of their kind (an engine tensor, a session's tensor),
whose class is switched to a same-layout subclass named `Parameter` when they become one
(`nn.Parameter(t)`, or assignment to a Module attribute): it prints "Parameter containing:"
and answers `isinstance(p, nn.Parameter)`, while every op treats it as the tensor it is.

    >>> from gradserve import engine
    >>> p = nn.Parameter(engine.ones(2))
    >>> p
    Parameter containing:
    tensor([1., 1.], requires_grad=True)
    >>> isinstance(p, nn.Parameter), isinstance(engine.ones(2), nn.Parameter)
    (True, False)
"""

from __future__ import annotations

from gradserve.engine import no_grad

from .._default import default_session

_CLASSES: dict[type, type] = {}  # a tensor class -> its Parameter subclass


def _repr(self) -> str:
    return "Parameter containing:\n" + super(type(self), self).__repr__()


def _parameter_class(cls: type) -> type:
    found = _CLASSES.get(cls)
    if found is None:
        found = type("Parameter", (cls,), {"__slots__": (), "__repr__": _repr,
                                           "__module__": "gradserve.nn.parameter"})
        _CLASSES[cls] = found
        _CLASSES[found] = found
    return found


def mark_parameter(t):
    """Make tensor `t` a Parameter in place (its class only; data and history unchanged)."""
    if t is not None and type(t) not in _CLASSES.values():
        try:
            t.__class__ = _parameter_class(type(t))
        except TypeError:  # a tensor class whose layout forbids it: it stays as it is
            pass
    return t


class _ParameterType(type):
    def __call__(cls, data=None, requires_grad: bool = True):
        if data is None:
            data = default_session(None).empty(0)
        with no_grad():
            out = data.detach().requires_grad_(requires_grad)
        return mark_parameter(out)

    def __instancecheck__(cls, obj) -> bool:
        return type(obj) in _CLASSES.values() and _CLASSES[type(obj)] is type(obj)


class Parameter(metaclass=_ParameterType):
    """`Parameter(data, requires_grad=True)`: a leaf sharing `data`'s storage, ready to be a
    module parameter (torch.nn.Parameter)."""


__all__ = ["Parameter", "mark_parameter"]
