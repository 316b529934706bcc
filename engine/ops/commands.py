"""Wire ops that change autograd state instead of computing: the registry's commands.

A remote session drives everything through op names, so `x.requires_grad_()`, `x.grad`,
`x.grad = g`, `x.retain_grad()`, `x.detach_()`, `x.data = y`, `manual_seed(n)` and making a
leaf from data are ops too. Each runs the engine's own method on engine tensors; the
in-process engine reaches the same entries (`engine.tensor`, `engine.manual_seed`).
"""

from __future__ import annotations

import numpy as np

from ..core import dtype as _dtype
from ..core.backend import backend
from ..core.callbacks import CLIENT_FUNCTION, ClientHook
from ..core.errors import AutogradError, InvalidArgumentError
from ..core.function import function_node
from ..core.random import current_generator_object, session_generator
from ..core.registry import defcommand
from ..surface.grad_api import backward
from ..surface.tensor import Tensor


def _tensor(name: str, inputs: tuple, i: int) -> Tensor:
    x = inputs[i]
    if not isinstance(x, Tensor):
        raise InvalidArgumentError(f"input {i} of '{name}' must be a tensor id")
    return x


def _bool(attrs: dict, name: str, default: bool) -> bool:
    value = attrs.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidArgumentError(f"attr {name!r} must be true or false, got {value!r}")


@defcommand("tensor", inputs=(0, 1), outputs=(1, 1), needs_device=True,
            attrs={"requires_grad": False})
def _make_tensor(inputs, attrs):
    """A new leaf from a host array (moved to the device)."""
    if not inputs or not isinstance(inputs[0], np.ndarray):
        raise InvalidArgumentError("'tensor' needs data (TensorData with values or raw)")
    device = attrs["device"]
    t = Tensor(backend(device).from_host(inputs[0]), device)
    if _bool(attrs, "requires_grad", False):
        t.requires_grad_(True)
    return (t,)


@defcommand("requires_grad_", inputs=(1, 1), outputs=(0, 1), attrs={"requires_grad": True})
def _requires_grad_(inputs, attrs):
    t = _tensor("requires_grad_", inputs, 0)
    return (t.requires_grad_(_bool(attrs, "requires_grad", True)),)


@defcommand("retain_grad", inputs=(1, 1), outputs=(0, 0))
def _retain_grad(inputs, attrs):
    _tensor("retain_grad", inputs, 0).retain_grad()
    return ()


@defcommand("grad", inputs=(1, 1), outputs=(1, 1))
def _grad(inputs, attrs):
    """Bind a tensor's .grad to an id (fails when it is None)."""
    g = _tensor("grad", inputs, 0)._grad
    if g is None:
        raise AutogradError("the tensor has no grad (its .grad is None)")
    return (g,)


@defcommand("set_grad", inputs=(1, 2), outputs=(0, 0))
def _set_grad(inputs, attrs):
    t = _tensor("set_grad", inputs, 0)
    t.grad = _tensor("set_grad", inputs, 1) if len(inputs) == 2 else None
    return ()


@defcommand("detach_", inputs=(1, 1), outputs=(0, 1))
def _detach_(inputs, attrs):
    return (_tensor("detach_", inputs, 0).detach_(),)


@defcommand("transpose_", inputs=(1, 1), outputs=(0, 0), attrs={"dim0": ..., "dim1": ...})
def _transpose_(inputs, attrs):
    _tensor("transpose_", inputs, 0).transpose_(attrs["dim0"], attrs["dim1"])
    return ()


@defcommand("t_", inputs=(1, 1), outputs=(0, 0))
def _t_(inputs, attrs):
    _tensor("t_", inputs, 0).t_()
    return ()


@defcommand("set_data", inputs=(2, 2), outputs=(0, 0))
def _set_data(inputs, attrs):
    _tensor("set_data", inputs, 0).data = _tensor("set_data", inputs, 1)
    return ()


@defcommand("manual_seed", inputs=(0, 0), outputs=(0, 0), attrs={"seed": ...})
def _manual_seed(inputs, attrs):
    """Seed the current generator (a server session's own, or the engine's default)."""
    seed = attrs.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"manual_seed needs an integer attr 'seed', got {seed!r}")
    current_generator_object().manual_seed(seed % (1 << 64))  # torch takes negative seeds too
    return ()


