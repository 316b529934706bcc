"""`autograd.Variable`: torch's deprecated wrapper, which today just makes a tensor.

As torch's, `Variable(t, requires_grad=)` is `t.detach()` (sharing data and version
counter) with `requires_grad` set, and every tensor is an instance of `Variable`.
"""

from __future__ import annotations

from gradserve.engine import AutogradMeta

from .._default import default_session


class _VariableMeta(type):
    def __instancecheck__(cls, other) -> bool:
        return isinstance(other, AutogradMeta)


class Variable(metaclass=_VariableMeta):
    """`Variable(data, requires_grad=False)`: `data.detach()` that requires grad if asked.

    >>> w = Variable(gs.ones(2), requires_grad=True)
    >>> w.is_leaf, w.requires_grad, isinstance(w, Variable)
    (True, True, True)
    """

    def __new__(cls, data=None, requires_grad: bool = False, volatile: bool = False):
        if data is None:
            out = default_session(None).empty(0)
        elif isinstance(data, AutogradMeta):
            out = data.detach()
        else:
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        return out.requires_grad_(True) if requires_grad else out
