"""How `rnncore bench` times: implementations take turns in rounds of blocks of calls
(`time_calls`), or call by call in pairs (`time_paired`), each block after a pause; and every
library limited to the same thread count (`limited_threads`)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from .. import threads as rnncore_threads


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
# Untimed calls after a settling pause, for at least this long (one call at least), before a
# settled timed call (time_paired's settle_b). After numpy's sgemm on 2 threads and the pause, S3's
# training step on 2 threads took 25-27 ms with one untimed call before it, 17.6-18.2 ms with
# 0.1 s of them, against 17.8 ms back to back (Xeon, 2026-12-07; the pause made 0.8 s changed
# nothing): the first calls after the other pool's work run slowly, whatever the pause.
SETTLE_S = 0.1


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
    after a pause of QUIET_S (the worker threads a left spinning go idle) and untimed calls of b
    for SETTLE_S, one at least (which bring back into the caches what a evicted, and wake b's own
    threads).
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
                settle = time.perf_counter()
                fb()
                while time.perf_counter() - settle < SETTLE_S:
                    fb()
            tb.append(seconds(fb))
            calls += 1
    ratio = statistics.median(x / y for x, y in zip(ta, tb))
    return statistics.median(ta), statistics.median(tb), ratio


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
