"""Capture and replay of recorded steps: a batch of ops the session sent before goes out as a
handle plus the ids that changed.

A training step records the same ops every time (same ops, shapes, dtypes, attrs, flags; the
same tensors by position) and only its ids differ: fresh outputs, a new batch of inputs. So
each batch is split into its template (the entries with every id replaced by its slot, the
order in which the batch first names it) and its ids, slot by slot. The second time a
template is seen it is captured (sent once, with a handle for the server to keep); from then
on the batch is sent as `["@replay", handle, ids, values]` (`values`: its float attrs). The
server runs a replay from the plan it prepared by watching the template's first run, or,
where a run does not fit that plan, as exactly the entries eager recording would have sent
(server/_replay.py, server/_plan.py), so results, errors and the op index that names the
user's line are eager's. Nothing here decides semantics: the client still records
every op (shape rules, autograd bookkeeping, in-place checks), and any difference in a batch
is a different template, sent as it is. docs/WIRE.md ("Captured steps") describes the
entries.
"""

from __future__ import annotations

import collections
import json

import numpy as np
from gradserve.engine import DType
from gradserve.v1.codec import CAPTURE, MAX_PLAN_OPS, MAX_PLANS, REPLAY, pack_ops

from . import _handoff

MAX_SEEN = 256  # templates seen once, remembered to capture on their second sighting
MIN_OPS = 4  # shorter batches are sent as they are: a replay would save nothing
_REPLAY_HEAD = b'[["' + REPLAY.encode() + b'"'


class Plans:
    """One session proxy's captured templates, used under the session's lock. Handles start
    with the proxy's id prefix, so two clients attached to one session never name each
    other's plans. A handle names one template for as long as the session stays on its
    server (the stream's requests may still be resent after a move, and are rewritten from
    it): when MAX_PLANS are held, new templates are sent as they are.

    Templates are found by their batch's key (`batch_key`: a flat tuple of strings and ints,
    nothing the cyclic collector tracks), made in one pass over the batch when it is sent:
    two batches have equal keys exactly when they have equal templates, so the template bytes
    are only made when a batch is captured."""

    __slots__ = ("_prefix", "_plans", "_templates", "_before_move", "_seen", "captures",
                 "replays", "enabled")

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._plans: dict[tuple, str] = {}  # key -> handle
        self._templates: dict[str, bytes] = {}  # handle -> template
        self._before_move: dict[str, bytes] = {}
        self._seen: collections.OrderedDict[tuple, None] = collections.OrderedDict()
        self.captures = 0
        self.replays = 0
        self.enabled = True  # False: every batch goes as its entries (eager on the wire)

    def moved(self) -> None:
        """The session now lives in a server that holds no plans: capture anew (requests sent
        before the move are rewritten by `eager`)."""
        self._before_move = self._templates
        self._plans, self._templates = {}, {}
        self._seen.clear()

    def pack(self, ops: list) -> bytes:
        """The op_batch bytes for `ops`: a replay, a capture, or the entries themselves."""
        if not self.enabled or not MIN_OPS <= len(ops) <= MAX_PLAN_OPS:
            return pack_ops(ops)
        key, slots, values = batch_key(ops)
        handle = self._plans.get(key)
        if handle is not None:
            self.replays += 1
            return replay_bytes(handle, list(slots), values)
        seen = self._seen
        if key not in seen:
            seen[key] = None
            if len(seen) > MAX_SEEN:
                seen.popitem(last=False)
            return pack_ops(ops)
        if len(self._templates) >= MAX_PLANS:
            return pack_ops(ops)
        del seen[key]
        template, ids, values = split(ops)
        handle = self._plans[key] = f"{self._prefix}{len(self._templates)}"
        self._templates[handle] = template
        self.captures += 1
        return capture_bytes(handle, ids, values, template)

    def eager(self, raw: bytes) -> bytes:
        """A batch sent before the session moved, resent to the server that restored it
        (which holds no plans): a replay becomes the capture of its template."""
        if not raw.startswith(_REPLAY_HEAD):
            return raw
        ((_, handle, ids, values),) = json.loads(raw)
        template = self._before_move.get(handle)
        if template is None:  # not one of ours before the move: the server will say so
            return raw
        return capture_bytes(handle, ids, values, template)


def replay_bytes(handle: str, ids: list, values: list) -> bytes:
    """`pack_ops([[REPLAY, handle, ids, values]])`: where JSON writes the handle and ids as
    they are (printable ASCII, no quote or backslash: all this client makes), one join
    instead of the encoder's pass over each id."""
    body = '","'.join(ids)
    text = handle + body
    if ids and text.isascii() and text.isprintable() and "\\" not in text and text.count(
            '"') == 2 * len(ids) - 2:
        tail = pack_ops(values).decode() if values else "[]"
        return f'[["{REPLAY}","{handle}",["{body}"],{tail}]]'.encode()
    return pack_ops([[REPLAY, handle, ids, values]])


