"""RNN(..., init=...): torch's default draws unchanged without it; the keras and irnn presets and
per-kind schemes give the matrices they promise (orthogonal, identity, Glorot's bounds, zeros),
seeded; RNNModel passes init on and saves it; bad values raise."""

import math

import numpy as np
import pytest

import rnncore

I, H = 3, 6


def test_without_init_the_draws_are_torchs_default_as_before():
    rnn = rnncore.RNN(I, H, num_layers=2, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    bound = 1 / math.sqrt(H)
    for name, p in rnn.parameters().items():  # torch's order, one uniform draw each
        np.testing.assert_array_equal(p, rng.uniform(-bound, bound, p.shape), err_msg=name)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_preset(bidirectional):
    rnn = rnncore.RNN(I, H, num_layers=2, bidirectional=bidirectional, init="keras",
                      dtype=np.float64, seed=1)
    for name, p in rnn.parameters().items():
        if name.startswith("bias"):
            assert not p.any(), name
        elif name.startswith("weight_hh"):
            np.testing.assert_allclose(p @ p.T, np.eye(H), atol=1e-12, err_msg=name)
        else:
            fan_out, fan_in = p.shape
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert np.abs(p).max() <= bound and np.abs(p).max() > 0.5 * bound, name
    again = rnncore.RNN(I, H, num_layers=2, bidirectional=bidirectional, init="keras",
                        dtype=np.float64, seed=1)
    for name, p in again.parameters().items():
        np.testing.assert_array_equal(p, rnn.parameters()[name])


def test_irnn_preset():
    rnn = rnncore.RNN(200, 50, nonlinearity="relu", init="irnn", dtype=np.float64, seed=0)
    p = rnn.parameters()
    np.testing.assert_array_equal(p["weight_hh_l0"], np.eye(50))
    assert not p["bias_ih_l0"].any() and not p["bias_hh_l0"].any()
    assert abs(p["weight_ih_l0"].std() - 0.001) < 1e-4


@pytest.mark.parametrize("shape_in", [2, 10])  # W_ih taller than wide, and wider than tall
def test_orthogonal_input_weights(shape_in):
    rnn = rnncore.RNN(shape_in, H, init={"weight_ih": "orthogonal"}, dtype=np.float64, seed=0)
    w = rnn.parameters()["weight_ih_l0"]
    gram = w.T @ w if H >= shape_in else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(H, shape_in)), atol=1e-12)
    default = rnncore.RNN(shape_in, H, dtype=np.float64, seed=0).parameters()
    np.testing.assert_array_equal(rnn.parameters()["weight_hh_l0"], default["weight_hh_l0"])


def test_model_passes_init_on_and_saves_it(tmp_path):
    model = rnncore.RNNModel(I, H, 2, nonlinearity="relu", init="irnn", seed=0)
    np.testing.assert_array_equal(model.parameters()["rnn.weight_hh_l0"], np.eye(H))
    assert "init=" in repr(model)
    model.save(tmp_path / "m.npz")
    back = rnncore.RNNModel.load(tmp_path / "m.npz")
    assert back.config() == model.config()
    assert "init" not in rnncore.RNNModel(I, H, 2).config()


@pytest.mark.parametrize("init, error, match", [
    ("he", ValueError, "init: expected one of 'keras', 'irnn'"),
    (3, TypeError, "init: expected None, a preset name or a dict, got int"),
    ({"weight": "glorot"}, ValueError, "init: expected keys among"),
    ({"weight_hh": "xavier"}, ValueError, r"init\['weight_hh'\]: expected one of"),
    ({"weight_ih": "identity"}, ValueError, "'identity' is for the square weight_hh only"),
])
def test_bad_init(init, error, match):
    with pytest.raises(error, match=match):
        rnncore.RNN(I, H, init=init)
