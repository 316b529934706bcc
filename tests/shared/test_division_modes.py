"""Division and powers as torch's, on engine tensors and in a live session (`M`):
`div(rounding_mode="floor"|"trunc")` (values, dtypes, DivBackward2 with zero gradients,
in place), integer division by zero raising torch's error, integers to negative integer
powers, `sign(nan)` and `count_nonzero`. torch is the oracle."""

from __future__ import annotations

import math

import pytest
import torch  # the oracle

F = [-3.5, -2.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 7.0, math.inf, -math.inf, math.nan,
     1e30, -1e-30]
I = [-7, -3, -1, 0, 1, 2, 3, 7, 100, -100]


def _show(t):
    return str(t.dtype).split(".")[-1], [repr(v) for v in t.reshape(-1).tolist()]


OPERANDS = {
    "float_tensors": lambda L: (L.tensor(F), L.tensor(F[::-1])),
    "float64_tensors": lambda L: (L.tensor(F, dtype=L.float64), L.tensor(F[::-1], dtype=L.float64)),
    "int_tensors": lambda L: (L.tensor(I), L.tensor([v or 5 for v in I[::-1]])),
    "int32_by_int64": lambda L: (L.tensor(I, dtype=L.int32), L.tensor([3, -3] * 5)),
    "int_by_number": lambda L: (L.tensor(I), -3),
    "int_by_float_number": lambda L: (L.tensor(I), 2.5),
    "float_by_number": lambda L: (L.tensor(F), -1.5),
    "broadcast": lambda L: (L.tensor(I).reshape(2, 5), L.tensor([2, -2, 3, -3, 7])),
}


@pytest.mark.parametrize("mode", ["floor", "trunc"])
@pytest.mark.parametrize("operands", sorted(OPERANDS))
def test_div_rounds_as_torch(M, operands, mode):
    def run(L):
        a, b = OPERANDS[operands](L)
        return _show(L.div(a, b, rounding_mode=mode)), _show(a.div(b, rounding_mode=mode)), \
            _show(L.divide(a, b, rounding_mode=mode))

    assert run(M) == run(torch)


@pytest.mark.parametrize("mode", ["floor", "trunc"])
def test_div_in_place(M, mode):
    def run(L):
        a = L.tensor([7.5, -7.5, 3.0])
        a.div_(2, rounding_mode=mode)
        b = L.tensor([7, -7, 3])
        b.div_(L.tensor([2, 2, -2]), rounding_mode=mode)
        return _show(a), _show(b)

    assert run(M) == run(torch)


@pytest.mark.parametrize("other", ["tensor", "number"])
@pytest.mark.parametrize("mode", ["floor", "trunc"])
def test_a_rounded_division_records_divbackward2_with_zero_gradients(M, mode, other):
    def run(L):
        a = L.tensor([[-3.5, 2.5, 7.0]], dtype=L.float64, requires_grad=True)
        b = L.tensor([[2.0], [-1.5]], dtype=L.float64, requires_grad=True)
        out = L.div(a, b if other == "tensor" else 2.0, rounding_mode=mode)
        edges = [None if fn is None else type(fn).__name__ for fn, _ in out.grad_fn.next_functions]
        (out * 3).sum().backward()
        return (type(out.grad_fn).__name__, edges, a.grad.tolist(),
                None if b.grad is None else b.grad.tolist())

    assert run(M) == run(torch)


def test_an_unknown_rounding_mode_is_torchs_error(M):
    def run(L):
        with pytest.raises(RuntimeError) as info:
            L.div(L.tensor([1.0]), 2, rounding_mode="round")
        return str(info.value)

    assert run(M) == run(torch)


DIVISIONS = {
    "floor_divide": lambda L, a, b: a // b,
    "remainder": lambda L, a, b: a % b,
    "fmod": lambda L, a, b: L.fmod(a, b),
    "div_floor": lambda L, a, b: L.div(a, b, rounding_mode="floor"),
    "div_trunc": lambda L, a, b: L.div(a, b, rounding_mode="trunc"),
}