def batch_key(ops) -> tuple[tuple, dict, list]:
    """(the key of a batch's template, its ids slot by slot, its float attrs). The key holds,
    op by op: its name, its inputs (an id's slot, an int; any other input as its type and
    repr, a string), -1, its outputs' slots, its attrs as the template writes them (JSON
    bytes, float values as `{"@": k}`) or None, and its flags. An op of one or two inputs
    and at most one output (most ops, the optimizer's in place ones too) is instead one
    tuple: its name, its inputs, its output's slot or -1 (none), attrs and flags; its length
    says how many inputs, where other ops start with their name, a string. Only the name and
    a non-id input are strings, the attrs bytes, and each has a fixed place, so two keys are
    equal exactly when the batches' templates are. New ids take the next slot and float
    attrs go to `values`, as in the template (`template_entry`). One loop for the whole
    batch: this runs for every batch a session sends."""
    key: list = []
    slots: dict = {}
    values: list = []
    append, get = key.append, slots.get
    for name, args, outputs, attrs, flags in ops:
        n = len(args)
        if 0 < n < 3 and len(outputs) < 2:  # no inner loops, one item
            a = args[0]
            if type(a) is str:
                sa = get(a)
                if sa is None:
                    sa = slots[a] = len(slots)
            else:
                sa = f"{type(a).__name__}:{a!r}"
            if n == 2:
                b = args[1]
                if type(b) is str:
                    sb = get(b)
                    if sb is None:
                        sb = slots[b] = len(slots)
                else:
                    sb = f"{type(b).__name__}:{b!r}"
            so = -1
            if outputs:
                out = outputs[0]
                so = get(out)
                if so is None:
                    so = slots[out] = len(slots)
            attrs = _attrs_key(attrs, values) if attrs else None
            append((name, sa, sb, so, attrs, flags) if n == 2 else (name, sa, so, attrs, flags))
            continue
        append(name)
        for x in args:
            if type(x) is str:
                slot = get(x)
                if slot is None:
                    slot = slots[x] = len(slots)
                append(slot)
            else:
                append(f"{type(x).__name__}:{x!r}")
        append(-1)
        for x in outputs:
            slot = get(x)
            if slot is None:
                slot = slots[x] = len(slots)
            append(slot)
        append(_attrs_key(attrs, values) if attrs else None)
        append(flags)
    return tuple(key), slots, values


_SLOTTED, _TRUE, _FALSE = object(), object(), object()  # atoms no other value equals


def _attrs_key(attrs: dict, values: list) -> tuple:
    """attrs as the key holds them: (name, atom, name, atom, ...) with atoms equal exactly
    when the template's JSON of the values is (without writing it: JSON costs microseconds
    an attr). A float is `{"@": k}` in the template, k following from its place in the batch
    (its value goes to `values`, as `_float_slots` does); ints, strings and None are
    themselves (JSON writes equal ones alike, unequal ones not); bools an atom each (True
    == 1); a DType its name, a numpy scalar its Python value (as JSON writes them); anything
    else (lists, a numpy float written in place) its JSON bytes, which nothing else equals."""
    out = []
    for name, v in attrs.items():
        kind = type(v)
        if kind is float:
            values.append(v)
            v = _SLOTTED
        elif kind is bool:
            v = _TRUE if v else _FALSE
        elif kind is not int and kind is not str and v is not None:
            if isinstance(v, DType):
                v = v.name
            else:
                if isinstance(v, np.generic):
                    v = v.item()
                    kind = type(v)
                if kind is bool:
                    v = _TRUE if v else _FALSE
                elif kind is not int and kind is not str:  # a list, or a float in place
                    v = pack_ops(v)
        out.append(name)
        out.append(v)
    return tuple(out)


def _float_slots(attrs: dict, values: list) -> dict:
    """attrs with each float replaced by `{"@": k}`, its value appended to `values`."""
    copied = None
    for key, v in attrs.items():
        if type(v) is float:
            if copied is None:
                copied = dict(attrs)
            copied[key] = {"@": len(values)}
            values.append(v)
    return attrs if copied is None else copied


def capture_bytes(handle: str, ids: list, values: list, template: bytes) -> bytes:
    """`[["@capture", handle, ids, values, template]]`, the template spliced in as packed."""
    head = pack_ops([CAPTURE, handle, ids, values])
    return b"[" + head[:-1] + b"," + template + b"]]"


def template_entry(slots: dict, values: list, name: str, args: list, outputs, attrs,
                   flags: int) -> list:
    """One entry of a template. `slots` maps each id to its slot, in the order first named
    (so `list(slots)` is the ids); `values` collects the float attrs. In the template an
    input id is `[slot]` (a one-element array, which no eager input is), an output id is its
    slot number, and a float attr is `{"@": k}` for `values[k]` (no eager attr is an object):
    an optimizer's step size or a schedule's rate changes every step while the step stays
    the same."""
    targs = [[slots.setdefault(x, len(slots))] if type(x) is str else x for x in args]
    touts = [slots.setdefault(x, len(slots)) for x in outputs]
    return [name, targs, touts, _float_slots(attrs, values) if attrs else attrs, flags]


def split(ops: list) -> tuple[bytes, list, list]:
    """(the template of `ops` as op_batch bytes, the ids slot by slot, the float attrs)."""
    slots: dict = {}
    values: list = []
    entries = [template_entry(slots, values, *op) for op in ops]
    return pack_ops(entries), list(slots), values

def restore(session, moved):
    """Restore a moved session (its SessionInfo); the server that did holds no plans."""
    info = _handoff.restore(session, moved)
    session._plans.moved()
    return info


def resend(session, request):
    """An unanswered request as the server that restored the session gets it."""
    if request.op_batch:
        request.op_batch = session._plans.eager(request.op_batch)
    return request

