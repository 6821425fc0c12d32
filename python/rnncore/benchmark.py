"""`rnncore bench`: rnncore against a numpy loop and torch.nn.RNN, in one run on the same inputs.

Every implementation's forward output and gradients are checked against rnncore's before anything
is timed. Implementations alternate call by call so that machine noise hits them alike; the table
reports medians, GFLOP/s from the FLOP count (forward 2*T*B*H*(I+H) per layer and direction,
training step 3x that) and the ratios torch/rnncore and numpy/rnncore of the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from . import threads as rnncore_threads
from ._numpy_loop import NumpyLoopRNN
from .rnn import RNN

# T steps, B batch, I input, H hidden (one layer unless said).
SHAPES = {
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
    def forward_flop(self) -> int:
        D = 2 if self.bidirectional else 1
        total, width = 0, self.I
        for _ in range(self.layers):
            total += D * 2 * self.T * self.B * self.H * (width + self.H)
            width = D * self.H
        return total

    def label(self) -> str:
        extra = f" L{self.layers}" + (" bi" if self.bidirectional else "") if self.layers > 1 or self.bidirectional else ""
        return f"{self.name} T{self.T} B{self.B} I{self.I} H{self.H}{extra}"


@dataclass
class Result:
    case: str
    impl: str
    threads: int
    dtype: str
    forward_ms: float
    train_ms: float
    forward_gflops: float
    train_gflops: float
    ratios: dict = field(default_factory=dict)  # "torch_forward": t_torch / t_rnncore, ...


class RncoreImpl:
    name = "rnncore"

    def __init__(self, rnn, x, h0, grad):
        self.rnn, self.x, self.h0, self.grad = rnn, x, h0, grad

    def forward(self):
        return self.rnn(self.x, self.h0)[0]

    def train(self):
        self.rnn(self.x, self.h0)
        grad_x, _ = self.rnn.backward(self.grad)
        return grad_x, self.rnn.grads["weight_hh_l0"]


class NumpyImpl:
    name = "numpy"

    def __init__(self, rnn, x, h0, grad):
        p = rnn.parameters()
        self.model = NumpyLoopRNN(p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
        self.x, self.h0, self.grad = x, h0[0], grad

    def forward(self):
        return self.model.forward(self.x, self.h0)

    def train(self):
        self.model.forward(self.x, self.h0)
        dx, _, _, dw_hh, _ = self.model.backward(self.grad)
        return dx, dw_hh


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
        out, _ = self.module(self.x, self.h0)
        out.backward(self.grad)
        return self.x.grad.numpy(), self.module.weight_hh_l0.grad.numpy()


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def limited_threads(n: int):
    """Run rnncore, numpy's BLAS and torch with n threads each (numpy's needs threadpoolctl)."""
    rnncore_threads.set_num_threads(n)
    if torch_available():
        import torch

        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(n, user_api="blas"):
        rnncore_threads.set_num_threads(n)  # threadpool_limits also lowered ours; keep it n
        yield


def sgemm_gflops(reps: int = 5) -> float:
    """The machine's GEMM rate as numpy sees it: float32 1024^3 matmul, median of reps."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    a @ a
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * 1024**3 / statistics.median(times) / 1e9


def check_agreement(impls, dtype) -> None:
    """Every implementation must give rnncore's forward output and gradients before timing."""
    rtol, atol = (2e-3, 2e-4) if dtype == np.float32 else (1e-9, 1e-11)
    ref = impls[0]
    want_out, want_grads = ref.forward(), ref.train()
    for impl in impls[1:]:
        np.testing.assert_allclose(impl.forward(), want_out, rtol=rtol, atol=atol,
                                   err_msg=f"{impl.name} forward disagrees with rnncore")
        for got, want, what in zip(impl.train(), want_grads, ("grad_x", "grad_w_hh")):
            # parameter gradients accumulate over calls: compare per-call increments
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, np.abs(want).max()),
                                       err_msg=f"{impl.name} {what} disagrees with rnncore")


def time_calls(impls, what: str, min_reps: int, budget_s: float) -> dict:
    """Median seconds per call of each impl's `what`, alternating impls call by call."""
    for impl in impls:  # warm-up
        getattr(impl, what)()
    times = {impl.name: [] for impl in impls}
    start = time.perf_counter()
    while True:
        for impl in impls:
            fn = getattr(impl, what)
            t0 = time.perf_counter()
            fn()
            times[impl.name].append(time.perf_counter() - t0)
        done = len(times[impls[0].name])
        if done >= min_reps and time.perf_counter() - start > budget_s:
            break
        if done >= 10 * min_reps and time.perf_counter() - start > budget_s / 4:
            break
    return {name: statistics.median(t) for name, t in times.items()}


