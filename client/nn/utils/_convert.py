"""parameters_to_vector / vector_to_parameters, as torch.nn.utils'."""

from __future__ import annotations

from gradserve.engine import TensorAPI, cat, no_grad


def parameters_to_vector(parameters):
    """The parameters flattened and joined into one vector (differentiable, as torch's).

    >>> nn.utils.parameters_to_vector([engine.ones(2, 2), engine.zeros(1)]).shape
    gradserve.Size([5])
    """
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of `vec` into the parameters' data (no graph, as torch's).

    >>> ps = [engine.zeros(2), engine.zeros(1)]
    >>> nn.utils.vector_to_parameters(engine.tensor([1., 2., 3.]), ps); ps[1]
    tensor([3.])
    """
    if not isinstance(vec, TensorAPI):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.copy_(vec[offset:offset + n].view_as(p))
            offset += n
