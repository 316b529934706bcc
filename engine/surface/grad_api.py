"""torch.autograd.backward / grad, and the root checks both tensor kinds share.

`backward` and `grad` hand the call to the tensors' home (`_home()`: the engine's factories,
or a remote session), which runs it its own way; `engine_backward` and `engine_grad` are the
engine's: the core's backward walk over engine tensors.
"""

from __future__ import annotations

import numpy as np

from ..core.autograd import run_backward
from ..core.backend import backend
from ..core.errors import AutogradError
from ..core.meta import AutogradMeta


def torch_size(shape) -> str:
    return f"torch.Size([{', '.join(map(str, shape))}])"


def check_roots(tensors, grads) -> None:
    """torch's checks on backward's roots and their gradients (None: implicit, scalar only)."""
    for i, t in enumerate(tensors):
        if not t.requires_grad:
            raise AutogradError(
                f"element {i} of tensors does not require grad and does not have a grad_fn"
            )
    if len(grads) != len(tensors):
        raise AutogradError(f"got {len(tensors)} tensors and {len(grads)} gradients")
    for i, (t, g) in enumerate(zip(tensors, grads, strict=True)):
        if g is None:
            if t.numel() != 1:
                raise AutogradError("grad can be implicitly created only for scalar outputs")
            if not t.dtype.is_floating_point:
                raise AutogradError(
                    "grad can be implicitly created only for real scalar outputs but got "
                    f"{t.dtype}"
                )
        elif tuple(g.shape) != tuple(t.shape):
            raise AutogradError(
                f"Mismatch in shape: grad_output[{i}] has a shape of {torch_size(g.shape)} and "
                f"output[{i}] has a shape of {torch_size(t.shape)}."
            )


def as_list(x):
    if x is None:
        return None
    if isinstance(x, AutogradMeta):
        return [x]
    return list(x)


def _root_grads(tensors, grads) -> list:
    grads = as_list(grads) or [None] * len(tensors)
    out = [g if g is None or isinstance(g, AutogradMeta) else _beside(t, g)
           for t, g in zip(tensors, grads, strict=False)] + grads[len(tensors):]
    check_roots(tensors, out)
    return [_beside(t) if g is None else g for t, g in zip(tensors, out, strict=True)]


def _beside(t, values=None):
    """`values` (ones like t when None) as an engine tensor of t's dtype on t's device."""
    a = t._data
    if values is None and t._device == "cpu":  # `loss.backward()`'s ones, once per step:
        # without entering the host device or Tensor.__init__ (a fresh array it owns)
        return type(t)._from_saved(np.ones(a.shape, a.dtype), "cpu", t.dtype)
    with backend(t._device).activate() as be:
        # ones(shape): what ones_like makes of a root (a fresh contiguous array), in C
        data = be.xp.ones(a.shape, a.dtype) if values is None else be.xp.asarray(
            values, dtype=a.dtype)
    return type(t)(data, t._device)


def _home(tensors):
    """Where the tensors' autograd calls run: the first tensor's home (the engine's
    factories for engine tensors, or a remote session)."""
    for t in as_list(tensors) or ():
        if isinstance(t, AutogradMeta):
            return t._home()
    raise AutogradError("expected at least one Tensor")


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """torch.autograd.backward: accumulate gradients of `tensors` into the graph's leaves."""
    return _home(tensors)._backward(tensors, grad_tensors, retain_graph, create_graph, inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """torch.autograd.grad: the gradients of `outputs` w.r.t. `inputs`, without touching
    .grad."""
    return _home(outputs)._autograd_grad(outputs, inputs, grad_outputs, retain_graph,
                                         create_graph, allow_unused)


def engine_backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
                    inputs=None):
    """`backward` for engine tensors."""
    tensors = as_list(tensors)
    grads = _root_grads(tensors, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    inputs = as_list(inputs)
    if inputs is not None and not inputs:
        raise AutogradError("`inputs` argument to `backward()` cannot be empty.")
    run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph,
                 inputs=inputs)


def engine_grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
                allow_unused=False):
    """`grad` for engine tensors."""
    outputs = as_list(outputs)
    single = isinstance(inputs, AutogradMeta)
    inputs = as_list(inputs)
    grads = _root_grads(outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph,
                          inputs=inputs, accumulate=False)
    check_unused(result, allow_unused)
    if not create_graph:
        result = [None if r is None else r.detach() for r in result]
    return tuple(result) if not single else (result[0],)


def check_unused(result, allow_unused: bool) -> None:
    unused = [k for k, r in enumerate(result) if r is None]
    if unused and not allow_unused:
        raise AutogradError(
            f"The differentiated Tensor at index {unused[0]} appears to not have been used in "
            "the graph. Set allow_unused=True if this is the desired behavior."
        )
