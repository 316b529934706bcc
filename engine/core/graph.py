"""A plain description of a tensor's backward graph: what `gs.viz.graph` draws.

`describe_graph(t)` walks t.grad_fn iteratively and returns JSON-shaped data:

    {"nodes": [{"id", "name", "kind": "node" | "leaf", "shape", "dtype",
                "saved": [{"version"}]}],
     "edges": [[from_id, to_id]]}

A "node" is a grad_fn (its torch name, the shape and dtype of the tensor it made, the
version each tensor it saved for backward had when saved); a "leaf" is a tensor that
accumulates a gradient (its name if known, shape and dtype). An edge [a, b] runs the way
the data flowed: a's tensor was an input of b (gradients flow from b to a). Ids are "0",
"1", ... in the order a breadth-first walk from the root meets them; the root is "0".
The server sends exactly this for a session's tensor (RPC DescribeGraph).

    >>> from gradserve import engine
    >>> w = engine.tensor(2.0, requires_grad=True)
    >>> g = describe_graph((w * 3).sum(), leaf_name=lambda t: "w")
    >>> [(n["name"], n["kind"]) for n in g["nodes"]], g["edges"]
    ([('SumBackward0', 'node'), ('MulBackward0', 'node'), ('w', 'leaf')], [['1', '0'], ['2', '1']])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .autograd import AccumulateGrad, SavedTensor


def _saved_versions(node) -> list[dict]:
    saved = [s for s in node._saved if isinstance(s, SavedTensor)]
    if node._saved_output is not None:
        saved.append(node._saved_output)
    return [{"version": s.version} for s in saved]


def describe_graph(root, leaf_name: Callable | None = None) -> dict:
    """The backward graph below tensor `root` as plain data (see the module docstring).
    `leaf_name(tensor)` names leaves (None or "" leaves a leaf unnamed)."""
    nodes: list[dict] = []
    edges: list[list[str]] = []
    start = root.grad_fn
    if start is None:
        if root.requires_grad:
            start = root._accumulator()
        else:
            return {"nodes": nodes, "edges": edges}
    ids = {start: "0"}
    queue = deque([(start, tuple(root.shape), root.dtype.name)])
    while queue:
        fn, shape, dtype = queue.popleft()
        entry = {"id": ids[fn], "shape": list(shape), "dtype": dtype}
        if isinstance(fn, AccumulateGrad):
            leaf = fn.variable
            name = (leaf_name(leaf) if leaf_name else None) or ""
            entry.update(name=name, kind="leaf", shape=list(leaf.shape),
                         dtype=leaf.dtype.name, saved=[])
            nodes.append(_ordered(entry))
            continue
        entry.update(name=type(fn).__name__, kind="node", saved=_saved_versions(fn))
        nodes.append(_ordered(entry))
        for i, (child, _) in enumerate(fn.next_functions):
            if child is None:
                continue
            if child not in ids:
                ids[child] = str(len(ids))
                in_dtype = fn.in_dtypes[i]
                child_dtype = in_dtype.name if in_dtype is not None else dtype
                queue.append((child, tuple(fn.in_shapes[i] or ()), child_dtype))
            edges.append([ids[child], ids[fn]])
    return {"nodes": nodes, "edges": edges}


def _ordered(entry: dict) -> dict:
    return {k: entry[k] for k in ("id", "name", "kind", "shape", "dtype", "saved")}


def to_dot(graph: dict, title: str = "backward") -> str:
    """Graphviz DOT text for a described graph: grad_fn nodes as grey boxes (with the saved
    tensors' versions), leaves as blue boxes (name, shape, dtype), the root in green.

    >>> print(to_dot({"nodes": [{"id": "0", "name": "w", "kind": "leaf", "shape": [2],
    ...                          "dtype": "float32", "saved": []}], "edges": []}))
    digraph backward {
      graph [rankdir=TB];
      node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];
      "0" [label="w\\n(2,)\\nfloat32", fillcolor="#a6cee3"];
    }
    """
    lines = [f"digraph {title} {{", "  graph [rankdir=TB];",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];']
    for n in graph["nodes"]:
        if n["kind"] == "leaf":
            parts = [n["name"]] if n["name"] else []
            parts += [_shape(n["shape"]), n["dtype"]]
            color = "#a6cee3"
        else:
            parts = [n["name"]]
            if n["saved"]:
                parts.append("saved: " + ", ".join(f"v{s['version']}" for s in n["saved"]))
            color = "#b2df8a" if n["id"] == "0" else "#d9d9d9"
        label = "\\n".join(_escape(p) for p in parts)
        lines.append(f'  "{n["id"]}" [label="{label}", fillcolor="{color}"];')
    for a, b in graph["edges"]:
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)


def _shape(shape) -> str:
    dims = ", ".join(str(int(d)) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')
