"""Forward and training-step time of rnncore against a numpy loop and torch.nn.RNN (if installed),
same inputs, results checked before timing. Same as `rnncore bench`; see `--help`.

    python bench/bench_rnn.py --shapes S2 --threads 1 2
"""

import argparse
import sys

from rnncore import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(parser)
    sys.exit(bench.run(parser.parse_args()))
