"""torch-style tensor repr: `tensor([[0.5000, 0.5000], ...], grad_fn=<MulBackward0>)`.

A port of torch/_tensor_str.py with its default print options (precision 4, threshold 1000,
edgeitems 3, linewidth 80): one formatter per tensor picks integer, fixed or scientific
notation from the nonzero finite values and pads every element to the same width.

A tensor of more than 1000 elements shows only its edge items (3 at each end of every long
dim): `shown` cuts them out as views and joins them with tensor ops of the tensor's own
kind, so printing costs what is printed (a remote tensor fetches those elements only).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.dtype import DType
from ..core.grad_mode import no_grad

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80

_DEFAULT_SHOWN = {"float32", "int64", "bool"}  # torch omits the dtype for these


class _Formatter:
    def __init__(self, values: np.ndarray, floating: bool) -> None:
        self.floating = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        if not floating:
            for v in flat.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return
        amin, amax = float(np.abs(finite).min()), float(np.abs(finite).max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if self.int_mode:
            self.sci_mode = amax / amin > 1000.0 or amax > 1.0e8
        else:
            self.sci_mode = amax / amin > 1000.0 or amax > 1.0e8 or amin < 1.0e-4
        for v in finite.tolist():
            if self.sci_mode:
                width = len(f"{v:.{PRECISION}e}")
            elif self.int_mode:
                width = len(f"{v:.0f}") + 1
            else:
                width = len(f"{v:.{PRECISION}f}")
            self.max_width = max(self.max_width, width)

    def format(self, value) -> str:
        if not self.floating:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.max_width}.{PRECISION}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if not (math.isinf(value) or math.isnan(value)):
                text += "."
        else:
            text = f"{value:.{PRECISION}f}"
        return (self.max_width - len(text)) * " " + text


def shown(t):
    """(the elements t's repr shows, as a tensor of t's kind; per dim, whether it was cut to
    its edge items). Narrow views of t joined by `cat`: only the shown elements are copied."""
    shape = tuple(t.shape)
    if math.prod(shape) <= THRESHOLD:
        return t, (False,) * len(shape)
    cut = tuple(n > 2 * EDGEITEMS for n in shape)
    with no_grad():
        return _edges(t, 0, cut), cut


def _edges(x, d: int, cut: tuple):
    while d < len(cut) and not cut[d]:
        d += 1
    if d == len(cut):
        return x
    n = x.shape[d]
    head = _edges(x.narrow(d, 0, EDGEITEMS), d + 1, cut)
    tail = _edges(x.narrow(d, n - EDGEITEMS, EDGEITEMS), d + 1, cut)
    return x._op("cat", head, tail, dim=d)


def _vector(values: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    per_line = max(1, (LINEWIDTH - indent) // (fmt.max_width + 2))
    items = values.tolist()
    if summarize:
        data = ([fmt.format(v) for v in items[:EDGEITEMS]] + [" ..."]
                + [fmt.format(v) for v in items[-EDGEITEMS:]])
    else:
        data = [fmt.format(v) for v in items]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _body(values: np.ndarray, indent: int, cut: tuple, fmt: _Formatter) -> str:
    """values: the shown elements; cut[d]: dim d holds its first and last EDGEITEMS only."""
    if values.ndim == 0:
        return fmt.format(values.item())
    if values.ndim == 1:
        return _vector(values, indent, cut[0], fmt)
    n, rest = values.shape[0], cut[1:]
    if cut[0]:
        rows = ([_body(values[i], indent + 1, rest, fmt) for i in range(EDGEITEMS)]
                + ["..."]
                + [_body(values[i], indent + 1, rest, fmt) for i in range(n - EDGEITEMS, n)])
    else:
        rows = [_body(values[i], indent + 1, rest, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(rows) + "]"


def format_tensor(values: np.ndarray, dtype: DType, device: str, suffix: str,
                  cut: tuple | None = None) -> str:
    """The repr of a tensor whose shown elements (see `shown`; all of them when cut is None)
    are `values`, on the host; suffix is its autograd note."""
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if device != "cpu":
        suffixes.append(f"device='{device}'")
    if values.size == 0:
        body = "[]"
        if values.ndim != 1:
            suffixes.append(f"size={tuple(values.shape)}")
        if dtype.name != "float32":  # nothing to infer the dtype from
            suffixes.append(f"dtype={dtype!r}")
    else:
        if cut is None:
            cut = (False,) * values.ndim
        fmt = _Formatter(values, dtype.is_floating_point)
        body = _body(values, indent, cut, fmt)
        if dtype.name not in _DEFAULT_SHOWN:
            suffixes.append(f"dtype={dtype!r}")
    if suffix:
        suffixes.append(suffix)
    return _add_suffixes(prefix + body, suffixes, indent)


def _add_suffixes(text: str, suffixes: list[str], indent: int) -> str:
    parts = [text]
    last_line_len = len(text) - text.rfind("\n") + 1
    for s in suffixes:
        if last_line_len + len(s) + 2 > LINEWIDTH:
            parts.append(",\n" + " " * indent + s)
            last_line_len = indent + len(s)
        else:
            parts.append(", " + s)
            last_line_len += len(s) + 2
    parts.append(")")
    return "".join(parts)
