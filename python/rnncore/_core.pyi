"""Type stub for rnncore's compiled kernels (csrc/bindings.cpp). Private: use the rnncore package.

Arrays are float32 or float64 (one dtype per call), C-contiguous where written; the kernels never
convert (pybind11 ``noconvert``), they raise ValueError on a wrong dtype, shape or layout.
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

_Array = NDArray[np.floating[Any]]

def forward(
    x: _Array,
    h0: _Array | None,
    w_ih: _Array,
    w_hh: _Array,
    b_ih: _Array | None,
    b_hh: _Array | None,
    out: _Array,
    reverse: bool,
    nonlinearity: str,
    lengths: NDArray[np.int64] | None = None,
) -> None:
    """One layer, one direction: out[t] = act(x[t] w_ih^T + b_ih + b_hh + out[t -+ 1] w_hh^T).
    x (T,B,I); h0 (B,H) or None; out (T,B,H), may be a column slice of a wider array;
    lengths (B,) int64 with 1 <= lengths[b] <= T, or None (all T): padded steps give zeros."""

def backward(
    x: _Array,
    h0: _Array | None,
    w_ih: _Array,
    w_hh: _Array,
    h: _Array,
    dh: _Array,
    dh_n: _Array | None,
    dx: _Array | None,
    accumulate_dx: bool,
    dh0: _Array,
    dw_ih: _Array,
    dw_hh: _Array,
    db_ih: _Array | None,
    db_hh: _Array | None,
    reverse: bool,
    nonlinearity: str,
    lengths: NDArray[np.int64] | None = None,
) -> None:
    """BPTT through one forward call (same lengths). Reads dh; writes dx (or adds to it when
    accumulate_dx) and dh0; adds to dw_ih, dw_hh, db_ih, db_hh."""

class StepPlan:
    """Validated weights of a unidirectional RNN for one-step streaming."""

    def __init__(
        self,
        layers: list[tuple[_Array, _Array, _Array | None, _Array | None]],
        nonlinearity: str,
    ) -> None:
        """layers: [(w_ih, w_hh, b_ih or None, b_hh or None)] per layer, bottom first."""
    def __call__(self, x: object, h: object) -> tuple[_Array, _Array]:
        """x (B,I), h (L,B,H) or None -> (y, h_new): h_new a new (L,B,H) array of every layer's
        new state, y its top layer (B,H), a view. Takes any object, as the binding does: what is
        not such an array raises ValueError, and RNN.step then converts it the slow way."""

def linear_forward(a: _Array, w: _Array, b: _Array, z: _Array, activation: str) -> None:
    """z = act(a w^T + b): a (N,I), w (O,I), b (O,), z (N,O) written; act 'none', 'relu',
    'tanh' or 'sigmoid'."""

def linear_backward(
    a: _Array,
    w: _Array,
    dz: _Array,
    da: _Array | None,
    dw: _Array,
    db: _Array,
    activation_in: str,
) -> None:
    """For z = a w^T + b: dw += dz^T a, db += column sums of dz, da = dz w (None: skipped)
    times act_in'(a), the derivative of the activation that produced a."""

def cross_entropy(
    logits: _Array, labels: NDArray[np.int64], scale: float, grad: _Array
) -> float:
    """Softmax cross-entropy of logits (N,C) at int64 labels (N,), times scale, returned;
    grad (N,C) written: scale * (softmax(logits) - one_hot(labels))."""

def sgd_step(
    p: _Array,
    g: _Array,
    buf: _Array | None,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    first: bool,
) -> None:
    """torch.optim.SGD's update of the flat 1-D p from g, in place; buf (the momentum
    buffer, None without momentum) is set from g when first, else updated."""

def adam_step(
    p: _Array,
    g: _Array,
    m: _Array,
    v: _Array,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    step: int,
) -> None:
    """torch.optim.Adam's (decoupled: AdamW's) update at step `step` (>= 1) of the flat 1-D
    p from g, updating the moments m and v in place."""

def sum_squares(g: _Array) -> float:
    """Sum of g's squares in double (1-D g)."""

def scale(g: _Array, c: float) -> None:
    """g *= c in place (1-D g)."""

def set_num_threads(n: int) -> None:
    """Threads for rnncore's kernels (the caller counts as one)."""

def get_num_threads() -> int: ...
def blas_config() -> str: ...
def blas_corename() -> str: ...
def get_isa() -> str: ...
def available_isas() -> list[str]: ...
def set_isa(name: str) -> None: ...
