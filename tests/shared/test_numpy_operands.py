"""numpy operands as torch takes them (API.md section 7): `t OP array` is numpy's result on
t's values, a tensor on t's side; `array OP t` and `t < array` raise TypeError; an in-process
tensor and a remote one never mix, in either order; in-place casts follow torch's rules."""

from __future__ import annotations

import operator as o
import warnings

import numpy as np
import pytest
import torch  # the oracle
from gradserve import engine

OPS = [o.add, o.sub, o.mul, o.truediv, o.pow, o.floordiv, o.mod, o.matmul, o.eq, o.ne, o.lt,
       o.ge]
ARRAYS = [np.arange(1, 4), np.ones(3, np.float32), np.array(2.0), np.full((2, 3), 0.5)]


def _outcomes(L):
    out = []
    t = L.ones(3)
    for op in OPS:
        for a in ARRAYS:
            # (`array == t` is numpy's comparison with an object: not torch's to define)
            both = op not in (o.eq, o.ne)
            for f in (lambda op=op, a=a: op(t, a), lambda op=op, a=a: op(a, t))[: 2 if both else 1]:
                try:
                    r = f()
                except (TypeError, ValueError) as e:  # numpy's own, for shapes
                    out.append((op.__name__, type(e).__name__))
                    continue
                if op is o.ne:  # torch's `t != array` is Python's identity fallback
                    out.append((op.__name__, r))
                    continue
                assert isinstance(r, (torch.Tensor, L.Tensor))  # never a numpy array
                out.append((op.__name__, str(r.dtype).split(".")[-1], r.tolist()))
    return out


def _on_gpu(M) -> bool:
    """torch's `cuda_t + array` raises (the values are not on the host): ours too."""
    if M.ones(1).device == "cpu":
        return False
    with pytest.raises(M.InvalidArgumentError, match="can't convert cuda"):
        M.ones(3) + np.ones(3)
    return True


def test_arrays_as_operands_follow_torch(M):
    if _on_gpu(M):
        return
    with warnings.catch_warnings():  # torch's own __array_wrap__ deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        assert _outcomes(M) == _outcomes(torch)


def test_an_array_with_a_tensor_that_requires_grad_raises_torchs_error(M):
    if _on_gpu(M):
        return
    for L in (M, torch):
        with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires"):
            L.ones(3, requires_grad=True) + np.ones(3)


def test_result_lives_on_the_tensors_side(M):
    if _on_gpu(M):
        return
    r = M.ones(3) + np.ones(3)
    assert type(r) is type(M.ones(1))


def test_inplace_casts_as_torch():
    """uint8.sub_(int8 0-dim): torch's result type is uint8; numpy's would be int16."""
    for L in (engine, torch):
        u = L.ones(3, dtype=L.uint8)
        u.sub_(L.tensor(-1, dtype=L.int8))
        u.sub_(L.tensor(3, dtype=L.int8))
        assert u.tolist() == [255, 255, 255]


def test_inplace_casts_as_torch_on_both_kinds(M):
    u = M.ones(3, dtype=M.uint8)
    u.sub_(M.tensor(-1, dtype=M.int8))
    assert u.tolist() == [2, 2, 2] and u.dtype == M.uint8


def test_in_process_and_remote_never_mix(M):
    if M.current_session() is None:
        pytest.skip("needs a session")
    remote, local = M.ones(3), engine.ones(3)
    texts = set()
    for f in (lambda: remote + local, lambda: local + remote, lambda: local.add_(remote),
              lambda: remote.add_(local), lambda: engine.cat([local, remote])):
        with pytest.raises(M.InvalidArgumentError) as e:
            f()
        texts.add(str(e.value))
    # one message whichever comes first (on a GPU session: the devices differ first)
    assert len(texts) == 1
    assert "can't be combined with an in-process" in texts.pop() or remote.device != "cpu"
