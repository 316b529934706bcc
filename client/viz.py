"""gradserve.viz: pictures of backward graphs.

`gs.viz.graph(t)` describes the graph that `t.backward()` would walk: grad_fn nodes by their
torch names, leaves with shape and dtype, and the version of every tensor a node saved. For
an in-process tensor the engine describes it directly; for a remote tensor the server does
(RPC DescribeGraph, which a grpcurl user can call too and gets the same JSON).

    >>> import gradserve as gs
    >>> w = engine.tensor(2.0, requires_grad=True)
    >>> g = gs.viz.graph((w * 3).sum(), params={"w": w})
    >>> [n["name"] for n in g.to_dict()["nodes"]]
    ['SumBackward0', 'MulBackward0', 'w']
    >>> print(str(g).splitlines()[0])
    digraph backward {

`str(g)` is Graphviz DOT text; `g.render("step.svg")` (or .png, .pdf) runs Graphviz's `dot`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from gradserve.engine import GradserveError, Tensor
from gradserve.engine.seam import describe_graph, to_dot

__all__ = ["Graph", "RenderError", "graph"]


class RenderError(GradserveError, RuntimeError):
    """A graph picture could not be made (Graphviz's `dot` is missing or failed)."""


class Graph:
    """A described backward graph: `.to_dict()`, DOT text as `str()`, `.render(path)`.

    >>> g.to_dict()["edges"]
    [['1', '0'], ['2', '1']]
    """

    def __init__(self, description: dict) -> None:
        self._d = description

    def to_dict(self) -> dict:
        """{"nodes": [{"id", "name", "kind", "shape", "dtype", "saved": [{"version"}]}],
        "edges": [[from_id, to_id]]}, as the server sends it. >>> g.to_dict()"""
        return self._d

    def __str__(self) -> str:
        return to_dot(self._d)

    def __repr__(self) -> str:
        return f"<gradserve.viz.Graph: {len(self._d['nodes'])} nodes>"

    def _repr_svg_(self) -> str | None:  # notebooks draw it when Graphviz is there
        try:
            return self.pipe("svg").decode()
        except RenderError:
            return None

    def pipe(self, format: str = "svg") -> bytes:
        """The picture's bytes in `format` (svg, png, pdf, ...), made by Graphviz's `dot`.

        >>> svg = g.pipe("svg")
        """
        dot = shutil.which("dot")
        if dot is None:
            raise RenderError(
                "rendering a graph needs Graphviz's `dot` program, which is not on PATH; "
                "install Graphviz (apt-get install graphviz, brew install graphviz, conda "
                "install graphviz) or use str(graph) for the DOT text")
        done = subprocess.run([dot, f"-T{format}"], input=str(self).encode(),
                              capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RenderError(f"`dot -T{format}` failed: {done.stderr.decode().strip()}")
        return done.stdout

    def render(self, path, format: str | None = None) -> str:
        """Write the picture to `path`; the format comes from its extension unless given.

        >>> g.render("step.svg")
        'step.svg'
        """
        path = os.fspath(path)
        fmt = format or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
        data = self.pipe(fmt)
        with open(path, "wb") as f:
            f.write(data)
        return path


def graph(tensor, params: dict | None = None) -> Graph:
    """Describe the backward graph of `tensor` (engine or remote). `params` maps names to
    tensors (e.g. `dict(model.named_parameters())`) to label the leaves.

    >>> g = gs.viz.graph(loss, params=dict(model.named_parameters()))
    >>> g.render("loss_graph.svg")
    'loss_graph.svg'
    """
    params = dict(params or {})
    if isinstance(tensor, Tensor):
        names = {id(t): name for name, t in params.items()}
        return Graph(describe_graph(tensor, lambda leaf: names.get(id(leaf))))
    return Graph(_remote_description(tensor, params))


def _remote_description(tensor, params: dict) -> dict:
    # protobuf only for a remote graph: drawing an engine graph needs no wire modules
    from google.protobuf import json_format
    from gradserve.v1 import gradserve_pb2 as pb

    session = tensor.session
    session.synchronize()  # the server must have run every op that made the graph
    request = pb.DescribeGraphRequest(session_id=session.id, id=tensor.id,
                                      names={t.id: name for name, t in params.items()})
    reply = session._client._call("DescribeGraph", request, session_id=session.id)
    return _whole_numbers(json_format.MessageToDict(reply))


def _whole_numbers(d: dict) -> dict:
    """Struct carries numbers as doubles (shapes and versions back to ints) and keys in its
    own order (back to the engine's)."""
    nodes = [{"id": n["id"], "name": n.get("name", ""), "kind": n["kind"],
              "shape": [int(x) for x in n.get("shape", [])], "dtype": n["dtype"],
              "saved": [{"version": int(s["version"])} for s in n.get("saved", [])]}
             for n in d.get("nodes", [])]
    return {"nodes": nodes, "edges": [list(e) for e in d.get("edges", [])]}
