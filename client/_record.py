"""Recording ops on proxies: the engine's bookkeeping, then the op goes into the buffer.

`apply` and `apply_inplace` are the client's halves of each op, beside the engine's in
`gradserve.engine._dispatch`: the same placement, shape rule, view and graph bookkeeping
(`gradserve.engine._meta`), with the computation left to the server. An error a torch user
expects at the offending line (shapes, dtypes, devices, in-place rules) is raised here.
"""

from __future__ import annotations

import math
import numbers
import os
import sys

import numpy as np
from gradserve.engine import InvalidArgumentError, Meta, TensorAPI
from gradserve.engine._meta import (
    check_inplace,
    commit_inplace,
    inplace_node,
    mark_views,
    placement,
    record,
    records,
    set_history,
)
from gradserve.engine._size import Size

from ._tensor import RemoteTensor


# -- where the user's code called us ----------------------------------------------------------
def _package_dirs() -> tuple[str, ...]:
    import gradserve.engine

    here = os.path.dirname(os.path.abspath(__file__))
    engine = os.path.dirname(os.path.abspath(gradserve.engine.__file__))
    return tuple(d + os.sep for d in (here, engine))


_PACKAGE_DIRS = _package_dirs()
_NAMES: dict[str, str | None] = {}  # a code file -> its base name; None inside the package
_UNSEEN = object()


def caller_site() -> tuple[str, int] | None:
    """(file name, line) of the innermost stack frame outside the gradserve package; kept
    beside each recorded op and only turned into text (`site_text`) when the op fails."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        name = _NAMES.get(filename, _UNSEEN)
        if name is _UNSEEN:
            inside = os.path.abspath(filename).startswith(_PACKAGE_DIRS)
            name = _NAMES[filename] = None if inside else os.path.basename(filename)
        if name is not None:
            return name, frame.f_lineno
        frame = frame.f_back
    return None


def site_text(site: tuple[str, int] | None) -> str:
    """"train.py:12", as errors name the user's line."""
    return "" if site is None else f"{site[0]}:{site[1]}"


# -- operands ---------------------------------------------------------------------------------
_PLAIN = (int, float, bool)


def _plain(x):
    """A non-proxy operand as the wire carries it: numpy scalars become Python numbers."""
    if type(x) in _PLAIN:
        return x
    if isinstance(x, np.generic) and x.ndim == 0:
        return x.item()
    if isinstance(x, numbers.Real) and not isinstance(x, np.ndarray):
        return x
    if isinstance(x, TensorAPI):
        raise InvalidArgumentError(
            f"a RemoteTensor can't be combined with an in-process {type(x).__name__}; create "
            "it on the session (s.tensor(...)) or fetch the remote one (.numpy())"
        )
    raise InvalidArgumentError(
        f"expected a Tensor or a number as operand, but got {type(x).__name__}"
    )


def _operands(inputs: tuple, session=None) -> tuple:
    """(inputs with plain scalars, the session their proxies share)."""
    converted = None
    for i, x in enumerate(inputs):
        if isinstance(x, RemoteTensor):
            if session is None:
                session = x._session
            elif x._session is not session:
                raise InvalidArgumentError(
                    "Expected all tensors to be in the same session, but found at least two "
                    f"sessions, {session.id} and {x._session.id}!"
                )
        elif type(x) not in _PLAIN:
            if converted is None:
                converted = list(inputs)
            converted[i] = _plain(x)
    if session is None:
        raise InvalidArgumentError("expected at least one RemoteTensor argument")
    session._check_open()
    return (inputs if converted is None else tuple(converted)), session


# -- recording --------------------------------------------------------------------------------
def apply(op, inputs: tuple, attrs: dict, session=None):
    """Record `op(*inputs, **attrs)` on the session and return proxies for its outputs."""
    inputs, session = _operands(inputs, session)
    device, any_grad = placement(inputs, session.device)
    meta = op.infer(*inputs, **attrs)
    metas = (meta,) if type(meta) is Meta else meta
    out_device = attrs["device"] if op.needs_device else device
    outputs = tuple(RemoteTensor(session, session._new_id(), m.shape, m.dtype, out_device,
                                 strides=m.strides) for m in metas)
    dynamic = meta.shape is None if type(meta) is Meta else any(m.shape is None for m in metas)
    if not dynamic:
        session._elements += math.prod(meta.shape) if type(meta) is Meta else sum(
        math.prod(m.shape) for m in metas)
    if op.view:
        mark_views(op, inputs[0], outputs, metas, attrs)
    if records(op, any_grad, meta):
        set_history(outputs, record(op, inputs, attrs, device, meta), op)
    session._send(op.name, inputs, tuple(o._id for o in outputs), attrs)
    if dynamic:  # a shape that depends on the data (nonzero, masks): ask the server once
        unknown = [o for o, m in zip(outputs, metas, strict=True) if m.shape is None]
        found = {info.id: info for info in session._list([o._id for o in unknown])}
        for o in unknown:
            o._shape = Size(found[o._id].shape)
    return outputs[0] if type(meta) is Meta else outputs


def apply_inplace(op, self: RemoteTensor, others: tuple, attrs: dict) -> RemoteTensor:
    """Record `self.op_(*others)`: the engine's in-place checks and history rewrite (through
    a view, the base takes a CopySlices node), with the write left to the server."""
    others, session = _operands(others, self._session)
    recorded = check_inplace(op, self, others, attrs)  # the result's meta, if recorded
    placement((self, *others), self._device)
    node = None if recorded is None else inplace_node(op, self, others, attrs, recorded)
    session._send(op.name, (self, *others), (), attrs, inplace=True)
    commit_inplace(op, self, node)
    return self
