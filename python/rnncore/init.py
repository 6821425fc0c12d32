"""Weight initialisers for `RNN(..., init=...)` (and `RNNModel`), beside torch's default.

Shape letters: H hidden, F the input width of a layer (I for layer 0, D*H above). Each scheme
overwrites a parameter array in place with draws from the RNN's generator, after torch's
default draws (so a model without `init` is drawn exactly as before):

    "uniform"      torch's default, U(-1/sqrt(H), 1/sqrt(H)) (kept as drawn)
    "glorot"       U(-a, a), a = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010; Keras'
                   default kernel)
    "orthogonal"   an orthogonal matrix (rows orthonormal when wider than tall), the Q of the QR
                   decomposition of a standard normal matrix with its signs fixed (Saxe et al.
                   2014; Keras' default recurrent kernel)
    "identity"     the identity matrix (square weights only: weight_hh)
    "normal"       N(0, 0.001^2), the input weights of Le et al. 2015
    "zeros"        0

`init` is None (torch's default everywhere), a dict {"weight_ih": scheme, "weight_hh": scheme,
"bias": scheme} (any key omitted keeps torch's default), or a preset name:

    "keras"  {"weight_ih": "glorot", "weight_hh": "orthogonal", "bias": "zeros"} (SimpleRNN's)
    "irnn"   {"weight_ih": "normal", "weight_hh": "identity", "bias": "zeros"}: the IRNN of
             Le, Jaitly & Hinton 2015, "A simple way to initialize recurrent networks of
             rectified linear units" (use with nonlinearity="relu")
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

SCHEMES = ("uniform", "glorot", "orthogonal", "identity", "normal", "zeros")
PRESETS = {
    "keras": {"weight_ih": "glorot", "weight_hh": "orthogonal", "bias": "zeros"},
    "irnn": {"weight_ih": "normal", "weight_hh": "identity", "bias": "zeros"},
}
KINDS = ("weight_ih", "weight_hh", "bias")


def check_init(init: object) -> dict[str, str] | None:
    """`init` as a dict {kind: scheme}, or None; ValueError/TypeError naming what is wrong."""
    if init is None:
        return None
    if isinstance(init, str):
        if init not in PRESETS:
            raise ValueError(f"init: expected one of {', '.join(map(repr, PRESETS))} or a dict "
                             f"{{'weight_ih'|'weight_hh'|'bias': scheme}}, got {init!r}")
        return dict(PRESETS[init])
    if not isinstance(init, Mapping):
        raise TypeError(f"init: expected None, a preset name or a dict, got "
                        f"{type(init).__name__}")
    for kind, scheme in init.items():
        if kind not in KINDS:
            raise ValueError(f"init: expected keys among {', '.join(map(repr, KINDS))}, got "
                             f"{kind!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"init[{kind!r}]: expected one of {', '.join(map(repr, SCHEMES))}, "
                             f"got {scheme!r}")
        if scheme == "identity" and kind != "weight_hh":
            raise ValueError(f"init[{kind!r}]: 'identity' is for the square weight_hh only")
    return dict(init)


def initialise(params: dict[str, np.ndarray], init: dict[str, str] | None,
               rng: np.random.Generator) -> None:
    """Overwrite `params` (an RNN's, by torch name) in place per `init` (from `check_init`)."""
    if not init:
        return
    for name, p in params.items():
        kind = "bias" if name.startswith("bias") else name.split("_l")[0]
        scheme = init.get(kind, "uniform")
        if scheme != "uniform":
            p[...] = _draw(scheme, p.shape, rng)


def _draw(scheme: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if scheme == "zeros":
        return np.zeros(shape)
    if scheme == "normal":
        return rng.normal(0.0, 0.001, shape)
    if scheme == "identity":
        return np.eye(*shape)
    fan_out, fan_in = shape
    if scheme == "glorot":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape)
    # orthogonal: Q of a (max, min) normal matrix, signs fixed by R's diagonal
    a = rng.standard_normal((max(shape), min(shape)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if fan_out >= fan_in else q.T
