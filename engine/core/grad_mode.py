"""Grad mode: no_grad / enable_grad / set_grad_enabled, thread-local as in torch.

Each is both a context manager and a decorator and restores the previous mode on exit. The
server runs each session's ops on worker threads, so the mode must never be process-global.
"""

from __future__ import annotations

import functools
import threading


class _State(threading.local):
    # __init__ runs once in each thread that touches the state, so the flag always exists
    # and reading it is a plain attribute access (this is on every op's path).
    def __init__(self) -> None:
        self.enabled = True
        self.inference = False


_state = _State()


def is_grad_enabled() -> bool:
    return _state.enabled


def _set(enabled: bool) -> None:
    _state.enabled = enabled


class _GradMode:
    _enabled: bool

    # the state read and written here, not through is_grad_enabled/_set: an optimizer's
    # step and every backward enter one
    def __enter__(self):
        self._prev = _state.enabled
        _state.enabled = self._enabled
        return self

    def __exit__(self, *exc) -> None:
        _state.enabled = self._prev

    def __call__(self, fn):
        enabled = self._enabled

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # A fresh scope per call: a decorated function may run on several threads at once.
            with _Scope(enabled):
                return fn(*args, **kwargs)

        return wrapper


class _Scope(_GradMode):
    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled


class no_grad(_GradMode):
    """Disable gradient recording: results have requires_grad=False and no grad_fn.

    >>> from gradserve import engine
    >>> x = engine.tensor([1.0], requires_grad=True)
    >>> with no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        self._enabled = False


class enable_grad(_GradMode):
    """Enable gradient recording inside a no_grad region."""

    def __init__(self) -> None:
        self._enabled = True


class set_grad_enabled(_GradMode):
    """Set grad mode to `mode`; takes effect at once, like torch, and also works in `with`."""

    def __init__(self, mode: bool) -> None:
        self._prev = _state.enabled
        self._enabled = _state.enabled = bool(mode)

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set(self._prev)  # used as a decorator: undo the eager switch made by __init__
        return super().__call__(fn)


class inference_mode:
    """torch.inference_mode: like no_grad (nothing is recorded), also as a decorator;
    `inference_mode(False)` leaves grad mode as it is.

    >>> from gradserve import engine
    >>> with inference_mode():
    ...     y = engine.ones(2, requires_grad=True) * 2
    ...     print(is_inference_mode_enabled())
    True
    >>> y.requires_grad
    False
    """

    def __init__(self, mode: bool = True) -> None:
        self._mode = bool(mode)

    def __enter__(self):
        self._prev = (_state.enabled, _state.inference)
        if self._mode:
            _state.enabled, _state.inference = False, True
        return self

    def __exit__(self, *exc) -> None:
        _state.enabled, _state.inference = self._prev

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)

        return wrapper


def is_inference_mode_enabled() -> bool:
    return _state.inference
