"""ModuleList / ModuleDict registration and the Module traversal they feed."""

from __future__ import annotations

import gradserve.nn as nn
import pytest
from gradserve import engine


def test_module_list_registers_in_order_and_edits():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    layers.append(nn.Linear(2, 1))
    layers.insert(1, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Linear", "Identity", "ReLU", "Linear"]
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "3.weight",
                                                          "3.bias"]
    del layers[1]
    assert len(layers) == 3 and isinstance(layers[-1], nn.Linear)
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 2
    layers[1] = nn.Tanh()
    assert isinstance(layers[1], nn.Tanh)
    with pytest.raises(IndexError):
        layers[5]


def test_module_dict_keys_and_parameters():
    heads = nn.ModuleDict({"cls": nn.Linear(4, 2)})
    heads.update([("reg", nn.Linear(4, 1))])
    heads["aux"] = nn.Linear(4, 3)
    assert list(heads) == ["cls", "reg", "aux"] and "reg" in heads
    assert sorted(n.split(".")[0] for n, _ in heads.named_parameters()) == [
        "aux", "aux", "cls", "cls", "reg", "reg"]
    assert isinstance(heads.pop("reg"), nn.Linear) and len(heads) == 2


def test_traversal_buffers_and_apply():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ModuleList([nn.ReLU()]))
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "2", "2.0"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var",
                                                      "1.num_batches_tracked"]
    assert len(list(model.children())) == 3
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Sequential" and "BatchNorm2d" in seen
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    out = model[:2](engine.randn(2, 1, 4, 4))
    assert out.shape == (2, 2, 2, 2) and not out.requires_grad
