"""RNN.from_keras_weights against a plain numpy Keras SimpleRNN (no keras needed)."""

import numpy as np
import pytest

import rnncore
from helpers import TOLERANCES

I, H, T, B = 4, 6, 7, 3


def keras_simple_rnn(x, kernel, recurrent_kernel, bias, activation):
    """Keras SimpleRNN(return_sequences=True, return_state=True) on batch-first x (B, T, I):
    h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias), h_{-1} = 0."""
    act = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0))
    h = np.zeros((x.shape[0], kernel.shape[1]))
    outputs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ kernel + h @ recurrent_kernel + (0 if bias is None else bias))
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def _weights(seed, use_bias=True):
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-0.5, 0.5, (I, H))
    recurrent_kernel = rng.uniform(-0.5, 0.5, (H, H))
    bias = rng.uniform(-0.5, 0.5, H) if use_bias else None
    return kernel, recurrent_kernel, bias


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matches_keras_simple_rnn(activation, use_bias, dtype):
    kernel, recurrent_kernel, bias = _weights(0, use_bias)
    rnn = rnncore.RNN.from_keras_weights(kernel, recurrent_kernel, bias, nonlinearity=activation,
                                         dtype=dtype, batch_first=True)
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers) == (I, H, 1)
    assert rnn.bias is use_bias and rnn.batch_first and rnn.dtype == dtype
    assert rnn.nonlinearity == activation
    # the documented mapping, exactly (after rounding to dtype)
    params = rnn.parameters()
    np.testing.assert_array_equal(params["weight_ih_l0"], kernel.T.astype(dtype))
    np.testing.assert_array_equal(params["weight_hh_l0"], recurrent_kernel.T.astype(dtype))
    if use_bias:
        np.testing.assert_array_equal(params["bias_ih_l0"], bias.astype(dtype))
        np.testing.assert_array_equal(params["bias_hh_l0"], np.zeros(H, dtype))
    else:
        assert "bias_ih_l0" not in params and "bias_hh_l0" not in params

    x = np.random.default_rng(1).uniform(-1, 1, (B, T, I)).astype(dtype)
    output, h_n = rnn(x)
    # the reference in float64 from the same (rounded) weights
    cast = (lambda a: None if a is None else a.astype(dtype).astype(np.float64))
    want_out, want_h = keras_simple_rnn(x.astype(np.float64), cast(kernel),
                                        cast(recurrent_kernel), cast(bias), activation)
    np.testing.assert_allclose(output, want_out, **TOLERANCES[np.dtype(dtype)])
    np.testing.assert_allclose(h_n[0], want_h, **TOLERANCES[np.dtype(dtype)])


def test_time_major_by_default():
    kernel, recurrent_kernel, bias = _weights(2)
    rnn = rnncore.RNN.from_keras_weights(kernel, recurrent_kernel, bias, dtype=np.float64)
    assert not rnn.batch_first
    x = np.random.default_rng(3).uniform(-1, 1, (B, T, I))
    output, _ = rnn(x.swapaxes(0, 1))
    want, _ = keras_simple_rnn(x, kernel, recurrent_kernel, bias, "tanh")
    np.testing.assert_allclose(output.swapaxes(0, 1), want, rtol=1e-10, atol=1e-12)


def test_accepts_lists_and_copies():
    kernel, recurrent_kernel, bias = _weights(4)
    rnn = rnncore.RNN.from_keras_weights(kernel.tolist(), recurrent_kernel.tolist(),
                                         bias.tolist(), dtype=np.float64)
    np.testing.assert_array_equal(rnn.parameters()["weight_ih_l0"], kernel.T)
    kernel[:] = 0
    assert np.any(rnn.parameters()["weight_ih_l0"] != 0)


def test_shape_errors():
    kernel, recurrent_kernel, bias = _weights(5)
    make = rnncore.RNN.from_keras_weights
    with pytest.raises(ValueError, match=r"kernel: expected shape \(input_size, hidden_size\)"):
        make(kernel[0], recurrent_kernel, bias)
    with pytest.raises(ValueError, match=r"kernel: expected shape .* got \(4, 0\)"):
        make(np.zeros((I, 0)), np.zeros((0, 0)), None)
    with pytest.raises(ValueError, match=r"recurrent_kernel: .*\(6, 6\).*got \(6, 5\)"):
        make(kernel, recurrent_kernel[:, :5], bias)
    with pytest.raises(ValueError, match=r"recurrent_kernel: .*\(6, 6\).*got \(4, 6\)"):
        make(kernel, kernel, bias)  # a torch-layout mistake
    with pytest.raises(ValueError, match=r"bias: expected shape \(6,\).*got \(12,\)"):
        make(kernel, recurrent_kernel, np.zeros(2 * H))  # e.g. Keras 2's reset_after GRU bias


def test_option_errors():
    kernel, recurrent_kernel, bias = _weights(6)
    make = rnncore.RNN.from_keras_weights
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        make(kernel, recurrent_kernel, bias, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="dtype should be float32 or float64"):
        make(kernel, recurrent_kernel, bias, dtype=np.float16)
    with pytest.raises(TypeError, match="kernel: expected an array of real numbers"):
        make(kernel.astype(complex), recurrent_kernel, bias)
