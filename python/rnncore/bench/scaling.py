"""`rnncore bench` thread scaling: rnncore on 1 thread against n threads, in paired calls.

The table's 1- and n-thread rows are timed minutes apart, and this shared machine drifts by
10-30% between blocks of that length, enough to read a 1.8x speedup as 1.6x or, at S1 (where
both thread counts run the same single-thread code), n threads as slower than 1. So the speedup
is measured here the way `--lengths` measures its ratio: rnncore on 1 thread and on n threads
call by call in turn, each timed call after an untimed one at its new thread count (which wakes
the worker threads), and the speedup is the median of t(1 thread) / t(n threads) over the pairs.
Before timing, the forward output and every gradient on n threads must equal those on 1 thread
bit for bit, as the kernels promise.

The pairs of every case are spread over ROUNDS rounds, a few at a time, and each case's speedup
is the median over all of its pairs. Taken case by case, all of a case's pairs fell within a few
seconds, and a spell of the machine that long decided the figure: S3's forward read 1.13x in
one run whose table rows, timed minutes earlier, gave 26.96 ms on 1 thread and 15.53 on 2
(1.74x). Until the thread pool kept its workers across set_num_threads, each change of count
also started a new worker thread: S3's paired forward speedup read 1.51-1.74 (median 1.61) in
six sets of 20 pairs, against 1.49-1.76 (median 1.74) since, the two builds alternated.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from .. import threads as rnncore_threads
from . import timing
from .cases import Case, make_problem
from .peers import IMPLS, copy_grads
from .timing import ROUNDS, limited_threads, seconds

PAIRS = 30  # paired calls at least, per mode (15 gave S3 forward 1.38x to 2.0x in four runs)


@dataclass
class Scaling:
    case: str
    threads: int
    forward_speedup: float  # median over paired calls of t(1 thread) / t(threads)
    train_speedup: float
    pairs: int


def add_pairs(fn, n_threads: int, ratios: list, min_pairs: int, budget_s: float) -> None:
    """Append t(1 thread) / t(n_threads) of adjacent calls of fn to ratios: min_pairs pairs at
    least, more while budget_s lasts. Which count goes first alternates with len(ratios)."""
    start, until = time.perf_counter(), len(ratios) + min_pairs
    while len(ratios) < until or time.perf_counter() - start < budget_s:
        t = {}
        order = (1, n_threads) if len(ratios) % 2 == 0 else (n_threads, 1)
        for n in order:
            rnncore_threads.set_num_threads(n)
            fn()  # untimed: the first call after a change of thread count wakes the workers
            t[n] = seconds(fn)
        ratios.append(t[1] / t[n_threads])


def check_same_results(impl, n_threads: int) -> None:
    """The forward output and one training step's gradients on n_threads equal those on 1."""
    results = []
    for n in (1, n_threads):
        rnncore_threads.set_num_threads(n)
        impl.rnn.zero_grad()  # parameter gradients accumulate over calls
        results.append((np.array(impl.forward()), copy_grads(impl.train())))
    (out, grads), (want_out, want_grads) = results[1], results[0]
    where = f"thread scaling: rnncore on {n_threads} threads"
    np.testing.assert_array_equal(out, want_out, err_msg=f"{where}: forward differs from 1 thread")
    for name, want in want_grads.items():
        np.testing.assert_array_equal(grads[name], want,
                                      err_msg=f"{where}: {name} differs from 1 thread")


def bench_scalings(jobs: list[tuple[Case, int]], dtype, min_pairs: int, budget_s: float,
                   rounds: int = ROUNDS) -> list[Scaling]:
    """rnncore's speedup on n threads over 1 thread for each (case, n) of jobs, forward and
    training step, each from min_pairs pairs at least (budget_s seconds at least) taken in
    `rounds` rounds: every round, after a pause, a share of every job's pairs."""
    impls = [IMPLS["rnncore"](*make_problem(case, dtype)) for case, _ in jobs]
    for impl, (_, n) in zip(impls, jobs):
        with limited_threads(n):  # numpy's BLAS too; rnncore's count switches per call
            check_same_results(impl, n)
    ratios: list[tuple[list[float], list[float]]] = [([], []) for _ in jobs]  # forward, train
    pairs, budget = -(-min_pairs // rounds), budget_s / rounds  # per round, job and mode
    for _ in range(rounds):
        for impl, (_, n), (forward, train) in zip(impls, jobs, ratios):
            with limited_threads(n):
                time.sleep(timing.QUIET_S)
                add_pairs(impl.forward, n, forward, pairs, budget)
                add_pairs(impl.train, n, train, pairs, budget)
    return [Scaling(case.label(), n, statistics.median(forward), statistics.median(train),
                    min(len(forward), len(train)))
            for (case, n), (forward, train) in zip(jobs, ratios)]


def format_scaling(results: list) -> str:
    lines = ["thread scaling: rnncore time on 1 thread / on n threads, median of paired calls "
             "(> 1: faster on n)",
             f"{'case':<30} {'thr':>3} {'forward':>8} {'train':>8} {'pairs':>6}"]
    lines.append("-" * len(lines[1]))
    for r in results:
        lines.append(f"{r.case:<30} {r.threads:>3} {r.forward_speedup:>7.2f}x "
                     f"{r.train_speedup:>7.2f}x {r.pairs:>6}")
    return "\n".join(lines)
