"""backward() and autograd.grad() on a remote session, and what they do to `.grad` proxies.

The client holds an image of the server's graph: the same nodes the engine records, made by
the same bookkeeping, without data. So it runs torch's checks here (roots, a graph already
freed, a saved tensor changed in place) and the engine's backward walk without data
(`run_backward` with no gradients), which says which tensors the call gives a `.grad` (and
whether it adds into the old one in place) and frees the image of the graph as the server
frees the real one; the call is sent without waiting. Only a graph with nodes the server
described by name (attached or rebuilt tensors) leaves the client guessing; then the call
waits for the server's answer. An op whose backward drops some outputs' gradients declares it
(`grads_from`), so the walk gives no `.grad` where the server's gives None; a backward that
fails on the server part way shows at the next wait, which then asks for the `.grad`s.
"""

from __future__ import annotations

from gradserve.engine import AutogradError, GradserveError
from gradserve.engine.seam import (
    AccumulateGrad,
    anomaly,
    as_list,
    check_roots,
    check_unused,
    free_graph,
    hooks_in,
    plan_backward,
    run_backward,
)
from gradserve.v1 import gradserve_pb2 as pb

from . import _callbacks
from ._tensor import RemoteTensor, from_info


def backward(session, tensors, grad_tensors, retain_graph, create_graph, inputs) -> None:
    """tensor.backward() / autograd.backward() for proxies of `session`."""
    tensors = [session._own(t) for t in as_list(tensors)]
    grads, keep = _root_grads(session, tensors, grad_tensors)
    inputs = as_list(inputs)
    if inputs is not None:
        if not inputs:
            raise AutogradError("`inputs` argument to `backward()` cannot be empty.")
        inputs = [session._own(t) for t in inputs]
    if retain_graph is None:
        retain_graph = create_graph
    plan = plan_backward(tensors, inputs)
    calls = hooks_in(plan[2])  # hooks or custom Functions: the server will ask us
    written = None if calls else run_backward(tensors, None, retain_graph=retain_graph,
                                              create_graph=create_graph, inputs=inputs,
                                              plan=plan)[0]
    # in anomaly mode the server's errors (a NaN) surface here, as torch's do
    if (waits := sync_anomaly(session)) or written is None:
        # part of the graph is only known to the server, or calls back
        request = pb.BackwardRequest(
            session_id=session.id, tensors=[t._id for t in tensors], grad_tensors=grads,
            create_graph=bool(create_graph), inputs=[t._id for t in inputs or ()],
            retain_graph=bool(retain_graph))
        with anomaly.server_errors(waits, plan[2]):
            if calls:
                ids = _calling_back(session, plan, retain_graph, backward=request).backward
                ids = ids.grads_defined
            else:
                ids = session._roundtrip(backward=request).backward.grads_defined
        session._grad_epoch += 1
        for tid in ids:
            proxy = session._proxy(tid)
            if proxy is not None:
                _mark_grad(proxy, session._grad_epoch, create_graph, surely=False)
    else:
        # an op among ops: the optimizer's ops recorded next can ride in the same request
        session._send("backward", (*tensors, *keep, *(inputs or ())), (),
                      {"grads": len(keep), "inputs": len(inputs or ()),
                       "retain_graph": bool(retain_graph), "create_graph": bool(create_graph)})
        session._send_work()
        session._unconfirmed = True
        for proxy, in_place in written:
            _mark_grad(proxy, session._grad_epoch, create_graph, surely=True,
                       in_place=in_place)
    del keep  # gradients uploaded for the call stay bound until it was sent


