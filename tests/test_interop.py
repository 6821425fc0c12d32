"""RNN.from_torch / to_torch and RNNModel.from_torch / to_torch: exact weight transfer, output and
gradient parity both ways."""

import sys
import subprocess

import numpy as np
import pytest

import rnncore
from helpers import TOLERANCES

torch = pytest.importorskip("torch")

I, H, O = 3, 5, 2
OPTIONS = [
    dict(),
    dict(num_layers=2, nonlinearity="relu", bidirectional=True),
    dict(num_layers=3, bias=False, batch_first=True, dropout=0.25),
    dict(num_layers=2, batch_first=True, bidirectional=True, dtype=torch.float64),
]


def _tol(dtype):
    tol = TOLERANCES[np.dtype(dtype)]
    return dict(rtol=2 * tol["rtol"], atol=2 * tol["atol"])  # two float32 results, each within tol


def _x_h0(module, seed=0):
    rng = np.random.default_rng(seed)
    T, B = 6, 4
    D = 2 if module.bidirectional else 1
    shape = (B, T, module.input_size) if module.batch_first else (T, B, module.input_size)
    x = rng.uniform(-1, 1, shape)
    h0 = rng.uniform(-0.5, 0.5, (module.num_layers * D, B, module.hidden_size))
    return x, h0


def _assert_same_parameters(numpy_params, torch_module):
    torch_state = torch_module.state_dict()
    assert list(numpy_params) == list(torch_state)
    for name, p in numpy_params.items():
        t = torch_state[name].numpy()
        assert t.dtype == p.dtype, name
        np.testing.assert_array_equal(p, t, err_msg=name)


def _torch_run(module, x, h0, grad_y):
    """Forward and backward in torch; returns output, h_n, grad_x, {name: parameter gradient}."""
    module.zero_grad()
    dtype = next(module.parameters()).dtype
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    y, h_n = module(xt, torch.tensor(h0, dtype=dtype))
    y.backward(torch.tensor(grad_y, dtype=dtype))
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    return y.detach().numpy(), h_n.detach().numpy(), xt.grad.numpy(), grads


RNN_OPTIONS = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
               "dropout", "bidirectional")


def _assert_rnn_matches_torch(rnn, module, seed):
    """Same output, h_n, input gradient and parameter gradients on one forward and backward."""
    x, h0 = _x_h0(module, seed=seed)
    out, h_n = rnn(x, h0)
    grad_y = np.random.default_rng(seed + 1).standard_normal(out.shape)
    rnn.zero_grad()
    grad_x, _ = rnn.backward(grad_y)
    want_out, want_h_n, want_grad_x, want_grads = _torch_run(module, x, h0, grad_y)
    tol = _tol(rnn.dtype)
    np.testing.assert_allclose(out, want_out, **tol)
    np.testing.assert_allclose(h_n, want_h_n, **tol)
    np.testing.assert_allclose(grad_x, want_grad_x, **tol)
    for name, g in want_grads.items():
        np.testing.assert_allclose(rnn.grads[name], g, **tol, err_msg=name)


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_rnn_from_torch(opts):
    opts = dict(opts)
    torch.manual_seed(0)
    module = torch.nn.RNN(I, H, **opts)
    module.eval()  # dropout off, so the outputs are comparable
    rnn = rnncore.RNN.from_torch(module)
    for name in RNN_OPTIONS:
        assert getattr(rnn, name) == getattr(module, name), name
    assert rnn.training is False
    _assert_same_parameters(rnn.parameters(), module)
    _assert_rnn_matches_torch(rnn, module, seed=0)


