"""Prepared plans of captured steps: a template's ops resolved once, run again without
being read, looked up or shape-checked.

A captured step (server/_replay.py) runs its template's entries the eager way until one run
of it has been watched: `record` runs the entries exactly as the executor runs any entry and
notes, per entry, what it resolved (the op, its attrs as read, the slots of its inputs and
outputs) and what the op's shape rule gave for the inputs it saw, with what that result
assumed of them (`prepared.signature`: device, dtype, shape, layout). From then on `Plan.run`
runs the prepared steps:

- an op: the rest of the engine's op sequence with the kept result (`prepared.apply_known`:
  the same kernel, the same outputs, views, graph node and saved tensors as eager);
- an in-place op: the write and its history (`prepared.apply_inplace_known`), torch's checks
  having passed for inputs of the same signature (`prepared.inplace_signature`);
- a command (`set_grad`, `grad`, `backward`, ...): its function, as the executor calls it.

Checks are made where inputs can differ from the watched run: a tensor a step reads is held
to the signature it had then unless an earlier prepared op of this run made it (whose
signature follows from its own inputs'); a step with float attrs (`{"@": k}`: a learning
rate) asks its shape rule (or torch's in-place checks) again. Anything else is as the
watched run was by construction. Entries that cannot be prepared (data uploads, factories
that name a device, shapes that depend on the data, in-place writes through views) stay
eager steps of the plan, run through the executor's one path.

A `backward` from one root is planned (engine/surface/prepared_backward.py) when every node
its graph reaches was made by a prepared op: of this step, or of the captured batches that
ran before it since the session's last backward (a step of more ops than one batch: the SDK
cuts batches at 64 ops). Those runs are kept per session, by weak references only
(server/_chain.py); the plan names the ones it reaches, which must be the session's newest
runs, of the same plans, with the same float values, and each node it reaches there must be
the one the run's prepared op made.

When a check fails, that entry and the rest of the step run the eager way (the state the
prepared steps before it left is eager's, so eager's result and errors follow), and the plan
is dropped: the next run is watched again. An op that fails while it runs fails as the
eager op does (the same exception, the same op index). CUDA Graphs are not used: a GPU
session's plan runs the same cupy kernels one by one.
"""

from __future__ import annotations

from operator import itemgetter
from time import monotonic

from gradserve.engine import Meta, Tensor
from gradserve.engine.seam import (
    OPS,
    BackwardPlan,
    apply_direct,
    apply_inplace_known,
    apply_known,
    direct,
    grad_mode,
    inplace_meta,
    inplace_signature,
    known_meta,
    signature,
    watch_backward,
)
from gradserve.v1.codec import INPLACE, NO_GRAD

from . import _chain as chain
from ._limits import meta_bytes, releasers
from ._replay import fill
from ._scheduler import _local as _item  # the running item's deadline
from ._scheduler import check_deadline

OP, INPLACE_OP, COMMAND, EAGER = "op", "inplace", "command", "eager"
# an OP step `apply_direct` runs, every input a slot, no float attrs, one output
_USUAL = "usual"

releasers.append(chain.release)


class Step:
    """One template entry, prepared (or not: EAGER)."""

    __slots__ = ("kind", "op", "name", "args", "reads", "outs", "attrs", "floats", "seen",
                 "flags", "meta", "nbytes", "guards", "backward", "watched", "chain", "pad",
                 "foreign", "grad", "direct", "keys", "fast")

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        self.op = self.meta = None
        self.args: tuple = ()
        self.reads: tuple = ()  # (input position, slot) of the tensor inputs
        self.outs: tuple = ()  # output slots
        self.attrs: dict = {}
        self.floats: tuple = ()  # (attr key, k): the attr is values[k]
        self.keys: tuple = ()  # the attr keys of `floats`
        self.seen: list = []  # the values of `floats` in the watched run
        self.flags = 0
        self.grad = True  # grad mode for the step (not NO_GRAD)
        self.direct = False  # an op `apply_direct` runs (a plain CPU kernel)
        self.nbytes = 0
        self.guards: tuple = ()  # (input position, signature it must have)
        self.backward: BackwardPlan | None = None  # a `backward` command's, when planned
        # (k, value): the float values the steps before a planned backward had when it was
        # watched (a node's attrs, which its backward's kernels were watched with)
        self.watched: tuple = ()
        # a backward planned across the step's earlier batches: (plan, slots, values) of each
        # run it reaches (the session's newest runs, in order), `pad` slots of older runs
        # before them, and (run index, slot) of each node of theirs that it reaches
        self.chain: tuple = ()
        self.pad = 0
        self.foreign: tuple = ()


