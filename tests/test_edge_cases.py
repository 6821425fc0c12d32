"""The README's edge-case policy: T == 0 raises like torch (test_errors.py::test_empty_sequence);
B == 0 returns empty results (test_rnn_vs_reference.py::test_empty_batch for RNN, here for
RNNModel); NaN and Inf propagate as in torch; huge values saturate tanh to +-1, never NaN.

Where the results hold NaN or Inf they are compared position for position (NaN where the oracle
has NaN, the same infinities) with torch and with the numpy reference, whose NaN/Inf pattern is
torch's here: no finite sum overflows, and inf + -inf is NaN in any order."""

import numpy as np
import pytest

import rnncore
from helpers import (TOLERANCES, assert_results_close, make_data, make_torch_rnn, run_reference,
                     run_rnncore, run_torch)

T, B, I, H = 4, 3, 3, 4
OPTS = dict(num_layers=2, bidirectional=True)


def oracle_results(name, rnn, data, opts):
    if name == "torch":
        pytest.importorskip("torch")
        return run_torch(make_torch_rnn(rnn.state_dict(), I, H, rnn.dtype, **opts), *data)
    return run_reference(rnn.parameters(), *data, **opts)


def assert_close_to_scale(got, want, dtype):
    """Like assert_results_close, with each array's error measured against its largest value:
    huge inputs make huge intermediate values, and their rounding is that large."""
    *arrays, grads = got
    *want_arrays, want_grads = want
    rtol = TOLERANCES[np.dtype(dtype)]["rtol"]
    for g, w in zip([*arrays, *grads.values()], [*want_arrays, *want_grads.values()]):
        w = np.asarray(w, np.float64)
        scale = np.abs(w[np.isfinite(w)]).max(initial=1.0)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)


def data_with(dtype, nonlinearity, value, where=(1, 0, 0)):
    """x, h0, grad_output, grad_h_n with x[where] = value, and the RNN."""
    opts = dict(OPTS, nonlinearity=nonlinearity)
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    x, *rest = make_data(np.random.default_rng(1), T, B, I, H, dtype=dtype, **opts)
    x[where] = value
    return rnn, (x, *rest), opts


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's inf - inf
@pytest.mark.parametrize("oracle", ["torch", "reference"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate_like_torch(dtype, nonlinearity, value, oracle):
    rnn, data, opts = data_with(dtype, nonlinearity, value)
    got = run_rnncore(rnn, *data)
    assert_results_close(got, oracle_results(oracle, rnn, data, opts), dtype)
    output = got[0]
    if np.isnan(value):  # every step of that sequence: the reverse direction carries it back
        assert np.isnan(output[:, 0]).all()
    assert np.isfinite(output[:, 1:]).all()  # the other sequences are untouched


@pytest.mark.parametrize("oracle", ["torch", "reference"])
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("magnitude", ["1e30", "max"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_values_saturate_tanh(dtype, magnitude, sign, oracle):
    value = sign * (1e30 if magnitude == "1e30" else np.finfo(dtype).max)
    rnn, data, opts = data_with(dtype, "tanh", value, where=(1, slice(None), 0))
    got = run_rnncore(rnn, *data)
    output, *_ = got
    # Every unit of the first layer saturates at step 1: exactly +-1, so act' = 1 - h*h = 0.
    first_layer = rnncore.RNN(I, H, bidirectional=True, dtype=dtype)
    first_layer.load_state_dict({k: v for k, v in rnn.parameters().items() if "_l0" in k})
    assert (np.abs(first_layer(data[0], data[1][:2])[0][1]) == 1).all()
    for a in [*got[:4], *got[4].values()]:
        assert not np.isnan(a).any()
    assert_close_to_scale(got, oracle_results(oracle, rnn, data, opts), dtype)


@pytest.mark.parametrize("oracle", ["torch", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_values_through_relu(dtype, oracle):
    """1e30 stays finite through the layers (the weights are below 1) and agrees with the
    oracles to rounding."""
    rnn, data, opts = data_with(dtype, "relu", 1e30, where=(1, slice(None), 0))
    got = run_rnncore(rnn, *data)
    assert all(np.isfinite(a).all() for a in [*got[:4], *got[4].values()])
    assert_close_to_scale(got, oracle_results(oracle, rnn, data, opts), dtype)


@pytest.mark.parametrize("oracle", ["torch", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_max_through_relu_overflows_like_torch(dtype, oracle):
    """One step of one layer: the weight gradient of the huge feature is grad * max, which
    overflows to +-inf as torch's does; everything else stays finite."""
    opts = dict(nonlinearity="relu")
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    x, h0, grad_output, grad_h_n = make_data(np.random.default_rng(1), 1, 1, I, H, dtype=dtype)
    x[0, 0, 0] = np.finfo(dtype).max
    grad_output *= 4  # |grad| > 1 somewhere
    got = run_rnncore(rnn, x, h0, grad_output, grad_h_n)
    with np.errstate(over="ignore"):  # the reference's float64 values, rounded to dtype
        want = oracle_results(oracle, rnn, (x, h0, grad_output, grad_h_n), opts)
        want = [np.asarray(w).astype(dtype) for w in want[:4]] + \
            [{k: g.astype(dtype) for k, g in want[4].items()}]
    assert np.isinf(got[4]["weight_ih_l0"][:, 0]).any()
    assert_results_close(got, want, dtype)


def test_model_empty_batch_returns_empty_results():
    model = rnncore.RNNModel(I, H, 2, num_layers=2, head=(3,), bidirectional=True, seed=0)
    y = model(np.zeros((T, 0, I)))
    assert y.shape == (T, 0, 2) and model.h_n.shape == (4, 0, H)
    grad_x = model.backward(np.zeros((T, 0, 2)))
    assert grad_x.shape == (T, 0, I) and model.grad_h0.shape == (4, 0, H)
    assert all(not g.any() for g in model.grads.values())
