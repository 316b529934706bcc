"""Anomaly mode (torch.autograd.detect_anomaly / set_detect_anomaly) against torch: the mode's
switches, the warning naming the node whose backward failed with its forward's traceback,
the NaN checks, and the in-place version error's other hint; in-process and in a session
(`M`: gradserve over engine tensors, or with a session current)."""

from __future__ import annotations

import os
import re
import threading
import warnings

import gradserve as gs
import gradserve.autograd
import pytest
import torch

# torch's C++ warnings end with where in its sources they were raised
_TRIGGERED = re.compile(r" \(Triggered internally at .*\)$", re.S)
# a stack ends at the user's line: torch's keeps its own Python frames (Function.apply)
_TORCH_FRAME = re.compile(r'  File "' + re.escape(os.path.dirname(torch.__file__))
                          + r'[^\n]*\n[^\n]*\n')


def _run(L, fn):
    """fn(L) in anomaly mode: (its error text or None, the warnings it gave), torch's module
    name written as gradserve's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn(L)
            err = None
        except RuntimeError as e:
            err = str(e).replace("torch.", "gradserve.")
        finally:
            L.autograd.set_detect_anomaly(False)
    return err, [_TORCH_FRAME.sub("", _TRIGGERED.sub("", str(w.message))) for w in caught]


def _version_error(L):
    with L.autograd.detect_anomaly(check_nan=False):
        a = L.ones(3, requires_grad=True)
        v = a * 1.0
        b = v * v
        v.add_(1)
        b.sum().backward()


def _nan_in_second_input(L):
    L.autograd.set_detect_anomaly(True)
    x = L.ones(2, requires_grad=True)
    y = L.tensor([float("nan"), 1.0], requires_grad=True)
    (x * y).sum().backward()


def _nan_in_second_output(L):
    L.autograd.set_detect_anomaly(True)
    x = L.tensor([float("nan"), 1.0])  # output 0 (x's gradient) is not computed
    y = L.ones(2, requires_grad=True)
    (x * y).sum().backward()


def _failing_function(L):
    class Bad(L.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("bad backward")

    with L.autograd.set_detect_anomaly(True):
        x = L.ones(2, requires_grad=True)
        Bad.apply(x).sum().backward()


def _function_returning_nan(L):
    class Nan(L.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    with L.autograd.set_detect_anomaly(True):
        x = L.ones(2, requires_grad=True)
        Nan.apply(x).sum().backward()


def _nan_through_sqrt(L):
    with L.autograd.set_detect_anomaly(True):
        x = L.tensor([-1.0, 1.0], requires_grad=True)
        L.autograd.grad(L.sqrt(x).sum(), x)


def _forward_outside(L):
    x = L.ones(2, requires_grad=True)
    v = x * 1.0
    z = v * v
    v.add_(1)
    with L.autograd.set_detect_anomaly(True):
        z.sum().backward()


def _freed(L):
    x = L.ones(2, requires_grad=True)
    with L.autograd.set_detect_anomaly(True):
        y = (x * x).sum()
        y.backward()
        y.backward()


@pytest.mark.parametrize("fn", [_version_error, _nan_in_second_input, _nan_in_second_output,
                                _failing_function, _function_returning_nan, _nan_through_sqrt,
                                _forward_outside, _freed])
def test_errors_and_warnings_are_torchs(M, fn):
    ours, theirs = _run(M, fn), _run(torch, fn)  # one line: the same stack above both
    assert ours == theirs
    assert theirs[0] is not None and any(w.startswith("Error detected in ") for w in theirs[1])


def test_the_traceback_names_the_users_lines(M):
    err, warned = _run(M, _version_error)
    assert err.endswith(" Hint: the backtrace further above shows the operation that failed "
                        "to compute its gradient. The variable in question was changed in "
                        "there or anywhere later. Good luck!")
    assert warned[0] == ("Anomaly Detection has been enabled. This mode will increase the "
                         "runtime and should only be enabled for debugging.")
    assert warned[1].startswith("Error detected in MulBackward0. Traceback of forward call "
                                "that caused the error:\n")
    assert warned[1].endswith(", in _version_error\n    b = v * v\n")


def test_check_nan_false_and_mode_off_let_nan_through(M):
    for mode in (dict(mode=True, check_nan=False), dict(mode=False)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with M.autograd.set_detect_anomaly(**mode):
                x = M.tensor([float("nan"), 1.0], requires_grad=True)
                (x * x).sum().backward()
            assert torch.isnan(torch.tensor(x.grad.tolist())).tolist() == [True, False]


def test_switches_are_torchs():
    for L in (gs, torch):
        assert not L.is_anomaly_enabled() and L.is_anomaly_check_nan_enabled()
        setter = L.autograd.set_detect_anomaly(True, check_nan=False)  # at once
        assert (L.is_anomaly_enabled(), L.is_anomaly_check_nan_enabled()) == (True, False)
        seen = []
        t = threading.Thread(target=lambda L=L, seen=seen: seen.append(L.is_anomaly_enabled()))
        t.start()
        t.join()
        assert seen == [True]  # the process's mode, not the thread's
        with setter:
            pass
        assert (L.is_anomaly_enabled(), L.is_anomaly_check_nan_enabled()) == (False, True)
        with pytest.warns(UserWarning, match="^Anomaly Detection has been enabled"):
            manager = L.autograd.detect_anomaly(check_nan=False)
        assert not L.is_anomaly_enabled()  # detect_anomaly switches on entering only
        with manager:
            assert (L.is_anomaly_enabled(), L.is_anomaly_check_nan_enabled()) == (True, False)
        L.set_anomaly_enabled(True)
        assert L.is_anomaly_enabled() and L.is_anomaly_check_nan_enabled()
        L.set_anomaly_enabled(False)
    assert isinstance(gs.autograd.set_detect_anomaly, type)
    assert gradserve.autograd.detect_anomaly is gs.engine.autograd.detect_anomaly


def test_the_version_hint_names_a_function_that_exists():
    from gradserve.engine.core.errors import VERSION_HINT

    call = re.search(r"with (gradserve\.[\w.]+)\((.*)\)\.$", VERSION_HINT)
    assert call is not None
    target = gs
    for part in call.group(1).split(".")[1:]:
        target = getattr(target, part)
    try:
        eval(f"target({call.group(2)})", {"target": target})  # noqa: S307  (our own text)
        assert gs.is_anomaly_enabled() and not gs.is_anomaly_check_nan_enabled()
    finally:
        gs.autograd.set_detect_anomaly(False)