class Fallback(Exception):
    """A prepared step's inputs differ from the watched run's: run the rest eagerly."""


class Plan:
    """A captured template's prepared steps; `runs` and `fallbacks` count how they went."""

    __slots__ = ("steps", "template", "slots", "values", "runs", "fallbacks", "made",
                 "ends", "outside", "unbound_at")

    def __init__(self, steps: list[Step], template: list, slots: int, values: int,
                 made: frozenset = frozenset()) -> None:
        self.steps, self.template = steps, template
        self.slots, self.values = slots, values  # how many ids and values a run needs
        self.runs = self.fallbacks = 0
        self.made = made  # slots whose grad_fn a run leaves as its prepared op made it
        self.ends = any(s.kind is COMMAND and s.name in _ENDS for s in steps)
        self.outside, self.unbound_at = _outside(steps)
        for step in steps:  # what a run reads of each step, in one unpacking
            ins = None
            if len(step.reads) == len(step.args):  # every input a slot: gathered in C
                ins = _gather(tuple(k for _, k in step.reads))
            step.fast = (step.kind, step.op, ins, step.args, step.guards, step.floats,
                         step.grad, step.meta, step.nbytes, step.direct, step.outs)
            if step.kind is OP and step.direct and ins is not None and not step.floats \
                    and type(step.meta) is Meta and len(step.outs) == 1:
                step.fast = (_USUAL, step.op, ins, step.guards, step.grad, step.meta,
                             step.nbytes, step.attrs, step.name, step.outs[0])

    def prepared(self) -> int:
        """How many of its steps run without the eager path."""
        return sum(s.kind is not EAGER for s in self.steps)

    def run(self, batch, ids: list, values: list, read, where) -> bool:
        """Run the step on `batch` (the executor's request state); False when the plan no
        longer fits (it counted a fallback and ran the eager way from the step that did not
        fit, which may raise what eager raises)."""
        if len(ids) < self.slots or len(values) < self.values or len(set(ids)) < len(ids):
            # a malformed replay: the eager expansion says what is wrong, where it is; or
            # one id in two slots, whose tensor a step may rebind under one of them (a
            # slot's tensor is looked up once per run: `vals`)
            self.fallbacks += 1
            self._eager_from(0, batch, ids, values, read, where)
            return False
        tensors, previous, track = batch.tensors, batch.previous, batch.track
        bound = batch.bound if batch.describe else None
        # the tensor of each slot: those a step reads before any step binds them looked up
        # now (a slot's id is bound only by a step's outputs while the run lasts), the rest
        # as steps bind them; the first step that reads an unbound one goes eager
        vals = [None] * len(ids)
        stop = len(self.steps)
        for k in self.outside:
            t = vals[k] = tensors.get(ids[k])
            if t is None and self.unbound_at[k] < stop:
                stop = self.unbound_at[k]
        state = grad_mode._state
        take = batch.budget.take
        deadline = getattr(_item, "deadline", None)  # check_deadline's, without a call
        index = batch.index
        for j, step in enumerate(self.steps):
            fast = step.fast
            usual = fast[0] is _USUAL  # `prepare` made it: one op, its inputs all slots
            if not usual:
                (kind, op, ins, args, guards, floats, grad, meta, nbytes, direct_,
                 outs) = fast
            if not usual and kind is EAGER:
                results = batch.eager(fill(self.template[j], ids, values), read, where)
                index = batch.index
                for k, t in zip(outs, results, strict=True):
                    vals[k] = t
                continue
            try:
                if j == stop:  # it reads a slot whose id is not bound: eager says so
                    raise Fallback
                if deadline is not None and monotonic() > deadline[0]:
                    check_deadline(f"op {index}'s request")
                if usual:
                    _, op, ins, guards, grad, meta, nbytes, attrs, name, k = fast
                    inputs = ins(vals)
                    for pos, sig in guards:
                        if signature(inputs[pos]) != sig:
                            raise Fallback
                    state.enabled = grad
                    take(nbytes, name)
                    (t,) = apply_direct(op, inputs, attrs, meta)
                else:
                    if ins is not None:
                        inputs = ins(vals)
                    else:
                        inputs = list(args)
                        for pos, k in step.reads:
                            inputs[pos] = vals[k]
                    if guards:
                        check = inplace_signature if kind is INPLACE_OP else signature
                        for pos, sig in guards:
                            if check(inputs[pos]) != sig:
                                raise Fallback
                    attrs = step.attrs
                    seen = True  # the float attrs are the watched run's
                    if floats:
                        now = [values[k] for _, k in floats]
                        attrs = dict(attrs)
                        attrs.update(zip(step.keys, now, strict=True))
                        seen = now == step.seen
                    state.enabled = grad
                    if kind is OP:
                        if not seen and known_meta(op, inputs, attrs) != meta:
                            raise Fallback  # a float attr that changes a shape (arange's end)
                        # the byte check eager makes once the shape rule ran: nothing before
                        # it can fail for inputs of the watched signatures (placement is
                        # theirs)
                        take(nbytes, step.name)
                        if direct_:
                            results = apply_direct(op, inputs, attrs, meta)
                        else:
                            results = apply_known(op, tuple(inputs), attrs, meta)
                    elif step.backward is not None and all(
                            values[k] == v for k, v in step.watched) and step.backward.run(
                            _chained(step, batch.session) + _slots(tensors, ids, vals)):
                        results = ()
                    else:
                        results = _run_step(step, inputs, attrs, seen)
            except Fallback:
                self.fallbacks += 1
                self._eager_from(j, batch, ids, values, read, where)
                return False
            except Exception as exc:
                batch.fail(exc, index, fill(self.template[j], ids, values), where)
            if usual:
                tid = ids[k]
                if tid not in previous:
                    previous[tid] = tensors.get(tid)
                tensors[tid] = vals[k] = t
                track(t._data, t._device)
                if bound is not None:
                    bound.append(tid)
            else:
                # bound as `Batch.bind` binds an entry's outputs (zip's strict=True costs a
                # third of a microsecond per step: the lengths are compared here instead)
                if len(results) != len(outs):
                    raise ValueError(f"{step.name} gave {len(results)} results for "
                                     f"{len(outs)} output slots")
                for k, t in zip(outs, results, strict=False):  # lengths compared above
                    tid = ids[k]
                    if tid not in previous:
                        previous[tid] = tensors.get(tid)
                    tensors[tid] = vals[k] = t
                    if type(t) is Tensor:
                        track(t._data, t._device)
                    if bound is not None:
                        bound.append(tid)
            index += 1
            batch.index = index
        chain.note(batch.session, self, _slots(tensors, ids, vals), values)
        self.runs += 1
        return True

    def _eager_from(self, j: int, batch, ids, values, read, where) -> None:
        chain.drop(batch.session)  # a run that did not fit: nothing to plan across
        for t in self.template[j:]:
            batch.eager(fill(t, ids, values), read, where)


