"""The hand-written baseline the benchmark compares against: one tanh RNN layer as a plain numpy
loop (one matmul and one tanh per step forward, the same backward), float32 or float64."""

from __future__ import annotations

import numpy as np


class NumpyLoopRNN:
    """Single-layer, single-direction tanh RNN with the parameters of an rnncore.RNN layer 0."""

    def __init__(self, w_ih, w_hh, b_ih, b_hh):
        self.w_ih, self.w_hh, self.b = w_ih, w_hh, b_ih + b_hh

    def forward(self, x, h0):
        """x (T,B,I), h0 (B,H) -> h (T,B,H)."""
        self.x, self.h0 = x, h0
        h = x @ self.w_ih.T + self.b  # input projection of all steps at once
        prev = h0
        for t in range(len(h)):
            h[t] += prev @ self.w_hh.T
            np.tanh(h[t], out=h[t])
            prev = h[t]
        self.h = h
        return h

    def backward(self, dh):
        """dh (T,B,H) = dL/dh -> (dx, dh0, dw_ih, dw_hh, db)."""
        h, dz = self.h, np.empty_like(self.h)
        carry = np.zeros_like(self.h0)
        for t in reversed(range(len(h))):
            dz[t] = (dh[t] + carry) * (1 - h[t] * h[t])  # h = tanh(z)
            carry = dz[t] @ self.w_hh
        flat = dz.reshape(-1, dz.shape[-1])
        prev = np.concatenate([self.h0[None], h[:-1]]).reshape(flat.shape)
        dw_ih = flat.T @ self.x.reshape(-1, self.x.shape[-1])
        dw_hh = flat.T @ prev
        dx = (flat @ self.w_ih).reshape(self.x.shape)
        return dx, carry, dw_ih, dw_hh, flat.sum(0)
