"""Property tests of RNN and RNNModel on generated sizes (T 1..6, B 0..5, I/H 1..9, 1..3 layers),
options, input dtypes and memory layouts. Valid input agrees with the numpy reference, forward
and backward; invalid input raises the documented exception (TypeError for non-real data,
ValueError for wrong shapes, RuntimeError for a backward before any forward), nothing else.
Budgets: conftest.py (``--hypothesis-profile=fuzz`` for 20x the cases)."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rnncore
from fuzz_helpers import (NON_REAL_DTYPES, REAL_DTYPES, examples, lay_out, layouts_for,
                          reference_head, rnn_cases, values_as)
from helpers import TOLERANCES, assert_results_close, make_data, run_reference, run_rnncore
from reference import reference_rnn

NAMES = ("x", "h0", "grad_output", "grad_h_n")
# For the model with a head, which the reference's error bound does not cover: runs of the "fuzz"
# profile found float32 gradients of 3-layer RNNs up to 1.3x the default tolerance away (sums of
# T*B terms that cancel), hence 4x.
FLOAT32_SCALE = {np.float32: 4.0, np.float64: 1.0}


def new_data(case):
    """float64 x, h0, grad_output, grad_h_n in the case's user-facing shapes."""
    return make_data(np.random.default_rng(case["seed"]), case["T"], case["B"],
                     case["input_size"], case["hidden_size"], unbatched=case["unbatched"],
                     **case["opts"])


def draw_inputs(draw, arrays, optional=("h0", "grad_h_n")):
    """Each array in a drawn real dtype and layout, or None for an omitted optional one.
    Returns (what the caller passes, the same values as plain arrays)."""
    passed, values = {}, {}
    for name, a in zip(NAMES, arrays):
        if name in optional and draw(st.booleans()):
            passed[name] = values[name] = None
            continue
        dtype = draw(st.sampled_from(REAL_DTYPES), label=f"{name} dtype")
        values[name] = values_as(a, dtype)
        passed[name] = lay_out(values[name], draw(st.sampled_from(layouts_for(values[name])),
                                                  label=f"{name} layout"))
    return passed, values


def as_model_dtype(values, dtype):
    return {k: None if v is None else v.astype(dtype) for k, v in values.items()}


def assert_inputs_unchanged(passed, values):
    for name, v in values.items():
        if v is not None:
            np.testing.assert_array_equal(np.asarray(passed[name]), v, err_msg=name)


@settings(max_examples=examples(1000))
@given(rnn_cases(), st.data())
def test_rnn_agrees_with_reference(case, data):
    rnn = rnncore.RNN(case["input_size"], case["hidden_size"], **case["opts"],
                      dtype=case["dtype"], seed=case["seed"])
    passed, values = draw_inputs(data.draw, new_data(case))
    want = run_reference(rnn.parameters(), *as_model_dtype(values, case["dtype"]).values(),
                         **case["opts"])
    got = run_rnncore(rnn, *passed.values())
    assert_results_close(got, want, case["dtype"])
    assert_inputs_unchanged(passed, values)


