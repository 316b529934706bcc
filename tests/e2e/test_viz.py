"""gs.viz.graph: the seed example's backward graph described in-process and by a real
server (RPC DescribeGraph), as a dict and as DOT text; rendering through Graphviz's dot."""

from __future__ import annotations

import shutil

import gradserve as gs
import gradserve.nn as nn
import numpy as np
import pytest
from gradserve import engine

SEED_GRAPH = {
    "nodes": [
        {"id": "0", "name": "MeanBackward0", "kind": "node", "shape": [], "dtype": "float32",
         "saved": []},
        {"id": "1", "name": "AddBackward0", "kind": "node", "shape": [2, 2],
         "dtype": "float32", "saved": []},
        {"id": "2", "name": "MulBackward0", "kind": "node", "shape": [2, 2],
         "dtype": "float32", "saved": [{"version": 0}]},  # the input only, as torch
        {"id": "3", "name": "w2", "kind": "leaf", "shape": [], "dtype": "float32",
         "saved": []},
        {"id": "4", "name": "w1", "kind": "leaf", "shape": [], "dtype": "float32",
         "saved": []},
    ],
    "edges": [["1", "0"], ["2", "1"], ["3", "1"], ["4", "2"]],
}
SEED_DOT = """digraph backward {
  graph [rankdir=TB];
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];
  "0" [label="MeanBackward0", fillcolor="#b2df8a"];
  "1" [label="AddBackward0", fillcolor="#d9d9d9"];
  "2" [label="MulBackward0\\nsaved: v0", fillcolor="#d9d9d9"];
  "3" [label="w2\\n()\\nfloat32", fillcolor="#a6cee3"];
  "4" [label="w1\\n()\\nfloat32", fillcolor="#a6cee3"];
  "1" -> "0";
  "2" -> "1";
  "3" -> "1";
  "4" -> "2";
}"""


def _seed(factory):
    input = factory.tensor([[1.0, 2.0], [3.0, 4.0]])
    w1 = factory.tensor(2.0, requires_grad=True)
    w2 = factory.tensor(3.0, requires_grad=True)
    return (input * w1 + w2).mean(), {"w1": w1, "w2": w2}


def test_seed_graph_in_process():
    loss, params = _seed(engine)
    g = gs.viz.graph(loss, params=params)
    assert g.to_dict() == SEED_GRAPH
    assert str(g) == SEED_DOT


def test_seed_graph_described_by_the_server(s):
    loss, params = _seed(s)
    g = gs.viz.graph(loss, params=params)
    assert g.to_dict() == SEED_GRAPH
    assert str(g) == SEED_DOT
    # unnamed leaves are named by their tensor ids on the session (what grpcurl users chose)
    names = [n["name"] for n in gs.viz.graph(loss).to_dict()["nodes"] if n["kind"] == "leaf"]
    assert names == [params["w2"].id, params["w1"].id]


def test_saved_versions_show_the_version_at_save_time(s):
    for where in (engine, s):
        w = where.tensor([1.0, 2.0], requires_grad=True)
        a = w * 1.0
        b = a * a  # saves a at version 0
        with gs.no_grad():
            a.add_(1.0)  # now version 1: backward through b would fail
        nodes = gs.viz.graph(b).to_dict()["nodes"]
        assert nodes[0]["name"] == "MulBackward0"
        assert nodes[0]["saved"] == [{"version": 0}, {"version": 0}]
        assert a._version == 1


def test_graph_after_backward_has_no_saved_tensors(s):
    loss, params = _seed(s)
    loss.backward()
    nodes = gs.viz.graph(loss, params=params).to_dict()["nodes"]
    assert [n["saved"] for n in nodes] == [[]] * 5


def test_conv_net_graph_is_the_same_in_process_and_remote(s):
    def net(session):
        session.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, session=session), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3, session=session))

    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    graphs = []
    for where in (engine, s):
        model = net(where)
        loss = nn.functional.cross_entropy(model(where.tensor(x)), where.tensor([0, 2]))
        graphs.append(gs.viz.graph(loss, params=dict(model.named_parameters())).to_dict())
    assert graphs[0] == graphs[1]
    names = [n["name"] for n in graphs[0]["nodes"]]
    assert names[:3] == ["NllLossBackward0", "LogSoftmaxBackward0", "AddmmBackward0"]  # torch's
    assert "ConvolutionBackward0" in names and "MaxPool2DWithIndicesBackward0" in names
    assert {"0.weight", "0.bias", "4.weight", "4.bias"} <= set(names)


def test_a_tensor_without_a_graph():
    assert gs.viz.graph(engine.ones(2)).to_dict() == {"nodes": [], "edges": []}
    w = engine.ones(2, requires_grad=True)
    assert gs.viz.graph(w, params={"w": w}).to_dict()["nodes"] == [
        {"id": "0", "name": "w", "kind": "leaf", "shape": [2], "dtype": "float32",
         "saved": []}]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("ext,magic", [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_render_writes_the_picture(tmp_path, ext, magic):
    loss, params = _seed(engine)
    path = gs.viz.graph(loss, params=params).render(tmp_path / f"seed.{ext}")
    data = open(path, "rb").read()
    assert magic in data[:400]
    if ext == "svg":
        assert b"MulBackward0" in data and b"w1" in data


def test_render_without_dot_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    loss, _ = _seed(engine)
    with pytest.raises(gs.viz.RenderError, match="`dot`"):
        gs.viz.graph(loss).render(tmp_path / "x.svg")


def test_describing_an_unknown_tensor_is_not_found(s):
    from gradserve.v1 import gradserve_pb2 as pb

    s.synchronize()
    with pytest.raises(gs.GradserveError, match="not found"):
        s._client._call("DescribeGraph", pb.DescribeGraphRequest(session_id=s.id, id="nope"),
                        session_id=s.id)
