"""What `rnncore bench` runs: the named shapes, and one problem per shape (the model, the input,
the initial state and the output gradient) that every implementation is built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..rnn import RNN

# T steps, B batch, I input, H hidden (one layer unless said).
SHAPES: dict[str, dict[str, Any]] = {
    "S1": dict(T=100, B=1, I=32, H=32),
    "S2": dict(T=100, B=32, I=64, H=128),
    "S3": dict(T=100, B=64, I=256, H=256),
    "S4": dict(T=50, B=64, I=512, H=1024),
    "bi2": dict(T=100, B=32, I=64, H=128, layers=2, bidirectional=True),
    "long": dict(T=1000, B=8, I=64, H=64),
}


@dataclass
class Case:
    name: str
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    bidirectional: bool = False

    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def forward_flop(self) -> int:
        total, width = 0, self.I
        for _ in range(self.layers):
            total += self.D * 2 * self.T * self.B * self.H * (width + self.H)
            width = self.D * self.H
        return total

    def label(self) -> str:
        extra = ""
        if self.layers > 1 or self.bidirectional:
            extra = f" L{self.layers}" + (" bi" if self.bidirectional else "")
        return f"{self.name} T{self.T} B{self.B} I{self.I} H{self.H}{extra}"


def parse_case(text: str) -> Case:
    if text in SHAPES:
        return Case(text, **SHAPES[text])
    try:
        T, B, I, H = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"rnncore bench: unknown shape {text!r}: expected one of "
                         f"{', '.join(SHAPES)} or T,B,I,H") from None
    return Case("custom", T, B, I, H)


def make_problem(case: Case, dtype):
    """The model and data every implementation of `case` is built from: (rnn, x, h0, grad)."""
    rnn = RNN(case.I, case.H, num_layers=case.layers, bidirectional=case.bidirectional,
              dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((case.T, case.B, case.I)).astype(dtype)
    h0 = rng.standard_normal((case.layers * case.D, case.B, case.H)).astype(dtype) * 0.5
    grad = rng.standard_normal((case.T, case.B, case.D * case.H)).astype(dtype)
    return rnn, x, h0, grad
