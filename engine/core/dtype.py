"""Tensor dtypes and torch's type-promotion rules.

Promotion follows torch, not numpy: a dimensioned tensor outranks a zero-dim tensor, which
outranks a Python scalar, and a lower rank only wins when it is of a higher kind
(bool < integer < floating). So `float32_vector * float64_scalar_tensor` stays float32 and
`int64_tensor * 1.5` becomes float32 (the default float), exactly as torch. Between two
dtypes of one kind the wider wins, and uint8 meets a signed int8 in int16
(`torch.promote_types`).
"""

from __future__ import annotations

import contextvars

import numpy as np

from .errors import InvalidArgumentError, KernelNotImplementedError


class DType:
    """One tensor element type; `gradserve.float32` etc. are the instances.

    >>> import gradserve as gs
    >>> gs.float16.is_floating_point, gs.int32.itemsize, gs.uint8.is_signed
    (True, 4, False)
    """

    __slots__ = ("name", "np", "kind", "is_floating_point", "itemsize", "is_signed")

    def __init__(self, name: str, np_type: type, kind: int) -> None:
        self.name = name
        self.np = np.dtype(np_type)
        self.kind = kind  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = kind == 2
        self.itemsize = self.np.itemsize
        self.is_signed = kind == 2 or (kind == 1 and self.np.kind == "i")

    @property
    def is_complex(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"gradserve.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))

    def to_numpy(self) -> np.dtype:
        """The numpy dtype of this dtype's elements."""
        return self.np


bool_ = DType("bool", np.bool_, 0)
uint8 = DType("uint8", np.uint8, 1)
int8 = DType("int8", np.int8, 1)
int16 = DType("int16", np.int16, 1)
int32 = DType("int32", np.int32, 1)
int64 = DType("int64", np.int64, 1)
float16 = DType("float16", np.float16, 2)
float32 = DType("float32", np.float32, 2)
float64 = DType("float64", np.float64, 2)

DTYPES: dict[str, DType] = {d.name: d for d in (bool_, uint8, int8, int16, int32, int64,
                                                float16, float32, float64)}
# torch's other names for them (torch.half, torch.int, ...); "int" is int32, as in torch
ALIASES = {"half": float16, "float": float32, "double": float64, "short": int16,
           "int": int32, "long": int64, "byte": uint8, "char": int8}
_FROM_NP: dict[np.dtype, DType] = {d.np: d for d in DTYPES.values()}

default_float = float32  # the process's default (set_default_dtype)
# A server session's default, current while its ops run (core/random.using_generator): its
# client's set_default_dtype, which the client sends as a session setting.
session_float: contextvars.ContextVar[DType | None] = contextvars.ContextVar(
    "gradserve_default_dtype", default=None)


def default_float_dtype() -> DType:
    """The default floating dtype here: the current session's, else the process's."""
    d = session_float.get()
    return default_float if d is None else d


def is_dtype_name(name: str) -> bool:
    return name in DTYPES or name in ALIASES


def _unknown(value) -> Exception:
    return InvalidArgumentError(f"unknown dtype {value!r}; expected one of "
                                f"{', '.join([*DTYPES, *ALIASES])}")


def as_dtype(value) -> DType:
    """Accept a DType, a name ("float32", "half", "int", "long"), a numpy dtype or a Python
    type (float, int, bool)."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = DTYPES.get(value) or ALIASES.get(value)
        if found is None:
            raise _unknown(value)
        return found
    if value is float:
        return default_float_dtype()
    if value is int:
        return int64
    if value is bool:
        return bool_
    try:
        np_dtype = np.dtype(value)
    except TypeError:
        raise _unknown(value) from None
    return from_numpy_dtype(np_dtype)


def from_numpy_dtype(np_dtype) -> DType:
    """The gradserve dtype of a numpy dtype; a TypeError naming it when there is none (never a
    silent cast)."""
    found = _FROM_NP.get(np_dtype)
    if found is None:
        found = _FROM_NP.get(np.dtype(np_dtype).newbyteorder("="))
        if found is None:
            raise TypeError(
                f"can't convert np.ndarray of type numpy.{np.dtype(np_dtype).type.__name__}. "
                "The only supported types are: float64, float32, float16, int64, int32, int16, "
                "int8, uint8, and bool."
            )
    return found


def promote(a: DType, b: DType) -> DType:
    """torch.promote_types: the higher kind wins; within a kind the wider, and uint8 with a
    signed type needs a signed type wider than a byte."""
    if a is b:
        return a
    if a.kind != b.kind:
        return a if a.kind > b.kind else b
    if a.kind == 1 and a.is_signed != b.is_signed:
        signed = a if a.is_signed else b
        return signed if signed.itemsize > 1 else int16
    return a if a.itemsize >= b.itemsize else b


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar takes when it alone decides (weak typing)."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    return default_float_dtype()


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    # torch's combine_categories: a lower category only matters when it is of a higher kind.
    if higher is None:
        return lower
    if lower is None or higher.is_floating_point:
        return higher
    if higher is bool_ or lower.is_floating_point:
        return promote(higher, lower)
    return higher


def result_type(*operands) -> DType:
    """torch.result_type over tensors (anything with .dtype and .shape) and Python scalars."""
    dim = zero = wrapped = None
    for x in operands:
        if x is None:
            continue
        dt = getattr(x, "dtype", None)
        if isinstance(dt, DType):
            if len(x.shape):
                dim = dt if dim is None else promote(dim, dt)
            else:
                zero = dt if zero is None else promote(zero, dt)
        else:
            s = scalar_dtype(x)
            wrapped = s if wrapped is None else promote(wrapped, s)
    out = _combine(dim, _combine(zero, wrapped))
    return out if out is not None else default_float_dtype()


def can_cast(src: DType, dst: DType) -> bool:
    """torch.can_cast: what an in-place op may write into `dst` (no floating -> integral,
    no integral or floating -> bool)."""
    return src.kind <= dst.kind


def float_result(dtype: DType) -> DType:
    """The dtype of a floating function (exp, mean, ...) applied to `dtype`."""
    return dtype if dtype.is_floating_point else default_float_dtype()


TORCH_TYPE_NAMES = {"float16": "HalfTensor", "float32": "FloatTensor",
                    "float64": "DoubleTensor", "uint8": "ByteTensor", "int8": "CharTensor",
                    "int16": "ShortTensor", "int32": "IntTensor", "int64": "LongTensor",
                    "bool": "BoolTensor"}
TORCH_C_TYPE_NAMES = {"float16": "c10::Half", "float32": "float", "float64": "double",
                      "uint8": "unsigned char", "int8": "signed char", "int16": "short int",
                      "int32": "int", "int64": "long int", "bool": "bool"}
TORCH_SCALAR_NAMES = {"float16": "Half", "float32": "Float", "float64": "Double",
                      "uint8": "Byte", "int8": "Char", "int16": "Short", "int32": "Int",
                      "int64": "Long", "bool": "Bool"}


def no_kernel(op: str, dtype) -> KernelNotImplementedError:
    """torch's message for an op called on a dtype it has no kernel for."""
    return KernelNotImplementedError(
        f'"{op}_cpu" not implemented for \'{TORCH_SCALAR_NAMES[dtype.name]}\''
    )
