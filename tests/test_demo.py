"""`rnncore demo` (tiny settings, so it is fast) and the data it builds on: the forecaster beats
the naive forecast, the language model learns, --text / --plot and their errors."""

import sys

import numpy as np
import pytest

import rnncore
from rnncore import demo
from rnncore.__main__ import main
from rnncore.datasets import CharVocab, price_series, stdlib_text

TINY = ["demo", "--epochs", "2", "--forecast-epochs", "3", "--hidden", "16", "--chars", "3000",
        "--no-progress"]


def test_demo_smoke(capsys):
    threads = rnncore.get_num_threads()
    assert main(TINY) == 0
    out = capsys.readouterr().out
    assert "1) character-level language model: 3000 characters" in out
    assert "epoch 1/2  loss" in out and "epoch 2/2  loss" in out
    assert "sampled text (temperature 0.7)" in out
    assert "forecaster" in out and "naive last-value" in out and "test RMSE" in out
    assert "demo finished in" in out
    assert rnncore.get_num_threads() == threads  # --threads is undone afterwards


def test_forecaster_with_default_settings_beats_the_naive_forecast():
    for seed in (0, 1):
        result = demo.forecaster(32, 30, seed, progress=False)  # the demo's defaults
        assert result.rmse < 0.9 * result.naive_rmse
        assert result.history[-1] < result.history[0]
        assert result.truth.shape == result.forecast.shape == result.naive.shape == (599,)


def test_language_model_learns_a_pattern_from_a_text_file(tmp_path, capsys):
    path = tmp_path / "abcd.txt"
    path.write_text("abcd" * 2000)
    assert main(["demo", "--text", str(path), "--epochs", "5", "--forecast-epochs", "1",
                 "--hidden", "16", "--temperature", "0.5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    sample = out.split("-" * 72 + "\n")[1].strip()
    assert len(sample) > 300
    follows = [(a + b) in "abcda" for a, b in zip(sample, sample[1:])]
    assert np.mean(follows) > 0.95, sample


def test_language_model_loss_falls_on_docstrings():
    result = demo.language_model(stdlib_text(6000), 32, 3, seed=0, progress=False)
    assert result.history[-1] < result.history[0] - 0.3
    assert set(result.sample) <= set(stdlib_text(6000))


def test_text_file_errors(tmp_path):
    with pytest.raises(SystemExit, match="cannot read --text .*missing.txt"):
        main(["demo", "--text", str(tmp_path / "missing.txt")])
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(SystemExit, match="gave 9 characters; the language model needs at least"):
        main(["demo", "--text", str(short)])
    with pytest.raises(SystemExit, match="--epochs must be positive"):
        main(["demo", "--epochs", "0"])


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(SystemExit, match=r"--plot needs matplotlib.*pip install 'rnncore\[plot\]'"):
        main(TINY + ["--plot", str(tmp_path / "out.png")])
    assert not (tmp_path / "out.png").exists()


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    assert main(TINY + ["--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot written to {out}" in capsys.readouterr().out


def test_stdlib_text_is_deterministic_ascii_of_the_requested_size():
    text = stdlib_text(5000)
    assert len(text) == 5000 and text == stdlib_text(5000) and text.isascii()
    assert len(stdlib_text()) == 40_000
    assert "JSON" in text  # the first module read is json


def test_char_vocab_round_trip():
    vocab = CharVocab("hello world")
    assert vocab.chars == sorted(set("hello world")) and len(vocab) == 8
    ids = vocab.encode("low rod")
    assert ids.dtype == np.int64 and vocab.decode(ids) == "low rod"
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary"):
        vocab.encode("zoo")


def test_price_series_is_positive_seeded_and_noisy():
    a = price_series(500, seed=3)
    assert a.shape == (500,) and np.all(a > 0) and 50 < a[0] < 200
    np.testing.assert_array_equal(a, price_series(500, seed=3))
    assert not np.array_equal(a, price_series(500, seed=4))
    assert np.std(np.diff(np.log(a))) > 0.005