def bench_case(case: Case, n_threads: int, dtype, min_reps: int, budget_s: float, with_torch: bool):
    rnn = RNN(case.I, case.H, num_layers=case.layers, bidirectional=case.bidirectional, dtype=dtype,
              seed=0)
    rng = np.random.default_rng(1)
    D = 2 if case.bidirectional else 1
    x = rng.standard_normal((case.T, case.B, case.I)).astype(dtype)
    h0 = rng.standard_normal((case.layers * D, case.B, case.H)).astype(dtype) * 0.5
    grad = rng.standard_normal((case.T, case.B, D * case.H)).astype(dtype)
    impls = [RncoreImpl(rnn, x, h0, grad)]
    if case.layers == 1 and not case.bidirectional:
        impls.append(NumpyImpl(rnn, x, h0, grad))
    if with_torch:
        impls.append(TorchImpl(rnn, x, h0, grad))
    with limited_threads(n_threads):
        check_agreement(impls, dtype)
        fwd = time_calls(impls, "forward", min_reps, budget_s)
        train = time_calls(impls, "train", min_reps, budget_s)
    results = []
    for impl in impls:
        results.append(Result(case.label(), impl.name, n_threads, np.dtype(dtype).name,
                              fwd[impl.name] * 1e3, train[impl.name] * 1e3,
                              case.forward_flop / fwd[impl.name] / 1e9,
                              3 * case.forward_flop / train[impl.name] / 1e9))
    ours = results[0]
    for other in results[1:]:
        ours.ratios[f"{other.impl}_forward"] = other.forward_ms / ours.forward_ms
        ours.ratios[f"{other.impl}_train"] = other.train_ms / ours.train_ms
    return results


def format_table(results, peak_by_threads) -> str:
    head = (f"{'case':<30} {'impl':<8} {'thr':>3} {'fwd ms':>9} {'train ms':>9} {'fwd GF/s':>9} "
            f"{'trn GF/s':>9} {'%peak':>6}  ratios (other time / rnncore time)")
    lines = [head, "-" * len(head)]
    for r in results:
        peak = peak_by_threads[r.threads]
        ratios = "  ".join(f"{k} {v:.2f}x" for k, v in r.ratios.items())
        lines.append(f"{r.case:<30} {r.impl:<8} {r.threads:>3} {r.forward_ms:>9.3f} {r.train_ms:>9.3f} "
                     f"{r.forward_gflops:>9.1f} {r.train_gflops:>9.1f} {100 * r.train_gflops / peak:>5.0f}%  {ratios}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", nargs="+", default=["S1", "S2", "S3"],
                        help=f"named shapes ({', '.join(SHAPES)}) or T,B,I,H (default: S1 S2 S3)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1], help="thread counts (default: 1)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--reps", type=int, default=10, help="minimum timed calls per implementation")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per shape, mode and thread count (default: 1)")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def parse_case(text: str) -> Case:
    if text in SHAPES:
        return Case(text, **SHAPES[text])
    try:
        T, B, I, H = (int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"rnncore bench: unknown shape {text!r}: expected one of "
                         f"{', '.join(SHAPES)} or T,B,I,H") from None
    return Case("custom", T, B, I, H)


def run(args: argparse.Namespace) -> int:
    cases = [parse_case(s) for s in args.shapes]
    with_torch = torch_available() and not args.no_torch
    dtype = np.dtype(args.dtype)
    results, peaks = [], {}
    for n in args.threads:
        with limited_threads(n):
            peaks[n] = sgemm_gflops()
        print(f"{n} thread(s): numpy sgemm 1024^3 = {peaks[n]:.1f} GFLOP/s (the machine's peak for %peak)")
        for case in cases:
            results += bench_case(case, n, dtype, args.reps, args.budget, with_torch)
    print(f"\n{dtype.name}, medians; torch {'included' if with_torch else 'not installed (pip install torch==2.13.0)'}")
    print(format_table(results, peaks))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peaks, "results": [asdict(r) for r in results]}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0
