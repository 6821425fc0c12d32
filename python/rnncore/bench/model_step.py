"""The "model step" section of `rnncore bench` (``--model-step``): whole training steps of small
models, as a user writes them, against the same model in torch, in the same run:

    pred = model(x); loss, g = loss_fn(pred, y); model.zero_grad()
    model.backward(g, input_grad=False); opt.step()

(input_grad=False: no gradient w.r.t. x, which torch's step does not compute either: its x does
not require grad)

at two shapes: the forecaster ``RNNModel(1, 32, 1, num_layers=2, head=(16,), batch_first=True)``
(B=32 windows of T=24 steps, MSE, Adam), overhead-bound; and a character model
``RNNModel(64, 128, 64, head=())`` on one-hot input (B=32, T=64, cross-entropy, Adam),
GEMM-bound, for which the table adds GFLOP/s and % of numpy's 1-thread sgemm rate. Before timing,
both take the same steps from the same weights and must give the same losses and parameters. The
forecaster's row also times `rnncore.fit` over the same batches against the bare steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import losses, optim
from ..model import RNNModel
from ..training import fit
from .table import SgemmPeak
from .timing import limited_threads, numpy_threads_limited, time_calls, time_paired

CHECK_STEPS = 5  # steps both take from the same weights before timing
PEAK_PAIRS = 30


@dataclass
class StepCase:
    name: str
    model_args: tuple
    model_kwargs: dict
    B: int
    T: int
    loss: str  # "mse" or "cross_entropy"

    def flop(self) -> float:
        """FLOP of one training step: the RNN's and the head's GEMMs, forward 2*rows*in*out per
        weight, backward twice that (input and weight gradients), less the gradient w.r.t. x
        (2*rows*I*H), which neither step computes; element-wise work not counted. (Counted with
        it, as issue 20 did, the char model's step is 403 MFLOP; without, 369.)"""
        I, H, O = self.model_args
        L = self.model_kwargs.get("num_layers", 1)
        widths = (H, *self.model_kwargs.get("head", ()), O)
        rnn = H * (I + H) + (L - 1) * H * (2 * H)
        head = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        return 2 * self.B * self.T * (3 * (rnn + head) - I * H)


CASES = [
    StepCase("forecaster", (1, 32, 1), dict(num_layers=2, head=(16,), batch_first=True), 32, 24,
             "mse"),
    StepCase("char", (64, 128, 64), dict(head=()), 32, 64, "cross_entropy"),
]


def make_data(case: StepCase, seed: int = 0):
    """x and the targets, laid out for the model: (B, T, I) batch-first, else (T, B, I)."""
    rng = np.random.default_rng(seed)
    I, _, O = case.model_args
    lead = (case.B, case.T) if case.model_kwargs.get("batch_first") else (case.T, case.B)
    if case.loss == "mse":
        return rng.standard_normal((*lead, I)).astype(np.float32), \
            rng.standard_normal((*lead, O)).astype(np.float32)
    x = np.zeros((*lead, I), np.float32)  # one-hot characters
    np.put_along_axis(x, rng.integers(0, I, size=(*lead, 1)), 1.0, axis=-1)
    return x, rng.integers(0, O, size=lead)


class RnncoreStep:
    name = "rnncore"

    def __init__(self, case: StepCase, seed: int = 0):
        self.model = RNNModel(*case.model_args, **dict(case.model_kwargs, seed=seed))
        self.opt = optim.Adam(self.model, lr=1e-3)
        self.loss_fn = losses.mse if case.loss == "mse" else losses.cross_entropy
        self.x, self.y = make_data(case)
        self.last_loss = 0.0

    def step(self) -> None:
        pred = self.model(self.x)
        self.last_loss, grad = self.loss_fn(pred, self.y)
        self.model.zero_grad()
        self.model.backward(grad, input_grad=False)  # as torch's: x does not require grad
        self.opt.step()

    train = step  # the name time_paired calls

    def parameters(self) -> dict:
        return self.model.parameters()


class TorchStep:
    name = "torch"

    def __init__(self, case: StepCase, model: RNNModel):
        import torch

        self.torch = torch
        self.module = model.to_torch()
        self.opt = torch.optim.Adam(self.module.parameters(), lr=1e-3)
        x, y = make_data(case)
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)
        self.mse = case.loss == "mse"
        self.last_loss = 0.0

    def step(self) -> None:
        F = self.torch.nn.functional
        pred, _ = self.module(self.x)
        if self.mse:
            loss = F.mse_loss(pred, self.y)
        else:
            loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), self.y.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.last_loss = float(loss.detach())

    def parameters(self) -> dict:
        return {k: v.detach().numpy() for k, v in self.module.state_dict().items()}


