"""Paired timing of two kernel sets in one process: each round times a block of calls on each
set in turn, and the median over 7 rounds of the time ratio is printed (rnncore bench --isa does
the same with torch beside; this is the quick check used to choose the AVX-512 tile height).

    python bench/isa_pairs.py [threads] [set_a] [set_b]     # default: 1 avx2 avx512
"""

import sys
import time

import numpy as np

import rnncore
from rnncore.bench.peers import agreement_tolerances

SHAPES = {"S2": (100, 32, 64, 128), "S3": (100, 64, 256, 256), "S4": (50, 64, 512, 1024),
          "odd": (50, 50, 100, 200)}


def main(threads=1, a="avx2", b="avx512"):
    rnncore.set_num_threads(threads)
    for name, (T, B, I, H) in SHAPES.items():
        rnn = rnncore.RNN(I, H, seed=0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        g = rng.standard_normal((T, B, H)).astype(np.float32)

        def train():
            rnn(x)
            rnn.backward(g)

        # The two sets must agree (output and grad_x, as `rnncore bench` checks) before timing.
        results = []
        for isa in (a, b):
            rnncore.set_isa(isa)
            rnn.zero_grad()
            output = rnn(x)[0].copy()
            results.append((output, rnn.backward(g)[0].copy()))
        rtol, atol = agreement_tolerances(np.float32)
        for got, want in zip(results[1], results[0]):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{name}: {b} vs {a}")

        reps = max(3, int(2e8 / (T * B * H * (I + H))))
        for mode, call in (("forward", lambda: rnn(x)), ("train", train)):
            ratios = []
            for _ in range(7):
                took = {}
                for isa in (a, b):
                    rnncore.set_isa(isa)
                    call()
                    start = time.perf_counter()
                    for _ in range(reps):
                        call()
                    took[isa] = time.perf_counter() - start
                ratios.append(took[b] / took[a])
            print(f"{name} {mode}: {b} time / {a} time {np.median(ratios):.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1, *sys.argv[2:4])
