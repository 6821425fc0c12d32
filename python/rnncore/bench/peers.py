"""Who `rnncore bench` times: rnncore, a numpy loop and torch.nn.RNN, each built from the same
problem (`cases.make_problem`) and exposing `forward()` and `train()` (forward + backward with all
gradients). `train()` returns the step's gradients by name: "grad_x", "grad_h0" and the
parameters' (torch's names, "weight_hh_l0", ...). Before anything is timed, each must agree with
rnncore within `agreement_tolerances`."""

from __future__ import annotations

import copy

import numpy as np

from ..isa import get_isa, set_isa
from .cases import Case
from .numpy_loop import NumpyLoopRNN


class RncoreImpl:
    name = "rnncore"

    def __init__(self, rnn, x, h0, grad):
        self.rnn, self.x, self.h0, self.grad = rnn, x, h0, grad

    def forward(self):
        return self.rnn(self.x, self.h0)[0]

    def train(self):
        self.rnn(self.x, self.h0)
        grad_x, grad_h0 = self.rnn.backward(self.grad)
        return {"grad_x": grad_x, "grad_h0": grad_h0, **self.rnn.grads}


class NumpyImpl:
    name = "numpy"

    def __init__(self, rnn, x, h0, grad):
        p = rnn.parameters()
        self.model = NumpyLoopRNN(p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                                  p["bias_hh_l0"])
        self.x, self.h0, self.grad = x, h0[0], grad

    def forward(self):
        return self.model.forward(self.x, self.h0)

    def train(self):
        self.model.forward(self.x, self.h0)
        dx, dh0, dw_ih, dw_hh, db = self.model.backward(self.grad)
        return {"grad_x": dx, "grad_h0": dh0[None], "weight_ih_l0": dw_ih, "weight_hh_l0": dw_hh,
                "bias_ih_l0": db, "bias_hh_l0": db}


class TorchImpl:
    name = "torch"

    def __init__(self, rnn, x, h0, grad):
        import torch

        self.torch = torch
        self.module = torch.nn.RNN(rnn.input_size, rnn.hidden_size, rnn.num_layers,
                                   bidirectional=rnn.bidirectional,
                                   dtype=getattr(torch, rnn.dtype.name))
        self.module.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.state_dict().items()})
        self.x = torch.from_numpy(x).requires_grad_()
        self.h0 = torch.from_numpy(h0).requires_grad_()
        self.grad = torch.from_numpy(grad)

    def forward(self):
        with self.torch.no_grad():
            return self.module(self.x, self.h0)[0].numpy()

    def train(self):
        self.x.grad = self.h0.grad = None  # fresh each step, as rnncore's
        out, _ = self.module(self.x, self.h0)
        out.backward(self.grad)
        return {"grad_x": self.x.grad.numpy(), "grad_h0": self.h0.grad.numpy(),
                **{name: p.grad.numpy() for name, p in self.module.named_parameters()}}


IMPLS = {impl.name: impl for impl in (RncoreImpl, NumpyImpl, TorchImpl)}


def isa_impl(isa: str) -> type:
    """rnncore on the kernel set `isa`, named "rnncore-<isa>": each call switches to that set
    and back, so it takes turns with the other implementations in the same rounds."""
    class OnKernelSet(RncoreImpl):
        name = f"rnncore-{isa}"

        def __init__(self, rnn, x, h0, grad):  # its own copy: gradients accumulate in the layer
            super().__init__(copy.deepcopy(rnn), x, h0, grad)

        def _on_set(self, call):
            before = get_isa()
            set_isa(isa)
            try:
                return call()
            finally:
                set_isa(before)

        def forward(self):
            return self._on_set(super().forward)

        def train(self):
            return self._on_set(super().train)

    return OnKernelSet


def agreement_tolerances(dtype) -> tuple[float, float]:
    """(rtol, atol) within which implementations must agree before they are timed."""
    return (2e-3, 2e-4) if np.dtype(dtype) == np.float32 else (1e-9, 1e-11)


def copy_grads(grads: dict) -> dict:
    """The gradients of one train() call, copied (rnncore accumulates into its arrays)."""
    return {name: np.array(g) for name, g in grads.items()}


def assert_same_grads(got: dict, want: dict, rtol: float, atol: float, message: str) -> None:
    """Each gradient in `got` against the same name in `want` (which must have it); `message`
    formats the name."""
    for name, g in got.items():
        if name not in want:
            raise AssertionError(message.format(name) + f": no {name} to compare with")
        w = want[name]
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * max(1.0, np.abs(w).max()),
                                   err_msg=message.format(name))


def impl_names(case: Case, with_torch: bool) -> list:
    """rnncore first (the reference of the agreement check and of the ratios); the numpy loop
    only does one layer in one direction."""
    names = ["rnncore"]
    if case.layers == 1 and not case.bidirectional:
        names.append("numpy")
    if with_torch:
        names.append("torch")
    return names


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
