"""`rnncore bench --lengths` on a tiny case (fast): the implementations, the agreement check
catching a wrong one, the table and the JSON."""

import json

import numpy as np
import pytest

from rnncore import bench
from rnncore.__main__ import main
from rnncore.bench.peers import torch_available
from helpers import with_wrong_gradient

pytestmark = pytest.mark.usefixtures("quick_bench")

TINY = dict(T=12, B=5, I=3, H=4, low=2, high=12, seed=0)


def test_bench_lengths_results_and_table():
    with_torch = torch_available()
    results = bench.lengths.bench_lengths([1], np.float32, 2, 0.01, with_torch, **TINY)
    names = ["rnncore lengths", "rnncore padded"] + (["torch packed", "torch padded"]
                                                     if with_torch else [])
    assert [r.impl for r in results] == names
    lengths = np.random.default_rng(0).integers(2, 13, 5)
    for r in results:
        assert r.case == "T12 B5 I3 H4, lengths uniform in [2, 12] (seed 0)"
        assert r.threads == 1 and r.dtype == "float32" and r.forward_ms > 0 and r.train_ms > 0
        assert r.valid_fraction == pytest.approx(lengths.sum() / (5 * 12))
        flop = 2 * lengths.sum() * 4 * (3 + 4)  # the valid steps only
        assert r.forward_gflops == pytest.approx(flop / r.forward_ms / 1e6)
        assert r.train_gflops == pytest.approx(3 * flop / r.train_ms / 1e6)
    text = bench.lengths.format_lengths(results)
    assert text.splitlines()[0].startswith("variable lengths: T12 B5 I3 H4")
    ours, padded = results[0], results[1]
    assert 0 < ours.forward_vs_padded and 0 < ours.train_vs_padded
    assert padded.forward_vs_padded is None and padded.train_vs_padded is None
    assert (f"rnncore lengths / padded time (median of paired calls): forward "
            f"{ours.forward_vs_padded:.3f}, train {ours.train_vs_padded:.3f}") in text
    assert f"(sum(lengths)/(B*T) = {lengths.sum() / 60:.3f}; target <= " in text
    assert ("torch packed / rnncore lengths time" in text) == with_torch


def test_wrong_lengths_implementation_is_caught():
    problem = bench.lengths.make_problem(**TINY, dtype=np.float32)
    lengths = problem[2]
    honest = {cls.name: cls(*problem) for cls in (bench.lengths.RncoreLengths,
                                                  bench.lengths.RncorePadded)}
    bench.lengths.check_agreement(honest, lengths, np.float32)

    class PaddedInDisguise(bench.lengths.RncorePadded):  # ignores the lengths
        name = "rnncore lengths"

    wrong = {**honest, "rnncore lengths": PaddedInDisguise(*problem)}
    with pytest.raises(AssertionError, match="not 0 at padded steps"):
        bench.lengths.check_agreement(wrong, lengths, np.float32)


def test_torch_packed_disagreeing_is_caught():
    pytest.importorskip("torch")
    problem = bench.lengths.make_problem(**TINY, dtype=np.float32)
    impls = {cls.name: cls(*problem) for cls in (bench.lengths.RncoreLengths,
                                                 bench.lengths.RncorePadded,
                                                 bench.lengths.TorchPacked,
                                                 bench.lengths.TorchPadded)}
    bench.lengths.check_agreement(impls, problem[2], np.float32)

    for name in ("grad_x", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        impls["torch packed"] = with_wrong_gradient(bench.lengths.TorchPacked, name)(*problem)
        with pytest.raises(AssertionError,
                           match=f"torch packed {name} disagrees with rnncore lengths"):
            bench.lengths.check_agreement(impls, problem[2], np.float32)


def test_cli_flag_and_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench.lengths, "CASE", TINY)
    path = tmp_path / "bench.json"
    argv = ["bench", "--shapes", "--lengths", "--budget", "0.01", "--reps", "2", "--no-memory",
            "--no-torch", "--json", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "variable lengths: T12 B5 I3 H4" in out and "sgemm" not in out  # no shapes: no table
    data = json.loads(path.read_text())
    assert [r["impl"] for r in data["lengths"]] == ["rnncore lengths", "rnncore padded"]
    assert data["results"] == [] and data["lengths"][0]["valid_fraction"] > 0


def test_wrong_lengths_gradient_is_caught_without_torch():
    problem = bench.lengths.make_problem(**TINY, dtype=np.float32)

    for name in ("grad_x", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        wrong = with_wrong_gradient(bench.lengths.RncoreLengths, name)
        impls = {"rnncore lengths": wrong(*problem),
                 "rnncore padded": bench.lengths.RncorePadded(*problem)}
        with pytest.raises(AssertionError, match=f"{name} disagrees with rnncore padded"):
            bench.lengths.check_agreement(impls, problem[2], np.float32)
