"""torch.autograd.functional: vjp, jvp, jacobian and hessian of a Python function, built
on `autograd.grad`, so they work on engine tensors and on a remote session's alike.

    >>> from gradserve import engine
    >>> F = engine.autograd.functional
    >>> F.jacobian(lambda x: x ** 2, engine.tensor([1., 2.]))
    tensor([[2., 0.],
            [0., 4.]])
    >>> F.hessian(lambda x: (x ** 3).sum(), engine.tensor([1., 2.]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
"""

from __future__ import annotations

from types import SimpleNamespace

from ..core.errors import AutogradError
from ..core.grad_mode import enable_grad
from .grad_api import grad
from .tensor_api import stack


def _as_tuple(x) -> tuple[tuple, bool]:
    if isinstance(x, (tuple, list)):
        return tuple(x), True
    return (x,), False


def _prepare(inputs: tuple, create_graph: bool) -> tuple:
    """Inputs that require grad: detached copies, or (create_graph) views that keep their
    history, as torch does."""
    out = []
    for x in inputs:
        if create_graph and x.requires_grad:
            out.append(x.view_as(x))
        else:
            out.append(x.detach().requires_grad_(True))
    return tuple(out)


def _grads(outputs, inputs, grad_outputs, create_graph, strict, what="output"):
    found = grad(outputs, inputs, grad_outputs, retain_graph=True, create_graph=create_graph,
                 allow_unused=True)
    out = []
    for i, (g, x) in enumerate(zip(found, inputs, strict=True)):
        if g is None:
            if strict:
                raise AutogradError(f"The {what} of the user-provided function is independent "
                                    f"of input {i}. This is not allowed in strict mode.")
            g = x._home().zeros_like(x)
        out.append(g if create_graph else g.detach())
    return tuple(out)


def _finish(values, create_graph: bool):
    return tuple(v if create_graph else v.detach() for v in values)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): the vector-Jacobian product."""
    inputs, is_tuple = _as_tuple(inputs)
    xs = _prepare(inputs, create_graph)
    with enable_grad():
        outputs, out_tuple = _as_tuple(func(*xs))
    if v is None:
        if any(o.numel() != 1 for o in outputs):
            raise AutogradError("The vector v can only be None if the user-provided function "
                                "returns a single Tensor with a single element.")
        v = None
    else:
        v, _ = _as_tuple(v)
    g = _grads(outputs, xs, v, create_graph, strict)
    outs = _finish(outputs, create_graph)
    return (outs if out_tuple else outs[0]), (g if is_tuple else g[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): the Jacobian-vector product, by differentiating a vjp (the
    double-backward trick torch uses)."""
    inputs, is_tuple = _as_tuple(inputs)
    xs = _prepare(inputs, True)
    with enable_grad():
        outputs, out_tuple = _as_tuple(func(*xs))
        if v is None:
            if any(x.numel() != 1 for x in inputs):
                raise AutogradError("The vector v can only be None if the input to the "
                                    "user-provided function is a single Tensor with a single "
                                    "element.")
            v = tuple(x._home().ones_like(x) for x in inputs)
        else:
            v, _ = _as_tuple(v)
        us = tuple(o._home().zeros_like(o).requires_grad_(True) for o in outputs)
        g = _grads(outputs, xs, us, True, strict)
        jv = _grads(g, us, v, create_graph, strict, what="jvp")
    outs = _finish(outputs, create_graph)
    return (outs if out_tuple else outs[0]), (jv if out_tuple else jv[0])


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """d func(inputs) / d inputs, one row of grads per output element: a tensor shaped
    output.shape + input.shape (tuples of them for tuple inputs or outputs)."""
    inputs, is_tuple = _as_tuple(inputs)
    xs = _prepare(inputs, create_graph)
    with enable_grad():
        outputs, out_tuple = _as_tuple(func(*xs))
        table = []
        for o in outputs:
            flat = o.reshape(-1)
            rows = [_grads(flat[j], xs, None, create_graph, strict)
                    for j in range(flat.numel())]
            row = []
            for k, x in enumerate(xs):
                home = x._home()
                if rows:
                    jac = stack([r[k] for r in rows]).reshape(tuple(o.shape) + tuple(x.shape))
                else:
                    jac = home.zeros(tuple(o.shape) + tuple(x.shape), dtype=x.dtype,
                                     device=x.device)
                row.append(jac)
            table.append(tuple(row) if is_tuple else row[0])
    return tuple(table) if out_tuple else table[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The matrix of second derivatives of a scalar function."""
    inputs, is_tuple = _as_tuple(inputs)

    def gradient(*xs):
        out = func(*xs)
        if out.numel() != 1:
            raise AutogradError("The function given to hessian should return a single Tensor "
                                "with a single element.")
        g = _grads(out, xs, None, True, strict)
        return g if is_tuple else g[0]

    return jacobian(gradient, inputs if is_tuple else inputs[0], create_graph=create_graph,
                    strict=strict)


functional = SimpleNamespace(vjp=vjp, jvp=jvp, jacobian=jacobian, hessian=hessian)
