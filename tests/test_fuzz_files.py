"""Property tests of load_state_dict and RNNModel.save/load on damaged input: missing, extra or
misshapen entries, other dtypes, NaN and non-array values; truncated, random, bit-flipped and
rewritten files. A state dict is loaded whole or refused whole (ValueError, or TypeError for
non-real values) leaving the model unchanged; a damaged file raises ValueError or, where the damage
left a valid file, loads what it holds. Budgets: conftest.py."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import rnncore
from fuzz_helpers import NON_REAL_DTYPES, REAL_DTYPES, examples, values_as


@st.composite
def models(draw, kinds=(rnncore.RNN, rnncore.RNNModel)):
    """A small RNN or RNNModel with drawn sizes and options."""
    sizes = [draw(st.integers(1, 5)) for _ in range(2)]
    opts = dict(num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2**32 - 1)))
    if draw(st.sampled_from(kinds)) is rnncore.RNN:
        return rnncore.RNN(*sizes, bias=draw(st.booleans()), **opts)
    head = draw(st.lists(st.integers(1, 4), max_size=2))
    return rnncore.RNNModel(*sizes, draw(st.integers(1, 4)), head=head, **opts)


NOT_ARRAYS = {  # a value that is no array of real numbers -> the exception it must raise
    "None": (None, TypeError), "text": ("abc", TypeError), "object": (object(), TypeError),
    "dict": ({"a": 1}, TypeError), "ragged list": ([[1.0], [1.0, 2.0]], ValueError),
    "scalar": (1.5, ValueError),
}


@settings(max_examples=examples(500))
@given(models(), st.booleans(), st.data())
def test_state_dict_loads_whole_or_not_at_all(model, strict, data):
    before = model.state_dict()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="values seed"))
    new = {k: rng.uniform(-1, 1, v.shape) for k, v in before.items()}  # loading changes them
    name = data.draw(st.sampled_from(sorted(new)), label="entry")
    fault = data.draw(st.sampled_from(["missing", "extra", "shape", "real dtype", "non-real dtype",
                                       "nan", "nested list", "not an array"]), label="fault")
    refused = None  # the exception type expected, if any
    if fault == "missing":
        del new[name]
        refused = ValueError if strict else None
    elif fault == "extra":
        new[name + "_extra"] = new[name]
        refused = ValueError if strict else None
    elif fault == "shape":
        new[name] = np.zeros(new[name].shape + (1,)) if data.draw(st.booleans()) else \
            new[name].ravel()[:-1]
        refused = ValueError
    elif fault == "real dtype":
        new[name] = values_as(new[name], data.draw(st.sampled_from(REAL_DTYPES), label="dtype"))
    elif fault == "non-real dtype":
        new[name] = values_as(new[name], data.draw(st.sampled_from(NON_REAL_DTYPES)))
        refused = TypeError
    elif fault == "nan":
        new[name].flat[data.draw(st.integers(0, new[name].size - 1))] = np.nan
    elif fault == "nested list":
        new[name] = new[name].tolist()
    else:
        new[name], refused = NOT_ARRAYS[data.draw(st.sampled_from(sorted(NOT_ARRAYS)))]

    if refused is not None:
        with pytest.raises(refused):
            model.load_state_dict(new, strict=strict)
        for k, p in model.parameters().items():
            np.testing.assert_array_equal(p, before[k], err_msg=k)
        return
    result = model.load_state_dict(new, strict=strict)
    assert result.missing_keys == [k for k in before if k not in new]
    assert result.unexpected_keys == [k for k in new if k not in before]
    for k, p in model.parameters().items():
        want = np.asarray(new[k]).astype(model.dtype) if k in new else before[k]
        np.testing.assert_array_equal(p, want, err_msg=k)


# --- files ---------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**9) | st.floats()
    | st.sampled_from(["float32", "float64", "f8", "tanh", "relu", "sigmoid", "x", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=4)
JUNK_ENTRIES = [np.array("x"), np.array(2), np.array(1.5), np.array([1, 1]), np.array(np.nan),
                np.zeros(0), np.array(b"1"), np.array(None, dtype=object), np.array(1 + 1j)]


def read_entries(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def damage(draw, data: bytes, entries: dict) -> bytes | dict:
    """Damaged file contents (bytes), or archive entries to write with np.savez (a dict)."""
    how = draw(st.sampled_from(["truncate", "random bytes", "flip bytes", "drop entry",
                                "add entry", "junk entry", "config size", "config value",
                                "config"]))
    event(how)
    if how == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if how == "random bytes":
        return draw(st.sampled_from([b"", b"PK\x03\x04", b"\x93NUMPY"])) + draw(st.binary())
    if how == "flip bytes":
        damaged = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            damaged[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(damaged)
    entries = dict(entries)
    name = draw(st.sampled_from(sorted(entries)))
    if how == "drop entry":
        del entries[name]
    elif how == "add entry":
        entries[draw(st.sampled_from(["param/extra", "extra", name + "x"]))] = np.zeros(2)
    elif how == "junk entry":
        entries[name] = draw(st.sampled_from(JUNK_ENTRIES))
    elif how == "config size":  # what a model of that size would need: up to 10**9 values
        config = json.loads(str(entries["config"]))
        key = draw(st.sampled_from(["input_size", "hidden_size", "output_size", "num_layers",
                                    "head"]))
        size = draw(st.integers(-3, 10**9))
        config[key] = [size] if key == "head" else size
        entries["config"] = np.array(json.dumps(config))
    elif how == "config value":  # one constructor argument changed, removed or added
        config = json.loads(str(entries["config"]))
        key = draw(st.sampled_from(sorted(config) + ["seed", "bias", "extra"]))
        if draw(st.booleans()):
            config.pop(key, None)
        else:
            config[key] = draw(JSON_VALUES)
        entries["config"] = np.array(json.dumps(config))
    else:
        entries["config"] = np.array(json.dumps(draw(JSON_VALUES)))
    return entries


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_files")


@settings(max_examples=examples(500))
@given(models(kinds=[rnncore.RNNModel]), st.data())
def test_damaged_file_raises_value_error_or_loads_what_it_holds(work_dir, model, data):
    good, bad = work_dir / "good.npz", work_dir / "bad.npz"
    model.save(good)
    damaged = damage(data.draw, good.read_bytes(), read_entries(good))
    if isinstance(damaged, bytes):
        bad.write_bytes(damaged)
    else:
        with open(bad, "wb") as f:  # np.savez(path) would add ".npz"
            np.savez(f, **damaged)
    try:
        with warnings.catch_warnings():  # a config changed to dropout > 0 with one layer
            warnings.filterwarnings("ignore", "dropout option adds dropout", UserWarning)
            loaded = rnncore.RNNModel.load(bad)
    except ValueError as err:
        assert str(bad) in str(err)
        event("refused")
        return
    event("loaded")
    # The damage missed everything checked, or made another valid file (a config of the same
    # sizes, a parameter of the right shape): the model holds what the file holds.
    assert loaded.dtype in (np.float32, np.float64)
    json.dumps(loaded.config())
    held = read_entries(bad)
    for name, p in loaded.parameters().items():
        np.testing.assert_array_equal(p, held["param/" + name].astype(loaded.dtype))
