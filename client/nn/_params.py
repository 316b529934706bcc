"""ParameterList, ParameterDict and Bilinear: containers of bare parameters and the
bilinear layer, with torch's names, reprs and initialisation."""

from __future__ import annotations

import math

from gradserve.engine import TensorAPI

from . import init
from ._f_extra import bilinear
from ._layers import new_parameter
from ._module import Module
from .parameter import Parameter

# torch's legacy type names, which ParameterDict prints
_LEGACY_NAMES = {"float16": "HalfTensor", "float32": "FloatTensor", "float64": "DoubleTensor",
                 "uint8": "ByteTensor", "int8": "CharTensor", "int16": "ShortTensor",
                 "int32": "IntTensor", "int64": "LongTensor", "bool": "BoolTensor"}


def _as_parameter(value):
    """A tensor becomes a Parameter (as torch's containers do); anything else is kept."""
    if isinstance(value, TensorAPI) and not isinstance(value, Parameter):
        return Parameter(value)
    return value


def _describe(p, type_name: str) -> str:
    size = "x".join(str(s) for s in p.shape)
    device = "" if p.device == "cpu" else f" (GPU {str(p.device).split(':')[-1]})"
    return f"Parameter containing: [{type_name} of size {size}{device}]"


class ParameterList(Module):
    """A list of parameters registered as "0", "1", ... (tensors become Parameters).

    >>> pl = nn.ParameterList([nn.Parameter(engine.ones(2)), engine.zeros(3)])
    >>> len(pl), [n for n, _ in pl.named_parameters()]
    (2, ['0', '1'])
    """

    def __init__(self, values=None) -> None:
        super().__init__()
        self._size = 0
        if values is not None:
            self.extend(values)

    def _index(self, idx: int) -> int:
        if not -self._size <= idx < self._size:
            raise IndexError(f"index {idx} is out of range")
        return idx % self._size

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ParameterList([self[i] for i in range(self._size)[idx]])
        return getattr(self, str(self._index(idx)))

    def __setitem__(self, idx: int, value) -> None:
        setattr(self, str(self._index(idx)), _as_parameter(value))

    def __len__(self) -> int:
        return self._size

    def __iter__(self):
        return (self[i] for i in range(self._size))

    def __iadd__(self, values) -> ParameterList:
        return self.extend(values)

    def append(self, value) -> ParameterList:
        """Add one parameter at the end. >>> pl.append(nn.Parameter(engine.ones(1)))"""
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values) -> ParameterList:
        """Add parameters at the end. >>> pl.extend([engine.ones(1)])"""
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        lines = []
        for i, p in enumerate(self):
            if isinstance(p, TensorAPI):
                lines.append(f"  ({i}): {_describe(p, f'gradserve.{p.dtype.name}')}")
            else:
                lines.append(f"  ({i}): Object of type: {type(p).__name__}")
        return "\n".join(lines)


class ParameterDict(Module):
    """A dict of parameters, in insertion order (tensors become Parameters).

    >>> pd = nn.ParameterDict({"scale": engine.ones(1), "shift": engine.zeros(1)})
    >>> list(pd.keys()), "scale" in pd
    (['scale', 'shift'], True)
    """

    def __init__(self, parameters=None) -> None:
        super().__init__()
        self._keys: dict[str, None] = {}
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str):
        return getattr(self, key)

    def __setitem__(self, key: str, value) -> None:
        self._keys[key] = None
        setattr(self, key, _as_parameter(value))

    def __delitem__(self, key: str) -> None:
        del self._keys[key]
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._keys

    def keys(self):
        return list(self._keys)

    def values(self):
        return [self[k] for k in self._keys]

    def items(self):
        return [(k, self[k]) for k in self._keys]

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def pop(self, key: str):
        value = self[key]
        del self[key]
        return value

    def clear(self) -> None:
        for key in list(self._keys):
            del self[key]

    def update(self, parameters) -> None:
        """Add or replace entries from a mapping or (key, value) pairs."""
        pairs = parameters.items() if hasattr(parameters, "items") else parameters
        for key, value in pairs:
            self[key] = value

    def extra_repr(self) -> str:
        lines = []
        for key, p in self.items():
            if isinstance(p, TensorAPI):
                name = f"gradserve.{_LEGACY_NAMES[p.dtype.name]}"
                lines.append(f"  ({key}): {_describe(p, name)}")
            else:
                lines.append(f"  ({key}): Object of type: {type(p).__name__}")
        return "\n".join(lines)


class Bilinear(Module):
    """y = x1^T W x2 + b, weight (out, in1, in2) and bias from U(-1/sqrt(in1), 1/sqrt(in1)).

    >>> nn.Bilinear(2, 3, 4)(engine.randn(5, 2), engine.randn(5, 3)).shape
    gradserve.Size([5, 4])
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device=None, dtype=None, session=None) -> None:
        super().__init__()
        self.in1_features, self.in2_features = int(in1_features), int(in2_features)
        self.out_features = int(out_features)
        self.weight = new_parameter(session, self.out_features, self.in1_features,
                                    self.in2_features, dtype=dtype)
        if bias:
            self.bias = new_parameter(session, self.out_features, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """Fresh U(-1/sqrt(in1), 1/sqrt(in1)) values. >>> bil.reset_parameters()"""
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
