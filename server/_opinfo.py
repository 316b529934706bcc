"""What each registry op takes, read off the registry: the answer to ListOps, the op table in
docs/WIRE.md (scripts/gen_op_table.py) and the "did you mean" of an unknown op name.

A compute op's inputs and attrs come from its shape rule's signature (`infer(*inputs,
**attrs)`): the parameters the op declares as attrs (`defop(attrs=...)`); else, when the
signature marks its attrs keyword-only (`infer(x, w, b=None, *, stride)`), those; else the
ones with a default. A `*tensors` parameter takes any number of inputs; a rule that takes
attrs it does not name (`**_`) has them named by its forward's keyword-only parameters.
A command declares its input and output counts and the attrs it reads (`defcommand`).
"""

from __future__ import annotations

import difflib
import inspect
import json
from typing import NamedTuple

from gradserve.engine.seam import OPS, OpDef


class AttrInfo(NamedTuple):
    name: str
    required: bool
    default_json: str  # "" when required


class OpInfo(NamedTuple):
    name: str
    kind: str  # "op" or "command"
    min_inputs: int
    max_inputs: int  # -1: any number
    attrs: tuple[AttrInfo, ...]
    differentiable: bool
    max_outputs: int  # commands: how many output ids they bind at most; ops: 0


def _default(value) -> str:
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except TypeError:
        return json.dumps(repr(value))


def _attr(name: str, default, filled: bool = False) -> AttrInfo:
    if default is inspect.Parameter.empty:
        return AttrInfo(name, not filled, "")
    return AttrInfo(name, False, _default(default))


def describe(op: OpDef) -> OpInfo:
    """One registry entry as ListOps reports it."""
    if op.run is not None:
        (lo, hi), (_, out) = op.arity
        attrs = tuple(_attr(n, inspect.Parameter.empty if d is ... else d)
                      for n, d in op.attrs.items())
        if op.needs_device:
            attrs += (_attr("device", inspect.Parameter.empty, filled=True),)
        return OpInfo(op.name, "command", lo, hi, attrs, False, out)
    lo = hi = 0
    attrs: list[AttrInfo] = []
    declared = op.attrs
    params = list(inspect.signature(op.infer).parameters.values())
    if declared is None and any(p.kind is p.VAR_KEYWORD for p in params):
        params += [p for p in inspect.signature(op.forward).parameters.values()
                   if p.kind is p.KEYWORD_ONLY and p.name not in {q.name for q in params}]
    marked = any(p.kind is p.KEYWORD_ONLY for p in params)
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            continue
        if p.kind is p.VAR_POSITIONAL:
            hi = -1
            continue
        if declared is not None:
            is_attr = p.name in declared
        elif marked:
            is_attr = p.kind is p.KEYWORD_ONLY
        else:
            is_attr = p.default is not p.empty
        if is_attr:
            attrs.append(_attr(p.name, p.default, filled=p.name == "device"
                               and op.needs_device))
        elif p.default is p.empty:
            lo += 1
            hi = hi if hi < 0 else hi + 1
        else:
            hi = hi if hi < 0 else hi + 1
    return OpInfo(op.name, "op", lo, hi, tuple(attrs), op.differentiable, 0)


def describe_all() -> list[OpInfo]:
    """Every registry entry, by name."""
    return [describe(OPS[name]) for name in sorted(OPS)]


def suggest(name: str) -> str:
    """' (did you mean 'mul'?)' for a name close to a registry op's, else ''."""
    close = difflib.get_close_matches(name[:80], list(OPS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def markdown_table(ops: list[OpInfo] | None = None) -> str:
    """The op table docs/WIRE.md shows, one row per registry entry."""
    rows = ["| op | kind | inputs | attrs (default) | differentiable |",
            "| --- | --- | --- | --- | --- |"]
    for info in ops if ops is not None else describe_all():
        if info.max_inputs < 0:
            inputs = f"{info.min_inputs}+"
        elif info.min_inputs == info.max_inputs:
            inputs = str(info.min_inputs)
        else:
            inputs = f"{info.min_inputs}-{info.max_inputs}"
        attrs = ", ".join(f"`{a.name}`" + (f" ({a.default_json})" if a.default_json
                                           else "" if a.required else " (optional)")
                          for a in info.attrs)
        rows.append(f"| `{info.name}` | {info.kind} | {inputs} | {attrs} | "
                    f"{'yes' if info.differentiable else ''} |")
    return "\n".join(rows) + "\n"
