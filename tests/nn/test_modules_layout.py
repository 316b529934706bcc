"""`gradserve.nn.modules` has torch.nn.modules' layout: the imports torch scripts write
(`from torch.nn.modules import Module, Linear`, `torch.nn.modules.loss._Loss`, ...) work with
`torch` replaced by `gradserve`, and give the very classes gradserve.nn has."""

from __future__ import annotations

import importlib
import subprocess
import sys

import gradserve.nn as nn
import pytest
import torch.nn.modules as torch_modules

SUBMODULES = ["activation", "batchnorm", "container", "conv", "distance", "dropout", "flatten",
              "fold", "linear", "loss", "module", "normalization", "pixelshuffle", "pooling",
              "rnn", "sparse", "transformer", "upsampling"]


@pytest.mark.parametrize("name", SUBMODULES)
def test_each_submodule_holds_torchs_names_for_it(name):
    ours = importlib.import_module(f"gradserve.nn.modules.{name}")
    theirs = importlib.import_module(f"torch.nn.modules.{name}")
    assert ours.__all__
    for cls in ours.__all__:
        assert hasattr(theirs, cls), f"torch.nn.modules.{name} has no {cls}"
        assert getattr(ours, cls) is (getattr(nn, cls, None) or getattr(ours, cls))


def test_package_exports_every_layer_gradserve_nn_has():
    import gradserve.nn.modules as modules

    layers = {n for n in dir(nn) if n[:1].isupper() and n != "Parameter"}
    assert set(modules.__all__) == layers
    assert all(getattr(modules, n) is getattr(nn, n) for n in layers)
    assert set(modules.__all__) <= set(torch_modules.__all__)
    assert nn.modules is modules


def test_scripts_imports_run():
    script = (
        "from gradserve.nn.modules import Module, Linear\n"
        "from gradserve.nn.modules.loss import _Loss, _WeightedLoss, MSELoss\n"
        "from gradserve.nn.modules.module import Module as M\n"
        "import gradserve.nn.modules.rnn as rnn\n"
        "import gradserve\n"
        "class L1(_Loss):\n"
        "    def forward(self, a, b):\n"
        "        return (a - b).abs().mean() if self.reduction == 'mean' else (a - b).abs()\n"
        "net = Linear(2, 1)\n"
        "assert isinstance(net, M) and M is Module is gradserve.nn.Module\n"
        "assert issubclass(MSELoss, _Loss) and rnn.LSTM is gradserve.nn.LSTM\n"
        "print(L1()(net(gradserve.ones(3, 2)), gradserve.zeros(3, 1)).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gradserve.Size([])"
