"""More module functions of torch's: the stacking helpers (hstack, vstack, dstack,
column_stack), meshgrid, atleast_1d/2d/3d (compositions, as torch's: CatBackward0,
ExpandBackward0, ...) and std_mean/var_mean (one op each). They take either tensor kind.

    >>> from gradserve import engine
    >>> a, b = engine.tensor([1, 2]), engine.tensor([3, 4])
    >>> engine.vstack([a, b])
    tensor([[1, 2],
            [3, 4]])
"""

from __future__ import annotations

import warnings

from ..core.errors import InvalidArgumentError
from .tensor_api import cat


def _check_list(name: str, tensors) -> list:
    if hasattr(tensors, "shape"):
        raise TypeError(f"{name}(): argument 'tensors' (position 1) must be tuple of Tensors, "
                        "not Tensor")
    tensors = list(tensors)
    if not tensors:
        raise InvalidArgumentError(f"{name} expects a non-empty TensorList")
    return tensors


def atleast_1d(*tensors):
    return _atleast(tensors, 1)


def atleast_2d(*tensors):
    return _atleast(tensors, 2)


def atleast_3d(*tensors):
    return _atleast(tensors, 3)


def _one_atleast(t, n: int):
    if t.ndim >= n:
        return t
    if n == 1 or t.ndim == 0:
        return t.reshape((1,) * n)
    if n == 2:
        return t.unsqueeze(0)
    return t.unsqueeze(0).unsqueeze(-1) if t.ndim == 1 else t.unsqueeze(-1)


def _atleast(tensors, n: int):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return tuple(_one_atleast(t, n) for t in tensors[0])
    if len(tensors) == 1:
        return _one_atleast(tensors[0], n)
    return tuple(_one_atleast(t, n) for t in tensors)


def hstack(tensors):
    """Concatenate along dim 1 (dim 0 for 1-D tensors)."""
    ts = [_one_atleast(t, 1) for t in _check_list("hstack", tensors)]
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors):
    """Concatenate along dim 0, 1-D tensors as rows."""
    return cat([_one_atleast(t, 2) for t in _check_list("vstack", tensors)], 0)


row_stack = vstack


def dstack(tensors):
    """Concatenate along dim 2 (after atleast_3d)."""
    return cat([_one_atleast(t, 3) for t in _check_list("dstack", tensors)], 2)


def column_stack(tensors):
    """1-D and 0-D tensors become columns, then hstack."""
    ts = _check_list("column_stack", tensors)
    return cat([t.reshape(t.numel(), 1) if t.ndim <= 1 else t for t in ts], 1)


def meshgrid(*tensors, indexing: str | None = None):
    """Coordinate grids: with indexing "ij" grid k varies along dim k; "xy" swaps the first
    inputs (each grid is an expanded view, as torch's)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass "
                      "the indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise InvalidArgumentError(
            f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    if not tensors:
        raise InvalidArgumentError("torch.meshgrid: Expected at least one tensor")
    for t in tensors:
        if t.ndim > 1:
            raise InvalidArgumentError(
                "torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: "
                f"{t.ndim}-D tensor")
    for t in tensors[1:]:
        if t.dtype is not tensors[0].dtype:
            raise InvalidArgumentError("torch.meshgrid: Expected all tensors in the tensor list "
                                       "to have the same dtype")
    ts = list(tensors)
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    sizes = [t.numel() for t in ts]
    grids = []
    for k, t in enumerate(ts):
        view = [1] * len(ts)
        view[k] = -1
        grids.append(t.reshape(view).expand(*sizes))
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def _moments(name, input, dim, unbiased, keepdim, correction):
    if dim is not None and not isinstance(dim, int):
        dim = tuple(int(d) for d in dim)
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return tuple(input._op(name, input, dim=dim, correction=int(correction),
                           keepdim=bool(keepdim)))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(std, mean) over dim, one node for both (StdMeanBackward0), as torch.std_mean."""
    return _moments("std_mean", input, dim, unbiased, keepdim, correction)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """(var, mean) over dim, one node for both (VarMeanBackward0), as torch.var_mean."""
    return _moments("var_mean", input, dim, unbiased, keepdim, correction)


def xlogy(input, other):
    """input * log(other), 0 where input is 0 (and other is not nan); either may be a
    number (torch's XlogyBackward1/2)."""
    if not hasattr(input, "shape"):
        if not hasattr(other, "shape"):
            raise TypeError("xlogy() received an invalid combination of arguments - got "
                            f"({type(input).__name__}, {type(other).__name__})")
        return other._op("xlogy", input, other)
    return input.xlogy(other)


FUNCTIONS = {f.__name__: f for f in (
    xlogy, atleast_1d, atleast_2d, atleast_3d, hstack, vstack, dstack, column_stack, meshgrid,
    std_mean, var_mean)}
FUNCTIONS["row_stack"] = row_stack
METHODS = ("select", "addcmul", "addcdiv", "exp2", "logit", "xlogy", "hypot", "nan_to_num",
           "nansum", "diag", "diff", "tensor_split", "sinc", "dist",
           "diag_embed", "logcumsumexp", "cummax", "cummin")