def check_agreement(ours: RnncoreStep, theirs: TorchStep, steps: int = CHECK_STEPS) -> None:
    """The same losses after each of `steps` steps from the same weights (rtol 1e-5), and the
    same parameters after them: 99.9% of each array within rtol 1e-4 / atol 1e-5, and all within
    2 * lr * steps. Adam's first steps move a parameter by about lr * sign(grad), so a gradient
    that is zero up to float rounding (the two libraries round differently) may step either way;
    a real disagreement moves the losses and most parameters."""
    for i in range(steps):
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.last_loss, theirs.last_loss, rtol=1e-5, atol=1e-6,
                                   err_msg=f"loss at step {i + 1}")
    want = theirs.parameters()
    bound = 2 * ours.opt.lr * steps
    for name, p in ours.parameters().items():
        diff = np.abs(p - want[name])
        close = diff <= 1e-5 + 1e-4 * np.abs(want[name])
        assert close.mean() >= 0.999 and diff.max() <= bound, (
            f"{name} after {steps} steps: {np.count_nonzero(~close)} of {p.size} elements differ "
            f"beyond rtol 1e-4 / atol 1e-5, by up to {diff.max():.3g} (bound {bound:.3g})")


class FitEpoch:
    """One `fit` epoch over N = batches * B windows (unshuffled, so that both visit the same
    batches), and the same steps written bare."""

    def __init__(self, case: StepCase, batches: int = 32, seed: int = 0):
        self.model = RNNModel(*case.model_args, **dict(case.model_kwargs, seed=seed))
        self.opt = optim.Adam(self.model, lr=1e-3)
        rng = np.random.default_rng(seed)
        I, _, O = case.model_args
        N = batches * case.B
        self.X = rng.standard_normal((N, case.T, I)).astype(np.float32)
        self.Y = rng.standard_normal((N, case.T, O)).astype(np.float32)
        self.B = case.B
        self.batches = [(self.X[i:i + case.B], self.Y[i:i + case.B]) for i in range(0, N, case.B)]

    def fit(self) -> None:
        fit(self.model, self.X, self.Y, loss="mse", optimizer=self.opt, epochs=1,
            batch_size=self.B, shuffle=False, progress=False)

    def bare(self) -> None:
        model, opt = self.model, self.opt
        for x, y in self.batches:
            pred = model(x)
            _, grad = losses.mse(pred, y)
            opt.zero_grad()
            model.backward(grad)
            opt.step()


class _Named:
    def __init__(self, name: str, fn):
        self.name, self.step = name, fn


@dataclass
class StepResult:
    case: str
    rnncore_ms: float
    torch_ms: float | None
    ratio: float | None  # torch time / rnncore time, median over rounds
    gflops: float
    percent_sgemm: float | None = None
    sgemm_gflops: float | None = None
    fit_over_bare: float | None = None  # fit's time / the bare steps' time
    extra: dict = field(default_factory=dict)


def bench_model_step(with_torch: bool, min_reps: int = 20, budget_s: float = 2.0,
                     cases=CASES) -> list:
    results = []
    if with_torch:
        import torch  # noqa: F401  (before limited_threads, which then holds it to 1 thread too)
    with limited_threads(1):
        for case in cases:
            ours = RnncoreStep(case)
            impls: list = [ours]
            theirs = None
            if with_torch:
                theirs = TorchStep(case, ours.model)
                check_agreement(ours, theirs)
                impls.append(theirs)
            t = time_calls(impls, "step", min_reps, budget_s)
            r = StepResult(case.name, t.median["rnncore"] * 1e3,
                           t.median["torch"] * 1e3 if theirs else None,
                           t.ratio("torch", "rnncore") if theirs else None,
                           case.flop() / t.median["rnncore"] / 1e9)
            if case.loss == "cross_entropy" and numpy_threads_limited(1):
                sgemm_s, _, sgemm_over_step = time_paired(SgemmPeak(), ours, "train", PEAK_PAIRS,
                                                          budget_s, settle_b=True)
                r.sgemm_gflops = SgemmPeak.flop / sgemm_s / 1e9
                r.percent_sgemm = 100 * case.flop() / SgemmPeak.flop * sgemm_over_step
            if case.loss == "mse":
                epoch = FitEpoch(case)
                ft = time_calls([_Named("fit", epoch.fit), _Named("bare", epoch.bare)], "step",
                                max(3, min_reps // 4), budget_s)
                r.fit_over_bare = ft.ratio("fit", "bare")
            results.append(r)
    return results


def format_model_step(results) -> str:
    head = (f"{'model step (1 thread)':<22} {'rnncore ms':>10} {'torch ms':>9} {'torch/rnncore':>13} "
            f"{'GF/s':>6} {'%sgemm':>7} {'sgemm':>6} {'fit/bare':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        def fmt(v, spec, suffix=""):
            return "-" if v is None else f"{v:{spec}}{suffix}"
        lines.append(f"{r.case:<22} {r.rnncore_ms:>10.3f} {fmt(r.torch_ms, '.3f'):>9} "
                     f"{fmt(r.ratio, '.2f', 'x'):>13} {r.gflops:>6.1f} "
                     f"{fmt(r.percent_sgemm, '.0f', '%'):>7} {fmt(r.sgemm_gflops, '.1f'):>6} "
                     f"{fmt(r.fit_over_bare, '.3f'):>8}")
    lines.append("whole steps: forward, loss, zero_grad, backward, Adam; forecaster RNNModel(1, 32, "
                 "1, num_layers=2, head=(16,), batch_first=True) B=32 T=24 MSE;\nchar "
                 "RNNModel(64, 128, 64) one-hot B=32 T=64 cross-entropy; fit/bare: one fit epoch "
                 "(32 batches, shuffle=False) over the same steps written bare")
    return "\n".join(lines)

