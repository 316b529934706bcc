"""Captured steps: op_batch entries that name a template instead of an op, run as exactly the
entries eager recording sends (their prepared plan: `_plan.py`).

The SDK sends a batch it sent before as `["@replay", handle, ids, values]` after capturing
its template once as `["@capture", handle, ids, values, template]` (client/_replay.py;
docs/WIRE.md, "Captured steps"). Both resolve here to the template kept under the handle
(`resolve`); its entries are exactly those eager recording sends, with each slot's id and
each float attr put back (`fill`). The executor runs a template through its prepared plan
(`_plan.py`), or as those entries on its one path until a plan is made and from any entry a
run does not fit it: the same results, the same errors, the same op index for the client to
name the user's line. Templates and plans are per session and live with this server
process; a session restored elsewhere holds none (the SDK resends captures then).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator, Sequence

from gradserve.engine import InvalidArgumentError
from gradserve.v1.codec import CAPTURE, MAX_PLAN_OPS, MAX_PLANS, REPLAY

from ._errors import ResourceExhaustedError
from ._requests import OpSource

MAX_HANDLE = 64
# One SDK session proxy captures at most MAX_PLANS; a session shared by many clients keeps
# the newest MAX_SESSION_PLANS (a client that captured before all of those replays in vain)
MAX_SESSION_PLANS = 16 * MAX_PLANS
MAX_ENTRIES = 1 << 16  # template entries a session keeps in all (memory the byte limit misses)
# session -> {handle: template entries}; a closed session's plans go with it
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# A lone replay as the SDK writes it (compact JSON): a string of printable ASCII without
# quote or backslash (nothing to unescape), ids such strings, values JSON numbers. Matching
# it is a quarter of parsing it; a batch written any other way is parsed when it runs.
_TEXT = rb'[\x20\x21\x23-\x5b\x5d-\x7e]*'
_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_LONE_REPLAY = re.compile(
    rb'\[\["' + re.escape(REPLAY.encode()) + rb'","(' + _TEXT + rb')",\[(?:"' + _TEXT
    + rb'"(?:,"' + _TEXT + rb'")*)?\],\[(?:' + _NUMBER + rb"(?:," + _NUMBER + rb")*)?\]\]\]\Z")
_LONE_REPLAY_BYTES = 1 << 16
_TIMES_KEPT = 4
_STR, _FLOAT = frozenset((str,)), frozenset((float,))


def expand(session, sources: Sequence[OpSource], max_ops: int | None = None
           ) -> list[OpSource]:
    """`sources` with every capture or replay entry expanded, lazily: an entry that cannot
    be expanded fails when its turn comes, after the ops before it ran, as any bad entry.
    A captured template holds at most `max_ops` entries (the server's limit per batch)."""
    return [OpSource(_entries(session, s.entries, max_ops), s.read, s.where) for s in sources]


def lone_replay(op_batch: bytes) -> str | None:
    """The handle when an op_batch is one replay entry and nothing else (what the SDK sends
    for a step it captured, `_LONE_REPLAY`); None for anything else, or anything that does
    not parse (the executor says what is wrong with it, when it runs)."""
    if len(op_batch) > _LONE_REPLAY_BYTES:
        return None
    match = _LONE_REPLAY.match(op_batch)
    return None if match is None else match.group(1).decode("ascii")


def last_seconds(session, handle: str) -> float | None:
    """The fewest seconds one of the last `_TIMES_KEPT` requests that were only a replay of
    `handle` took (a step's work is the same each time: the least is the step, the rest
    was a loaded machine); None when none was measured, or there is no such step."""
    captured = _PLANS.get(session, {}).get(handle)
    return None if captured is None or not captured.seconds else min(captured.seconds)


def note_seconds(session, handle: str, seconds: float) -> None:
    """A request that was only a replay of `handle` took `seconds`."""
    captured = _PLANS.get(session, {}).get(handle)
    if captured is not None:
        captured.seconds = (*captured.seconds[1 - _TIMES_KEPT:], seconds)


def plan_count(session) -> int:
    """Captured steps `session` holds."""
    return len(_PLANS.get(session, ()))


def _entries(session, entries: Iterable, max_ops: int | None) -> Iterator:
    for entry in entries:
        if is_step(entry):
            yield from _expand(session, entry, max_ops)
        else:
            yield entry


def _expand(session, entry: list, max_ops: int | None) -> Iterator[list]:
    captured, ids, values = resolve(session, entry, max_ops)
    for t in captured.template:
        yield fill(t, ids, values)


class Captured:
    """One captured template and, once a run of it has been watched, its plan (server/_plan:
    the ops prepared to run again; None until then, and again after a run it did not fit);
    `seconds`: how long the last requests that were this step alone took (`note_seconds`)."""

    __slots__ = ("template", "plan", "seconds")

    def __init__(self, template: list) -> None:
        self.template = template
        self.plan = None
        self.seconds: tuple = ()

    def __len__(self) -> int:
        return len(self.template)


def is_step(entry) -> bool:
    """Whether an op_batch entry names a captured step (its first item starts with '@')."""
    return type(entry) is list and bool(entry) and type(entry[0]) is str and entry[0][:1] == "@"


def resolve(session, entry: list, max_ops: int | None) -> tuple[Captured, list, list]:
    """A capture or replay entry as (its captured template, ids, values); a capture keeps
    its template first. Raises InvalidArgumentError (ResourceExhaustedError for a template
    past the server's batch limit) for an entry that names no step it may run."""
    kind = entry[0]
    if kind == CAPTURE and len(entry) == 5:
        _, handle, ids, values, template = entry
        _check_handle(handle)
        if type(template) is not list or not 0 < len(template) <= MAX_PLAN_OPS:
            raise InvalidArgumentError(
                f"a {CAPTURE} template is an array of 1 to {MAX_PLAN_OPS} entries")
        if max_ops and len(template) > max_ops:
            raise ResourceExhaustedError(
                f"a {CAPTURE} template of {len(template)} ops is more than this server's limit "
                f"of {max_ops} per request (max-batch-ops)", "max_batch_ops")
        plans = _PLANS.get(session)
        if plans is None:
            plans = _PLANS[session] = {}
        plans.pop(handle, None)  # the newest last: the oldest goes first when there are many
        captured = plans[handle] = Captured(template)
        while len(plans) > MAX_SESSION_PLANS or sum(map(len, plans.values())) > MAX_ENTRIES:
            del plans[next(iter(plans))]
    elif kind == REPLAY and len(entry) == 4:
        _, handle, ids, values = entry
        _check_handle(handle)
        captured = _PLANS.get(session, {}).get(handle)
        if captured is None:
            raise InvalidArgumentError(
                f"{REPLAY} of plan {handle}, which this session has not captured here (plans "
                "live with the server process that captured them)")
    else:
        raise InvalidArgumentError(
            f"an op_batch entry starting with '@' is [\"{CAPTURE}\", handle, ids, values, "
            f"template] or [\"{REPLAY}\", handle, ids, values], not {str(entry[0])[:40]!r} "
            f"with {len(entry)} items")
    # the element checks in C (a replay's every request runs them): types, then non-empty
    if type(ids) is not list or not set(map(type, ids)) <= _STR or not all(ids):
        raise InvalidArgumentError(f"{kind}'s ids must be an array of non-empty strings")
    if type(values) is not list or not set(map(type, values)) <= _FLOAT:
        raise InvalidArgumentError(f"{kind}'s values must be an array of numbers")
    return captured, ids, values


def _check_handle(handle) -> None:
    if type(handle) is not str or not 0 < len(handle) <= MAX_HANDLE:
        raise InvalidArgumentError(f"plan handles are strings of 1 to {MAX_HANDLE} characters")


def fill(t, ids: list, values: list) -> list:
    """One template entry as the eager entry: `[k]` inputs and output slots become ids,
    `{"@": k}` attrs their float values."""
    if type(t) is not list or len(t) != 5 or type(t[1]) is not list or type(t[2]) is not list:
        raise InvalidArgumentError(
            "a template entry is [name, inputs, output slots, attrs, flags]")
    name, args, outs, attrs, flags = t
    try:
        inputs = [ids[_slot(x[0])] if type(x) is list and len(x) == 1 else x for x in args]
        outputs = [ids[_slot(k)] for k in outs]
    except IndexError:
        raise InvalidArgumentError(
            f"a template entry names a slot beyond the {len(ids)} ids given") from None
    if type(attrs) is dict:  # a copy per run: reading an entry makes its lists tuples in place
        try:
            attrs = {k: values[_slot(v.get("@"))] if type(v) is dict else v
                     for k, v in attrs.items()}
        except IndexError:
            raise InvalidArgumentError(
                f"a template attr names a value beyond the {len(values)} given") from None
    return [name, inputs, outputs, attrs, flags]


def _slot(k) -> int:
    if type(k) is not int or k < 0:
        raise InvalidArgumentError("template slots are non-negative integers")
    return k
