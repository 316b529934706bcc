"""torch-style tensor repr: `tensor([[0.5000, 0.5000], ...], grad_fn=<MulBackward0>)`."""

from __future__ import annotations

import numpy as np

from ._dtype import DType

_DEFAULT_SHOWN = {"float32", "int64", "bool"}  # torch omits the dtype for these


def _float_formatter(values: np.ndarray):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return lambda v: f"{v}".replace("inf", "inf")
    if np.all(finite == np.round(finite)):
        big = np.abs(finite).max()
        if big >= 1e8:
            return lambda v: f"{v:.4e}"
        return lambda v: f"{v:.0f}." if np.isfinite(v) else f"{v}"
    amax, amin = np.abs(finite).max(), np.abs(finite[finite != 0]).min(initial=np.inf)
    if amax >= 1e8 or amin < 1e-4 or (amin > 0 and amax / amin > 1000):
        return lambda v: f"{v:.4e}"
    return lambda v: f"{v:.4f}"


def format_tensor(values: np.ndarray, dtype: DType, device: str, suffix: str) -> str:
    extras = []
    if device != "cpu":
        extras.append(f"device='{device}'")
    if values.size == 0:
        body = "[]"
        if values.ndim != 1:
            extras.insert(0, f"size={tuple(values.shape)}")
    else:
        if dtype.is_floating_point:
            fmt = _float_formatter(values)
            formatter = {"float_kind": fmt}
        elif dtype.name == "bool":
            formatter = {"bool": lambda v: "True" if v else "False"}
        else:
            formatter = {"int": lambda v: f"{v}"}
        body = np.array2string(values, separator=", ", prefix="tensor(", formatter=formatter,
                               threshold=1000, edgeitems=3, max_line_width=80)
    if dtype.name not in _DEFAULT_SHOWN:
        extras.append(f"dtype={dtype!r}")
    if suffix:
        extras.append(suffix)
    return "tensor(" + ", ".join([body, *extras]) + ")"
