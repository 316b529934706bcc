"""Hooks and custom-Function backwards whose Python lives in a remote client.

A remote session's tensors are engine tensors on the server, but `t.register_hook(fn)` and
`MyFunction.apply(...)` were called in the client, where `fn` and `MyFunction.backward` are.
So the server's graph holds stand-ins: a `ClientHook` (a tensor hook) and nodes whose op is
a `ClientFunction`. When backward reaches one, it asks the client through the caller the
server passes in for the request it runs (`client_calls(caller)`, a context): the gradient
goes to the client, the client runs the Python and answers with the result, backward
continues. Outside such a request (in-process, or a request whose client does not wait),
calling one is an error.

The wire commands that make them (`register_hook`, `remove_hook`, `function_node`) are in
`ops/commands`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from .errors import AutogradError

_caller: contextvars.ContextVar = contextvars.ContextVar("gradserve_client_caller",
                                                         default=None)


@contextlib.contextmanager
def client_calls(caller: Callable) -> Iterator[None]:
    """Within the block (one request a server runs), stand-ins reach their client through
    `caller(key, kind, tensors) -> results`."""
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


def call_client(key: str, kind: str, tensors: list) -> list:
    """Run the client's callback `key` ("hook" or "function") on `tensors`; its results."""
    caller = _caller.get()
    if caller is None:
        raise AutogradError(f"a {kind} of a remote client ({key}) can only run on its server")
    return caller(key, kind, tensors)


class ClientHook:
    """A tensor hook whose function is the client's callback `key`."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    @property
    def __name__(self) -> str:
        return f"client hook {self.key}"

    def __call__(self, grad):
        out = call_client(self.key, "hook", [grad])
        return out[0] if out else None


class ClientFunction:
    """The op of a custom Function's node on a server: its backward is the client's."""

    multi_grad = True
    differentiable = True
    view = False
    custom = True
    name = "function"

    def backward(self, node, grads: dict):
        n_out = node.attrs["n_outputs"]
        return tuple(call_client(node.attrs["key"], "function",
                                 [grads.get(i) for i in range(n_out)]))


CLIENT_FUNCTION = ClientFunction()
