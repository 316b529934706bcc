"""Tensor dtypes and torch's type-promotion rules.

Promotion follows torch, not numpy: a dimensioned tensor outranks a zero-dim tensor, which
outranks a Python scalar, and a lower rank only wins when it is of a higher kind
(bool < integer < floating). So `float32_vector * float64_scalar_tensor` stays float32 and
`int64_tensor * 1.5` becomes float32 (the default float), exactly as torch.
"""

from __future__ import annotations

import numpy as np


class DType:
    """One tensor element type; `gradserve.float32` etc. are the instances."""

    __slots__ = ("name", "np", "rank", "kind", "is_floating_point", "itemsize")

    def __init__(self, name: str, np_type: type, rank: int, kind: int) -> None:
        self.name = name
        self.np = np.dtype(np_type)
        self.rank = rank  # position in the promotion lattice
        self.kind = kind  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = kind == 2
        self.itemsize = self.np.itemsize

    def __repr__(self) -> str:
        return f"gradserve.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


bool_ = DType("bool", np.bool_, 0, 0)
int64 = DType("int64", np.int64, 1, 1)
float32 = DType("float32", np.float32, 2, 2)
float64 = DType("float64", np.float64, 3, 2)

DTYPES: dict[str, DType] = {d.name: d for d in (bool_, int64, float32, float64)}
_ALIASES = {"float": float32, "double": float64, "long": int64, "int": int64}
_FROM_NP: dict[np.dtype, DType] = {d.np: d for d in DTYPES.values()}
# numpy types users hand us that have a clear gradserve counterpart
for _t, _d in ((np.float16, float32), (np.int32, int64), (np.int16, int64), (np.int8, int64),
               (np.uint8, int64), (np.uint16, int64), (np.uint32, int64)):
    _FROM_NP.setdefault(np.dtype(_t), _d)

default_float = float32
_BY_LATTICE = sorted(DTYPES.values(), key=lambda d: d.rank)


def is_dtype_name(name: str) -> bool:
    return name in DTYPES or name in _ALIASES


def as_dtype(value) -> DType:
    """Accept a DType, a name ("float32", "float", "long"), a numpy dtype or a Python type."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        found = DTYPES.get(value) or _ALIASES.get(value)
        if found is None:
            from ._errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"unknown dtype {value!r}; expected one of {', '.join(DTYPES)}"
            )
        return found
    if value is float:
        return default_float
    if value is int:
        return int64
    if value is bool:
        return bool_
    try:
        return _FROM_NP[np.dtype(value)]
    except (TypeError, KeyError):
        from ._errors import InvalidArgumentError

        raise InvalidArgumentError(f"unsupported dtype {value!r}") from None


def from_numpy_dtype(np_dtype) -> DType:
    return _FROM_NP[np_dtype]


def promote(a: DType, b: DType) -> DType:
    return a if a.rank >= b.rank else b


def scalar_dtype(value) -> DType:
    """The dtype a Python scalar takes when it alone decides (weak typing)."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    return default_float


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
    return out if out is not None else default_float


def float_result(dtype: DType) -> DType:
    """The dtype of a floating function (exp, mean, ...) applied to `dtype`."""
    return dtype if dtype.is_floating_point else default_float


TORCH_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "int64": "LongTensor",
                    "bool": "BoolTensor"}
TORCH_C_TYPE_NAMES = {"float32": "float", "float64": "double", "int64": "long int",
                      "bool": "bool"}
TORCH_SCALAR_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "bool": "Bool"}
