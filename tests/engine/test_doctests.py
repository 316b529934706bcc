"""The engine's docstring examples run (they are the first thing a reader copies)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import gradserve.engine
import numpy as np
import pytest

MODULES = ["gradserve.engine"] + [
    m.name for m in pkgutil.walk_packages(gradserve.engine.__path__, "gradserve.engine.")
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # examples may use `engine` and `np` without importing them (as the README's do)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS,
                             extraglobs={"engine": gradserve.engine, "np": np})
    assert result.failed == 0
