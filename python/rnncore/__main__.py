"""The `rnncore` command: `rnncore demo`, `rnncore bench`, `rnncore info` (also
`python -m rnncore ...`)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__, _core, bench, demo
from .isa import available_isas, get_isa
from .threads import get_num_threads


def info() -> int:
    print(f"rnncore {__version__}")
    print(f"numpy {np.__version__}")
    print(f"BLAS: scipy-openblas32, {_core.blas_config()}")
    print(f"BLAS core type: {_core.blas_corename()}")
    print(f"threads: {get_num_threads()}")
    print(f"kernel set: {get_isa()} (available: {', '.join(available_isas())}; "
          f"choose with RNNCORE_ISA=<name>)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rnncore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(sub.add_parser("demo", help="train a character language model and a "
                                      "price forecaster in under a minute, offline"))
    bench.add_arguments(sub.add_parser("bench", help="time rnncore against numpy and torch"))
    sub.add_parser("info", help="versions, BLAS, threads and CPU dispatch")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.run(args)
    if args.command == "bench":
        return bench.run(args)
    return info()


if __name__ == "__main__":
    sys.exit(main())
