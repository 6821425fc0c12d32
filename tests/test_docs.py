"""The documents name what exists: every file and folder docs/ARCHITECTURE.md names, the
functions of its walk through a forward and backward call in the files it gives for them, every
other name it puts in backticks somewhere in the code, and every relative link of README.md,
docs/ and bench/README.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
DOCUMENTS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [*ROOT.glob("python/rnncore/**/*.py"), *ROOT.glob("python/rnncore/**/*.pyi"),
           *ROOT.glob("csrc/**/*.h"), *ROOT.glob("csrc/**/*.cpp"), *ROOT.glob("tests/*.py"),
           *ROOT.glob("bench/*.py"), ROOT / "CMakeLists.txt"]
EXTENSIONS = (".py", ".pyi", ".h", ".cpp", ".md", ".txt", ".toml")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*((\.|::)[A-Za-z_]\w*)*")


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def is_path(token: str) -> bool:
    return re.fullmatch(r"[\w.\-/]+", token) is not None and ("/" in token
                                                               or token.endswith(EXTENSIONS))


def call_path_rows() -> list[tuple[str, str, list[str]]]:
    """(step, file, functions) of each row of the walk-through table: | step | `file` | `f`, .. |"""
    rows = []
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and re.match(r"\d+\. ", cells[0]):
            (path,) = backticked(cells[1])
            rows.append((cells[0][:40], path, backticked(cells[2])))
    return rows


def python_defines(path: Path, name: str) -> bool:
    """`path` defines function or class `name`, or method `Class.method`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    *owner, leaf = name.split(".")
    scopes = [tree] if not owner else [n for n in ast.walk(tree)
                                       if isinstance(n, ast.ClassDef) and n.name == owner[-1]]
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == leaf
               for scope in scopes for n in ast.iter_child_nodes(scope))


def cpp_defines(path: Path, name: str) -> bool:
    """`path` has `name` followed by a call or definition's parenthesis (template arguments
    allowed): `forward_loop(`, `gemm<float>(`."""
    return re.search(rf"\b{re.escape(name)}\s*(<[^<>;]*>)?\s*\(", path.read_text()) is not None


def test_the_architecture_page_exists_and_fits_on_a_page():
    assert len(ARCHITECTURE.read_text(encoding="utf-8").splitlines()) <= 150


@pytest.mark.parametrize("token", sorted({t for t in backticked(ARCHITECTURE.read_text("utf-8"))
                                          if is_path(t)}))
def test_every_path_it_names_exists(token):
    assert (ROOT / token).exists(), f"docs/ARCHITECTURE.md names `{token}`, which does not exist"


def test_the_call_path_goes_from_rnn_call_to_the_tanh_and_its_derivative():
    rows = call_path_rows()
    assert len(rows) >= 10
    named = [(path, f) for _, path, functions in rows for f in functions]
    assert named[0] == ("python/rnncore/rnn.py", "RNN.__call__")
    for stop in [("csrc/bindings.cpp", "forward"), ("csrc/recurrent_impl.h", "forward_loop"),
                 ("csrc/elementwise_impl.h", "activate"), ("csrc/bindings.cpp", "backward"),
                 ("csrc/recurrent_impl.h", "backward_loop"),
                 ("csrc/elementwise_impl.h", "activation_grad"),
                 ("csrc/recurrent_impl.h", "backward_tile")]:
        assert stop in named


@pytest.mark.parametrize("step, path, functions", call_path_rows())
def test_each_step_names_functions_of_its_file(step, path, functions):
    file = ROOT / path
    assert file.is_file(), path
    defines = python_defines if file.suffix == ".py" else cpp_defines
    missing = [f for f in functions if not defines(file, f)]
    assert not missing, f"step {step!r}: {path} has no {', '.join(missing)}"


def test_every_other_name_it_puts_in_backticks_is_in_the_code():
    words = set(re.findall(r"\w+", "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)))
    names = {t for t in backticked(ARCHITECTURE.read_text(encoding="utf-8"))
             if IDENTIFIER.fullmatch(t) and not is_path(t)}
    assert len(names) > 30
    missing = sorted(n for n in names if re.split(r"\.|::", n)[-1] not in words)
    assert not missing, f"docs/ARCHITECTURE.md names what the code does not have: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text(encoding="utf-8"))
    relative = [link for link in links if "://" not in link]
    missing = [link for link in relative if not (document.parent / link).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to missing {missing}"


def test_the_page_draws_the_layers_test_layout_checks():
    from test_layout import LAYERS

    text = ARCHITECTURE.read_text(encoding="utf-8")
    for layer, modules in LAYERS.items():
        assert f"| {layer}: " in text, layer
        for module in modules:
            if module == "rnncore._core":
                continue
            path = "python/" + module.replace(".", "/")
            path = path + "/__init__.py" if module == "rnncore" else path
            assert f"`{path}.py`" in text or f"`{path}/`" in text or f"`{path}`" in text, module