_ENDS = ("backward", "grad")  # commands that end a step's graph


def _gather(ins: tuple):
    """The inputs in slots `ins` of a run's slot tensors, as a tuple (in C for two or more)."""
    if len(ins) > 1:
        return itemgetter(*ins)
    return (lambda vals: (vals[ins[0]],)) if ins else (lambda vals: ())


def _outside(steps: list[Step]) -> tuple[tuple, dict]:
    """The slots prepared steps read before any step binds them (what a run looks up when
    it starts), and for each the first step that reads it."""
    first: dict[int, int] = {}
    bound: set[int] = set()
    for j, step in enumerate(steps):
        if step.kind is not EAGER:
            for _, k in step.reads:
                if k not in bound and k not in first:
                    first[k] = j
        bound.update(step.outs)
    return tuple(first), first


def _slots(tensors: dict, ids: list, vals: list) -> list:
    """Each slot's tensor as the run leaves it: looked up by it, or as bound now."""
    return [tensors.get(x) if t is None else t for x, t in zip(ids, vals, strict=True)]


def _chained(step: Step, session) -> list:
    """The slots of the earlier runs `step`'s backward was planned across (`chain.slots_of`);
    raises Fallback when those runs are not the watched plans' (it is watched again)."""
    slots = chain.slots_of(session, step.chain, step.pad, step.foreign)
    if slots is None:
        raise Fallback
    return slots