@pytest.mark.parametrize("by", ["tensor", "number"])
@pytest.mark.parametrize("op", sorted(DIVISIONS))
def test_an_integer_division_by_zero_is_torchs_error(M, op, by):
    def run(L):
        a = L.tensor([4, 5])
        b = L.tensor([0, 2]) if by == "tensor" else 0
        with pytest.raises(RuntimeError) as info:
            DIVISIONS[op](L, a, b).tolist()
        # the session stays usable
        return str(info.value).split("\n")[0], (a + 1).tolist()

    theirs = run(torch)
    assert theirs[0] == "ZeroDivisionError"
    ours = run(M)
    assert ours[0].startswith("ZeroDivisionError") and ours[1] == theirs[1]


@pytest.mark.parametrize("op", sorted(DIVISIONS))
def test_a_float_division_by_zero_is_ieee(M, op):
    def run(L):
        return _show(DIVISIONS[op](L, L.tensor([4.0, -5.0, 0.0]), L.tensor([0.0, 0.0, 0.0])))

    assert run(M) == run(torch)


def test_integers_to_negative_integer_powers_as_torch(M):
    def run(L):
        a = L.tensor([2, -1, 1, 0, 3, -1, 5])
        e = L.tensor([-1, -3, -2, -1, 0, -4, 3])
        out = [_show(a ** e), _show(a.pow(e)), _show(2 ** L.tensor([-1, 3, 0, -2])),
               _show(L.tensor([2, 3], dtype=L.int32) ** L.tensor([-1, 2], dtype=L.int32))]
        with pytest.raises(RuntimeError) as info:
            a ** -1
        return out, str(info.value)

    assert run(M) == run(torch)


def test_sign_of_nan_is_zero_and_count_nonzero(M):
    def run(L):
        x = L.tensor([[math.nan, -2.0, 0.0], [-0.0, 3.0, math.inf]])
        return (_show(x.sign()), _show(L.sign(x)), _show(x.count_nonzero()),
                _show(L.count_nonzero(x, dim=0)), _show(x.count_nonzero(dim=(0, 1))),
                _show(L.tensor([0, 1, 2]).count_nonzero()))

    assert run(M) == run(torch)


def test_shifts_as_torch(M):
    def run(L):
        a, s = L.tensor([1, -8, 3, 100, -1]), L.tensor([1, 2, 63, 64, 70])
        b = L.tensor([3, 4])
        b <<= 2
        c = L.tensor([3, 4])
        c >>= 1
        errors = []
        for f in (lambda: L.tensor([1.5]) << 1, lambda: L.tensor([1.5]) >> 1,
                  lambda: L.tensor([1]) << 1.5):
            with pytest.raises(NotImplementedError) as info:
                f()
            errors.append(str(info.value))
        return [_show(x) for x in (
            a << s, a >> s, a << -1, a >> -1, L.tensor([1, 2], dtype=L.uint8) << 7,
            L.tensor([200], dtype=L.uint8) >> 9, L.tensor([1], dtype=L.int8) << 8,
            L.bitwise_left_shift(a, 2), a.bitwise_right_shift(1), 1 << L.tensor([1, 2]),
            64 >> L.tensor([1, 2]), L.tensor([True]) << 1, b, c,
            L.tensor([1], dtype=L.int32) << L.tensor([1]))], errors

    assert run(M) == run(torch)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_integer_softmax_and_trace_as_torch(M, dtype):
    """softmax has float kernels only (torch's error names the kernel: the last dim's or not);
    an integer trace is int64, as sum's; a bool one has no kernel."""
    def run(L):
        x = L.tensor([[1, 0, 3], [4, 5, 0], [0, 1, 1]], dtype=getattr(L, dtype))
        out = []
        for f in (lambda: x.softmax(1), lambda: x.softmax(0), lambda: x.log_softmax(-1),
                  lambda: x.log_softmax(0), lambda: x.trace()):
            try:
                out.append(_show(f()))
            except NotImplementedError as e:
                out.append(str(e))
        return out, x.softmax(1, dtype=L.float64)

    ours, theirs = run(M), run(torch)
    assert ours[0] == theirs[0]
    assert str(ours[1].dtype).split(".")[-1] == "float64"
    assert ours[1].reshape(-1).tolist() == pytest.approx(theirs[1].reshape(-1).tolist(), rel=1e-15)