@defcommand("set_default_dtype", inputs=(0, 0), outputs=(0, 0), attrs={"dtype": ...})
def _set_default_dtype(inputs, attrs):
    """The default floating dtype (torch.set_default_dtype) of a server session, for its ops
    from here on: the client sends its own when it changes, so an integer tensor times a
    Python float, `tensor([1.5])` and the factories give there what they give the client.
    Outside a session (the in-process engine), the process's default."""
    name = attrs.get("dtype")
    d = _dtype.DTYPES.get(name) if isinstance(name, str) else None
    if d is None or not d.is_floating_point:
        raise InvalidArgumentError(f"set_default_dtype needs a floating dtype name as attr "
                                   f"'dtype', got {name!r}")
    gen = session_generator()
    if gen is None:
        _dtype.default_float = d
    else:  # the session keeps it; the rest of this batch sees it at once
        gen.default_dtype = d
        _dtype.session_float.set(d)
    return ()


@defcommand("set_rng_state", inputs=(1, 1), outputs=(0, 0))
def _set_rng_state(inputs, attrs):
    """Load torch's state bytes (a uint8 tensor of 5056) into the current generator."""
    state = _tensor("set_rng_state", inputs, 0)
    data = np.ascontiguousarray(backend(state.device).to_host(state._data)).reshape(-1)
    if data.dtype != np.uint8:
        raise InvalidArgumentError(f"set_rng_state expects a uint8 tensor, got {state.dtype}")
    try:
        current_generator_object().cpu.set_state(data.tobytes())
    except RuntimeError as e:
        raise InvalidArgumentError(str(e)) from None
    return ()


@defcommand("backward", inputs=(1, 1 << 20), outputs=(0, 0))
def _backward(inputs, attrs):
    """torch.autograd.backward as an op among ops: the roots, then `grads` gradients (none or
    one per root), then `inputs` tensors to accumulate into (none: every leaf)."""
    n_grads, n_inputs = attrs.get("grads", 0), attrs.get("inputs", 0)
    if not all(type(n) is int and n >= 0 for n in (n_grads, n_inputs)):
        raise InvalidArgumentError("attrs 'grads' and 'inputs' must be counts")
    n_roots = len(inputs) - n_grads - n_inputs
    if n_roots < 1 or n_grads not in (0, n_roots):
        raise InvalidArgumentError(
            f"'backward' takes the roots, then none or one gradient per root, then the inputs; "
            f"got {len(inputs)} inputs for grads={n_grads}, inputs={n_inputs}"
        )
    tensors = [_tensor("backward", inputs, i) for i in range(len(inputs))]
    retain = attrs.get("retain_graph")
    backward(tensors[:n_roots], tensors[n_roots:n_roots + n_grads] or None,
             None if retain is None else _bool(attrs, "retain_graph", False),
             _bool(attrs, "create_graph", False), tensors[n_roots + n_grads:] or None)
    return ()


# -- hooks and Functions whose Python runs in the client (see core/callbacks) --------------------
def _key(attrs: dict, name: str) -> str:
    key = attrs.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"'{name}' needs a non-empty string attr 'key'")
    return key


@defcommand("register_hook", inputs=(1, 1), outputs=(0, 0))
def _register_hook(inputs, attrs):
    """A hook on inputs[0] that asks the client to run its callback `key`."""
    _tensor("register_hook", inputs, 0).register_hook(ClientHook(_key(attrs, "register_hook")))
    return ()


@defcommand("remove_hook", inputs=(1, 1), outputs=(0, 0))
def _remove_hook(inputs, attrs):
    t, key = _tensor("remove_hook", inputs, 0), _key(attrs, "remove_hook")
    lists = [t._hooks or []] + list((t.grad_fn._hooks or {}).values() if t.grad_fn else [])
    for hooks in lists:
        hooks[:] = [h for h in hooks if not (isinstance(h, ClientHook) and h.key == key)]
    return ()


@defcommand("function_node", inputs=(1, 1 << 20), outputs=(0, 0))
def _function_node(inputs, attrs):
    """A custom Function's node: its inputs are inputs[:n], its outputs the rest; backward
    asks the client to run its callback `key`."""
    n = attrs.get("inputs")
    if not isinstance(n, int) or not 0 < n <= len(inputs):
        raise InvalidArgumentError("'function_node' needs an int attr 'inputs' (how many of "
                                   "its inputs are the Function's inputs)")
    tensors = [_tensor("function_node", inputs, i) for i in range(len(inputs))]
    dirty = [tensors[i] for i in attrs.get("dirty") or ()]
    non_diff = [tensors[n + i] for i in attrs.get("non_diff") or ()]
    function_node(CLIENT_FUNCTION, str(attrs.get("name") or "FunctionBackward"), tensors[:n],
                  tensors[n:], dirty=dirty, non_diff=non_diff,
                  attrs={"key": _key(attrs, "function_node"), "n_outputs": len(tensors) - n})
    return ()