@settings(max_examples=examples(400))
@given(rnn_cases(), st.data())
def test_model_agrees_with_reference(case, data):
    opts = {k: v for k, v in case["opts"].items() if k != "bias"}  # RNNModel's RNN has biases
    head = data.draw(st.lists(st.integers(1, 5), max_size=2), label="head")
    activation = data.draw(st.sampled_from(["relu", "tanh", "sigmoid"]), label="activation")
    O = data.draw(st.integers(1, 4), label="output_size")
    model = rnncore.RNNModel(case["input_size"], case["hidden_size"], O, **opts, head=head,
                             head_activation=activation, dtype=case["dtype"], seed=case["seed"])
    x, h0, grad_output, grad_h_n = new_data({**case, "opts": opts})
    grad_y = np.random.default_rng(case["seed"] + 1).standard_normal(grad_output.shape[:-1] + (O,))
    passed, values = draw_inputs(data.draw, (x, h0, grad_y, grad_h_n))
    v = as_model_dtype(values, case["dtype"])

    params = model.parameters()
    rnn_params = {k[4:]: p for k, p in params.items() if k.startswith("rnn.")}
    head_params = {k[5:]: p for k, p in params.items() if k.startswith("head.")}
    output, *_ = reference_rnn(v["x"], v["h0"], rnn_params, np.zeros(grad_output.shape), None,
                               **opts)
    rows = output.reshape(-1, output.shape[-1])
    y, d_rows, head_grads = reference_head(head_params, rows, activation,
                                           np.reshape(v["grad_output"], (-1, O)))
    _, h_n, grad_x, grad_h0, rnn_grads = reference_rnn(
        v["x"], v["h0"], rnn_params, d_rows.reshape(output.shape), v["grad_h_n"], **opts)
    want = (y.reshape(output.shape[:-1] + (O,)), h_n, grad_x, grad_h0,
            {**{f"rnn.{k}": g for k, g in rnn_grads.items()},
             **{f"head.{k}": g for k, g in head_grads.items()}})

    got_y = model(passed["x"], passed["h0"]).copy()
    got_grad_x = model.backward(passed["grad_output"], passed["grad_h_n"])
    got = (got_y, model.h_n, got_grad_x, model.grad_h0,
           {k: g.copy() for k, g in model.grads.items()})
    assert_results_close(got, want, case["dtype"], scale=FLOAT32_SCALE[case["dtype"]])
    assert_inputs_unchanged(passed, values)


@settings(max_examples=examples(200))
@given(rnn_cases(bidirectional=False), st.data())
def test_step_agrees_with_forward(case, data):
    """Streaming one step at a time, with every x_t and state in its own layout."""
    case["opts"]["batch_first"] = False
    rnn = rnncore.RNN(case["input_size"], case["hidden_size"], **case["opts"],
                      dtype=case["dtype"], seed=case["seed"])
    x, h0, _, _ = new_data(case)
    if data.draw(st.booleans(), label="start from zeros"):
        h0 = np.zeros_like(h0)
    output, h_n = rnn(x, h0)
    h = None if not h0.any() else h0
    for t in range(case["T"]):
        x_t = x[t].astype(case["dtype"])
        x_t = lay_out(x_t, data.draw(st.sampled_from(layouts_for(x_t)), label="x_t layout"))
        if h is not None:
            h = np.asarray(h, case["dtype"])
            h = lay_out(h, data.draw(st.sampled_from(layouts_for(h)), label="h layout"))
        y, h = rnn.step(x_t, h)
        np.testing.assert_allclose(y, output[t], **TOLERANCES[np.dtype(case["dtype"])])
    np.testing.assert_allclose(h, h_n, **TOLERANCES[np.dtype(case["dtype"])])


# --- invalid input -------------------------------------------------------------------------------

ARGUMENTS = ["input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
             "dropout", "bidirectional", "dtype"]
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(), st.text(max_size=4),
                 st.sampled_from([np.float16, np.float32, "float64", "f8", "x", [1], {"a": 1},
                                  (np.float64, -1), "tanh", "relu", 0.5]))


@settings(max_examples=examples(300))
@given(st.sampled_from(ARGUMENTS), JUNK, st.booleans())
def test_constructor_refuses_or_builds_a_working_model(name, value, use_model):
    kwargs = {**dict(input_size=2, hidden_size=3, num_layers=2), name: value}
    try:
        with warnings.catch_warnings():  # dropout > 0 with one layer is allowed, with a warning
            warnings.filterwarnings("ignore", "dropout option adds dropout", UserWarning)
            warnings.filterwarnings("ignore", "Data type alias", DeprecationWarning)  # numpy's
            net = rnncore.RNNModel(output_size=1, **kwargs) if use_model else rnncore.RNN(**kwargs)
    except (TypeError, ValueError):
        return
    assert net.dtype in (np.float32, np.float64)
    net(np.zeros((2, 1, net.input_size)))
    if use_model:
        json.dumps(net.config())  # what save() writes


def wrong_shape(draw, shape):
    """A shape that is not `shape`: one extent changed, a dimension added or removed, or two
    axes swapped."""
    shape = list(shape)
    how = draw(st.sampled_from(["extent", "add", "remove", "swap"]), label="wrong shape")
    if how == "extent":
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = draw(st.integers(0, 10).filter(lambda n: n != shape[i]))
    elif how == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 3)))
    elif how == "remove":
        del shape[draw(st.integers(0, len(shape) - 1))]
    else:
        shape = shape[::-1]
    return tuple(shape)


