"""The MLP that RNNModel applies to every time step: Linear, activation, Linear, ..., Linear.

Shape letters: N rows (all T*B time steps of a batch at once), F_k the width entering linear layer
k. Every layer is one GEMM over all N rows, forward and backward; there is no per-step loop.

Parameter names follow torch's ``nn.Sequential(Linear, act, Linear, ...)``: linear layer k sits at
index 2k, so the names are ``0.weight``, ``0.bias``, ``2.weight``, ... (the activations at the odd
indices have no parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import _core
from ._checks import c_aligned

_Elementwise = Callable[[np.ndarray], np.ndarray]
# activation name -> (function, derivative written in terms of the activation's output a)
ACTIVATIONS: dict[str, tuple[_Elementwise, _Elementwise]] = {
    "relu": (lambda z: np.maximum(z, 0), lambda a: a > 0),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "sigmoid": (lambda z: 0.5 * (1 + np.tanh(0.5 * z)), lambda a: a * (1 - a)),
}


class _Workspace:
    """The arrays of one forward and backward over N rows, reused while N stays the same:
    z[k] (N, F_k+1) the outputs of linear layer k (post-activation for k < last) and da[k]
    (N, F_k) the gradients w.r.t. layer k's input."""

    def __init__(self, sizes: tuple, n: int, dtype: np.dtype):
        self.n = n
        self.z = [np.empty((n, f), dtype) for f in sizes[1:]]
        self.da = [np.empty((n, f), dtype) for f in sizes[:-1]]


class MLPHead:
    """Linear layers of widths ``sizes = (F_0, F_1, ..., O)`` with `activation` between them.

    ``y = head(a)`` maps (N, F_0) rows to (N, O); ``da = head.backward(dy)`` for the latest
    forward, adding to ``grads``. Weights are drawn like torch.nn.Linear's default init,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, layer by layer from `rng`.

    The returned y and da live in a workspace reused by the next call over as many rows (the
    model that holds the head hands out copies or read-only views; see docs/training.md).
    """

    def __init__(self, sizes, activation: str, dtype: np.dtype, rng: np.random.Generator):
        self.sizes = tuple(sizes)
        self.activation = activation
        self._act, self._act_grad = ACTIVATIONS[activation]
        self.params: dict[str, np.ndarray] = {}
        for k, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            bound = 1.0 / math.sqrt(fan_in)
            for name, shape in ((f"{2 * k}.weight", (fan_out, fan_in)),
                                (f"{2 * k}.bias", (fan_out,))):
                self.params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self._dtype = np.dtype(dtype)
        self._inputs: list[np.ndarray] | None = None
        self._ws: _Workspace | None = None
        self.adopt(self.params, self.grads)

    def parameters(self) -> dict[str, np.ndarray]:
        return dict(self.params)

    def adopt(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Use `params` and `grads` (name -> array, the current values already in `params`) from
        now on: a model calls it with views of its flat buffers (`FlatParameters.gather`)."""
        self.params, self.grads = dict(params), dict(grads)
        self._layers = [(self.params[f"{2 * k}.weight"], self.params[f"{2 * k}.bias"],
                         self.grads[f"{2 * k}.weight"], self.grads[f"{2 * k}.bias"])
                        for k in range(self.num_linear)]

    @property
    def num_linear(self) -> int:
        return len(self.sizes) - 1

    def _linear(self, k: int):
        return self.params[f"{2 * k}.weight"], self.params[f"{2 * k}.bias"]

    def _workspace(self, n: int) -> _Workspace:
        ws = self._ws
        if ws is None or ws.n != n:
            ws = self._ws = _Workspace(self.sizes, n, self._dtype)
        return ws

    def forward(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N, F_0) -> (N, O). Keeps each linear layer's input (the post-activation values) for the
        backward: the activation's derivative is computed from them, nothing is recomputed. The
        result goes to `out` (N, O) if given, else to the workspace, which the next forward over
        N rows overwrites."""
        ws = self._workspace(a.shape[0])
        last = self.num_linear - 1
        inputs = []
        a = c_aligned(a)
        for k, (w, b, _, _) in enumerate(self._layers):
            inputs.append(a)
            z = out if k == last and out is not None else ws.z[k]
            # z = act(a @ w.T + b): one GEMM over all rows, the bias and activation in place
            _core.linear_forward(a, w, b, z, self.activation if k < last else "none")
            a = z
        self._inputs = inputs
        return a

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, O) -> d(input) (N, F_0); parameter gradients are accumulated in ``grads``. The
        result is the workspace's: the next backward over N rows overwrites it."""
        if self._inputs is None:
            raise RuntimeError("backward() called before forward()")
        ws = self._workspace(dy.shape[0])
        dz = c_aligned(dy)
        for k in reversed(range(self.num_linear)):
            w, _, gw, gb = self._layers[k]
            # z = a @ w.T + b, a = act(z_prev) for k > 0: gw += dz.T @ a, gb += dz summed over
            # rows, da = (dz @ w) * act'(a)
            _core.linear_backward(self._inputs[k], w, dz, ws.da[k], gw, gb,
                                  self.activation if k > 0 else "none")
            dz = ws.da[k]
        return dz
