"""gs.compile: torch.compile's call, for code that runs on gradserve tensors.

A remote session replays a step it recorded before as one message (client/_replay.py). It
can only recognise the step when the step's batches end at the same ops every time: where
it waits (`item()`, a fetch), sends a backward, or fills a batch. One more rule ends a
batch, by the clock: ops that waited MAX_BATCH_DELAY go on while the server is idle, which
on a busy machine cuts a long forward at a different op each step. Inside a compiled call
that rule is off, so the call's batches are the same every time and replay from the third
call. Nothing else changes: ops are recorded and checked as always, and in-process tensors
run as they are. `torch.compile` returns a module wrapping the original (`_orig_mod`, its
state dict keys prefixed so); so does this.
"""

from __future__ import annotations

import contextlib
import functools
import threading

_WHOLE = threading.local()  # depth of gs.compile'd calls running on this thread


def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="gradserve",
            mode=None, options=None, disable: bool = False):
    """`model` (a function or an nn.Module) whose calls keep their recorded steps whole, so
    that a remote step replays by handle (torch.compile's arguments are taken; graphs are
    never broken, so `fullgraph` holds already, and the rest have nothing to tune).

    >>> step = gs.compile(lambda x, w: (x @ w).relu().sum())
    >>> model = gs.compile(gs.nn.Linear(3, 2, session=s))
    >>> type(model).__name__, list(model.state_dict())[0]
    ('OptimizedModule', '_orig_mod.weight')
    """
    if model is None:  # @gs.compile(...) as a decorator with arguments
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend,
                                  mode=mode, options=options, disable=disable)
    if disable:
        return model
    from .nn._compiled import Module, OptimizedModule  # gradserve.nn imports this package

    if isinstance(model, Module):
        return OptimizedModule(model)
    if not callable(model):
        raise RuntimeError(f"compile() expects a function or an nn.Module, got "
                           f"{type(model).__name__}")

    @functools.wraps(model)
    def compiled(*args, **kwargs):
        with whole_batches():
            return model(*args, **kwargs)

    return compiled


@contextlib.contextmanager
def whole_batches():
    """Within the block (a gs.compile'd call), batches end only where the step waits, sends
    its backward or fills a batch: never by the clock, so they end alike every step."""
    _WHOLE.depth = getattr(_WHOLE, "depth", 0) + 1
    try:
        yield
    finally:
        _WHOLE.depth -= 1


def in_whole_batches() -> bool:
    return getattr(_WHOLE, "depth", 0) > 0
