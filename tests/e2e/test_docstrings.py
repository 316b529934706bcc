"""The SDK's docstring examples run, against a real server.

Examples connect to the default address "127.0.0.1:50051" (what a user types); here
`connect` is pointed at the test server instead. Each example also finds `gs`, `np`, a
`client` and a session `s` ready.
"""

from __future__ import annotations

import doctest

import gradserve as gs
import numpy as np
import pytest
from gradserve import (
    _autograd,
    _callbacks,
    _client,
    _current,
    _errors,
    _factories,
    _session,
    _surface,
    _tensor,
    _wire,
)

MODULES = [gs, _client, _session, _tensor, _autograd, _errors, _wire, _current, _callbacks,
           _surface, _factories]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.IGNORE_EXCEPTION_DETAIL


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_examples_run(server, monkeypatch, module):
    real_connect = _client.connect
    monkeypatch.setattr(_client, "connect",
                        lambda target=None, **kw: real_connect(server.address, **kw))
    with gs.connect(server.address) as client, client.session() as s:
        globs = {"gs": gs, "np": np, "client": client, "s": s}
        result = doctest.testmod(module, extraglobs=globs, optionflags=FLAGS, report=True)
    assert result.failed == 0, f"{result.failed} example(s) of {module.__name__} failed"
    if module is not _wire:
        assert result.attempted > 0
