"""rnncore.RNNModel's API: shapes in every layout, parameter names and init, gradient accumulation,
state dicts, train/eval, streaming, argument errors."""

import numpy as np
import pytest

import rnncore
from model_helpers import small_model

T, B, I, H, O = 5, 3, 3, 5, 4


def test_public_api_is_exported():
    for name in ("RNNModel", "losses", "optim", "fit", "clip_grad_norm", "sample", "one_hot"):
        assert name in rnncore.__all__ and hasattr(rnncore, name)
    assert callable(rnncore.losses.mse) and callable(rnncore.optim.Adam)


@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_and_state_shapes(layout, bidirectional):
    model = small_model(batch_first=layout == "batch_first", bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x_shape = {"time_major": (T, B, I), "batch_first": (B, T, I), "unbatched": (T, I)}[layout]
    y = model(np.random.default_rng(0).normal(size=x_shape))
    assert y.shape == x_shape[:-1] + (O,)
    assert y.dtype == np.float64
    assert model.h_n.shape == ((2 * D, B, H) if layout != "unbatched" else (2 * D, H))
    grad_x = model.backward(np.ones_like(y))
    assert grad_x.shape == x_shape
    assert model.grad_h0.shape == model.h_n.shape


def test_layouts_agree():
    """batch_first and unbatched inputs give the time-major results, transposed / per sequence."""
    x = np.random.default_rng(1).normal(size=(T, B, I))
    tm, bf = small_model(), small_model(batch_first=True)
    y = tm(x)
    np.testing.assert_allclose(bf(x.swapaxes(0, 1)), y.swapaxes(0, 1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tm(x[:, 1]), y[:, 1], rtol=1e-12, atol=1e-14)


def test_head_runs_once_over_all_rows():
    """The head is one forward over all T*B rows (single GEMMs), not a per-step loop."""
    model = small_model()
    seen = []
    forward = model.head.forward
    model.head.forward = lambda rows, **kw: seen.append(rows.shape) or forward(rows, **kw)
    model(np.zeros((T, B, I)))
    assert seen == [(T * B, H)]


def test_parameter_names_follow_torch_module_layout():
    model = small_model(bidirectional=True, head=(6, 3))
    rnn_names = [f"{w}_l{k}{s}" for k in range(2) for s in ("", "_reverse")
                 for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    head_names = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    want = [f"rnn.{n}" for n in rnn_names] + [f"head.{n}" for n in head_names]
    assert list(model.parameters()) == want
    assert list(model.grads) == want and list(model.state_dict()) == want
    shapes = {k: v.shape for k, v in model.parameters().items()}
    assert shapes["head.0.weight"] == (6, 2 * H) and shapes["head.2.weight"] == (3, 6)
    assert shapes["head.4.weight"] == (O, 3) and shapes["head.4.bias"] == (O,)


def test_single_linear_head():
    model = rnncore.RNNModel(I, H, O, seed=0)
    head = [k for k in model.parameters() if k.startswith("head")]
    assert head == ["head.0.weight", "head.0.bias"]
    assert model.parameters()["rnn.weight_ih_l0"].dtype == np.float32  # default dtype


def test_init_uses_one_seeded_generator_rnn_first_then_torch_linear_init():
    model = rnncore.RNNModel(I, H, O, num_layers=2, head=(7,), seed=3)
    rng = np.random.default_rng(3)
    rnn = rnncore.RNN(I, H, num_layers=2, seed=rng)  # draws the RNN's weights first
    for name, p in rnn.parameters().items():
        np.testing.assert_array_equal(model.parameters()[f"rnn.{name}"], p)
    for name, shape, fan_in in (("0.weight", (7, H), H), ("0.bias", (7,), H),
                                ("2.weight", (O, 7), 7), ("2.bias", (O,), 7)):
        bound = 1 / np.sqrt(fan_in)
        want = rng.uniform(-bound, bound, shape).astype(np.float32)
        np.testing.assert_array_equal(model.parameters()[f"head.{name}"], want, err_msg=name)


def test_head_init_is_uniform_within_one_over_sqrt_fan_in():
    model = rnncore.RNNModel(I, 200, 300, seed=0, dtype=np.float64)
    w = model.parameters()["head.0.weight"]
    bound = 1 / np.sqrt(200)
    assert np.all(np.abs(w) <= bound) and w.min() < -0.99 * bound and w.max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    unseeded = [rnncore.RNNModel(I, H, O).parameters()["head.0.weight"] for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_gradients_accumulate_until_zero_grad():
    model = small_model()
    x, g = np.random.default_rng(0).normal(size=(T, B, I)), np.ones((T, B, O))
    model(x)
    model.backward(g)
    once = {k: v.copy() for k, v in model.grads.items()}
    model(x)
    model.backward(g)
    for name, grad in model.grads.items():
        assert np.any(once[name]), name
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-12, atol=1e-15, err_msg=name)
    model.zero_grad()
    assert all(not g.any() for g in model.grads.values())


def test_parameters_are_live():
    model = small_model()
    x = np.random.default_rng(0).normal(size=(T, B, I))
    before = model(x).copy()
    model.parameters()["head.4.bias"][:] += 1.0
    np.testing.assert_allclose(model(x), before + 1.0, rtol=1e-12)


def test_state_dict_round_trip_and_copies():
    a, b = small_model(seed=1), small_model(seed=2)
    state = a.state_dict()
    state["head.0.bias"][:] = 9  # a copy: the model is untouched
    assert not np.any(a.parameters()["head.0.bias"] == 9)
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = np.random.default_rng(0).normal(size=(T, B, I))
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_is_all_or_nothing():
    model = small_model()
    before = model.state_dict()
    bad = model.state_dict()
    bad["rnn.weight_ih_l0"] = bad["rnn.weight_ih_l0"] + 1
    bad["head.2.weight"] = np.zeros((2, 2))  # refused: nothing may change
    with pytest.raises(ValueError, match="size mismatch for head.2.weight"):
        model.load_state_dict(bad)
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p, before[name])


def test_load_state_dict_strictness():
    model = small_model()
    partial = {"head.0.bias": np.ones(6), "extra": np.zeros(1)}
    with pytest.raises(ValueError,
                       match=r"missing keys \['rnn.weight_ih_l0'.*unexpected keys \['extra'\]"):
        model.load_state_dict(partial)
    result = model.load_state_dict(partial, strict=False)
    assert result.unexpected_keys == ["extra"] and "head.0.weight" in result.missing_keys
    np.testing.assert_array_equal(model.parameters()["head.0.bias"], np.ones(6))


def test_train_eval_reach_the_rnn_dropout():
    model = small_model(dropout=0.5)
    x = np.random.default_rng(0).normal(size=(T, B, I))
    assert model.training and model.train() is model
    assert not np.array_equal(model(x), model(x))  # fresh dropout masks
    assert model.eval() is model and not model.training and not model.rnn.training
    np.testing.assert_array_equal(model(x), model(x))


def test_streaming_in_chunks_equals_one_pass():
    model = small_model()
    x = np.random.default_rng(0).normal(size=(9, B, I))
    whole = model(x).copy()
    h_whole = model.h_n.copy()
    first = model(x[:4]).copy()
    second = model(x[4:], model.h_n)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.h_n, h_whole, rtol=1e-12, atol=1e-14)


def test_repr():
    assert repr(rnncore.RNNModel(3, 8, 2)) == "RNNModel(3, 8, 2)"
    r = repr(rnncore.RNNModel(3, 8, 2, num_layers=2, head=(16,), head_activation="tanh",
                              dtype=np.float64))
    assert r == ("RNNModel(3, 8, 2, num_layers=2, head=(16,), head_activation='tanh', "
                 "dtype='float64')")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(output_size=0), ValueError, "output_size must be greater than zero"),
    (dict(output_size=2.0), TypeError, "output_size should be of type int"),
    (dict(head=5), TypeError, "head should be a sequence"),
    (dict(head=(4, 0)), ValueError, "head width must be greater than zero"),
    (dict(head_activation="gelu"), ValueError, "Unknown head_activation 'gelu'"),
    (dict(nonlinearity="sigmoid"), ValueError, "Unknown nonlinearity"),
    (dict(hidden_size=0), ValueError, "hidden_size must be greater than zero"),
])
def test_constructor_errors(kwargs, error, match):
    args = dict(input_size=I, hidden_size=H, output_size=O)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        rnncore.RNNModel(**args)


def test_backward_errors():
    model = small_model()
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward\\(\\)"):
        model.backward(np.zeros((T, B, O)))
    model(np.zeros((T, B, I)))
    with pytest.raises(ValueError, match=r"grad_y: expected shape \(5, 3, 4\).*got \(5, 3, 3\)"):
        model.backward(np.zeros((T, B, 3)))