def _watch(batch, step: Step, ids: list, run, made: set) -> None:
    """Watch `step`'s backward (`run`), planned across the session's earlier runs since its
    last backward where its graph reaches their nodes (server/_chain.py)."""
    kept = chain.runs(batch.session)
    prefix: list = []
    trusted: set[int] = set()
    starts = []
    for r in kept:
        off = len(prefix)
        starts.append(off)
        ts = r.tensors()
        prefix += ts
        trusted.update(off + k for k in r.nodes
                       if ts[k] is not None and ts[k].grad_fn is r.node(k) is not None)
    tensors = batch.session.tensors
    off = len(prefix)
    plan = watch_backward(off + step.reads[0][1], prefix + [tensors.get(x) for x in ids], run,
                          trusted | {off + k for k in made})
    step.backward = plan
    if plan is None or not kept:
        step.pad = off
        return
    used = [plan.start, *plan.edges, *plan.leaves]
    used += [ref[1] for refs in plan.edges.values() for ref in refs if ref is not None]
    used += [ref[1] for _, refs, _, _, _ in plan.ops for ref in refs if ref[0] == "s"]
    lo = min(used)
    first = max((i for i, s in enumerate(starts) if s <= lo), default=len(starts))
    if first == len(starts):  # nothing of the earlier runs: as a backward of one batch
        step.pad = off
        return
    step.pad = starts[first]
    step.chain = tuple((r.plan, len(r.slots), r.values) for r in kept[first:])
    step.foreign = tuple((i - first, k - starts[i]) for k in plan.edges if k < off
                         for i in (max(i for i, s in enumerate(starts) if s <= k),))


def _run_step(step: Step, inputs: list, attrs: dict, seen: bool) -> tuple:
    """An in-place op or a command (`seen`: its float attrs are the watched run's)."""
    op = step.op
    if step.kind is INPLACE_OP:
        recorded = step.meta
        if not seen:  # torch's checks again: they may read the attrs
            recorded = inplace_meta(op, inputs[0], tuple(inputs[1:]), attrs)
        apply_inplace_known(op, inputs[0], tuple(inputs[1:]), attrs, recorded)
        return ()
    return op.run(tuple(inputs), attrs)[:len(step.outs)]


def record(batch, template: list, ids: list, values: list, read, where) -> Plan:
    """Run `template` the eager way on `batch`, watching what each entry resolves to; its
    plan. Raises what the eager run raises (and then nothing is kept)."""
    steps = []
    trusted: set[int] = set()  # slots whose signature follows from the plan's own ops
    # slots whose grad_fn a prepared op of the step made, untouched since by anything else:
    # the same op, attrs (but float values: `watched`) and shapes every run, unlike a node
    # made before the step or by an eager entry (whose shapes may depend on the data)
    made: set[int] = set()
    for t in template:
        entry = fill(t, ids, values)
        try:
            step = _prepare(batch, t, entry, read, trusted)
        except Exception:  # the eager run below raises it where eager raises it
            step = Step(EAGER, str(entry[0]))
            trusted.difference_update(x[0] for x in t[1] if type(x) is list)
            trusted.difference_update(t[2])
        if _plannable_backward(step):
            _watch(batch, step, ids, lambda entry=entry: batch.eager(entry, read, where),
                   made)
            step.watched = tuple(sorted({(k, values[k]) for s in steps for _, k in s.floats}))
        else:
            batch.eager(entry, read, where)
        step.outs = tuple(t[2])
        if step.kind is OP:
            made.update(step.outs)
        else:
            made.difference_update(x[0] for x in t[1] if type(x) is list)
            made.difference_update(step.outs)
        steps.append(step)
    _check_once(steps)
    slots = [k + 1 for t in template for k in t[2]] + [
        x[0] + 1 for t in template for x in t[1] if type(x) is list and len(x) == 1]
    floats = [v["@"] + 1 for t in template if type(t[3]) is dict
              for v in t[3].values() if type(v) is dict]
    plan = Plan(steps, template, max(slots, default=0), max(floats, default=0),
                frozenset(made))
    tensors = batch.session.tensors
    chain.note(batch.session, plan, [tensors.get(x) for x in ids], values)
    return plan


