"""RNNModel.save / RNNModel.load: round trips, the file format, and every kind of bad file
(missing, truncated, random bytes, damaged, foreign, of another format version)."""

import json

import numpy as np
import pytest

import rnncore
from rnncore.io import serialization

CONFIGS = [
    dict(),
    dict(num_layers=2, head=(8, 4), head_activation="tanh", nonlinearity="relu", dtype=np.float64),
    dict(bidirectional=True, batch_first=True, num_layers=2, dropout=0.25, head=(3,),
         head_activation="sigmoid"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_round_trip(tmp_path, config):
    model = rnncore.RNNModel(3, 6, 2, seed=0, **config)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = rnncore.RNNModel.load(path)
    assert loaded.config() == model.config() and repr(loaded) == repr(model)
    assert list(loaded.parameters()) == list(model.parameters())
    for name, p in model.parameters().items():
        assert loaded.parameters()[name].dtype == p.dtype
        np.testing.assert_array_equal(loaded.parameters()[name], p, err_msg=name)
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    np.testing.assert_array_equal(loaded.eval()(x), model.eval()(x))


def test_writes_exactly_the_given_path_and_replaces_it(tmp_path):
    path = tmp_path / "weights.bin"  # no .npz added, unlike np.savez(filename)
    rnncore.RNNModel(2, 3, 1, seed=0).save(str(path))
    rnncore.RNNModel(2, 3, 1, seed=1).save(path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]  # no temporary left
    np.testing.assert_array_equal(rnncore.RNNModel.load(path).parameters()["head.0.bias"],
                                  rnncore.RNNModel(2, 3, 1, seed=1).parameters()["head.0.bias"])


def test_file_holds_format_version_config_and_parameters_without_pickle(tmp_path):
    model = rnncore.RNNModel(2, 3, 1, head=(4,), seed=0)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert str(data["format"]) == "rnncore.RNNModel"
        assert int(data["format_version"]) == serialization.FORMAT_VERSION == 1
        assert json.loads(str(data["config"])) == model.config()
        params = sorted(k for k in data.files if k.startswith("param/"))
        assert params == sorted(f"param/{k}" for k in model.parameters())


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        rnncore.RNNModel.load(tmp_path / "nothing.npz")


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    rnncore.RNNModel(3, 5, 2, head=(4,), seed=0).save(path)
    return path


def rewrite(path, tmp_path, changes):
    """A copy of the archive at `path` with entries replaced ({name: value}) or removed (None)."""
    with np.load(path, allow_pickle=False) as data:
        entries = {k: data[k] for k in data.files}
    for key, value in changes.items():
        if value is None:
            del entries[key]
        else:
            entries[key] = np.asarray(value)
    out = tmp_path / "changed.npz"
    np.savez(out, **entries)
    return out


def test_truncated_files_raise_value_error(saved, tmp_path):
    data = saved.read_bytes()
    cuts = sorted({0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 100,
                   len(data) - 22, len(data) - 1})
    for cut in cuts:
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a readable rnncore model file"):
            rnncore.RNNModel.load(bad)


def test_damaged_bytes_raise_value_error_or_load_unchanged(saved, tmp_path):
    """Flipping any single bit never escapes as another exception, nor changes the model."""
    data, original = saved.read_bytes(), rnncore.RNNModel.load(saved)
    rng = np.random.default_rng(0)
    bad, failures = tmp_path / "flipped.npz", 0
    for position in rng.choice(len(data), size=150, replace=False):
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(damaged))
        try:
            model = rnncore.RNNModel.load(bad)
        except ValueError:
            failures += 1
            continue
        for name, p in original.parameters().items():  # the flip hit an unchecked field
            np.testing.assert_array_equal(model.parameters()[name], p)
    assert failures > 100


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, bytes(range(256)) * 8,
                                     b"PK\x03\x04 not really a zip"], ids=range(4))
def test_random_bytes_raise_value_error(tmp_path, content):
    bad = tmp_path / "junk.npz"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="junk.npz: not a readable rnncore model file"):
        rnncore.RNNModel.load(bad)


def test_foreign_npz_and_npy_raise_value_error(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.ones(3), format=np.array("something else"))
    with pytest.raises(ValueError, match="other.npz: not an rnncore model file"):
        rnncore.RNNModel.load(tmp_path / "other.npz")
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ValueError, match="single .npy array, not an .npz archive"):
        rnncore.RNNModel.load(tmp_path / "array.npy")


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "pickled.npz", format=np.array(["rnncore.RNNModel", None], dtype=object))
    with pytest.raises(ValueError, match="pickled"):
        rnncore.RNNModel.load(tmp_path / "pickled.npz")


def test_other_format_version_raises_value_error(saved, tmp_path):
    with pytest.raises(ValueError, match="format version 2 is not supported .*reads version 1"):
        rnncore.RNNModel.load(rewrite(saved, tmp_path, {"format_version": 2}))


@pytest.mark.parametrize("changes, match", [
    ({"format_version": None}, "bad or missing format_version"),
    ({"config": "{not json"}, "bad or missing format_version or config"),
    ({"config": "[1, 2]"}, "bad .*config is a JSON list, not an object"),
    ({"config": json.dumps(dict(input_size=3))}, "its config .* is not valid .*missing 2"),
    ({"config": json.dumps(dict(input_size=3, hidden_size=5, output_size=2, colour="red"))},
     "its config .* is not valid .*unexpected keyword argument 'colour'"),
    ({"param/head.0.weight": None}, "parameters do not fit its config.*missing keys"),
    ({"param/head.0.weight": np.zeros((2, 2))}, "parameters do not fit.*size mismatch"),
], ids=range(7))
def test_damaged_contents_raise_value_error(saved, tmp_path, changes, match):
    with pytest.raises(ValueError, match=f"damaged rnncore model file: {match}"):
        rnncore.RNNModel.load(rewrite(saved, tmp_path, changes))