FAULTS = {  # what is wrong -> the exception it must raise
    "x dtype": TypeError, "h0 dtype": TypeError, "grad_output dtype": TypeError,
    "grad_h_n dtype": TypeError, "x rank": ValueError, "x features": ValueError,
    "x steps": ValueError, "x ragged": ValueError, "h0 shape": ValueError,
    "grad_output shape": ValueError, "grad_h_n shape": ValueError,
    "backward before forward": RuntimeError,
}


@settings(max_examples=examples(1000))
@given(rnn_cases(), st.booleans(), st.sampled_from(sorted(FAULTS)), st.data())
def test_invalid_input_raises_the_documented_error(case, use_model, fault, data):
    I, H, O = case["input_size"], case["hidden_size"], 3
    if use_model:
        opts = {k: v for k, v in case["opts"].items() if k != "bias"}
        net = rnncore.RNNModel(I, H, O, **opts, dtype=case["dtype"], seed=case["seed"])
    else:
        net = rnncore.RNN(I, H, **case["opts"], dtype=case["dtype"], seed=case["seed"])
    x, h0, grad_output, grad_h_n = new_data(case)
    if use_model:
        grad_output = np.ones(grad_output.shape[:-1] + (O,))
    args = dict(x=x, h0=h0, grad_output=grad_output, grad_h_n=grad_h_n)
    name, what = fault.split(" ", 1)
    if what == "dtype":
        bad = values_as(args[name], data.draw(st.sampled_from(NON_REAL_DTYPES), label="dtype"))
        args[name] = lay_out(bad, data.draw(st.sampled_from(layouts_for(bad)), label="layout"))
    elif what == "shape":
        shape = wrong_shape(data.draw, args[name].shape)
        assume(shape != args[name].shape)
        args[name] = np.zeros(shape)
    elif what == "rank":
        rank = data.draw(st.sampled_from([0, 1, 4]), label="rank")
        args["x"] = np.zeros(x.shape[:1] * rank)
    elif what == "features":
        args["x"] = np.zeros(x.shape[:-1] + (data.draw(st.integers(0, 10).filter(
            lambda n: n != I), label="features"),))
    elif what == "steps":
        args["x"] = np.zeros((x.shape[0], 0, I) if case["opts"]["batch_first"]
                             and not case["unbatched"] else (0,) + x.shape[1:])
    elif what == "ragged":
        args["x"] = [[0.0] * I, [0.0] * (I + 1)]

    if name in ("x", "h0"):
        with pytest.raises(FAULTS[fault]):
            net(args["x"], args["h0"])
        return
    if fault != "backward before forward":
        net(args["x"], args["h0"])
    with pytest.raises(FAULTS[fault]):
        net.backward(args["grad_output"], args["grad_h_n"])


@settings(max_examples=examples(400))
@given(rnn_cases(), st.data())
def test_rnn_with_lengths_agrees_with_reference(case, data):
    """Variable lengths (any order, ties, 1 and T), with and without h0 and grad_h_n: the
    reference's results, and exact zeros at the padded steps of the output and of grad_x."""
    assume(not case["unbatched"] and case["B"] > 0)  # lengths need a batch
    B, T = case["B"], case["T"]
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B), label="lengths")
    rnn = rnncore.RNN(case["input_size"], case["hidden_size"], **case["opts"],
                      dtype=case["dtype"], seed=case["seed"])
    x, h0, grad_output, grad_h_n = (a.astype(case["dtype"]) for a in new_data(case))
    if data.draw(st.booleans(), label="omit h0 and grad_h_n"):
        h0 = grad_h_n = None
    got = run_rnncore(rnn, x, h0, grad_output, grad_h_n, lengths=np.array(lengths))
    want = run_reference(rnn.parameters(), x, h0, grad_output, grad_h_n, lengths=lengths,
                         **case["opts"])
    assert_results_close(got, want, case["dtype"])
    padded = ~rnncore.length_mask(lengths, T, batch_first=case["opts"]["batch_first"])
    output, _, grad_x, _, _ = got
    assert np.all(output[padded] == 0) and np.all(grad_x[padded] == 0)
