"""Numerical gradient checks: compare autograd's gradients with central differences.

    >>> from gradserve import engine
    >>> from gradserve.engine.gradcheck import check_grads
    >>> x = engine.tensor([0.5, -1.0, 2.0], dtype=engine.float64, requires_grad=True)
    >>> check_grads(lambda x: (x.sin() * x).sum(), [x], order=2)

`check_grads` builds the whole Jacobian both ways: every element of every input that requires
grad is moved by +-eps and the outputs' change, (f(x + eps) - f(x - eps)) / 2eps, is compared
with the row of d(output)/d(input) that backward gives for each output element. order=2 then
checks the gradient itself the same way: the function checked is x -> d<f(x), v>/dx for a fixed
random v, computed with create_graph=True, so what is compared is backward's own backward.

Inputs that require grad must be float64 (float32 cannot resolve eps-sized differences); other
arguments (integer index tensors, tensors without grad, Python values) are passed through.
A mismatch raises GradcheckError naming the input, the element and both values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .core.backend import backend
from .core.dtype import float64
from .core.errors import GradserveError
from .core.grad_mode import enable_grad, no_grad
from .surface.grad_api import grad as autograd_grad
from .surface.tensor import Tensor

__all__ = ["GradcheckError", "check_grads", "numerical_jacobian", "analytical_jacobian"]


class GradcheckError(GradserveError, AssertionError):
    """Autograd's gradient and the numerical one disagree."""


def _float_outputs(result) -> list[Tensor]:
    outs = result if isinstance(result, (tuple, list)) else (result,)
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.is_floating_point]


def _host(t: Tensor) -> np.ndarray:
    return np.asarray(t._host(), dtype=np.float64)


def numerical_jacobian(fn: Callable, inputs: Sequence, wrt: Sequence[int],
                       eps: float = 1e-6) -> list[list[np.ndarray]]:
    """jac[k][o] has shape (output o's numel, input wrt[k]'s numel), by central differences."""
    inputs = list(inputs)
    with no_grad():
        sizes = [o.numel() for o in _float_outputs(fn(*inputs))]
        jac = []
        for k in wrt:
            cols = [np.zeros((n, inputs[k].numel())) for n in sizes]
            for j in range(inputs[k].numel()):
                plus = _moved_outputs(fn, inputs, k, j, eps)
                minus = _moved_outputs(fn, inputs, k, j, -eps)
                for o, (p, m) in enumerate(zip(plus, minus, strict=True)):
                    cols[o][:, j] = (p - m) / (2 * eps)
            jac.append(cols)
    return jac


def _moved_outputs(fn, inputs, k, j, delta) -> list[np.ndarray]:
    """fn's outputs, flattened, with element j of input k moved by delta."""
    moved = inputs[k].detach().clone()
    with backend(moved.device).activate():  # the write runs on the tensor's device
        moved._data.reshape(-1)[j] += delta  # clone is contiguous, so reshape is a view of it
    moved.requires_grad_(True)  # order 2: the function checked is itself a gradient
    outs = _float_outputs(fn(*inputs[:k], moved, *inputs[k + 1:]))
    return [_host(o).reshape(-1) for o in outs]


def analytical_jacobian(fn: Callable, inputs: Sequence, wrt: Sequence[int],
                        create_graph: bool = False) -> list[list[np.ndarray]]:
    """The same Jacobians as numerical_jacobian, one backward pass per output element."""
    inputs = list(inputs)
    targets = [inputs[k] for k in wrt]
    outs = _float_outputs(fn(*inputs))
    jac = [[np.zeros((o.numel(), t.numel())) for o in outs] for t in targets]
    for o_idx, out in enumerate(outs):
        if not out.requires_grad:
            continue  # constant in every input: its rows stay zero
        for e in range(out.numel()):
            onehot = np.zeros(out.numel(), dtype=out.dtype.np)
            onehot[e] = 1
            seed = Tensor(onehot.reshape(out.shape), "cpu").to(device=out.device)
            grads = autograd_grad([out], targets, grad_outputs=[seed], retain_graph=True,
                                  create_graph=create_graph, allow_unused=True)
            for k, (t, g) in enumerate(zip(targets, grads, strict=True)):
                if g is None:
                    continue
                if g.shape != t.shape or g.dtype is not t.dtype or g.device != t.device:
                    raise GradcheckError(
                        f"gradient for input {wrt[k]} has shape {tuple(g.shape)}, dtype "
                        f"{g.dtype}, device {g.device}; the input has {tuple(t.shape)}, "
                        f"{t.dtype}, {t.device}"
                    )
                jac[k][o_idx][e] = _host(g).reshape(-1)
    return jac


