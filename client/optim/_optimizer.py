"""Optimizer: parameter groups, per-parameter state and zero_grad (torch.optim.Optimizer).

Updates run under no_grad with in-place tensor ops on the parameters themselves, and state
buffers are made from the parameter (`p.detach().clone().zero_()`), so everything stays
where the parameter lives: in-process for engine tensors, on the server for remote ones,
and no step ever fetches a value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np
from gradserve.engine import TensorAPI, enable_grad, no_grad
from gradserve.engine.seam import decayed

from .._default import session_of
from ..nn._module import _zero_grads


def zeros_like(p):
    """A zero tensor shaped, typed and placed like `p`, outside any graph.

    >>> zeros_like(engine.ones(2, requires_grad=True))
    tensor([0., 0.])
    """
    with no_grad():
        return p.detach().clone().zero_()


class Optimizer:
    """Base of the optimizers: subclasses implement `step()` with the hyper-parameters of
    each of `self.param_groups` and keep per-parameter buffers in `self.state[p]`.

    >>> opt = optim.SGD([{"params": body.parameters()},
    ...                  {"params": head.parameters(), "lr": 1e-3}], lr=1e-2)
    """

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Any, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, TensorAPI):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add parameters with their own hyper-parameters (missing ones take the defaults).

        >>> opt.add_param_group({"params": new_head.parameters(), "lr": 1e-3})
        """
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, TensorAPI) else list(params)
        for p in group["params"]:
            if not isinstance(p, TensorAPI):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        held = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in group["params"]]
        if len(set(ids)) != len(ids) or held.intersection(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero in place) the .grad of every parameter.

        >>> opt.zero_grad()
        """
        _zero_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a .grad (negated when maximizing), under
        no_grad; returns closure's loss if given. Optimizers that update parameter by
        parameter give `_update(group, p, g, state)`.

        >>> opt.step()
        """
        loss = _evaluate(closure)
        with no_grad():
            for group in self.param_groups:
                for p, g in self._params_with_grad(group):
                    g = -g if group.get("maximize") else g
                    self._update(group, p, g, self.state.setdefault(p, {}))
        return loss

    def _update(self, group: dict[str, Any], p, g, state: dict) -> None:
        raise NotImplementedError

    _decayed = staticmethod(decayed)  # the gradient after weight decay (engine/ops/optim.py)

    def _params_with_grad(self, group: dict[str, Any]) -> Iterable[tuple[Any, Any]]:
        for p in group["params"]:
            g = p.grad
            if g is not None:
                yield p, g

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's layout: {"state": {index: {name: value}}, "param_groups": [{..., "params":
        [indices]}]}, parameters numbered in group order. Tensors in it are the live state
        tensors (as torch); `gs.save` fetches them together.

        >>> sd = opt.state_dict()
        >>> sorted(sd)
        ['param_groups', 'state']
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: dict(st) for p, st in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and per-parameter state saved by `state_dict` (from this
        or another session: state tensors are made where each parameter lives).

        >>> opt.load_state_dict(gs.load("opt.safetensors"))
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for mine, theirs in zip(self.param_groups, groups, strict=True):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        saved = {int(k): v for k, v in state_dict["state"].items()}
        self.state = {}
        for mine, theirs in zip(self.param_groups, groups, strict=True):
            for p, i in zip(mine["params"], theirs["params"], strict=True):
                if int(i) in saved:
                    self.state[p] = {k: _state_value(p, k, v) for k, v in saved[int(i)].items()}
            for key, value in theirs.items():
                if key != "params":
                    mine[key] = tuple(value) if isinstance(value, list) and key == "betas" \
                        else copy.deepcopy(value)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _state_value(p, key: str, value):
    """A saved state entry, as state for parameter p: tensors (or arrays) become tensors of
    p's session, device and (floating) dtype; the step count stays a Python number."""
    if key == "step":
        return float(value.item()) if hasattr(value, "item") and not isinstance(
            value, (int, float)) else value
    if isinstance(value, TensorAPI):
        if session_of(value) is session_of(p) and value.device == p.device:
            with no_grad():
                return value.detach().clone().to(p.dtype if value.dtype.is_floating_point
                                                 else value.dtype)
        value = value.detach().numpy()
    if isinstance(value, np.ndarray):
        dtype = p.dtype if value.dtype.kind == "f" else None
        out = session_of(p).tensor(value, dtype=dtype)
        return out if out.device == p.device else out.to(p.device)
    return copy.deepcopy(value)


def _evaluate(closure):
    if closure is None:
        return None
    with enable_grad():
        return closure()


def _check_nonnegative(name: str, value: float) -> None:
    if not value >= 0.0:  # also rejects nan
        raise ValueError(f"Invalid {name}: {value}")


def _check_betas(betas) -> tuple[float, float]:
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    return tuple(betas)
