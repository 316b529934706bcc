"""Recording ops on proxies: the core's op sequence, then the op goes into the buffer.

A proxy's op runs the engine's one sequence (`gradserve.engine.core.dispatch`: placement,
shape rule, views, graph node, in-place checks), so an error a torch user expects at the
offending line (shapes, dtypes, devices, in-place rules) is raised here. `RemoteKind` is all
the client adds: the outputs are proxies with ids picked here, and the op is queued for the
server instead of computed.
"""

from __future__ import annotations

import math
import numbers
import os
import sys

import gradserve.engine
import numpy as np
from gradserve.engine import InvalidArgumentError, Meta, Size, TensorAPI
from gradserve.engine.seam import MIXED_KINDS, run_inplace, run_op
from gradserve.v1.codec import INPLACE

from . import _handoff
from ._tensor import RemoteTensor, output_proxy


# -- where the user's code called us ----------------------------------------------------------
def _package_dirs() -> tuple[str, ...]:
    here = os.path.dirname(os.path.abspath(__file__))
    engine = os.path.dirname(os.path.abspath(gradserve.engine.__file__))
    return tuple(d + os.sep for d in (here, engine))


_PACKAGE_DIRS = _package_dirs()
# A code file -> None inside the package, else {id(code object): (the code, {instruction
# offset: (the file's base name, line)})}: each site made once. Kept by instruction, not by
# line: a frame's f_lineno scans its code's line table (tens of microseconds deep into a long
# script), f_lasti is read. The entry holds its code, so the id cannot be reused meanwhile.
_FILES: dict[str, dict | None] = {}
_UNSEEN = object()
_MAX_CODES = 1024  # code objects remembered per file (a notebook makes new ones every run)


def _file_codes(filename: str) -> dict | None:
    inside = os.path.abspath(filename).startswith(_PACKAGE_DIRS)
    codes = _FILES[filename] = None if inside else {}
    return codes


def caller_site(depth: int) -> tuple[str, int] | None:
    """(file name, line) of the innermost stack frame outside the gradserve package; kept
    beside each recorded op and only turned into text (`site_text`) when the op fails.
    The walk starts `depth` frames above this one: its caller knows that many are the
    package's own (each frame looked at costs a frame object, skipping one costs nothing)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:  # a shallower stack than that
        frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        codes = _FILES.get(code.co_filename, _UNSEEN)
        if codes is _UNSEEN:
            codes = _file_codes(code.co_filename)
        if codes is not None:
            entry = codes.get(id(code))
            if entry is None:
                if len(codes) >= _MAX_CODES:
                    codes.clear()
                entry = codes[id(code)] = (code, {})
            sites, at = entry[1], frame.f_lasti
            site = sites.get(at)
            if site is None:  # each instruction's site is one tuple, kept: none made per op
                site = sites[at] = (os.path.basename(code.co_filename), frame.f_lineno)
            return site
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
        raise InvalidArgumentError(MIXED_KINDS)
    raise InvalidArgumentError(
        f"expected a Tensor or a number as operand, but got {type(x).__name__}"
    )


def _own(inputs, session) -> bool:
    """Whether `inputs` are only this session's proxies and plain Python values (the common
    case, recorded as they are); raises when the session was closed here."""
    for x in inputs:
        if isinstance(x, RemoteTensor):  # a Parameter too (a subclass)
            if x._session is not session:
                return False
        elif type(x) not in _PLAIN:
            return False
    if session._closed:
        raise _handoff.closed_here(session)
    return True


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


# -- recording: the client's tensor kind -----------------------------------------------------
def _proxies(session, metas: tuple, device: str) -> tuple:
    """The output proxies of an op of several outputs. (Its own function: a generator over
    `session` in `RemoteKind.outputs` would make cells of it on every op's call.)"""
    outputs = tuple(output_proxy(session, session._new_id(), m.shape, m.dtype, device,
                                 m.strides) for m in metas)
    if all(m.shape is not None for m in metas):
        session._elements += sum(math.prod(m.shape) for m in metas)
    return outputs


# Where `emit` and `write` start looking for the user's line: above caller_site, emit (or
# write), the core's two frames (dispatch's apply and apply_known, or apply_inplace and
# write_checked), this kind's apply (or apply_inplace) and its caller, which is the package's
# (`RemoteTensor._op`/`_inplace`, the session's factories).
_KIND_FRAMES = 6


class RemoteKind:
    """The client's half of each op for the core's one op sequence (`engine/core/dispatch.py`):
    outputs are proxies with ids picked here, and the op is queued for the server."""

    __slots__ = ("session",)

    def __init__(self, session) -> None:
        self.session = session

    def default_device(self, attrs: dict) -> str:
        return self.session.device

    def outputs(self, op, inputs, attrs, device, meta, check):
        session = self.session
        out_device = attrs["device"] if op.needs_device else device
        if type(meta) is Meta:  # one output: the common case, kept short
            shape, dtype, strides = meta  # unpacked: a named field is a lookup by name
            out = output_proxy(session, f"{session._prefix}{next(session._counter)}", shape,
                               dtype, out_device, strides)
            if shape is not None:  # how much work the buffer holds
                session._elements += math.prod(shape)
            return (out,), meta
        return _proxies(session, meta, out_device), meta

    def emit(self, op, inputs, outputs, attrs, metas) -> None:
        session = self.session
        if len(outputs) == 1:
            session._buffer(op.name, inputs, (outputs[0]._id,), attrs, 0, None,
                            caller_site(_KIND_FRAMES))
            if metas[0].shape is not None:
                return
        else:
            session._buffer(op.name, inputs, tuple([o._id for o in outputs]), attrs, 0, None,
                            caller_site(_KIND_FRAMES))
            for m in metas:
                if m.shape is None:  # a shape that depends on the data (nonzero, masks)
                    break
            else:
                return
        # ask the server once for the shapes of every such output
        unknown = [o for o, m in zip(outputs, metas, strict=True) if m.shape is None]
        found = {info.id: info for info in session._list([o._id for o in unknown])}
        for o in unknown:
            o._shape = Size(found[o._id].shape)

    def write(self, op, target, others, attrs, device, recorded) -> None:
        self.session._buffer(op.name, (target, *others), (), attrs, INPLACE, None,
                             caller_site(_KIND_FRAMES))

    def apply(self, op, inputs: tuple, attrs: dict):
        """Record `op(*inputs, **attrs)` and return proxies for its outputs."""
        session = self.session
        if _own(inputs, session):
            return run_op(self, op, inputs, attrs)
        inputs, session = _operands(inputs, session)
        return run_op(session._kind, op, inputs, attrs)

    def apply_inplace(self, op, target: RemoteTensor, others: tuple, attrs: dict):
        """Record `target.op_(*others)`: the engine's checks and history rewrite, with the
        write left to the server."""
        session = self.session
        if _own(others, session):
            return run_inplace(self, op, target, others, attrs)
        others, session = _operands(others, session)
        return run_inplace(session._kind, op, target, others, attrs)
