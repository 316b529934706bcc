"""The shape of the code: the engine's import graph has no cycle, no module imports at its
bottom, and a function-level import says why it is not at the top."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
PRODUCT = ("engine", "client", "server", "proto/gradserve/v1")


def _sources(*folders):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts and "_pb2" not in path.name:
                yield path


def _module_name(path: pathlib.Path) -> str:
    parts = ["gradserve", "engine", *path.relative_to(ENGINE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree, module: str, is_package: bool, known: set):
    """(target module, line, at module level) for each import of a module in `known`."""
    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only: never executed
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[:None if is_package else -1]
                    base = base[:len(base) - child.level + 1]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                for alias in child.names:
                    target = f"{source}.{alias.name}"
                    yield (target if target in known else source), child.lineno, not nested
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, not nested
            yield from visit(child, nested)

    for target, line, top in visit(tree, False):
        # importing a.b.c runs a and a.b first
        parts = target.split(".")
        for i in range(3, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in known and name != module and not module.startswith(name + "."):
                yield name, line, top


def _engine_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in _sources("engine")}
    known = set(paths)
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text())
        graph[name] = {t for t, _, top in _imports(tree, name, path.name == "__init__.py",
                                                       known) if top}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, or None (an iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_engine_import_graph_is_acyclic():
    graph = _engine_graph()
    assert "gradserve.engine.core.dispatch" in graph and len(graph) > 50
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_core_imports_nothing_above_it():
    """engine/core knows no op, no torch surface and no tensor kind (they build on it)."""
    for name, targets in _engine_graph().items():
        if name.startswith("gradserve.engine.core"):
            above = sorted(t for t in targets if not t.startswith("gradserve.engine.core"))
            assert not above, f"{name} imports {above}"


def test_no_import_at_a_module_bottom():
    offenders = [str(p.relative_to(ROOT)) for p in _sources(*PRODUCT)
                 if "noqa: E402" in p.read_text()]
    assert not offenders


def _commented(lines: list[str], node) -> bool:
    """A comment on the import's lines, or on the line above it (or above the run of imports
    it belongs to) says why it is inside a function."""
    if any("#" in line for line in lines[node.lineno - 1:node.end_lineno]):
        return True
    i = node.lineno - 2
    while i >= 0 and lines[i].strip().startswith(("import ", "from ")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def test_every_function_level_import_says_why():
    missing = []
    for path in _sources(*PRODUCT):
        text = path.read_text()
        lines = text.split("\n")
        for fn in ast.walk(ast.parse(text)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not _commented(lines,
                                                                                      node):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, "function-level imports without a reason: " + ", ".join(missing)


def test_client_and_server_use_the_engine_through_its_seam():
    """client/, server/ and the codec import `gradserve.engine` (torch's surface) and
    `gradserve.engine.seam`, nothing deeper (docs/ARCHITECTURE.md, "The engine's seam")."""
    allowed = {"gradserve.engine", "gradserve.engine.seam"}
    deeper = []
    for path in _sources("client", "server", "proto/gradserve/v1"):
        package = "gradserve" if path.parts[len(ROOT.parts)] == "client" else None
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level and package is not None:
                    # client/ is the package gradserve: `.engine...` names gradserve.engine
                    depth = len(path.relative_to(ROOT / "client").parts) - 1
                    if node.level != depth + 1:
                        continue
                    module = f"{package}.{module}"
                if not module.startswith("gradserve.engine"):
                    continue
                names = [module] if module != "gradserve.engine" else [
                    f"{module}.{a.name}" for a in node.names if a.name.startswith("_")
                    or a.name == "seam"]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("gradserve.engine")]
            else:
                continue
            deeper += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                       if n not in allowed]
    assert not deeper, "imports below the engine's seam: " + ", ".join(deeper)
