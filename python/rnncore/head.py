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

_Elementwise = Callable[[np.ndarray], np.ndarray]
# activation name -> (function, derivative written in terms of the activation's output a)
ACTIVATIONS: dict[str, tuple[_Elementwise, _Elementwise]] = {
    "relu": (lambda z: np.maximum(z, 0), lambda a: a > 0),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "sigmoid": (lambda z: 0.5 * (1 + np.tanh(0.5 * z)), lambda a: a * (1 - a)),
}


class MLPHead:
    """Linear layers of widths ``sizes = (F_0, F_1, ..., O)`` with `activation` between them.

    ``y = head(a)`` maps (N, F_0) rows to (N, O); ``da = head.backward(dy)`` for the latest
    forward, adding to ``grads``. Weights are drawn like torch.nn.Linear's default init,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, layer by layer from `rng`.
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
        self._inputs: list[np.ndarray] | None = None

    @property
    def num_linear(self) -> int:
        return len(self.sizes) - 1

    def _linear(self, k: int):
        return self.params[f"{2 * k}.weight"], self.params[f"{2 * k}.bias"]

    def forward(self, a: np.ndarray) -> np.ndarray:
        """(N, F_0) -> (N, O). Keeps each linear layer's input (the post-activation values) for the
        backward: the activation's derivative is computed from them, nothing is recomputed."""
        inputs = []
        for k in range(self.num_linear):
            w, b = self._linear(k)
            inputs.append(a)
            a = a @ w.T + b  # (N, F_k) @ (F_k, F_k+1)
            if k < self.num_linear - 1:
                a = self._act(a)
        self._inputs = inputs
        return a

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, O) -> d(input) (N, F_0); parameter gradients are accumulated in ``grads``."""
        if self._inputs is None:
            raise RuntimeError("backward() called before forward()")
        dz = dy
        for k in reversed(range(self.num_linear)):
            w, _ = self._linear(k)
            a = self._inputs[k]
            # z = a @ w.T + b
            self.grads[f"{2 * k}.weight"] += dz.T @ a
            self.grads[f"{2 * k}.bias"] += dz.sum(axis=0)
            da = dz @ w
            if k > 0:  # a = act(z_prev)
                dz = da * self._act_grad(a)
        return da
