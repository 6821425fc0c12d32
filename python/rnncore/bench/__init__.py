"""`rnncore bench`: rnncore against a numpy loop and torch.nn.RNN, in one run on the same inputs.

The modules, in the order a run uses them (bench/README.md at the top of the repository has the
method and the latest output):

- `cases`: the named shapes and the problem (model, inputs, output gradient) built for each;
- `peers`: the implementations timed (rnncore, the numpy loop of `numpy_loop`, torch) and the
  check that they agree with rnncore before timing;
- `timing`: turns of blocks of calls, paired calls, thread limits;
- `table`: the main table, one row per implementation, shape and thread count, with %peak;
- `memory`: the peak extra memory of a training step, in a fresh process (`--memory`);
- `scaling`: rnncore's speedup on n threads over 1, in paired calls (1 and n among --threads);
- `stream`: single-step streaming latency (`--stream`);
- `lengths`: a batch of variable-length sequences (`--lengths`);
- `model_step`: whole training steps of small models against torch, and `fit` (`--model-step`);
- `plot`: the bar charts (`--plot`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import numpy as np

from ..isa import available_isas, get_isa, set_isa
from . import lengths, memory, model_step, plot, scaling, stream
from .cases import SHAPES, parse_case
from .peers import torch_available
from .table import bench_case, format_memory_note, format_table
from .timing import numpy_threads_limited

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shapes", nargs="*", metavar="SHAPE",
                        help=f"named shapes ({', '.join(SHAPES)}) or T,B,I,H (default: S1 S2 S3; "
                             "all with --all; none with an empty --shapes, e.g. with --stream)")
    parser.add_argument("--threads", nargs="+", type=int,
                        help="thread counts (default: 1; 1 2 with --all)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--reps", type=int, default=10,
                        help="minimum timed calls per implementation")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per shape, mode and thread count (default: 1)")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="measure the peak extra memory of a training step, one fresh process "
                             "per implementation and shape (Linux; default: on)")
    parser.add_argument("--stream", action="store_true",
                        help="also time single steps from Python (rnn.step at B=1, "
                             f"H={'/'.join(map(str, stream.HIDDEN_SIZES))}, 1 thread)")
    parser.add_argument("--lengths", action="store_true",
                        help="also time a variable-length batch (B=64, lengths 10..200, T=200, "
                             "I=H=256): lengths= against padded, rnncore and torch (packed)")
    parser.add_argument("--model-step", action="store_true",
                        help="also time whole training steps (forward, loss, backward, Adam) of a "
                             "forecaster and a character model against torch, and fit against "
                             "the bare steps (1 thread)")
    parser.add_argument("--all", action="store_true",
                        help="every named shape at 1 and 2 threads, plus --stream, --lengths and "
                             "--model-step")
    parser.add_argument("--isa", metavar="SET[,SET...]",
                        help="kernel sets to time (of rnncore.available_isas()); the first runs "
                             "as 'rnncore', each other one beside it in the same rounds as "
                             "'rnncore-<set>' (default: the set in use)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="also draw the results as bar charts (needs matplotlib: "
                             "pip install 'rnncore[plot]')")


def parse_isas(text: str | None) -> list:
    """The kernel sets of --isa, checked: each must be one this CPU and build run."""
    if text is None:
        return [get_isa()]
    isas = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in isas if name not in available_isas()]
    if not isas or unknown or len(set(isas)) != len(isas):
        raise SystemExit(f"rnncore bench: --isa expects distinct sets among "
                         f"{', '.join(available_isas())}, got {text!r}")
    return isas


def run(args: argparse.Namespace) -> int:
    if args.plot:
        plot.require_matplotlib()  # fail before the long part
    default_shapes = list(SHAPES) if args.all else ["S1", "S2", "S3"]
    cases = [parse_case(s) for s in (default_shapes if args.shapes is None else args.shapes)]
    thread_counts = args.threads or ([1, 2] if args.all else [1])
    with_stream = args.stream or args.all
    with_lengths = args.lengths or args.all
    with_model_step = args.model_step or args.all
    if not cases and not with_stream and not with_lengths and not with_model_step:
        raise SystemExit("rnncore bench: nothing to run (no shapes, no --stream, no --lengths, "
                         "no --model-step)")
    with_torch = not args.no_torch and torch_available()
    dtype = np.dtype(args.dtype)
    isas = parse_isas(args.isa)
    set_isa(isas[0])  # for the whole run, streaming and lengths included
    results = []
    for n in thread_counts if cases else []:
        for case in cases:
            results += bench_case(case, n, dtype, args.reps, args.budget, with_torch, args.memory,
                                  other_isas=isas[1:])
    speedups = scaling.bench_scalings(
        [(case, n) for case in cases for n in thread_counts if n > 1 and 1 in thread_counts],
        dtype, scaling.PAIRS, args.budget)
    torch_note = "included" if with_torch else "not included" if args.no_torch else \
        "not installed (pip install 'rnncore[torch]')"
    minimum = {c.label(): memory.minimum_extra_mb(c, dtype) for c in cases}
    if cases:
        print(f"\n{dtype.name}, medians; torch {torch_note}; rnncore's kernel set: {isas[0]}"
              + "".join(f", rnncore-{isa}: kernel set {isa}" for isa in isas[1:]))
        print(format_table(results))
        if not all(numpy_threads_limited(n) for n in thread_counts):
            print("numpy's BLAS ran on every core whatever the thread count (threadpoolctl is not "
                  "installed: pip install 'rnncore[bench]'), so %peak is not shown and numpy's rows "
                  "had more threads than rnncore's")
        if args.memory:
            print("\n" + (format_memory_note(minimum) if memory.supported() else
                          "mem MB: not measured (needs Linux /proc/self/clear_refs)"))
        if speedups:
            print("\n" + scaling.format_scaling(speedups))
    streamed = []
    if with_stream:
        streamed = stream.bench_stream(stream.HIDDEN_SIZES, stream.STEPS, stream.BLOCK,
                                       with_torch=with_torch)
        print("\n" + stream.format_stream(streamed, stream.STEPS))
    varied = []
    if with_lengths:
        varied = lengths.bench_lengths(thread_counts, dtype, args.reps, args.budget, with_torch,
                                       **lengths.CASE)
        print("\n" + lengths.format_lengths(varied))
    stepped = []
    if with_model_step:
        stepped = model_step.bench_model_step(with_torch, budget_s=2 * args.budget)
        print("\n" + model_step.format_model_step(stepped))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dtype": dtype.name, "isa": isas, "memory_min_mb": minimum,
                       "results": [asdict(r) for r in results],
                       "scaling": [asdict(r) for r in speedups],
                       "stream": [asdict(r) for r in streamed],
                       "lengths": [asdict(r) for r in varied],
                       "model_step": [asdict(r) for r in stepped]}, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        plot.plot(args.plot, results, streamed, title=f"rnncore bench, {dtype.name}")
        print(f"wrote {args.plot}")
    return 0
