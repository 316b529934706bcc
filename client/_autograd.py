"""gs.autograd: torch.autograd.grad/backward for engine tensors and remote tensors alike.

The engine's `autograd.grad`/`backward` already hand remote tensors to their session (see
`engine/surface/grad_api.py`); these are the same functions, documented for the SDK.
"""

from __future__ import annotations

from gradserve import engine


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False) -> tuple:
    """The gradients of `outputs` w.r.t. `inputs`, without touching `.grad` (torch's).

    Remote tensors are differentiated on their session and the results are RemoteTensors;
    engine tensors in-process.

    >>> x = s.tensor(3.0, requires_grad=True)
    >>> (g,) = gs.autograd.grad(x * x, x)
    >>> g.item()
    6.0
    """
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
    engine.autograd.backward(tensors, grad_tensors, retain_graph, create_graph, inputs)
