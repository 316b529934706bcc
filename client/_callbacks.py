"""Hooks and custom Functions on a remote session: the client's half.

`t.register_hook(fn)` and `MyFunction.apply(...)` on proxies record what the engine records
(the same `_hooks` entries and Function node, in the client's image of the graph) and send a
command (`register_hook`, `function_node`) that gives the server's graph a stand-in under a
key (`engine.core.callbacks`). The Python stays here, in the session's table of callbacks.

A backward whose graph holds one waits for the server (`roundtrip`): when the server's
backward reaches a stand-in it sends the gradient in a `callback` message; the waiting
thread runs the Python (`serve`: `print(g)`, `g.numpy()` and new ops work as anywhere) and
sends the answer with the ops it recorded; the server goes on. That is one round trip per
call. An exception in the Python is raised at the user's `backward()`; the server's
backward fails cleanly and the session stays usable.

    >>> x = s.tensor([1., 2.], requires_grad=True)
    >>> h = x.register_hook(lambda g: g * 10)
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [20.0, 40.0]
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from gradserve.engine import AutogradError, AutogradMeta, set_grad_enabled
from gradserve.engine.seam import add_tensor_hook, anomaly

if TYPE_CHECKING:  # the proxies import this module
    from ._tensor import RemoteTensor



def _add(session, run) -> str:
    """Keep `run(kind, grads) -> results` under a new key of the session."""
    key = f"c{next(session._callback_keys)}"
    session._callbacks[key] = run
    return key


def _drop(session_ref, key: str) -> None:
    session = session_ref()
    if session is not None:
        session._callbacks.pop(key, None)


class RemoteHook:
    """The client's entry for a hook in its image of the graph (the server has the stand-in;
    the client's graph is never run here)."""

    __slots__ = ("key", "fn", "__weakref__")

    def __init__(self, key: str, fn) -> None:
        self.key, self.fn = key, fn

    def __call__(self, grad):
        return self.fn(grad)


def register_hook(t: RemoteTensor, fn):
    """`t.register_hook(fn)` for a proxy (see the module doc); returns the handle."""
    session = t._session

    def run(kind, grads):
        out = fn(grads[0])
        return [] if out is None else [out]

    key = _add(session, run)
    owner = t if t.grad_fn is None else t.grad_fn  # the hook lives as long as they do
    handle = add_tensor_hook(t, RemoteHook(key, fn), on_remove=lambda: _remove(t, key))
    weakref.finalize(owner, _drop, weakref.ref(session), key)
    session._send("register_hook", (t,), (), {"key": key})
    return handle


def _remove(t: RemoteTensor, key: str) -> None:
    if not t._session.closed:
        t._session._send("remove_hook", (t,), (), {"key": key})


def record_function(node, inputs, outputs) -> None:
    """A custom Function's node was made in the client's image: make the server's (a
    stand-in whose backward asks us) and keep the Python reachable under its key."""
    session = inputs[0]._session
    node_ref = weakref.ref(node)

    def run(kind, grads):
        live = node_ref()
        if live is None:
            raise AutogradError(f"the Function of {key} is gone from this client")
        try:
            return list(live.op.backward(live, {i: g for i, g in enumerate(grads)
                                                if g is not None}))
        except Exception:
            if anomaly.ON:  # as the engine's walk warns: this client has the forward's stack
                anomaly.warn_error(live)
            raise

    key = _add(session, run)
    weakref.finalize(node, _drop, weakref.ref(session), key)
    ctx = node.attrs["ctx"]
    session._send("function_node", (*inputs, *outputs), (), {
        "key": key, "inputs": len(inputs), "name": node.name(),
        "dirty": [i for i, t in enumerate(inputs) if any(t is d for d in ctx.dirty)],
        "non_diff": [i for i, t in enumerate(outputs)
                     if any(t is d for d in ctx.non_differentiable)]})


def serve(session, call, grads: list) -> int:
    """Run one callback the server asked for (`grads`: proxies for the gradients it sent)
    and send the answer; the answer's seq."""
    with session._lock:
        session.stats.waits += 1  # the server waited for this client: one round trip
    run = session._callbacks.get(call.key)
    results, error = [], None
    try:
        if run is None:
            raise AutogradError(f"this client has no hook or Function {call.key}")
        with set_grad_enabled(call.create_graph):
            out = run(call.kind, grads)
        results = [_result_id(session, r) for r in out]
    except BaseException as e:  # noqa: BLE001  (any failure must still answer the server)
        error = e
    # the proxies import this module and `import gradserve` loads no protobuf (sessions do)
    from gradserve.v1 import gradserve_pb2 as pb

    answer = pb.CallbackResult(key=call.key, results=results,
                               error="" if error is None else f"{type(error).__name__}: "
                               f"{error}")
    with session._lock:
        seq = session._flush_locked(callback_result=answer)
    if error is not None:
        session._callback_errors.append(error)
        if not isinstance(error, Exception):
            raise error
    return seq


def _result_id(session, r) -> str:
    if r is None:
        return ""
    if not isinstance(r, AutogradMeta) or getattr(r, "_session", None) is not session:
        raise TypeError(f"a hook or backward on session {session.id} must return its "
                        f"RemoteTensors or None, not {type(r).__name__}")
    return r._id


def roundtrip(session, **then):
    """Send an action whose backward may call back and wait for it; raise the first exception
    a callback raised (rather than the failure it caused on the server)."""
    outer, session._callback_errors = session._callback_errors, []
    errors = session._callback_errors  # (a hook's own backward gets a list of its own)
    try:
        response = session._roundtrip(**then)
    except Exception:
        if errors:
            raise errors[0] from None
        raise
    finally:
        session._callback_errors = outer
    if errors:
        raise errors[0]
    return response
