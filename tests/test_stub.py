"""The stub python/rnncore/_core.pyi is kept honest: it names exactly what the compiled module
exports, with the same argument names in the same order as the bindings' signatures."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import _core

STUB = Path(rnncore.__file__).with_name("_core.pyi")


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))


def _stub_defs() -> dict:
    """Top-level public functions and classes of the stub by name."""
    return {node.name: node for node in _stub_tree().body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")}


def _stub_args(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in fn.args.args if a.arg != "self"]


def _bound_args(obj) -> list[str]:
    """Argument names from pybind11's signature line: ``f(x: numpy.ndarray, n: int) -> None``."""
    first = obj.__doc__.strip().splitlines()[0]
    params = re.match(r"^\w+\((.*)\) ->", first).group(1)
    names = [p.split(":")[0].strip() for p in params.split(", ") if p] if params else []
    return [n for n in names if n != "self"]


def test_stub_is_installed_with_the_package():
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_stub_and_module_list_the_same_public_names():
    compiled = {n for n in dir(_core) if not n.startswith("_")}
    assert set(_stub_defs()) == compiled


def test_stepplan_methods_match():
    stub_class = _stub_defs()["StepPlan"]
    assert isinstance(stub_class, ast.ClassDef)
    stub_methods = {n.name: n for n in stub_class.body if isinstance(n, ast.FunctionDef)}
    assert set(stub_methods) == {"__init__", "__call__"}
    public = {n for n in vars(_core.StepPlan) if not n.startswith("_")}
    assert public == {n for n in stub_methods if not n.startswith("_")}
    assert _stub_args(stub_methods["__init__"]) == _bound_args(_core.StepPlan.__init__)
    # __call__ is the type's call slot, with no pybind11 signature line: it takes the stub's
    # argument names as keywords, and no others.
    names = _stub_args(stub_methods["__call__"])
    plan = _core.StepPlan([(np.eye(2, dtype=np.float32),) * 2 + (None, None)], "tanh")
    x = np.ones((1, 2), np.float32)
    y, _ = plan(**dict(zip(names, (x, None))))
    np.testing.assert_array_equal(y, np.tanh(x))
    with pytest.raises(TypeError):
        plan(**dict(zip(["a", "b"], (x, None))))


@pytest.mark.parametrize("name", sorted(n for n in dir(_core) if not n.startswith("_")
                                        and n != "StepPlan"))
def test_function_arguments_match(name):
    fn = _stub_defs()[name]
    assert isinstance(fn, ast.FunctionDef)
    assert _stub_args(fn) == _bound_args(getattr(_core, name))
