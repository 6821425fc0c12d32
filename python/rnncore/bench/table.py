"""The main table of `rnncore bench`: every implementation on one shape at one thread count.

Every implementation's forward output and gradients (grad_x, grad_h0 and every parameter's) are
checked against rnncore's before anything is timed. Implementations take turns in rounds of
blocks of calls, each block after a pause that lets the worker threads of the one before go idle;
the table reports medians, GFLOP/s from the FLOP count (forward 2*T*B*H*(I+H) per layer and
direction, training step 3x that), the ratios torch/rnncore and numpy/rnncore of the same run (the
median over the rounds of the ratio of the two blocks in each: `CallTimes.ratio`), and rnncore's
%peak: its training step's rate over numpy's sgemm 1024^3 (`SgemmPeak`), the two timed call by
call in turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cases import Case, make_problem
from .memory import train_step_extra_mb
from .peers import IMPLS, agreement_tolerances, assert_same_grads, copy_grads, impl_names, isa_impl
from .timing import Timing, limited_threads, numpy_threads_limited, time_calls, time_paired


PEAK_PAIRS = 30  # training steps paired with an sgemm each, at least, for %peak


@dataclass
class Result(Timing):
    ratios: dict = field(default_factory=dict)  # "torch_forward": t_torch / t_rnncore, ...
    train_extra_mb: float | None = None  # peak memory a training step adds (--memory)
    # rnncore's row only (bench_case): the median sgemm rate in the %peak pairs, and the median
    # over those pairs of the training rate over the sgemm rate
    peak_gflops: float | None = None
    percent_peak: float | None = None


class SgemmPeak:
    """The machine's GEMM rate as numpy sees it: a float32 1024^3 matmul.

    bench_case times it call by call in turn with rnncore's training step (time_paired), and
    %peak is the median over those pairs of the step's rate over the matmul's: the shared
    machine's speed drifts by 10-30% between blocks of calls and within a case's timing, so a rate
    measured once before or after the cases, or in blocks of its own, can land in a faster or
    slower spell than the training steps (such measurements gave %peak from 70% to 112% for the
    same code)."""

    name = "sgemm"
    flop = 2 * 1024**3

    def __init__(self):
        self.a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
        self.out = np.empty_like(self.a)

    def train(self) -> None:  # the name time_paired calls on both sides of a pair
        np.matmul(self.a, self.a, out=self.out)


def check_agreement(impls, dtype) -> None:
    """Every implementation must give rnncore's forward output and every gradient before timing
    (the first train() of each: parameter gradients accumulate over calls)."""
    rtol, atol = agreement_tolerances(dtype)
    ref = impls[0]
    want_out, want_grads = ref.forward(), copy_grads(ref.train())
    for impl in impls[1:]:
        np.testing.assert_allclose(impl.forward(), want_out, rtol=rtol, atol=atol,
                                   err_msg=f"{impl.name} forward disagrees with rnncore")
        assert_same_grads(impl.train(), want_grads, rtol, atol,
                          f"{impl.name} {{}} disagrees with rnncore")


def bench_case(case: Case, n_threads: int, dtype, min_reps: int, budget_s: float, with_torch: bool,
               memory: bool = False, other_isas=()) -> list:
    """rnncore on the kernel set in use, the other implementations, and rnncore on each of
    other_isas (rows "rnncore-<set>"), timed in the same rounds."""
    problem = make_problem(case, dtype)
    impls = [IMPLS[name](*problem) for name in impl_names(case, with_torch)]
    impls += [isa_impl(isa)(*problem) for isa in other_isas]
    with limited_threads(n_threads):
        check_agreement(impls, dtype)
        fwd = time_calls(impls, "forward", min_reps, budget_s)
        train = time_calls(impls, "train", min_reps, budget_s)
        # Settled: numpy's OpenBLAS workers spin ~0.1 s after a call on 2 threads, taking a core
        # from the training step (S3 on 2 threads right after an sgemm read 47% of peak), and the
        # sgemm's 12 MB leave the caches cold. Steps of a few ms still read low: S2 on 2 threads
        # 32% after the pause alone, 37-39% settled, against ~70% from the table's two rates.
        sgemm_s, _, sgemm_over_train = time_paired(SgemmPeak(), impls[0], "train", PEAK_PAIRS,
                                                   budget_s, settle_b=True)
    results = []
    for impl in impls:
        results.append(Result(case.label(), impl.name, n_threads, np.dtype(dtype).name,
                              fwd.median[impl.name] * 1e3, train.median[impl.name] * 1e3,
                              case.forward_flop / fwd.median[impl.name] / 1e9,
                              3 * case.forward_flop / train.median[impl.name] / 1e9))
    ours = results[0]
    if numpy_threads_limited(n_threads):  # else the sgemm ran on more threads than rnncore
        ours.peak_gflops = SgemmPeak.flop / sgemm_s / 1e9
        # rate(train) / rate(sgemm) = (3 * forward flop / t_train) / (sgemm flop / t_sgemm)
        ours.percent_peak = 100 * 3 * case.forward_flop / SgemmPeak.flop * sgemm_over_train
    for other in results[1:]:
        ours.ratios[f"{other.impl}_forward"] = fwd.ratio(other.impl, ours.impl)
        ours.ratios[f"{other.impl}_train"] = train.ratio(other.impl, ours.impl)
    if memory:  # after the timing, one fresh process at a time: nothing runs beside the timings
        for r in results:
            if r.impl not in IMPLS:  # another kernel set: the same memory as rnncore's
                continue
            r.train_extra_mb = train_step_extra_mb(case, r.impl, n_threads, dtype)
    return results


def format_table(results) -> str:
    head = (f"{'case':<30} {'impl':<8} {'thr':>3} {'fwd ms':>9} {'train ms':>9} {'fwd GF/s':>9} "
            f"{'trn GF/s':>9} {'%peak':>6} {'sgemm':>6} {'mem MB':>7}  ratios (other time / rnncore time)")
    lines = [head, "-" * len(head)]
    for r in results:
        mem = "-" if r.train_extra_mb is None else f"{r.train_extra_mb:.2f}"
        percent = "-" if r.percent_peak is None else f"{r.percent_peak:.0f}%"
        sgemm = "-" if r.peak_gflops is None else f"{r.peak_gflops:.1f}"
        ratios = "  ".join(f"{k} {v:.2f}x" for k, v in r.ratios.items())
        lines.append(f"{r.case:<30} {r.impl:<8} {r.threads:>3} {r.forward_ms:>9.3f} "
                     f"{r.train_ms:>9.3f} {r.forward_gflops:>9.1f} {r.train_gflops:>9.1f} "
                     f"{percent:>6} {sgemm:>6} {mem:>7}  {ratios}".rstrip())
    return "\n".join(lines)


def format_memory_note(minimum: dict) -> str:
    lines = ["mem MB: the peak resident memory one training step (forward + backward) adds to a "
             "process holding",
             "the model and the data; fresh process per row; resident memory is counted in pages,",
             "so below ~0.1 MB it can read 0. The least rnncore's layer must add: the states it "
             "stores",
             "(T*B*D*H per layer) and the gradients it returns (grad_x, grad_h0, parameters):"]
    for label, m in minimum.items():
        lines.append(f"  {label:<30} minimum {m['total']:8.2f} MB = states {m['states']:.2f} + "
                     f"grad_x {m['grad_x']:.2f} + grad_h0 {m['grad_h0']:.3f} + "
                     f"params {m['param_grads']:.2f}")
    return "\n".join(lines)
