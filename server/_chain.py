"""The runs of captured steps since a session's last backward: what a backward that reaches
their nodes is planned across (server/_plan.py).

A step of more ops than one batch (the SDK cuts its batches at 64 ops) comes as several
captured batches in a row, the last one's backward reaching the nodes the earlier ones made.
Per session, the newest `MAX_CHAIN` runs since its last backward are kept (`_Run`), each as
what a planned backward reads of its slots: the tensor, its grad_fn and output number, its
array. A run keeps none of them alive: a tensor still bound (or held by the graph, as a
saved input) is itself; one that is gone is rebuilt (`_stand_in`) from its node and array
when the graph still holds those (a node's saved output: its array, not the tensor), and is
None when not (no backward reaches it any more). So a loop whose graphs are dropped without
a backward frees each one as eager does, and the kept runs cost no bytes.
"""

from __future__ import annotations

import weakref

from gradserve.engine import Meta, Tensor
from gradserve.engine.seam import stand_in

# session -> [the runs since its last backward, oldest first]
_CHAINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_CHAIN = 32
_ref = weakref.ref


class _Run:
    """One completed run of a plan: per slot what a backward reads of its tensor, by weak
    references only (`note`: the tensor, its grad_fn, output number, array, and its meta),
    the nodes its prepared ops made (slot -> a weak reference to the grad_fn, as the run
    left it) and its float values."""

    __slots__ = ("plan", "slots", "nodes", "values")

    def __init__(self, plan, slots: list, nodes: dict, values: tuple) -> None:
        self.plan, self.slots, self.nodes, self.values = plan, slots, nodes, values

    def node(self, k: int):
        """The grad_fn slot k's prepared op made, while the graph holds it."""
        ref = self.nodes.get(k)
        return None if ref is None else ref()

    def tensors(self) -> list:
        """The run's slots as a backward reads them now (see the module doc)."""
        return [None if kept is None else _stand_in(kept) for kept in self.slots]

    def done(self) -> bool:
        """Whether a backward freed a node the run made, or the client dropped all of them:
        no later step's backward can reach it."""
        alive = False
        for ref in self.nodes.values():
            node = ref()
            if node is not None:
                if node._freed:
                    return True
                alive = True
        return not alive


def _stand_in(kept: tuple):
    """The slot's tensor when it lives; else one with its node and its array while the
    graph holds them (a saved output is its array alone; an array nobody saved is None:
    a planned backward that reads it does not run, `BackwardPlan.run`), or None when
    neither is held."""
    t = kept[0]()
    if t is not None:
        return t
    data = None if kept[3] is None else kept[3]()
    node = None if kept[1] is None else kept[1]()
    if data is None and node is None:
        return None
    return stand_in(data, Meta(kept[4], kept[5], kept[6]), kept[7], node, kept[2])


def release(session) -> bool:
    """Let `session`'s runs go (None: every session's); True when any were kept. The runs
    hold no bytes, but a byte limit's releasers (server/_limits.py) ask every holder."""
    if session is not None:
        return _CHAINS.pop(session, None) is not None
    held = len(_CHAINS) > 0
    _CHAINS.clear()
    return held


def drop(session) -> None:
    """A backward ended the session's step, or a run did not fit: nothing to plan across."""
    _CHAINS.pop(session, None)


def runs(session) -> list:
    """The session's kept runs, oldest first (a list the caller must not change)."""
    return _CHAINS.get(session, [])


def slots_of(session, chain: tuple, pad: int, foreign: tuple) -> list | None:
    """The slots of the earlier runs a backward was planned across, as the session's newest
    runs left them: `chain` holds (plan, slot count, values) of each run it reaches, `pad`
    slots of older runs go before them (None), `foreign` is (run index, slot) of each node
    of theirs it reaches. None when those runs are not the watched plans'; when such a node
    is not the one their prepared op made (changed since), slots the graph check finds no
    node in (the eager backward runs)."""
    if not chain:
        return [None] * pad
    kept = runs(session)
    n = len(chain)
    if len(kept) < n:
        return None
    reached = kept[len(kept) - n:]
    slots = [None] * pad
    for run, (plan, size, values) in zip(reached, chain, strict=True):
        if run.plan is not plan or len(run.slots) != size or run.values != values:
            return None
    tensors = [run.tensors() for run in reached]
    for i, k in foreign:
        node, t = reached[i].node(k), tensors[i][k]
        if node is None or t is None or t.grad_fn is not node:
            return slots + [None] * sum(map(len, tensors))
    for ts in tensors:
        slots += ts
    return slots


def note(session, plan, slots: list, values: list) -> None:
    """A run of `plan` completed, leaving `slots`: one a later batch's backward may reach."""
    if plan.ends:  # its backward ended the step: the runs after it are the next step's
        _CHAINS.pop(session, None)
        return
    made = plan.made
    for k in made:
        t = slots[k]
        if type(t) is Tensor and (
                t._grad_fn if t._view_steps is None else t.grad_fn) is not None:
            break
    else:  # no graph (no_grad): nothing a backward reaches
        return
    chain = _CHAINS.get(session)
    if chain is None:
        chain = _CHAINS[session] = []
    # a run whose nodes a backward freed (one outside the plans: eager, or a batch too short
    # to capture) or the client dropped is no step's any more
    while chain and chain[0].done():
        del chain[0]
    # what `_stand_in` reads of each slot, and the nodes the prepared ops made, in one pass
    # (per slot of every batch of a long step)
    kept, nodes = [], {}
    for k, t in enumerate(slots):
        if type(t) is not Tensor:
            kept.append(None)
            continue
        fn = t._grad_fn if t._view_steps is None else t.grad_fn  # the property's fast case
        if fn is not None:
            fn = _ref(fn)
            if k in made:
                nodes[k] = fn
        data = t._data
        try:
            data = _ref(data)
        except TypeError:
            data = None
        kept.append((_ref(t), fn, t._output_nr, data, t._shape, t.dtype, t._strides,
                     t._device))
    chain.append(_Run(plan, kept, nodes, tuple(values)))
    if len(chain) > MAX_CHAIN:
        del chain[0]
