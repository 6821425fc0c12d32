"""The package's modules import each other one way (docs/ARCHITECTURE.md draws the layers).

Every import of an rnncore module counts: at module level, inside functions, under
TYPE_CHECKING, relative (``from . import x``, ``from .x import y``) or absolute (``import
rnncore.x``), and ``importlib.import_module`` with a literal name. The graph must have no cycle,
and each module may import only its own layer and the ones below it."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import rnncore

PACKAGE = Path(rnncore.__file__).resolve().parent

# Bottom first. A module belongs to the entry that names it or its package (the longest match);
# "rnncore" alone is the package's __init__.py, the public API.
LAYERS = {
    "helpers": ["rnncore._core", "rnncore._checks", "rnncore._registry", "rnncore.isa",
                "rnncore.threads", "rnncore.lengths", "rnncore.init", "rnncore.buffers"],
    "layers": ["rnncore.rnn", "rnncore.head", "rnncore.readout", "rnncore.embedding"],
    "models": ["rnncore.model", "rnncore.seq2seq"],
    "training": ["rnncore.losses", "rnncore.optim", "rnncore.training", "rnncore.sampling",
                 "rnncore.seq2seq_fit", "rnncore.datasets"],
    "input/output": ["rnncore.io", "rnncore.onnx"],
    "public API": ["rnncore"],
    "scale-out": ["rnncore.distributed"],
    "command line": ["rnncore.demo", "rnncore.bench", "rnncore.__main__"],
}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at `root` by dotted name (a package by its __init__.py; the
    compiled _core by its stub)."""
    modules = {}
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyi")]):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.setdefault(".".join((package, *parts)), path)
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` (at `path`) imports, wherever the import is.

    ``from P import n`` imports the module P.n if there is one, else P (n is a name in P); the
    packages above an imported module, which Python runs first, are not counted: every module
    would then import the package that imports it."""
    package = name if path.name in ("__init__.py", "__init__.pyi") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path = PACKAGE, package: str = "rnncore") -> dict[str, set[str]]:
    modules = module_files(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """The modules caught in cycles, one group per strongly connected component (Tarjan's
    algorithm): a shortest cycle through the group (its first module repeated at the end), and
    the group's other modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycle = cycle_in(graph, component, v)
                found.append((cycle, sorted(component - set(cycle))))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_in(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A path from `start` back to itself inside `component` (breadth first: a shortest one)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def layer_of(module: str) -> int:
    matches = [(len(prefix), level) for level, prefixes in enumerate(LAYERS.values())
               for prefix in prefixes
               if module == prefix or (prefix != "rnncore" and module.startswith(prefix + "."))]
    assert matches, f"{module} is in no layer: add it to LAYERS here and to docs/ARCHITECTURE.md"
    return max(matches)[1]


def test_the_walk_finds_the_imports():
    graph = import_graph()
    assert {"rnncore.rnn", "rnncore.model", "rnncore.io.torch", "rnncore.bench.table",
            "rnncore._core"} <= set(graph)
    assert {"rnncore._core", "rnncore._checks", "rnncore._registry",
            "rnncore.lengths"} <= graph["rnncore.rnn"]
    assert {"rnncore.rnn", "rnncore.head"} <= graph["rnncore.model"]
    assert {"rnncore.model", "rnncore.rnn", "rnncore._registry"} <= graph["rnncore.io.torch"]
    assert "rnncore.bench.memory" in graph["rnncore.bench.table"]  # from .memory import ...
    assert "rnncore.bench" in graph["rnncore.__main__"]  # from . import bench


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(
        " -> ".join(cycle) + (f" (and, in cycles with them: {', '.join(others)})" * bool(others))
        for cycle, others in found)


def test_imports_go_down_the_layers():
    names = list(LAYERS)
    upward = [f"{m} ({names[layer_of(m)]}) imports {d} ({names[layer_of(d)]})"
              for m, deps in sorted(import_graph().items()) for d in sorted(deps)
              if layer_of(d) > layer_of(m)]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_a_cycle_is_caught_and_named(tmp_path):
    """The walk sees a cycle closed by an import inside a function, by ``from .x import y``,
    ``from . import x`` and ``import pkg.x``, and the message names it."""
    files = {
        "__init__.py": "",
        "a.py": "from .b import thing\n",
        "b.py": "import pkg.sub.c\nthing = 1\n",
        "sub/__init__.py": "",
        "sub/c.py": "def late():\n    from .. import a\n",
        "d.py": "from . import b\n",  # into the cycle, not on it
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.d"] == {"pkg.b"} and graph["pkg.sub.c"] == {"pkg.a"}
    assert cycles(graph) == [(["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"], [])]
    (tmp_path / "sub/c.py").write_text("def late():\n    pass\n")
    assert cycles(import_graph(tmp_path, "pkg")) == []


def test_the_top_level_lists_the_public_modules_and_three_private_helpers():
    top = {name.split(".")[1] for name in module_files(PACKAGE, "rnncore") if name != "rnncore"}
    private = {name for name in top if name.startswith("_") and not name.endswith("__")}
    assert private == {"_core", "_checks", "_registry"}
    assert {"bench", "io"} <= top


def test_the_benchmark_lives_in_one_subpackage():
    modules = module_files(PACKAGE, "rnncore")
    assert [m for m in modules if "bench" in m and not m.startswith("rnncore.bench")] == []


def test_each_method_the_classes_delegate_is_registered_by_rnncore_io():
    """RNN.from_torch, RNNModel.save, ... call the function rnncore.io registered under their
    name (_registry.py): the names the classes ask for are exactly the names registered."""
    from rnncore import _registry

    asked = set()
    for module in ("rnn.py", "model.py", "seq2seq.py"):
        asked |= set(re.findall(r'implementation\("([\w.]+)"\)', (PACKAGE / module).read_text()))
    assert asked == set(_registry._IMPLEMENTATIONS) == {
        "RNN.from_torch", "RNN.to_torch", "RNN.from_keras_weights", "RNNModel.save",
        "RNNModel.load", "RNNModel.from_torch", "RNNModel.to_torch", "Seq2Seq.save",
        "Seq2Seq.load", "Seq2Seq.to_torch"}
