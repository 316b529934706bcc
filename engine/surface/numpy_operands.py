"""torch's `t OP array`: a numpy array on the right of an operator.

torch.Tensor's operators give an array back to numpy, which computes on the tensor's values
(`t.__array__`, so with numpy's type promotion, and torch's error for a tensor that requires
grad or is on a GPU) and wraps the result as a tensor. A gradserve tensor does the same, the
result being a new tensor on the operand's side (the current process, or its session).
`array OP t`, and `t < array` and friends, raise TypeError, as torch's do.
"""

from __future__ import annotations

import numpy as np

ndarray = np.ndarray

UFUNCS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "pow": np.power, "matmul": np.matmul, "floor_divide": np.floor_divide,
    "remainder": np.remainder, "eq": np.equal, "ne": np.not_equal,
    "bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
}


def array_result(t, array: np.ndarray, op: str):
    """`t OP array` computed by numpy on t's values, as a tensor on t's side."""
    return t._home().tensor(np.asarray(UFUNCS[op](t.numpy(), array)))
