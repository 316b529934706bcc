"""`gs.Tensor` and the typed tensor classes (`gs.FloatTensor`, `gs.LongTensor`, ...): the
type both tensor kinds are instances of, and torch's legacy constructors.

`gs.Tensor(data)` / `gs.Tensor(*sizes)` make a tensor of the default dtype on the current
session (in-process with none), as `torch.Tensor(...)`; `gs.LongTensor([1, 2])` and friends
make their own dtype. `isinstance(t, gs.Tensor)` holds for engine and remote tensors alike,
`isinstance(t, gs.FloatTensor)` for float32 ones, and `gs.Tensor.add` etc. are the tensor
methods, callable unbound as in torch.

    >>> gs.Tensor([1, 2]), gs.LongTensor(2, 3).shape
    (tensor([1., 2.]), gradserve.Size([2, 3]))
    >>> isinstance(gs.ones(2), gs.Tensor), isinstance(gs.ones(2), gs.LongTensor)
    (True, False)
"""

from __future__ import annotations

import numbers

from gradserve.engine import AutogradMeta, Size, TensorAPI, as_dtype, get_default_dtype

from ._default import default_session

# the C++ names torch's TensorOptions print
_C_NAMES = {"float16": "c10::Half", "float32": "float", "float64": "double",
            "uint8": "unsigned char", "int8": "signed char", "int16": "short int",
            "int32": "int", "int64": "long int", "bool": "bool"}


def _options(dtype) -> str:
    return (f"TensorOptions(dtype={_C_NAMES[dtype.name]}, device=cpu, "
            "layout=Strided, requires_grad=false (default), pinned_memory=false (default), "
            "memory_format=(nullopt))")


def _is_size(args: tuple) -> bool:
    return all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in args)


def _legacy_new(dtype, args: tuple, device=None, **kwargs):
    """torch's legacy constructor: () -> empty; ints or a Size -> that shape; a tensor ->
    itself (an alias, same dtype only for the typed classes); a sequence -> its values."""
    if kwargs:
        name = next(iter(kwargs))
        raise TypeError(f"new() received an invalid combination of arguments - got an "
                        f"unexpected keyword argument '{name}'")
    home = default_session(None)
    fixed = dtype is not None
    dtype = as_dtype(dtype) if fixed else get_default_dtype()
    if len(args) == 1 and isinstance(args[0], Size):
        args = tuple(args[0])
    if not args:
        return home.empty(0, dtype=dtype, device=device)
    if _is_size(args):
        return home.empty(*args, dtype=dtype, device=device)
    if len(args) != 1:
        raise TypeError("new() received an invalid combination of arguments - expected sizes "
                        "(ints) or one data argument")
    data = args[0]
    if isinstance(data, AutogradMeta):
        if fixed and data.dtype is not dtype:
            raise TypeError(f"expected {_options(dtype)} (got {_options(data.dtype)})")
        return data.view_as(data)
    if isinstance(data, str):
        raise TypeError(f"new(): invalid data type '{type(data).__name__}'")
    if isinstance(data, numbers.Number):
        raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
    return home.tensor(data, dtype=dtype, device=device)


class _TensorType(type):
    """The metaclass: calling the class constructs, isinstance checks kind and dtype."""

    _dtype = None

    def __call__(cls, *args, **kwargs):
        return _legacy_new(cls._dtype, args, **kwargs)

    def __instancecheck__(cls, obj) -> bool:
        if not isinstance(obj, AutogradMeta):
            return False
        return cls._dtype is None or obj.dtype.name == cls._dtype

    def __subclasscheck__(cls, sub) -> bool:
        if cls._dtype is None:
            return isinstance(sub, type) and issubclass(sub, AutogradMeta)
        return type.__subclasscheck__(cls, sub)


class Tensor(AutogradMeta, TensorAPI, metaclass=_TensorType):
    """The tensor type (`isinstance(t, gs.Tensor)`); `gs.Tensor(data | *sizes)` builds a
    tensor of the default dtype, as torch's legacy constructor."""

    __slots__ = ()


def _typed(name: str, dtype: str) -> type:
    cls = _TensorType(name, (Tensor,), {"__slots__": (), "_dtype": dtype,
                                        "__doc__": f"`{name}(data | *sizes)`: a {dtype} "
                                                   f"tensor (torch's legacy constructor)."})
    cls.__module__ = "gradserve"
    return cls


FloatTensor = _typed("FloatTensor", "float32")
DoubleTensor = _typed("DoubleTensor", "float64")
HalfTensor = _typed("HalfTensor", "float16")
LongTensor = _typed("LongTensor", "int64")
IntTensor = _typed("IntTensor", "int32")
ShortTensor = _typed("ShortTensor", "int16")
CharTensor = _typed("CharTensor", "int8")
ByteTensor = _typed("ByteTensor", "uint8")
BoolTensor = _typed("BoolTensor", "bool")
Tensor.__module__ = "gradserve"

TYPED = {c.__name__: c for c in (FloatTensor, DoubleTensor, HalfTensor, LongTensor, IntTensor,
                                 ShortTensor, CharTensor, ByteTensor, BoolTensor)}