def _check_once(steps: list[Step]) -> None:
    """Drop a prepared op's guard on a slot that an earlier op of the same stretch of
    prepared ops (no in-place op, command or eager step between them) checked against the
    same signature: the slot holds the same tensor (only a step's outputs rebind a slot), and
    an op changes nothing of its inputs' signatures, so the check would pass again."""
    checked: set = set()  # (slot, signature) checked since the stretch began
    for step in steps:
        if step.kind is not OP:
            checked.clear()
            continue
        slot_of = dict(step.reads)
        guards = []
        for pos, sig in step.guards:
            key = (slot_of[pos], sig)
            if key not in checked:
                checked.add(key)
                guards.append((pos, sig))
        step.guards = tuple(guards)
        if checked and step.outs:
            checked = {c for c in checked if c[0] not in step.outs}


def _plannable_backward(step: Step) -> bool:
    """Whether a step is a `backward` from one root, without gradients, inputs,
    retain_graph or create_graph: what `watch_backward` plans."""
    attrs = step.attrs
    return (step.kind is COMMAND and step.name == "backward" and len(step.args) == 1
            and len(step.reads) == 1 and attrs.get("grads", 0) == 0
            and attrs.get("inputs", 0) == 0 and attrs.get("retain_graph") in (None, False)
            and attrs.get("create_graph", False) is False)


def _prepare(batch, t: list, entry: list, read, trusted: set) -> Step:
    """The step of template entry `t` (`entry`, filled), from the inputs it is about to run
    on; updates `trusted` for what it leaves."""
    name, inputs, outputs, attrs, flags = read(entry)
    op = OPS.get(name)
    step = Step(EAGER, name)
    slot_of = {pos: x[0] for pos, x in enumerate(t[1]) if type(x) is list and len(x) == 1}
    out_slots = set(t[2])
    tensors = batch.session.tensors
    live = list(inputs)
    for pos in slot_of:
        live[pos] = tensors.get(inputs[pos])
        if signature(live[pos]) is None:  # unbound, or not a tensor: eager says what
            op = None
    if op is None or op.needs_device or any(
            pos not in slot_of and not isinstance(x, (int, float, bool)) for pos, x in
            enumerate(inputs)):  # data uploads and anything unusual stay eager
        trusted.difference_update(slot_of.values())
        trusted.difference_update(out_slots)
        return step
    step.op, step.flags, step.grad = op, flags, not flags & NO_GRAD
    step.args = tuple(None if pos in slot_of else x for pos, x in enumerate(inputs))
    step.reads = tuple(slot_of.items())
    step.attrs = attrs
    if type(t[3]) is dict:
        step.floats = tuple((key, v["@"]) for key, v in t[3].items() if type(v) is dict)
        step.keys = tuple(key for key, _ in step.floats)
        step.seen = [attrs[key] for key in step.keys]
    grad_mode._state.enabled = not flags & NO_GRAD  # as the executor sets it for the entry
    if op.run is not None:
        if not flags & INPLACE:
            op.check_arity(len(inputs), len(outputs))
            step.kind = COMMAND
        # a command may change anything of its tensors (set_data: the shape)
        trusted.difference_update(slot_of.values())
        trusted.difference_update(out_slots)
        return step
    if flags & INPLACE:
        if outputs or not slot_of or 0 not in slot_of or live[0]._base is not None:
            return step
        step.meta = inplace_meta(op, live[0], tuple(live[1:]), attrs)
        step.guards = tuple((pos, inplace_signature(live[pos])) for pos in slot_of)
        step.kind = INPLACE_OP
        return step
    meta = known_meta(op, tuple(live), attrs)
    metas = () if meta is None else ((meta,) if type(meta) is Meta else meta)
    if meta is None or len(metas) != len(outputs):
        trusted.difference_update(out_slots)
        return step
    step.meta = meta
    step.nbytes = meta_bytes(m for m in metas if m.strides is None or not op.view)
    step.direct = direct(op, next(x._device for x in live if isinstance(x, Tensor)))
    step.guards = tuple((pos, signature(live[pos])) for pos, k in slot_of.items()
                        if k not in trusted)
    step.kind = OP
    trusted.update(out_slots)
    return step

