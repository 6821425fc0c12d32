"""`rnncore bench` on tiny shapes (fast): the table and JSON, the agreement check catching a wrong
implementation, the memory measurement, the streaming section and the plot with and without
matplotlib."""

import json
import os
import re
import sys

import numpy as np
import pytest

import rnncore
from rnncore import RNN, bench
from rnncore.__main__ import main
from rnncore.bench.cases import make_problem, parse_case
from rnncore.bench.peers import IMPLS, impl_names, torch_available
from helpers import with_wrong_gradient

pytestmark = pytest.mark.usefixtures("quick_bench")

TINY = ["bench", "--shapes", "5,2,3,4", "--budget", "0.01", "--reps", "2", "--no-memory"]
NUMPY_ONLY = ["--no-torch"]  # keeps a test free of torch's import time when torch is not needed


def numpy_threads(monkeypatch, limited: bool) -> None:
    """As if numpy's BLAS could (threadpoolctl installed) or could not be held to a thread count."""
    for module in (bench, bench.table):
        monkeypatch.setattr(module, "numpy_threads_limited", lambda n: limited)


def reference_step(self, x, h=None):
    """A stand-in for rnn.step (one layer, tanh) until the real one exists."""
    p = self.parameters()
    if h is None:
        h = np.zeros((1, *x.shape[:-1], self.hidden_size), self.dtype)
    new = np.tanh(x @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h[0] @ p["weight_hh_l0"].T
                  + p["bias_hh_l0"])
    return new, new[None]


@pytest.fixture
def with_step(monkeypatch):
    if not hasattr(RNN, "step"):
        monkeypatch.setattr(RNN, "step", reference_step, raising=False)


def test_bench_case_results_and_ratios():
    with_torch = torch_available()
    results = bench.table.bench_case(parse_case("5,2,3,4"), 1, np.float32, 2, 0.01, with_torch)
    assert [r.impl for r in results] == ["rnncore", "numpy"] + (["torch"] if with_torch else [])
    for r in results:
        assert r.case == "custom T5 B2 I3 H4" and r.threads == 1 and r.dtype == "float32"
        assert r.forward_ms > 0 and r.train_ms > 0 and r.train_extra_mb is None
        assert r.forward_gflops == pytest.approx(2 * 5 * 2 * 4 * (3 + 4) / r.forward_ms / 1e6)
    keys = {f"{r.impl}_{mode}" for r in results[1:] for mode in ("forward", "train")}
    assert set(results[0].ratios) == keys and all(v > 0 for v in results[0].ratios.values())


def test_kernel_sets_side_by_side(tmp_path, capsys):
    """--isa A,B: rnncore runs on A, rnncore-B beside it in the same rounds, checked against it;
    the set in use afterwards is A (for the whole run), and the table names both."""
    sets = rnncore.available_isas()
    first, others = sets[-1], sets[:-1]
    before = rnncore.get_isa()
    path = tmp_path / "bench.json"
    try:
        assert main(TINY + NUMPY_ONLY + ["--isa", ",".join([first] + others),
                                         "--json", str(path)]) == 0
        assert rnncore.get_isa() == first
    finally:
        rnncore.set_isa(before)
    out = capsys.readouterr().out
    assert f"rnncore's kernel set: {first}" in out
    data = json.loads(path.read_text())
    assert data["isa"] == [first] + others
    impls = [r["impl"] for r in data["results"]]
    assert impls == ["rnncore", "numpy"] + [f"rnncore-{isa}" for isa in others]
    assert all(f"rnncore-{isa}_train" in data["results"][0]["ratios"] for isa in others)


@pytest.mark.parametrize("bad", ["avx1024", "baseline,baseline", ","])
def test_unknown_kernel_set_is_refused(bad):
    with pytest.raises(SystemExit, match="--isa expects distinct sets among baseline"):
        main(TINY + NUMPY_ONLY + ["--isa", bad])


def test_named_and_bidirectional_cases():
    assert parse_case("S2").label() == "S2 T100 B32 I64 H128"
    bi2 = parse_case("bi2")
    assert bi2.label() == "bi2 T100 B32 I64 H128 L2 bi"
    assert bi2.forward_flop == 2 * 2 * 100 * 32 * 128 * (64 + 128 + 256 + 128)
    assert impl_names(bi2, with_torch=True) == ["rnncore", "torch"]  # numpy loop: one layer only
    with pytest.raises(SystemExit, match="unknown shape '5,2,3'"):
        parse_case("5,2,3")


