"""`rnncore bench --lengths`: one batch of sequences of different lengths, run with ``lengths=``
against the same padded batch run in full, in rnncore and in torch.

B=64 sequences with lengths drawn uniformly from [10, 200] (seeded), zero-padded to T=200;
I=H=256, one tanh layer. Four implementations on the same x and output gradient:

- rnncore lengths: ``rnn(x, lengths=lengths)``, padded steps skipped;
- rnncore padded: ``rnn(x)``, every step of every sequence;
- torch packed: ``pack_padded_sequence(x, lengths, enforce_sorted=False)`` -> nn.RNN ->
  ``pad_packed_sequence(total_length=T)``, the packing timed as a user pays it;
- torch padded: ``nn.RNN(x)``.

Forward, and training step (forward + backward with all gradients). Before timing, rnncore
lengths is checked against torch packed (output, grad_x and every parameter's gradient) and
rnncore padded against torch padded; without torch, rnncore lengths against rnncore padded on the
valid steps.
GFLOP/s count the valid steps only, 2*sum(lengths)*H*(I+H) per forward and 3x that per training
step, so padded implementations show the work they waste as a lower rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lengths import length_mask
from ..rnn import RNN
from .peers import agreement_tolerances, assert_same_grads, copy_grads
from .timing import Timing, limited_threads, time_calls, time_paired

CASE = dict(T=200, B=64, I=256, H=256, low=10, high=200, seed=0)
PAIRS = 30  # paired calls at least, more than the other timings take: this ratio is the target


@dataclass
class LengthsResult(Timing):  # GFLOP/s count the valid steps only
    valid_fraction: float  # sum(lengths) / (B*T)
    # rnncore lengths only: median over paired calls of its time / rnncore padded's
    forward_vs_padded: float | None = None
    train_vs_padded: float | None = None


def make_problem(T, B, I, H, low, high, seed, dtype):
    """rnn, x (T, B, I) zero at padded steps, lengths (B,), grad_output (T, B, H) (nonzero at
    padded steps too: the lengths implementations must ignore it)."""
    rnn = RNN(I, H, dtype=dtype, seed=0)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high + 1, B)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    x[~length_mask(lengths, T)] = 0
    grad = rng.standard_normal((T, B, H)).astype(dtype)
    return rnn, x, lengths, grad


class RncoreLengths:
    name = "rnncore lengths"

    def __init__(self, rnn, x, lengths, grad):
        self.rnn, self.x, self.lengths, self.grad = rnn, x, lengths, grad

    def _call(self):
        return self.rnn(self.x, lengths=self.lengths)

    def forward(self):
        return self._call()[0]

    def train(self):
        self.rnn.zero_grad()  # as torch's below: the two rnncore implementations share rnn
        self._call()
        grad_x, _ = self.rnn.backward(self.grad)
        return {"grad_x": grad_x, **self.rnn.grads}


class RncorePadded(RncoreLengths):
    name = "rnncore padded"

    def _call(self):
        return self.rnn(self.x)


class TorchPacked:
    name = "torch packed"

    def __init__(self, rnn, x, lengths, grad):
        import torch
        from torch.nn.utils import rnn as rnn_utils

        self.torch, self.utils = torch, rnn_utils
        self.module = torch.nn.RNN(rnn.input_size, rnn.hidden_size,
                                   dtype=getattr(torch, rnn.dtype.name))
        self.module.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.state_dict().items()})
        self.x = torch.from_numpy(x).requires_grad_()
        self.lengths = torch.from_numpy(lengths)  # int64 on the CPU, as pack_padded_sequence wants
        self.grad = torch.from_numpy(grad)
        self.T = x.shape[0]

    def _call(self):
        packed = self.utils.pack_padded_sequence(self.x, self.lengths, enforce_sorted=False)
        out, _ = self.module(packed)
        return self.utils.pad_packed_sequence(out, total_length=self.T)[0]

    def forward(self):
        with self.torch.no_grad():
            return self._call().numpy()

    def train(self):
        self.x.grad = None
        self.module.zero_grad()
        self._call().backward(self.grad)
        return {"grad_x": self.x.grad.numpy(),
                **{name: p.grad.numpy() for name, p in self.module.named_parameters()}}


class TorchPadded(TorchPacked):
    name = "torch padded"

    def _call(self):
        return self.module(self.x)[0]


def check_agreement(impls: dict, lengths: np.ndarray, dtype) -> None:
    """The pairs that compute the same thing must agree before anything is timed."""
    rtol, atol = agreement_tolerances(dtype)

    # forward output and gradients (fresh: one train() per impl, copied, as two share an rnn)
    got = {name: (np.array(impl.forward()), copy_grads(impl.train()))
           for name, impl in impls.items()}
    pairs = [("torch packed", "rnncore lengths"), ("torch padded", "rnncore padded")]
    for other, ref in pairs:
        if other in got:
            (out, grads), (want_out, want_grads) = got[other], got[ref]
            np.testing.assert_allclose(out, want_out, rtol=rtol, atol=atol,
                                       err_msg=f"lengths: {other} forward disagrees with {ref}")
            assert_same_grads(grads, want_grads, rtol, atol,
                              f"lengths: {other} {{}} disagrees with {ref}")
    # Torch or not: one forward direction gives the padded run's outputs on the valid steps, 0
    # after, and the padded run's gradients when the output gradient is 0 at the padded steps
    # (nothing then flows back from them).
    ours, ours_grads = got["rnncore lengths"]
    valid = length_mask(lengths, len(ours))
    np.testing.assert_allclose(ours[valid], got["rnncore padded"][0][valid],
                               rtol=rtol, atol=atol,
                               err_msg="lengths: rnncore lengths forward disagrees with rnncore "
                                       "padded on the valid steps")
    if np.any(ours[~valid] != 0):
        raise AssertionError("lengths: rnncore lengths forward is not 0 at padded steps")
    padded = impls["rnncore padded"]
    masked = RncorePadded(padded.rnn, padded.x, lengths, padded.grad * valid[..., None])
    assert_same_grads(ours_grads, copy_grads(masked.train()), rtol, atol,
                      "lengths: rnncore lengths {} disagrees with rnncore padded under a masked "
                      "output gradient")


def bench_lengths(thread_counts, dtype, min_reps: int, budget_s: float, with_torch: bool, *,
                  T: int, B: int, I: int, H: int, low: int, high: int, seed: int) -> list:
    """Check, then time each implementation at each thread count; the case is CASE's keys."""
    rnn, x, lengths, grad = make_problem(T, B, I, H, low, high, seed, dtype)
    classes = [RncoreLengths, RncorePadded] + ([TorchPacked, TorchPadded] if with_torch else [])
    impls = {cls.name: cls(rnn, x, lengths, grad) for cls in classes}
    label = f"T{T} B{B} I{I} H{H}, lengths uniform in [{low}, {high}] (seed {seed})"
    valid = float(lengths.sum()) / (B * T)
    flop = 2 * int(lengths.sum()) * H * (I + H)
    results = []
    for n in thread_counts:
        with limited_threads(n):
            check_agreement(impls, lengths, dtype)
            # rnncore lengths against padded in paired calls (the ratio is the target); torch's
            # two, far slower, in blocks.
            ours, padded = impls["rnncore lengths"], impls["rnncore padded"]
            fwd: dict[str, float] = {}
            train: dict[str, float] = {}
            paired: dict[str, float] = {}
            others = [impl for impl in impls.values() if impl not in (ours, padded)]
            for what, times in (("forward", fwd), ("train", train)):
                times[ours.name], times[padded.name], paired[what] = time_paired(
                    ours, padded, what, max(min_reps, PAIRS), budget_s)
                times.update(time_calls(others, what, min_reps, budget_s).median)
        for name in impls:
            ratios = (paired["forward"], paired["train"]) if name == ours.name else (None, None)
            results.append(LengthsResult(label, name, n, np.dtype(dtype).name, fwd[name] * 1e3,
                                         train[name] * 1e3, flop / fwd[name] / 1e9,
                                         3 * flop / train[name] / 1e9, valid, *ratios))
    return results


