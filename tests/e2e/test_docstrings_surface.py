"""The docstring examples of torch's import surface (autograd, utils.data, backends, cuda,
legacy constructors, nn.parameter) run inside a session, as a ported script would."""

from __future__ import annotations

import doctest
import importlib

import gradserve as gs
import numpy as np
import pytest
from gradserve import _client

MODULES = ["gradserve.autograd", "gradserve.autograd.functional", "gradserve.autograd.function",
           "gradserve.autograd._variable", "gradserve.utils.data",
           "gradserve.utils.data.dataset", "gradserve.utils.data.sampler",
           "gradserve.utils.data._collate", "gradserve.utils.data.dataloader",
           "gradserve.backends", "gradserve.cuda", "gradserve._legacy", "gradserve.nn.parameter",
           "gradserve.nn.utils", "gradserve.nn.utils.rnn", "gradserve.nn.utils._convert"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_examples_run_in_a_session(server, monkeypatch, name):
    real_connect = _client.connect
    monkeypatch.setattr(_client, "connect",
                        lambda target=None, **kw: real_connect(server.address, **kw))
    module = importlib.import_module(name)
    with gs.connect(server.address) as client, client.session() as s:
        globs = {"gs": gs, "np": np, "client": client, "s": s, "nn": gs.nn, "engine": gs.engine}
        result = doctest.testmod(module, extraglobs=globs, optionflags=FLAGS, report=True)
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed"
