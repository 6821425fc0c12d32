"""Each script in examples/ runs to completion in a fresh interpreter and prints its result (or,
without its optional package, says it skipped)."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
DIFFERENCE = r"max abs difference (\S+)\n"  # the parity examples' last number
FLOAT32_PARITY = 1e-5  # two float32 computations of small models agree to a few ulp of O(1)


def _installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


# script -> (a line it prints when it ran, what it prints when it skipped, whether it can run here)
CASES = {
    "forecasting.py": (r"test RMSE over \d+ steps: model [\d.]+, naive last value [\d.]+", None,
                       True),
    "char_lm.py": (r"loss \(nats/char\): [\d.]+ -> [\d.]+ after \d+ epochs", None, True),
    "torch_round_trip.py": (r"torch -> rnncore after a torch training step .*: " + DIFFERENCE,
                            "skipped: torch is not installed", _installed("torch")),
    "onnx_export.py": (r"onnxruntime vs rnncore on 3 sequences .*: " + DIFFERENCE,
                       "skipped: onnxruntime is not installed", _installed("onnx", "onnxruntime")),
    # Checks its own tolerance (float32 over ~40 Adam steps: more rounding than FLOAT32_PARITY).
    "distributed_training.py": (r"distributed vs single-process fit after \d+ epochs: max abs "
                                r"difference [\d.e+-]+\n", "skipped: dask is not installed",
                                _installed("distributed")),
    # The examples on real data: each must beat its baselines (named groups: the model's score
    # first, then the baselines'; RMSE lower is better, accuracy higher).
    "sp500_volatility.py": (r"next-day \|log return\| test RMSE: model (?P<model>[\d.]+), last "
                            r"value (?P<last>[\d.]+), training mean (?P<mean>[\d.]+)",
                            "skipped: the arch package is not installed", _installed("arch")),
    "python_tagging.py": (r"per-character test accuracy: model (?P<model>[\d.]+), per-character "
                          r"lookup (?P<lookup>[\d.]+), majority class \(\w+\) (?P<major>[\d.]+)",
                          None, True),
    "ucr_trace.py": (r"test accuracy: model (?P<model>[\d.]+), 1-NN Euclidean (?P<nn>[\d.]+), "
                     r"majority class (?P<major>[\d.]+)",
                     "skipped: the tslearn package is not installed", _installed("tslearn")),
    "seq2seq_numbers.py": (r"exact match on 200 unseen numbers: model (?P<model>[\d.]+), best "
                           r"constant answer (?P<constant>[\d.]+)", None, True),
}
LOWER_IS_BETTER = {"sp500_volatility.py"}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script):
    ran, skipped, runnable = CASES[script]
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    if not runnable:
        assert skipped in result.stdout
        return
    match = re.search(ran, result.stdout)
    assert match, result.stdout
    scores = {k: float(v) for k, v in match.groupdict().items()}
    if scores:  # the model against each baseline
        model = scores.pop("model")
        for name, baseline in scores.items():
            beats = model < baseline if script in LOWER_IS_BETTER else model > baseline
            assert beats, f"{script}: model {model} does not beat {name} {baseline}"
    elif match.groups():
        assert float(match.group(1)) < FLOAT32_PARITY, result.stdout
