"""Streaming latency: one RNN step at a time from Python, B=1, I=H, float32, 1 thread.

rnncore's `rnn.step(x_t, h)` against torch.nn.RNNCell (under no_grad) and the numpy one-liner
`np.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)`. Each implementation feeds its new state back
into the next step; the steps run in blocks, the implementations alternate block by block, and
the result is the median block time per step. The final states are checked against rnncore's
before anything is timed.

The blocks run in rounds: each round times one block of every implementation at every hidden
size. This machine's cores slow to about half speed in spells of a second or more (a pure Python
loop alternated between 0.6 and 1.1 ms in one 20 s run); when each hidden size took all its
blocks in one go (0.6 s at H=64), a row could fall entirely into a fast spell or a slow one: one
run read numpy's step at 6.6 us at H=32 and 13.3 us at H=64, where a quiet machine gives about 7
us at both. Spread over the whole section (~6 s with torch), every row sees the same mix.

Blocks are 500 steps, each after 50 untimed ones: a stream runs step after step, while the
switch between implementations leaves the caches to the other one (torch's step touches far more
memory). Measured at H=64, the first steps after a torch block cost rnncore about 0.3 us per step
more, averaged over 100-step blocks, and 0.05 us over 500-step ones (1.45 against 1.93 us per
step, in the same run). The untimed steps take the rest of the switch out of every
implementation's figure: alternated three times in one process, H=64 read 1.00-1.04 us with them
and 1.09-1.11 us without for rnncore, 7.0-7.1 and 7.4-7.7 us for numpy, 23.0-23.2 and 23.7-24.5
us for torch.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..rnn import RNN
from .timing import limited_threads

HIDDEN_SIZES = (32, 64, 128, 256)
STEPS, BLOCK = 20000, 500  # timed steps per implementation and hidden size, steps per block
WARM = 50  # untimed steps before each timed block
NOT_AVAILABLE = "rnn.step not available"


@dataclass
class StreamResult:
    H: int
    impl: str
    us_per_step: float


def rnncore_runner(rnn):
    step = rnn.step
    B, H = 1, rnn.hidden_size

    def run(xs, h=None):
        h = np.zeros((rnn.num_layers, B, H), rnn.dtype) if h is None else h
        for x in xs:
            _, h = step(x, h)
        return h

    return run, lambda h: h[-1]  # runner, and its state as (B, H)


def numpy_runner(rnn):
    p = rnn.parameters()
    w_ih, w_hh, b_ih, b_hh = (p[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                             "bias_hh_l0"))
    tanh = np.tanh

    def run(xs, h=None):
        h = np.zeros((1, rnn.hidden_size), rnn.dtype) if h is None else h
        for x in xs:
            h = tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        return h

    return run, lambda h: h


def torch_runner(rnn):
    import torch

    cell = torch.nn.RNNCell(rnn.input_size, rnn.hidden_size, dtype=getattr(torch, rnn.dtype.name))
    cell.load_state_dict({k.removesuffix("_l0"): torch.from_numpy(v)
                          for k, v in rnn.state_dict().items()})

    def run(xs, h=None):
        h = torch.zeros((1, rnn.hidden_size), dtype=cell.weight_hh.dtype) if h is None else h
        with torch.no_grad():
            for x in xs:
                h = cell(x, h)
        return h

    return run, lambda h: h.numpy()


def split_steps(xs: np.ndarray, impl: str) -> list:
    """Per-step inputs (B, I) in each implementation's own type, made before any timing."""
    if impl == "torch":
        import torch

        return list(torch.from_numpy(xs).unbind(0))
    return list(xs)


def hidden_size_runners(H: int, block: int, with_torch: bool) -> tuple[dict, dict]:
    """Each implementation's (runner, state) at hidden size H and its block of inputs."""
    rnn = RNN(H, H, seed=0)
    xs = np.random.default_rng(1).standard_normal((block, 1, H)).astype(np.float32)
    runners = {}
    if hasattr(rnn, "step"):
        runners["rnncore"] = rnncore_runner(rnn)
    runners["numpy"] = numpy_runner(rnn)
    if with_torch:
        runners["torch"] = torch_runner(rnn)
    return runners, {name: split_steps(xs, name) for name in runners}


def check_stream_agreement(runners: dict, inputs: dict) -> None:
    """Every implementation must end a block of steps (from h = 0) in the reference's state."""
    finals = {name: state(run(inputs[name])) for name, (run, state) in runners.items()}
    ref, want = next(iter(finals.items()))
    for name, got in finals.items():
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4,
                                   err_msg=f"streaming: {name} step disagrees with {ref}")


def bench_stream(hidden_sizes=HIDDEN_SIZES, steps: int = STEPS, block: int = BLOCK,
                 with_torch: bool = False) -> list:
    cases = {H: hidden_size_runners(H, block, with_torch) for H in hidden_sizes}
    times: dict[tuple[int, str], list[float]] = {}
    with limited_threads(1):
        for runners, inputs in cases.values():
            check_stream_agreement(runners, inputs)
        for _ in range(max(1, steps // block)):  # rounds
            for H, (runners, inputs) in cases.items():
                for name, (run, _) in runners.items():
                    run(inputs[name][:WARM])
                    t0 = time.perf_counter()
                    run(inputs[name])
                    times.setdefault((H, name), []).append((time.perf_counter() - t0) / block)
    return [StreamResult(H, name, statistics.median(t) * 1e6) for (H, name), t in times.items()]


def format_stream(results: list, steps: int) -> str:
    names = list(dict.fromkeys(r.impl for r in results))
    by = {(r.H, r.impl): r.us_per_step for r in results}
    head = (f"{'H':>5}" + "".join(f"{n + ' us':>12}" for n in names)
            + ("   ratios (other time / rnncore time)" if "rnncore" in names else ""))
    lines = [f"streaming: one step from Python, B=1, I=H, float32, 1 thread, median us/step over "
             f"{steps} steps", head, "-" * len(head)]
    for H in dict.fromkeys(r.H for r in results):
        line = f"{H:>5}" + "".join(f"{by[H, n]:>12.2f}" for n in names)
        if "rnncore" in names:
            line += "   " + "  ".join(f"{n} {by[H, n] / by[H, 'rnncore']:.1f}x"
                                      for n in names if n != "rnncore")
        lines.append(line)
    if "rnncore" not in names:
        lines.append(f"rnncore: {NOT_AVAILABLE}")
    return "\n".join(lines)
