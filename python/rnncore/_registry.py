"""Where the classes find the code of their input/output methods.

``RNN.from_torch``, ``RNNModel.save`` and the other methods that read or write another format are
the classes' public face, so they are declared on the classes (rnn.py, model.py) with their
signatures and docstrings. Their code is in rnncore/io/, one layer up: it imports the classes, so
the classes must not import it (imports go one way; tests/test_layout.py checks). Instead each io
function registers itself here under the method's name, with ``@implements("RNN.from_torch")``,
when rnncore.io is imported (``import rnncore`` does it), and the method calls
``implementation("RNN.from_torch")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_Function = TypeVar("_Function", bound=Callable[..., Any])

_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}


def implements(method: str) -> Callable[[_Function], _Function]:
    """Decorator: the function is the code of `method` ("Class.method")."""
    def register(function: _Function) -> _Function:
        _IMPLEMENTATIONS[method] = function
        return function
    return register


def implementation(method: str) -> Callable[..., Any]:
    """The function registered for `method`."""
    try:
        return _IMPLEMENTATIONS[method]
    except KeyError:
        raise RuntimeError(f"{method}: its code in rnncore.io was never imported (import rnncore "
                           "imports it)") from None