def format_lengths(results: list) -> str:
    valid = results[0].valid_fraction
    head = f"{'impl':<16} {'thr':>3} {'fwd ms':>9} {'train ms':>9} {'fwd GF/s':>9} {'trn GF/s':>9}"
    lines = [f"variable lengths: {results[0].case}, 1 layer tanh, {results[0].dtype}",
             "medians; GF/s count the valid steps only", head, "-" * len(head)]
    for n in dict.fromkeys(r.threads for r in results):
        by = {r.impl: r for r in results if r.threads == n}
        for r in by.values():
            lines.append(f"{r.impl:<16} {r.threads:>3} {r.forward_ms:>9.3f} {r.train_ms:>9.3f} "
                         f"{r.forward_gflops:>9.1f} {r.train_gflops:>9.1f}")
        ours = by["rnncore lengths"]
        lines.append(f"  {n} thread(s): rnncore lengths / padded time (median of paired calls): "
                     f"forward {ours.forward_vs_padded:.3f}, train {ours.train_vs_padded:.3f}  "
                     f"(sum(lengths)/(B*T) = {valid:.3f}; target <= {1.1 * valid:.3f})")
        if "torch packed" in by:
            packed = by["torch packed"]
            lines.append(f"  {n} thread(s): torch packed / rnncore lengths time: forward "
                         f"{packed.forward_ms / ours.forward_ms:.2f}x, train "
                         f"{packed.train_ms / ours.train_ms:.2f}x")
    return "\n".join(lines)
