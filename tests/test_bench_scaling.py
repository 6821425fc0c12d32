"""`rnncore bench` thread scaling: the paired speedup, on a fake workload whose time depends on
the thread count and on a tiny real case, and its section of the table and the JSON."""

import json
import time

import numpy as np
import pytest

import rnncore
from rnncore import _bench_scaling
from rnncore.__main__ import main
from rnncore._bench_cases import IMPLS, parse_case

pytestmark = pytest.mark.usefixtures("quick_bench")

TINY = ["bench", "--shapes", "5,2,3,4", "--budget", "0.01", "--reps", "2", "--no-memory",
        "--no-torch"]


def test_paired_speedup_measures_the_thread_count():
    counts = []

    def fake():  # twice as fast on 2 threads
        counts.append(rnncore.get_num_threads())
        time.sleep(0.004 if counts[-1] == 1 else 0.002)

    before = rnncore.get_num_threads()
    try:
        speedup, pairs = _bench_scaling.paired_speedup(fake, 2, min_pairs=6, budget_s=0.0)
    finally:
        rnncore.set_num_threads(before)
    assert pairs == 6 and len(counts) == 4 * pairs  # an untimed and a timed call at each count
    assert counts[:4] == [1, 1, 2, 2] and counts[4:8] == [2, 2, 1, 1]  # turns alternate
    assert speedup == pytest.approx(2.0, rel=0.25)


def test_bench_scaling_tiny_case():
    before = rnncore.get_num_threads()
    r = _bench_scaling.bench_scaling(parse_case("5,2,3,4"), 2, np.float32, 3, 0.0)
    assert r.case == "custom T5 B2 I3 H4" and r.threads == 2 and r.pairs == 3
    assert r.forward_speedup > 0 and r.train_speedup > 0
    assert rnncore.get_num_threads() == before  # restored


@pytest.mark.parametrize("what", ["forward", "weight_hh_l0"])
def test_results_that_depend_on_the_thread_count_are_caught(monkeypatch, what):
    class ThreadDependent(IMPLS["rnncore"]):  # off by one ulp on more than one thread
        def forward(self):
            out = super().forward()
            if what == "forward" and rnncore.get_num_threads() > 1:
                out = np.nextafter(out, np.inf)
            return out

        def train(self):
            grads = super().train()
            if rnncore.get_num_threads() > 1 and what in grads:
                grads[what] = np.nextafter(grads[what], np.inf)
            return grads

    monkeypatch.setitem(IMPLS, "rnncore", ThreadDependent)
    before = rnncore.get_num_threads()
    with pytest.raises(AssertionError, match=f"on 2 threads: {what} differs from 1 thread"):
        _bench_scaling.bench_scaling(parse_case("5,2,3,4"), 2, np.float32, 3, 0.0)
    assert rnncore.get_num_threads() == before  # restored after the failure too


def test_section_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(TINY + ["--threads", "1", "2", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "thread scaling: rnncore time on 1 thread / on n threads" in out
    row = [line.split() for line in out.splitlines() if line.startswith("custom T5 B2 I3 H4")][-1]
    assert row[5] == "2" and row[6].endswith("x") and row[7].endswith("x")
    scaling = json.loads(path.read_text())["scaling"]
    assert len(scaling) == 1 and scaling[0]["threads"] == 2
    assert scaling[0]["pairs"] >= _bench_scaling.PAIRS
    assert main(TINY + ["--threads", "2"]) == 0  # no 1-thread runs: no section
    assert "thread scaling" not in capsys.readouterr().out