@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_rnn_to_torch(opts):
    opts = dict(opts)
    dtype = np.float64 if opts.pop("dtype", torch.float32) == torch.float64 else np.float32
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=3)
    rnn.eval()
    rng_state = torch.random.get_rng_state()
    module = rnn.to_torch()
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the caller's RNG untouched
    assert isinstance(module, torch.nn.RNN)
    assert module.training is False
    for name in RNN_OPTIONS:
        assert getattr(module, name) == getattr(rnn, name), name
    _assert_same_parameters(rnn.parameters(), module)
    # copies, not views: changing one leaves the other alone
    with torch.no_grad():
        module.weight_hh_l0.add_(1)
    changed = module.weight_hh_l0.detach().numpy()
    assert not np.array_equal(rnn.parameters()["weight_hh_l0"], changed)
    with torch.no_grad():
        module.weight_hh_l0.sub_(1)

    _assert_rnn_matches_torch(rnn, module, seed=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rnn_round_trip_is_exact(dtype):
    rnn = rnncore.RNN(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    back = rnncore.RNN.from_torch(rnn.to_torch())
    assert back.dtype == rnn.dtype and back.training
    for name, p in rnn.parameters().items():
        np.testing.assert_array_equal(back.parameters()[name], p)
        assert back.parameters()[name] is not p


def test_rnn_from_torch_training_step_matches():
    """One SGD step on the same loss in both frameworks leaves the same weights."""
    torch.manual_seed(1)
    module = torch.nn.RNN(I, H, num_layers=2, dtype=torch.float64)
    rnn = rnncore.RNN.from_torch(module)
    x, h0 = _x_h0(module, seed=4)
    lr = 0.1
    out, _ = rnn(x, h0)
    rnn.zero_grad()
    rnn.backward(2 * out)  # d/d out of sum(out**2)
    for name, p in rnn.parameters().items():
        p -= lr * rnn.grads[name]
    y, _ = module(torch.tensor(x), torch.tensor(h0))
    (y ** 2).sum().backward()
    with torch.no_grad():
        for p in module.parameters():
            p -= lr * p.grad
    for name, p in module.state_dict().items():
        np.testing.assert_allclose(rnn.parameters()[name], p.numpy(), rtol=1e-10, atol=1e-12)


def test_rnn_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, got LSTM"):
        rnncore.RNN.from_torch(torch.nn.LSTM(I, H))
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, got GRU"):
        rnncore.RNN.from_torch(torch.nn.GRU(I, H))
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, got Linear"):
        rnncore.RNN.from_torch(torch.nn.Linear(I, H))
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, got ndarray"):
        rnncore.RNN.from_torch(np.zeros(3))


def test_rnn_from_torch_rejects_proj_size():
    module = torch.nn.RNN(I, H)
    module.proj_size = 2  # nn.RNN refuses it in its constructor; a hand-edited module may not
    with pytest.raises(TypeError, match="proj_size=2 is not supported"):
        rnncore.RNN.from_torch(module)


def test_rnn_from_torch_rejects_other_dtypes():
    with pytest.raises(TypeError, match="float32 or all torch.float64, got torch.float16"):
        rnncore.RNN.from_torch(torch.nn.RNN(I, H, dtype=torch.float16))


def test_torch_is_not_imported_by_rnncore():
    code = "import sys, rnncore; rnncore.RNN(2, 3); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- RNNModel ---------------------------------------------------------------------------------

MODEL_OPTIONS = [
    dict(head=(), head_activation="relu"),
    dict(head=(7,), head_activation="tanh", num_layers=2, bidirectional=True),
    dict(head=(6, 4), head_activation="sigmoid", batch_first=True, nonlinearity="relu",
         dtype=np.float64),
]


def _torch_head(width, hidden, activation, dtype):
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[activation]
    sizes = (width, *hidden, O)
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k:
            layers.append(act())
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
    return torch.nn.Sequential(*layers)


def _model_parity(model, module, seed):
    dtype = model.dtype
    x, h0 = _x_h0(model, seed)
    y = model(x, h0)
    grad_y = np.random.default_rng(seed + 1).standard_normal(y.shape)
    model.zero_grad()
    grad_x = model.backward(grad_y)
    want_y, want_h_n, want_grad_x, want_grads = _torch_run(module, x, h0, grad_y)
    np.testing.assert_allclose(y, want_y, **_tol(dtype))
    np.testing.assert_allclose(model.h_n, want_h_n, **_tol(dtype))
    np.testing.assert_allclose(grad_x, want_grad_x, **_tol(dtype))
    assert list(model.grads) == list(want_grads)
    for name, g in want_grads.items():
        np.testing.assert_allclose(model.grads[name], g, **_tol(dtype), err_msg=name)


@pytest.mark.parametrize("opts", MODEL_OPTIONS, ids=str)
def test_model_to_torch(opts):
    model = rnncore.RNNModel(I, H, O, **opts, seed=0)
    module = model.to_torch()
    assert isinstance(module, torch.nn.Module)
    assert isinstance(module.rnn, torch.nn.RNN) and isinstance(module.head, torch.nn.Sequential)
    _assert_same_parameters(model.parameters(), module)
    _model_parity(model, module, seed=5)


@pytest.mark.parametrize("opts", MODEL_OPTIONS, ids=str)
def test_model_from_torch(opts):
    opts = dict(opts)
    dtype = torch.float64 if opts.pop("dtype", np.float32) == np.float64 else torch.float32
    hidden, activation = opts.pop("head"), opts.pop("head_activation")
    torch.manual_seed(2)
    rnn_module = torch.nn.RNN(I, H, **opts, dtype=dtype)
    head = _torch_head(rnn_module.hidden_size * (2 if rnn_module.bidirectional else 1), hidden,
                       activation, dtype)
    model = rnncore.RNNModel.from_torch(rnn_module, head)
    assert model.head_sizes == tuple(hidden) and model.output_size == O
    if hidden:
        assert model.head_activation == activation
    wrapped = model.to_torch()
    _assert_same_parameters(model.parameters(), wrapped)
    state = {**{f"rnn.{k}": v for k, v in rnn_module.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p, state[name].numpy())
    _model_parity(model, wrapped, seed=7)


def test_model_from_torch_rejects_what_it_cannot_hold():
    rnn_module = torch.nn.RNN(I, H)
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, got LSTM"):
        rnncore.RNNModel.from_torch(torch.nn.LSTM(I, H), torch.nn.Sequential(torch.nn.Linear(H, O)))
    with pytest.raises(TypeError, match="head as a torch.nn.Sequential, got Linear"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Linear(H, O))
    with pytest.raises(ValueError, match="bias=False"):
        rnncore.RNNModel.from_torch(torch.nn.RNN(I, H, bias=False),
                                    torch.nn.Sequential(torch.nn.Linear(H, O)))
    with pytest.raises(ValueError, match="odd length"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Sequential(torch.nn.Linear(H, O),
                                                                    torch.nn.ReLU()))
    with pytest.raises(TypeError, match=r"head\[1\] should be one of"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Sequential(
            torch.nn.Linear(H, 4), torch.nn.GELU(), torch.nn.Linear(4, O)))
    with pytest.raises(ValueError, match="mixes activations"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Sequential(
            torch.nn.Linear(H, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4), torch.nn.Tanh(),
            torch.nn.Linear(4, O)))
    with pytest.raises(ValueError, match=r"in_features should be 5"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Sequential(torch.nn.Linear(4, O)))
    with pytest.raises(ValueError, match="without bias"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Sequential(
            torch.nn.Linear(H, O, bias=False)))
    with pytest.raises(TypeError, match="head's parameters are float64"):
        rnncore.RNNModel.from_torch(rnn_module, torch.nn.Sequential(
            torch.nn.Linear(H, O, dtype=torch.float64)))