def _gradient_fn(fn: Callable, wrt: Sequence[int], seed: int) -> Callable:
    """x -> d<fn(x), v>/dx for the inputs in wrt, with a fixed random v per output."""
    rng = np.random.default_rng(seed)
    cotangents: list[np.ndarray] = []

    def gradient(*inputs):
        with enable_grad():
            return _vjp(inputs)

    def _vjp(inputs):
        outs = [o for o in _float_outputs(fn(*inputs)) if o.requires_grad]
        while len(cotangents) < len(outs):
            cotangents.append(rng.standard_normal(outs[len(cotangents)].shape))
        targets = [inputs[k] for k in wrt]
        if not outs:
            return tuple(t.detach() * 0 for t in targets)
        vs = [Tensor(v.astype(o.dtype.np), "cpu").to(device=o.device)
              for v, o in zip(cotangents, outs, strict=True)]
        grads = autograd_grad(outs, targets, grad_outputs=vs, create_graph=True,
                              allow_unused=True)
        return tuple(t.detach() * 0 if g is None else g
                     for t, g in zip(targets, grads, strict=True))

    return gradient


def check_grads(fn: Callable, inputs: Sequence, *, eps: float = 1e-6, atol: float = 1e-5,
                rtol: float = 1e-3, order: int = 1, seed: int = 0) -> None:
    """Raise GradcheckError unless autograd's gradients of `fn` match central differences.

    fn takes `inputs` positionally and returns a tensor or a tuple of tensors (integer outputs,
    such as max(dim)'s indices, are ignored). Every input tensor that requires grad is checked;
    they must be float64. order=2 also checks second derivatives (backward of backward).
    """
    inputs = list(inputs)
    wrt = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("check_grads: no input requires grad")
    for k in wrt:
        if inputs[k].dtype is not float64:
            raise ValueError(
                f"check_grads: input {k} is {inputs[k].dtype}; use float64 inputs, float32 "
                "can't resolve central differences"
            )
    for level in range(1, order + 1):
        if level > 1:
            fn = _gradient_fn(fn, wrt, seed + level)
        numeric = numerical_jacobian(fn, inputs, wrt, eps)
        analytic = analytical_jacobian(fn, inputs, wrt)
        for k, (num_k, ana_k) in enumerate(zip(numeric, analytic, strict=True)):
            for o, (num, ana) in enumerate(zip(num_k, ana_k, strict=True)):
                _compare(num, ana, wrt[k], o, level, atol, rtol)


def _compare(num, ana, input_idx, output_idx, order, atol, rtol) -> None:
    if num.shape != ana.shape:
        raise GradcheckError(
            f"Jacobian of output {output_idx} w.r.t. input {input_idx} has shape {ana.shape} "
            f"from autograd but {num.shape} numerically"
        )
    bad = ~np.isclose(ana, num, atol=atol, rtol=rtol, equal_nan=True)
    if bad.any():
        r, c = np.unravel_index(np.argmax(np.where(bad, np.abs(ana - num), -1)), bad.shape)
        what = "gradient" if order == 1 else f"derivative of order {order}"
        raise GradcheckError(
            f"{what} mismatch for input {input_idx}, element {c}, output {output_idx} "
            f"element {r}: autograd {ana[r, c]!r}, numerical {num[r, c]!r} "
            f"({int(bad.sum())} of {bad.size} entries differ)\n"
            f"autograd:\n{ana}\nnumerical:\n{num}"
        )
