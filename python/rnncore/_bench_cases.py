"""What `rnncore bench` runs: the named shapes, one problem (model, inputs, output gradient) per
shape, and the implementations timed on it (rnncore, a numpy loop, torch.nn.RNN), each exposing
`forward()` and `train()` (forward + backward with all gradients). `train()` returns the step's
gradients by name: "grad_x", "grad_h0" and the parameters' (torch's names, "weight_hh_l0", ...)."""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import threads as rnncore_threads
from ._numpy_loop import NumpyLoopRNN
from .rnn import RNN

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


@dataclass
class Timing:
    """One implementation's medians at one thread count (the benchmarks' results extend it)."""
    case: str
    impl: str
    threads: int
    dtype: str
    forward_ms: float
    train_ms: float
    forward_gflops: float
    train_gflops: float


ROUNDS = 6  # rounds of blocks of calls, every implementation timed in each
QUIET_S = 0.3  # pause before each block: longer than BLAS/OpenMP workers spin after a call


def seconds(fn) -> float:
    """Wall time of one call of fn."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class CallTimes:
    """time_calls' result: seconds per call of each implementation, as the median over all its
    calls (`median`) and as the median of its block in each round (`rounds`)."""
    median: dict[str, float]
    rounds: list[dict[str, float]]

    def ratio(self, num: str, den: str) -> float:
        """t(num) / t(den) as the median over the rounds of the ratio of their blocks: blocks
        a second or two apart, so drift of the machine that lasts longer cancels out."""
        return statistics.median(r[num] / r[den] for r in self.rounds)


def time_calls(impls, what: str, min_reps: int, budget_s: float) -> CallTimes:
    """Seconds per call of each impl's `what`.

    Implementations take turns in blocks of calls (ROUNDS rounds, one block of each per round),
    so slow drift of a shared machine hits them alike; each block starts after a pause, so that
    the worker threads another implementation left spinning (OpenBLAS, OpenMP) have gone to sleep
    and take no core from it. A slow spell of a few seconds can still cover one implementation's
    blocks and not another's (S4's training on 2 threads once read 341 ms for rnncore, a third
    slower than in the runs before and after, against numpy's 278 ms): compare implementations
    with `CallTimes.ratio`, round by round.
    """
    times: dict[str, list[float]] = {impl.name: [] for impl in impls}
    rounds: list[dict[str, float]] = []
    block_budget = budget_s / ROUNDS
    for _ in range(ROUNDS):
        rounds.append({})
        for impl in impls:
            fn = getattr(impl, what)
            time.sleep(QUIET_S)
            fn()  # warm-up: caches, pages, thread pools
            block: list[float] = []
            start = time.perf_counter()
            while len(block) < -(-min_reps // ROUNDS) or time.perf_counter() - start < block_budget:
                block.append(seconds(fn))
                if len(block) >= 10 * min_reps and time.perf_counter() - start > block_budget / 4:
                    break
            times[impl.name] += block
            rounds[-1][impl.name] = statistics.median(block)
    return CallTimes({name: statistics.median(t) for name, t in times.items()}, rounds)


def time_paired(a, b, what: str, min_pairs: int, budget_s: float, settle_b: bool = False) -> tuple:
    """Median seconds per call of a's and b's `what`, and the median of a/b over adjacent calls.

    The two run call by call in turn (in ROUNDS blocks, after a pause like time_calls), so each
    ratio compares calls a fraction of a second apart: the drift of a shared machine, which moves
    whole blocks by 10-30% here, cancels out of it. With `settle_b`, each timed call of b comes
    after a pause of QUIET_S (the worker threads a left spinning go idle) and an untimed call of b
    (which brings back into the caches what a evicted, and wakes b's own threads).
    """
    fa, fb = getattr(a, what), getattr(b, what)
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(ROUNDS):
        time.sleep(QUIET_S)
        fa(), fb()  # warm-up
        start, calls = time.perf_counter(), 0
        while calls < -(-min_pairs // ROUNDS) or time.perf_counter() - start < budget_s / ROUNDS:
            ta.append(seconds(fa))
            if settle_b:
                time.sleep(QUIET_S)
                fb()
            tb.append(seconds(fb))
            calls += 1
    ratio = statistics.median(x / y for x, y in zip(ta, tb))
    return statistics.median(ta), statistics.median(tb), ratio


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
    from .isa import get_isa, set_isa

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


def numpy_threads_limited(n: int) -> bool:
    """Whether numpy's BLAS can be held to n threads: it runs on every core unless threadpoolctl
    (the `bench` extra) limits it, so without threadpoolctl its sgemm on "1 thread" of a 2-core
    machine ran on 2 (it read 285 GFLOP/s against 146 held to 1, on a Xeon, 2026-12-07)."""
    if n >= (os.cpu_count() or 1):
        return True
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def limited_threads(n: int):
    """Run rnncore, numpy's BLAS and torch (if imported) with n threads each (numpy's needs
    threadpoolctl); restore the previous counts afterwards."""
    torch = sys.modules.get("torch")
    before = rnncore_threads.get_num_threads(), torch and torch.get_num_threads()
    rnncore_threads.set_num_threads(n)
    if torch:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        blas_limit = nullcontext()
    else:
        blas_limit = threadpool_limits(n, user_api="blas")
    try:
        with blas_limit:
            rnncore_threads.set_num_threads(n)  # threadpool_limits also lowered ours; keep it n
            yield
    finally:
        rnncore_threads.set_num_threads(before[0])
        if torch:
            torch.set_num_threads(before[1])
