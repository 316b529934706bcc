"""Optimizer steps over many parameters as one op on a remote session (torch's foreach form).

A step op by op sends, per parameter, a `grad` op (to name its gradient) and the update's
in-place ops: two to four entries. Here a group's step is one command instead
(`optim_sgd_step`, `optim_adam_step`, engine/ops/optim.py) that reads each parameter's .grad
on the server and runs the same per-parameter rules (`sgd_update`, `adam_update`), so the
results are the step op by op's bit for bit. The client does what those in-place ops would
do to its proxies: under no_grad, on a parameter or state tensor that is not a view and has
no overlapping memory, `check_inplace` passes and `commit_inplace` moves the version up one,
nothing else. Anything else (other tensors, several sessions, a first step that makes the
state) returns None, and the caller steps op by op.
"""

from __future__ import annotations

import math

from .._tensor import RemoteTensor, output_proxy


def _one_session(tensors):
    """The session of `tensors` when each is its plain proxy (not a view, no zero stride);
    else None."""
    session = None
    for t in tensors:
        if not isinstance(t, RemoteTensor) or t._base is not None or 0 in (t._strides or ()):
            return None
        if session is None:
            session = t._session
        elif t._session is not session:
            return None
    return session


def _written(tensors) -> None:
    for t in tensors:  # each written in place once: its version, as `commit_inplace` moves it
        t._vc.value += 1


def record_sgd_step(params: list, buffers: list, hyper: dict) -> list | None:
    """SGD's step over `params` (each with a .grad) as one `optim_sgd_step` op, under
    no_grad; the momentum buffers after it (new proxies on a first momentum step). None
    when not every parameter (and buffer) is one session's plain proxy, or only some have a
    buffer."""
    with_buffers = buffers[0] is not None
    if any((b is not None) != with_buffers for b in buffers):
        return None
    inputs = (*params, *buffers) if with_buffers else tuple(params)
    session = _one_session(inputs)
    if session is None:
        return None
    attrs = {k: v for k, v in hyper.items() if k == "lr" or v}  # the rest as the defaults
    outputs = ()
    if hyper["momentum"] != 0 and not with_buffers:  # each the grad's copy, as `_bind_grad`
        buffers = [output_proxy(session, session._new_id(), p._shape, p.dtype, p._device, None)
                   for p in params]
        outputs = tuple([b._id for b in buffers])
    elif with_buffers:
        attrs["buffers"] = True
    session._send("optim_sgd_step", inputs, outputs, attrs)
    _written(inputs)
    return buffers


_ADAM_STATE = ("exp_avg", "exp_avg_sq")


def record_adam_step(params: list, states: list, group: dict, decoupled: bool) -> bool:
    """Adam's step over `params` (each with a .grad and its `states` entry) as one
    `optim_adam_step` op, under no_grad: True when recorded (each state's step counted).
    False, recording nothing, unless every parameter has its moments already (a first step
    makes them op by op), at one step count, all one session's plain proxies."""
    amsgrad = group["amsgrad"]
    names = (*_ADAM_STATE, "max_exp_avg_sq") if amsgrad else _ADAM_STATE
    step = states[0].get("step")
    if any(st.get("step") != step or any(k not in st for k in names) for st in states):
        return False
    inputs = (*params, *(st[k] for k in names for st in states))
    session = _one_session(inputs)
    if session is None:
        return False
    lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
    t = step + 1
    attrs = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": group["eps"],
             "step_size": lr / (1 - beta1**t), "bias2_sqrt": math.sqrt(1 - beta2**t)}
    for name, value in (("weight_decay", decay), ("decoupled", decoupled and decay != 0),
                        ("amsgrad", amsgrad), ("maximize", bool(group.get("maximize")))):
        if value:  # the rest as the defaults
            attrs[name] = value
    session._send("optim_adam_step", inputs, (), attrs)
    _written(inputs)
    if decoupled and decay != 0:
        _written(params)  # p.mul_ before the step: one version more
    for st in states:
        st["step"] = t
    return True
