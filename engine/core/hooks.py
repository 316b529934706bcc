"""Tensor hooks (`t.register_hook(fn)`): where they are kept and how they are removed.

A leaf's hooks live on the tensor (its AccumulateGrad runs them before accumulating); a
non-leaf's live on its grad_fn, under its output number, as torch keeps them. Backward
(`_autograd.run_backward`) calls them with the tensor's gradient before anything else sees
it; a hook may return a replacement.

    >>> from gradserve import engine
    >>> x = engine.tensor([1., 2.], requires_grad=True)
    >>> h = x.register_hook(lambda g: g * 10)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([20., 40.])
    >>> h.remove()
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import AutogradError


class RemovableHandle:
    """What `register_hook` returns: `.remove()` takes the hook out (torch's handle)."""

    __slots__ = ("_hooks", "_hook", "_on_remove")

    def __init__(self, hooks: list, hook, on_remove: Callable[[], None] | None = None) -> None:
        self._hooks, self._hook, self._on_remove = hooks, hook, on_remove

    def remove(self) -> None:
        if self._hook is None:
            return
        if any(h is self._hook for h in self._hooks):
            self._hooks.remove(self._hook)
        self._hook = None
        if self._on_remove is not None:
            self._on_remove()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def add_tensor_hook(t, hook, on_remove: Callable[[], None] | None = None) -> RemovableHandle:
    """Register `hook` on tensor `t` (torch's rules and message)."""
    if not t.requires_grad:
        raise AutogradError("cannot register a hook on a tensor that doesn't require gradient")
    node = t.grad_fn
    if node is None:
        if t._hooks is None:
            t._hooks = []
        hooks = t._hooks
    else:
        if node._hooks is None:
            node._hooks = {}
        hooks = node._hooks.setdefault(t._output_nr, [])
    hooks.append(hook)
    return RemovableHandle(hooks, hook, on_remove)


def hooks_in(nodes) -> bool:
    """Whether any of the nodes a backward runs has a tensor hook (or is a custom Function)."""
    for node in nodes:
        variable = getattr(node, "variable", None)
        if variable is not None:
            if variable._hooks:
                return True
        elif node._hooks or getattr(node.op, "custom", False):
            return True
    return False