def test_table_and_json(tmp_path, capsys, monkeypatch):
    numpy_threads(monkeypatch, limited=True)
    path = tmp_path / "bench.json"
    assert main(TINY + ["--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "%peak" in out and "mem MB" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("custom T5 B2 I3 H4")]
    assert [row[5] for row in rows][:2] == ["rnncore", "numpy"]
    assert all(row[13] == "-" for row in rows)  # memory not measured
    data = json.loads(path.read_text())
    assert set(data) == {"dtype", "isa", "memory_min_mb", "results", "scaling", "stream",
                         "lengths", "model_step"}
    assert data["isa"] == [rnncore.get_isa()]
    assert data["dtype"] == "float32" and data["stream"] == []
    assert data["lengths"] == [] and data["scaling"] == []  # one thread count: no scaling
    assert len(data["results"]) == len(rows)
    first = data["results"][0]
    assert first["impl"] == "rnncore" and "numpy_train" in first["ratios"]
    assert set(first) >= {"case", "threads", "forward_ms", "train_ms", "forward_gflops",
                          "train_gflops", "train_extra_mb", "peak_gflops"}
    ours, numpy_row = data["results"][:2]
    assert ours["peak_gflops"] > 0 and ours["percent_peak"] > 0
    assert numpy_row["peak_gflops"] is None and numpy_row["percent_peak"] is None
    assert rows[0][11].endswith("%") and rows[1][11:13] == ["-", "-"]  # %peak, sgemm: rnncore's
    assert data["memory_min_mb"]["custom T5 B2 I3 H4"]["total"] > 0
    assert "threadpoolctl" not in out


def test_no_percent_of_peak_when_numpy_runs_on_more_threads(capsys, monkeypatch):
    # without threadpoolctl numpy's sgemm runs on every core: no %peak against it, and a note
    numpy_threads(monkeypatch, limited=False)
    assert main(TINY) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("custom T5 B2 I3 H4")]
    assert rows[0][5] == "rnncore" and rows[0][11:13] == ["-", "-"]
    assert "threadpoolctl is not installed" in out and "pip install 'rnncore[bench]'" in out


def test_numpy_threads_limited_needs_threadpoolctl_below_the_core_count(monkeypatch):
    cores = os.cpu_count() or 1
    assert bench.timing.numpy_threads_limited(cores)  # all cores: nothing to limit
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    assert not bench.timing.numpy_threads_limited(1) or cores == 1


def test_percent_of_peak_is_the_median_ratio_of_paired_calls(monkeypatch):
    # rnncore's training steps and the sgemm in turn: median sgemm 10 ms, median of
    # t_sgemm / t_train over the pairs 0.5 (not the ratio of the medians)
    paired = []

    def fake_time_paired(a, b, what, min_pairs, budget_s, settle_b):
        paired.append((a.name, b.name, what, min_pairs, settle_b))
        return 0.010, 0.030, 0.5

    monkeypatch.setattr(bench.table, "time_paired", fake_time_paired)
    numpy_threads(monkeypatch, limited=True)
    case = parse_case("5,2,3,4")
    ours = bench.table.bench_case(case, 1, np.float32, 2, 0.01, False)[0]
    # each timed training step settled: numpy's BLAS workers spin after the sgemm
    assert paired == [("sgemm", "rnncore", "train", bench.table.PEAK_PAIRS, True)]
    assert ours.peak_gflops == pytest.approx(2 * 1024**3 / 0.010 / 1e9)
    # train rate / sgemm rate = (3 F / t_train) / (2 * 1024^3 / t_sgemm), F the forward flop
    assert ours.percent_peak == pytest.approx(100 * 3 * case.forward_flop / (2 * 1024**3) * 0.5)


def test_ratios_are_medians_over_rounds_not_ratios_of_medians(monkeypatch):
    # rnncore's blocks 10 ms in every round; numpy's 15, 20 and 30 ms, the median of all its
    # calls 25 ms: the ratio of the medians is 2.5, the median of the rounds' ratios 2.0
    rounds = [{"rnncore": 0.010, "numpy": t} for t in (0.015, 0.020, 0.030)]
    timed = bench.timing.CallTimes({"rnncore": 0.010, "numpy": 0.025}, rounds)
    monkeypatch.setattr(bench.table, "time_calls", lambda impls, what, reps, budget: timed)
    ours, numpy_row = bench.table.bench_case(parse_case("5,2,3,4"), 1, np.float32, 2, 0.01, False)
    assert numpy_row.forward_ms == pytest.approx(25.0)  # the table keeps the medians
    assert ours.ratios == pytest.approx({"numpy_forward": 2.0, "numpy_train": 2.0})


class RecordingImpl:
    """A stand-in implementation whose forward() and train() only record its name in `calls`."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def forward(self):
        self.calls.append(self.name)

    train = forward


@pytest.fixture
def calls(monkeypatch):
    """The calls the timers make, in order; their pauses recorded as "sleep <seconds>". Settling
    takes one untimed call (SETTLE_S = 0: the calls here take no time)."""
    made = []
    monkeypatch.setattr(bench.timing.time, "sleep", lambda s: made.append(f"sleep {s}"))
    monkeypatch.setattr(bench.timing, "SETTLE_S", 0.0)
    return made


def test_time_calls_times_every_implementation_in_every_round(calls):
    timed = bench.timing.time_calls([RecordingImpl("a", calls), RecordingImpl("b", calls)],
                                    "forward", bench.timing.ROUNDS, 0.0)
    # per round, each implementation: a pause, a warm-up call, then its block (one call here)
    pause = f"sleep {bench.timing.QUIET_S}"
    assert calls == [pause, "a", "a", pause, "b", "b"] * bench.timing.ROUNDS
    assert len(timed.rounds) == bench.timing.ROUNDS
    assert all(set(r) == {"a", "b"} for r in timed.rounds) and set(timed.median) == {"a", "b"}


def test_time_paired_settles_each_timed_call_of_b(calls):
    a, b = RecordingImpl("a", calls), RecordingImpl("b", calls)
    bench.timing.time_paired(a, b, "train", bench.timing.ROUNDS, 0.0, settle_b=True)
    # per round: a pause and both warmed up, then one pair: a timed; a pause, b untimed, b timed
    pause = f"sleep {bench.timing.QUIET_S}"
    assert calls == [pause, "a", "b", "a", pause, "b", "b"] * bench.timing.ROUNDS
    calls.clear()
    bench.timing.time_paired(a, b, "train", bench.timing.ROUNDS, 0.0)
    assert calls == [pause, "a", "b", "a", "b"] * bench.timing.ROUNDS


def test_time_paired_settles_b_with_untimed_calls_for_settle_s(calls, monkeypatch):
    clock = [0.0]  # a fake clock that only b's calls move, 0.04 s each
    monkeypatch.setattr(bench.timing.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(bench.timing, "SETTLE_S", 0.1)

    class SlowB(RecordingImpl):
        def train(self):
            super().train()
            clock[0] += 0.04

    a, b = RecordingImpl("a", calls), SlowB("b", calls)
    _, tb, _ = bench.timing.time_paired(a, b, "train", bench.timing.ROUNDS, 0.0, settle_b=True)
    # after the pause, b untimed until 0.1 s have passed (0.04, 0.08, 0.12: three calls), then timed
    pause = f"sleep {bench.timing.QUIET_S}"
    assert calls == [pause, "a", "b", "a", pause, "b", "b", "b", "b"] * bench.timing.ROUNDS
    assert tb == pytest.approx(0.04)


def test_table_shows_percent_of_peak_and_sgemm_rate_where_measured():
    rows = [bench.table.Result("S3", impl, 1, "float32", 10.0, 30.0, 50.0, 42.0,
                             peak_gflops=peak, percent_peak=percent)
            for impl, peak, percent in (("rnncore", 60.0, 71.4), ("numpy", None, None))]
    lines = bench.table.format_table(rows).splitlines()[2:]
    assert [line.split()[7:9] for line in lines] == [["71%", "60.0"], ["-", "-"]]


def test_disagreeing_implementation_is_caught():
    case = parse_case("5,2,3,4")

    def check(other):  # a fresh problem each time: rnncore's gradients accumulate over calls
        problem = make_problem(case, np.float32)
        bench.table.check_agreement([IMPLS["rnncore"](*problem), other(*problem)], np.float32)

    check(IMPLS["numpy"])  # the honest pair agrees

    class WrongForward(IMPLS["numpy"]):
        def forward(self):
            return super().forward() + 1e-2

    with pytest.raises(AssertionError, match="numpy forward disagrees with rnncore"):
        check(WrongForward)
    for name in ("grad_x", "grad_h0", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        with pytest.raises(AssertionError, match=f"numpy {name} disagrees with rnncore"):
            check(with_wrong_gradient(IMPLS["numpy"], name))


def test_every_gradient_is_compared():
    """Each implementation returns all of its gradients by rnncore's names (torch's too), and a
    name rnncore does not have is an error, not skipped."""
    problem = make_problem(parse_case("bi2"), np.float32)
    rncore = IMPLS["rnncore"](*problem)
    want = {"grad_x", "grad_h0"} | set(problem[0].parameters())
    assert set(rncore.train()) == want and len(want) == 2 + 2 * 2 * 4
    if torch_available():
        assert set(IMPLS["torch"](*problem).train()) == want

    class ExtraGradient(IMPLS["numpy"]):
        def train(self):
            return {**super().train(), "weight_xx_l0": np.zeros(1)}

    one_layer = make_problem(parse_case("5,2,3,4"), np.float32)
    with pytest.raises(AssertionError, match="no weight_xx_l0 to compare with"):
        bench.table.check_agreement([IMPLS["rnncore"](*one_layer), ExtraGradient(*one_layer)],
                                  np.float32)


def test_minimum_memory_by_hand():
    m = bench.memory.minimum_extra_mb(parse_case("bi2"), np.float32)
    MB = 1024 * 1024
    assert m["states"] == pytest.approx(2 * 100 * 32 * 2 * 128 * 4 / MB)
    assert m["grad_x"] == pytest.approx(100 * 32 * 64 * 4 / MB)
    assert m["grad_h0"] == pytest.approx(4 * 32 * 128 * 4 / MB)
    params = 2 * (128 * (64 + 128) + 256) + 2 * (128 * (256 + 128) + 256)
    assert m["param_grads"] == pytest.approx(params * 4 / MB)
    assert m["total"] == pytest.approx(m["states"] + m["grad_x"] + m["grad_h0"] + params * 4 / MB)


@pytest.mark.skipif(not bench.memory.supported(), reason="needs Linux /proc/self/clear_refs")
def test_memory_column(tmp_path, capsys):
    # Big enough to be seen in the resident set size: ~0.5 MB of states and gradients.
    shape = "40,16,64,128"
    path = tmp_path / "bench.json"
    args = ["bench", "--shapes", shape, "--budget", "0.01", "--reps", "2", "--memory", "--json",
            str(path)]
    assert main(args + NUMPY_ONLY) == 0
    out = capsys.readouterr().out
    assert "The least rnncore's layer must add" in out and "minimum" in out
    data = json.loads(path.read_text())
    minimum = data["memory_min_mb"]["custom T40 B16 I64 H128"]["total"]
    for r in data["results"]:
        # At least the states and gradients; not wildly more (a few copies of them).
        assert 0.5 * minimum < r["train_extra_mb"] < 5 * minimum + 1, r


def test_stream_section(with_step, capsys, tmp_path):
    results = bench.stream.bench_stream(hidden_sizes=(8, 16), steps=20, block=10)
    assert [(r.H, r.impl) for r in results] == [(8, "rnncore"), (8, "numpy"), (16, "rnncore"),
                                                (16, "numpy")]
    assert all(r.us_per_step > 0 for r in results)
    lines = bench.stream.format_stream(results, 20).splitlines()
    assert lines[0].startswith("streaming: one step from Python, B=1") and "20 steps" in lines[0]
    assert lines[1].split()[:3] == ["H", "rnncore", "us"]
    assert re.fullmatch(r" +8 +[\d.]+ +[\d.]+ +numpy [\d.]+x", lines[3])
    assert len(lines) == 5  # no "not available" line


def test_stream_blocks_take_turns_across_hidden_sizes(monkeypatch):
    calls = []

    def fake_runners(H, block, with_torch):
        def runner(name):
            def run(xs, h=None):
                calls.append((H, name, len(xs)))
                return np.zeros(1)
            return run, lambda h: h
        return ({name: runner(name) for name in ("rnncore", "numpy")},
                {name: [None] * block for name in ("rnncore", "numpy")})

    monkeypatch.setattr(bench.stream, "hidden_size_runners", fake_runners)
    monkeypatch.setattr(bench.stream, "WARM", 3)
    results = bench.stream.bench_stream(hidden_sizes=(8, 16), steps=30, block=10)
    agreement = [(8, "rnncore", 10), (8, "numpy", 10), (16, "rnncore", 10), (16, "numpy", 10)]
    one_round = [(H, name, n) for H, name, _ in agreement for n in (3, 10)]  # warm-up, block
    assert calls == agreement + one_round * 3  # the checks, then 3 rounds
    assert [(r.H, r.impl) for r in results] == [(H, name) for H, name, _ in agreement]


def test_stream_in_cli_json(with_step, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench.stream, "HIDDEN_SIZES", (8,))
    monkeypatch.setattr(bench.stream, "STEPS", 20)
    monkeypatch.setattr(bench.stream, "BLOCK", 10)
    path = tmp_path / "bench.json"
    assert main(["bench", "--shapes", "--stream", "--json", str(path)] + NUMPY_ONLY) == 0
    out = capsys.readouterr().out
    assert "streaming: one step from Python" in out and "sgemm" not in out  # no shapes: no table
    stream = json.loads(path.read_text())["stream"]
    assert [(r["H"], r["impl"]) for r in stream] == [(8, "rnncore"), (8, "numpy")]


def test_stream_without_step(monkeypatch):
    if hasattr(RNN, "step"):
        monkeypatch.delattr(RNN, "step")
    results = bench.stream.bench_stream(hidden_sizes=(8,), steps=20, block=10)
    assert [r.impl for r in results] == ["numpy"]
    assert bench.stream.NOT_AVAILABLE in bench.stream.format_stream(results, 20)


def test_wrong_step_is_caught(monkeypatch):
    def wrong_step(self, x, h=None):
        y, h = reference_step(self, x, h)
        return y, h * 1.01

    monkeypatch.setattr(RNN, "step", wrong_step, raising=False)
    with pytest.raises(AssertionError, match="streaming: numpy step disagrees with rnncore"):
        bench.stream.bench_stream(hidden_sizes=(8,), steps=20, block=10)


@pytest.mark.skipif(not torch_available(), reason="torch not installed")
def test_stream_against_torch_cell(with_step):
    results = bench.stream.bench_stream(hidden_sizes=(8,), steps=20, block=10, with_torch=True)
    assert [r.impl for r in results] == ["rnncore", "numpy", "torch"]


def test_all_runs_every_shape_at_1_and_2_threads_and_the_stream(monkeypatch, capsys):
    calls, streamed, varied, scaled = [], [], [], []
    monkeypatch.setattr(bench.scaling, "bench_scalings", lambda jobs, *a: scaled.extend(
        (case.name, n) for case, n in jobs) or [])
    monkeypatch.setattr(bench.scaling, "format_scaling", lambda results: "")
    monkeypatch.setattr(bench, "bench_case", lambda case, n, *a, **k: calls.append((case.name, n))
                        or [])
    monkeypatch.setattr(bench.stream, "bench_stream", lambda *a, **k: streamed.append(a) or [])
    monkeypatch.setattr(bench.lengths, "bench_lengths", lambda *a, **k: varied.append(a[0]) or [])
    monkeypatch.setattr(bench.lengths, "format_lengths", lambda results: "")
    assert main(["bench", "--all", "--no-memory"] + NUMPY_ONLY) == 0
    assert calls == [(name, n) for n in (1, 2) for name in bench.cases.SHAPES]
    assert streamed == [(bench.stream.HIDDEN_SIZES, bench.stream.STEPS, bench.stream.BLOCK)]
    assert varied == [[1, 2]]  # --lengths, at both thread counts
    assert scaled == [(name, 2) for name in bench.cases.SHAPES]  # 2 threads against 1, paired
    calls.clear()
    assert main(["bench", "--all", "--shapes", "S2", "--threads", "2", "--no-memory"]) == 0
    assert calls == [("S2", 2)] and varied[-1] == [2]  # explicit choices win over --all's


def test_nothing_to_run():
    with pytest.raises(SystemExit, match="nothing to run"):
        main(["bench", "--shapes"])


def test_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    assert main(TINY + ["--plot", str(path)] + NUMPY_ONLY) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every panel: memory, a shape without the numpy loop, several thread counts, streaming.
    R = bench.table.Result
    results = [R("S1 T1", "rnncore", 1, "float32", 1.0, 2.0, 1.0, 1.0, train_extra_mb=0.0),
               R("S1 T1", "numpy", 1, "float32", 2.0, 3.0, 1.0, 1.0, train_extra_mb=0.5),
               R("bi2 T1", "rnncore", 2, "float32", 1.0, 2.0, 1.0, 1.0, train_extra_mb=1.0)]
    stream = [bench.stream.StreamResult(32, "rnncore", 1.5),
              bench.stream.StreamResult(32, "numpy", 4.0)]
    bench.plot.plot(str(path), results, stream, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(SystemExit, match=r"pip install 'rnncore\[plot\]'"):
        main(TINY + ["--plot", str(tmp_path / "bench.png")])
    assert capsys.readouterr().out == ""  # refused before benchmarking anything
    assert not (tmp_path / "bench.png").exists()
