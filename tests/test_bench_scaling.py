"""`rnncore bench` thread scaling: the paired speedup, on a fake workload whose time depends on
the thread count and on a tiny real case, and its section of the table and the JSON."""

import json

import numpy as np
import pytest

import rnncore
from rnncore import bench
from rnncore.__main__ import main
from rnncore.bench.cases import parse_case
from rnncore.bench.peers import IMPLS

pytestmark = pytest.mark.usefixtures("quick_bench")

TINY = ["bench", "--shapes", "5,2,3,4", "--budget", "0.01", "--reps", "2", "--no-memory",
        "--no-torch"]


def test_add_pairs_measures_the_thread_count(monkeypatch):
    counts = []

    def fake():
        counts.append(rnncore.get_num_threads())

    def fake_seconds(fn):  # the clock of a call twice as fast on 2 threads (no sleeps: a loaded
        fn()               # machine overshoots them by more than the test could allow)
        return 0.004 if counts[-1] == 1 else 0.002

    monkeypatch.setattr(bench.scaling, "seconds", fake_seconds)
    before = rnncore.get_num_threads()
    ratios = [0.0]  # one pair already: the next starts with 2 threads
    try:
        bench.scaling.add_pairs(fake, 2, ratios, min_pairs=6, budget_s=0.0)
    finally:
        rnncore.set_num_threads(before)
    assert len(ratios) == 7 and len(counts) == 4 * 6  # an untimed and a timed call at each count
    assert counts[:4] == [2, 2, 1, 1] and counts[4:8] == [1, 1, 2, 2]  # turns alternate
    assert ratios[1:] == [2.0] * 6  # t(1 thread) / t(2 threads), whichever ran first


def test_bench_scalings_tiny_cases():
    before = rnncore.get_num_threads()
    jobs = [(parse_case("5,2,3,4"), 2), (parse_case("3,1,2,2"), 2)]
    r = bench.scaling.bench_scalings(jobs, np.float32, 3, 0.0, rounds=2)
    assert [(s.case, s.threads, s.pairs) for s in r] == [("custom T5 B2 I3 H4", 2, 4),
                                                        ("custom T3 B1 I2 H2", 2, 4)]
    assert all(s.forward_speedup > 0 and s.train_speedup > 0 for s in r)
    assert rnncore.get_num_threads() == before  # restored


def test_pairs_are_spread_over_the_rounds(monkeypatch):
    """Every round takes a share of every job's pairs, forward then training step, job by job."""
    taken = []
    monkeypatch.setattr(bench.scaling, "check_same_results", lambda impl, n: None)
    monkeypatch.setattr(bench.scaling, "add_pairs", lambda fn, n, ratios, pairs, budget: (
        taken.append((fn.__self__, fn.__name__, pairs, budget)), ratios.extend([1.0] * pairs)))
    jobs = [(parse_case("5,2,3,4"), 2), (parse_case("3,1,2,2"), 2)]
    r = bench.scaling.bench_scalings(jobs, np.float32, 30, 1.2, rounds=3)
    impls = list(dict.fromkeys(impl for impl, *_ in taken))
    assert len(impls) == 2
    assert [(impls.index(i), name) for i, name, *_ in taken] == \
        [(job, mode) for _ in range(3) for job in (0, 1) for mode in ("forward", "train")]
    assert all(pairs == 10 and budget == pytest.approx(0.4) for *_, pairs, budget in taken)
    assert [s.pairs for s in r] == [30, 30]


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
        bench.scaling.bench_scalings([(parse_case("5,2,3,4"), 2)], np.float32, 3, 0.0)
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
    assert scaling[0]["pairs"] >= bench.scaling.PAIRS
    assert main(TINY + ["--threads", "2"]) == 0  # no 1-thread runs: no section
    assert "thread scaling" not in capsys.readouterr().out
