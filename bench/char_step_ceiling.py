"""What the character model's training step (`rnncore bench --model-step`, row "char") could
reach through this machine's BLAS: the same GEMMs as plain numpy (OpenBLAS) calls on 1 thread,
with the recurrence's forward and backward each as one GEMM over all T*B rows (no step waiting
for the one before), and nothing else (no loss, activations, optimizer or Python). Their rate is
an upper bound for any implementation of the step that uses this BLAS; it is printed as % of
numpy's sgemm 1024^3, beside rnncore's whole step timed in the same rounds.

    python bench/char_step_ceiling.py        # needs threadpoolctl (the `bench` extra)
"""

import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import rnncore
from rnncore.bench.model_step import CASES, RnncoreStep

ROUNDS, CALLS = 15, 30


def gemm_calls(rng, N=2048, I=64, H=128, O=64):
    """The step's GEMMs, each into a preallocated output: (forward) [x | h_prev] W^T, head h W_o^T;
    (backward) head g W_o and g^T h, recurrence dz W_hh, dW_ih = dz^T x, dW_hh = dz^T h_prev
    (no dx = dz W_ih: the step does not compute the input's gradient)."""
    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    xh, W, h, Wo, g, dz = f(N, I + H), f(H, I + H), f(N, H), f(O, H), f(N, O), f(N, H)
    Whh, x = f(H, H), f(N, I)
    calls = [(xh, W.T), (h, Wo.T), (g, Wo), (g.T, h), (dz, Whh), (dz.T, x), (dz.T, h)]
    outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in calls]
    return [lambda a=a, b=b, o=o: np.matmul(a, b, out=o) for (a, b), o in zip(calls, outs)]


def median_time(fn) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    case = CASES[1]  # the character model
    flop = case.flop()
    gemms = gemm_calls(np.random.default_rng(0))
    a = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32)
    rnncore.set_num_threads(1)
    ours = RnncoreStep(case)
    rows = []
    with threadpool_limits(1):
        for _ in range(ROUNDS):
            t_gemms = median_time(lambda: [gm() for gm in gemms])
            t_step = median_time(ours.step)
            t_sgemm = median_time(lambda: a @ a)
            peak = 2 * 1024**3 / t_sgemm
            rows.append((flop / t_gemms / peak, flop / t_step / peak, t_step / t_gemms))
    for name, i in (("the GEMMs alone", 0), ("rnncore's whole step", 1)):
        vals = [r[i] for r in rows]
        print(f"{name}: {100 * statistics.median(vals):.0f}% of numpy's sgemm 1024^3 "
              f"(rounds {100 * min(vals):.0f}-{100 * max(vals):.0f}%)")
    print(f"rnncore's step time / the GEMMs' time: {statistics.median(r[2] for r in rows):.3f} "
          f"({ROUNDS} rounds, {flop / 1e6:.0f} MFLOP a step, 1 thread)")


if __name__ == "__main__":
    main()