def grad(session, outputs, inputs, grad_outputs, retain_graph, create_graph,
         allow_unused) -> tuple:
    """autograd.grad() for proxies of `session`: new proxies bound to the gradients."""
    outputs = [session._own(t) for t in as_list(outputs)]
    inputs = [session._own(t) for t in as_list(inputs)]
    grads, keep = _root_grads(session, outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    results = [session._new_id() for _ in inputs]
    request = pb.GradRequest(session_id=session.id, outputs=[t._id for t in outputs],
                             inputs=[t._id for t in inputs], grad_outputs=grads,
                             create_graph=bool(create_graph), allow_unused=bool(allow_unused),
                             results=results, retain_graph=bool(retain_graph))
    plan = plan_backward(outputs, inputs)
    calls = hooks_in(plan[2])
    waits = sync_anomaly(session)
    defined = None if calls else run_backward(
        outputs, None, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs,
        accumulate=False, plan=plan)[1]
    if defined is not None:
        check_unused([True if d else None for d in defined], allow_unused)
    if defined is None or create_graph or waits:
        # the results' graph (or what reaches them) is only known to the server: ask it
        with anomaly.server_errors(waits, plan[2]):
            if calls:
                defined = list(_calling_back(session, plan, retain_graph,
                                             grad=request).grad.defined)
            else:
                defined = list(session._roundtrip(grad=request).grad.defined)
        defined += [True] * (len(inputs) - len(defined))
        if create_graph and any(defined):
            by_id = {info.id: info
                     for info in session._list([r for r, d in zip(results, defined,
                                                                   strict=True) if d])}
            return tuple(from_info(session, by_id[r], owned=True) if d else None
                         for r, d in zip(results, defined, strict=True))
    else:
        session._send_action(grad=request)
    del keep
    return tuple(RemoteTensor(session, r, t._shape, t.dtype, t._device) if d else None
                 for r, t, d in zip(results, inputs, defined, strict=True))


def sync_anomaly(session) -> bool:
    """Send the process's anomaly mode to `session` if the server has another one for it
    (a command among its ops, before the backward that reads it); whether it is on."""
    state = anomaly.CHECK_NAN if anomaly.ON else None
    if getattr(session, "_anomaly", None) != state:
        session._anomaly = state
        session._send("set_detect_anomaly", (), (),
                      {"mode": anomaly.ON, "check_nan": anomaly.CHECK_NAN})
    return state is not None


def _root_grads(session, tensors: list, grads) -> tuple[list, list]:
    """Ids of the roots' gradients (uploading plain data as the root's dtype) after torch's
    checks; and the gradient proxies, which the caller keeps alive until the call was sent (a
    collected proxy is released with the very request that names it)."""
    grads = as_list(grads) or [None] * len(tensors)
    grads = [g if g is None or isinstance(g, RemoteTensor) else session.tensor(g, dtype=t.dtype)
             for t, g in zip(tensors, grads, strict=False)] + grads[len(tensors):]
    check_roots(tensors, grads)
    given = [session._own(g) for g in grads if g is not None]
    if given and len(given) != len(grads):
        raise AutogradError(
            "gradserve needs either every gradient or none of them for non-scalar roots"
        )
    return [g._id for g in given], given


def _calling_back(session, plan, retain_graph: bool, **then):
    """A backward (or grad) through hooks or custom Functions: it waits, serving the
    server's callbacks; the local image of the graph is freed once the Python ran (a
    Function's backward reads its saved tensors from it). After a failure the server's
    `.grad`s are asked for, since how far its backward got is not known here."""
    deps = plan[2]
    try:
        response = _callbacks.roundtrip(session, **then)
    except BaseException:
        _refresh_grads(session, deps)
        raise
    free_graph(deps, retain_graph)
    return response


def after_failure(session) -> None:
    """A wait raised an error of the server's after backwards nobody waited for: one may have
    failed part way (torch keeps the `.grad`s written before the error), so the `.grad` state
    of every live proxy that may have one is asked for."""
    if session._unconfirmed:
        session._unconfirmed = False
        live = [h() for h in list(session._proxies.values())]
        _refresh(session, [t for t in live if t is not None and (t._has_grad or t._rg)])


def _refresh_grads(session, deps) -> None:
    _refresh(session, [n.variable for n in deps if type(n) is AccumulateGrad])


def _refresh(session, leaves: list) -> None:
    try:
        infos = {i.id: i for i in session._list([t._id for t in leaves])}
    except GradserveError:
        return  # the session itself failed: that error is the one to see
    session._grad_epoch += 1
    for t in leaves:
        if t._id in infos:
            t._has_grad, t._grad_cache = bool(infos[t._id].has_grad), None


def _mark_grad(proxy: RemoteTensor, epoch: int, create_graph: bool, *, surely: bool,
               in_place: bool | None = None) -> None:
    """What the call did to proxy's .grad, applied to the proxy: a grad added into in place
    (the engine's decision, `run_backward`) keeps the proxy the user holds, one version up;
    any other grad is a new tensor, bound on next use. Not `surely`: the server says proxy has
    a .grad after a call whose reach is not known here, so it may be untouched."""
    if in_place is None:
        in_place = not create_graph and proxy._grad_accepts_add()
    had, proxy._has_grad = proxy._has_grad, True
    cached = proxy._grad_cache
    if in_place:
        if cached is not None:
            if surely:
                cached[1]._vc.value += 1
            proxy._grad_cache = (epoch, cached[1])
        return
    proxy._grad_cache = None  # let go of the id bound to the old grad now
    if surely:
        proxy._grad_owned, proxy._grad_graph = not create_graph, bool(create_graph)
    else:  # as far as the client knows, either grad
        proxy._grad_owned = (proxy._grad_owned or not had) and not create_graph
        proxy._grad_graph = (proxy._grad_graph and had) or bool(create_graph)


# -- the optimizer's ops over many parameters at once ------------------------------------------
def grad_defined(t) -> bool:
    """Whether `t.grad` is a tensor, without binding a remote one to an id."""
    return t._has_grad if isinstance(t, RemoteTensor) else t.grad is not None


def clear_grads(params: list) -> bool:
    """`p.grad = None` for every parameter as one `clear_grads` op, when they are one
    session's proxies (False, doing nothing, otherwise)."""
    session = None
    for p in params:
        if not isinstance(p, RemoteTensor) or session not in (None, p._session):
            return False
        session = p._session
    if session is None:
        return False
    session._send("clear_grads", tuple(params), (), {})
    for p in params:
        p._grad_dropped()
    return True
