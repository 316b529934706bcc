"""gs.autograd: torch.autograd.grad/backward for engine tensors and remote tensors alike."""

from __future__ import annotations

from gradserve import engine

from ._tensor import RemoteTensor


def _first(tensors):
    if isinstance(tensors, (list, tuple)):
        return tensors[0] if tensors else None
    return tensors


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False) -> tuple:
    """The gradients of `outputs` w.r.t. `inputs`, without touching `.grad` (torch's).

    Remote tensors are differentiated on their session (one wait) and the results are
    RemoteTensors; engine tensors go to `gradserve.engine.autograd.grad`.

    >>> x = s.tensor(3.0, requires_grad=True)
    >>> (g,) = gs.autograd.grad(x * x, x)
    >>> g.item()
    6.0
    """
    head = _first(outputs)
    if isinstance(head, RemoteTensor):
        return head._session._autograd_grad(outputs, inputs, grad_outputs, retain_graph,
                                            create_graph, allow_unused)
    return engine.autograd.grad(outputs, inputs, grad_outputs, retain_graph, create_graph,
                                allow_unused)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             inputs=None) -> None:
    """Accumulate gradients of `tensors` into the leaves' `.grad` (torch.autograd.backward).

    >>> w = s.tensor(2.0, requires_grad=True)
    >>> gs.autograd.backward([w * 3, w * w])
    >>> w.grad.item()
    7.0
    """
    head = _first(tensors)
    if isinstance(head, RemoteTensor):
        head._session._backward(tensors, grad_tensors, retain_graph, create_graph, inputs)
        return
    engine.autograd.backward(tensors, grad_tensors, retain_graph, create_graph, inputs)
