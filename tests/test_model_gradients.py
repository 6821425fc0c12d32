"""RNNModel.backward through both losses (with masks) against float64 central finite differences,
and the whole model against the equivalent torch module (nn.RNN + nn.Sequential)."""

import numpy as np
import pytest

from model_helpers import numerical_gradient, small_model, torch_model
from rnncore import losses

T, B, I, O = 4, 3, 3, 4

CONFIGS = [
    dict(loss="mse", mask=True),
    dict(loss="mse", mask=False, nonlinearity="relu", head_activation="tanh", grad_h_n=True),
    dict(loss="cross_entropy", mask=True, bidirectional=True, batch_first=True),
    dict(loss="cross_entropy", mask=False, head=(), head_activation="sigmoid", unbatched=True),
    dict(loss="mse", mask=True, head=(7,), head_activation="sigmoid", num_layers=1,
         batch_first=True),
]


def make_problem(config, seed=1):
    """A model, its input x and h0, and a scalar loss function of the current parameters."""
    options = dict(config)
    loss_name, use_mask = options.pop("loss"), options.pop("mask")
    unbatched, use_grad_h_n = options.pop("unbatched", False), options.pop("grad_h_n", False)
    model = small_model(**options)
    rng = np.random.default_rng(seed)
    lead = (T,) if unbatched else (B, T) if model.batch_first else (T, B)
    L = model.num_layers * model.num_directions
    x = rng.normal(size=lead + (I,))
    h0 = rng.uniform(-0.5, 0.5, (L, model.hidden_size) if unbatched else (L, B, model.hidden_size))
    if loss_name == "mse":
        target = rng.normal(size=lead + (O,))
    else:
        target = rng.integers(0, O, size=lead)
    mask = rng.random(lead) < 0.6 if use_mask else None
    if mask is not None:
        mask.flat[0] = True  # at least one step counts
    G_h = rng.normal(size=h0.shape) if use_grad_h_n else None
    loss_fn = getattr(losses, loss_name)

    def loss():
        value, grad = loss_fn(model(x, h0), target, mask)
        if G_h is not None:
            value += float(np.sum(model.h_n * G_h))
        return value, grad

    return model, x, h0, G_h, loss


def config_id(config):
    return "-".join(f"{k}={v}" for k, v in config.items()) or "default"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_backward_matches_finite_differences(config):
    model, x, h0, G_h, loss = make_problem(config)
    _, grad_y = loss()
    model.zero_grad()
    grad_x = model.backward(grad_y, G_h)
    analytic = {"x": grad_x, "h0": model.grad_h0, **model.grads}
    arrays = {"x": x, "h0": h0, **model.parameters()}
    assert analytic.keys() == arrays.keys()
    for name, a in arrays.items():
        numeric = numerical_gradient(lambda: loss()[0], a)
        assert np.any(numeric), f"{name}: the check would be vacuous"
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_padded_steps_get_no_gradient():
    """With the last two steps masked out (padding), their inputs cannot affect the loss: a
    unidirectional model must give them exactly zero gradient."""
    model = small_model()
    rng = np.random.default_rng(2)
    x, target = rng.normal(size=(T, B, I)), rng.normal(size=(T, B, O))
    mask = np.ones((T, B), bool)
    mask[-2:] = False
    _, grad_y = losses.mse(model(x), target, mask)
    grad_x = model.backward(grad_y)
    assert not grad_y[-2:].any() and not grad_x[-2:].any()
    assert np.all(np.abs(grad_x[:-2]) > 0)


# ---- parity with torch ------------------------------------------------------------------------

PARITY = [
    dict(),
    dict(bidirectional=True, batch_first=True, head_activation="tanh"),
    dict(nonlinearity="relu", head=(), num_layers=3),
    dict(unbatched=True, head_activation="sigmoid"),
]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", PARITY, ids=config_id)
def test_matches_torch_module(config, dtype):
    torch = pytest.importorskip("torch")
    options = dict(config)
    unbatched = options.pop("unbatched", False)
    model = small_model(dtype=dtype, **options)
    net = torch_model(model)
    rng = np.random.default_rng(0)
    lead = (T,) if unbatched else (B, T) if model.batch_first else (T, B)
    L, Hd = model.num_layers * model.num_directions, model.hidden_size
    x = rng.normal(size=lead + (I,)).astype(dtype)
    h0 = rng.uniform(-0.5, 0.5, (L, Hd) if unbatched else (L, B, Hd)).astype(dtype)
    G = rng.normal(size=lead + (O,)).astype(dtype)

    y = model(x, h0)
    model.zero_grad()
    grad_x = model.backward(G)

    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    yt, h_nt = net(xt, h0t)
    yt.backward(torch.tensor(G))
    tol = TOL[dtype]
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol, err_msg="y")
    np.testing.assert_allclose(model.h_n, h_nt.detach().numpy(), **tol, err_msg="h_n")
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), **tol, err_msg="grad_x")
    np.testing.assert_allclose(model.grad_h0, h0t.grad.numpy(), **tol, err_msg="grad_h0")
    torch_grads = {name: p.grad.numpy() for name, p in net.named_parameters()}
    assert list(torch_grads) == list(model.grads)
    for name, g in model.grads.items():
        assert g.dtype == dtype
        np.testing.assert_allclose(g, torch_grads[name], **tol, err_msg=name)


def test_torch_initialised_weights_load_unchanged():
    """A torch module's state dict (tensors, torch's own init) loads into RNNModel as is."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = small_model(head=(6,), dtype=np.float32)
    net = torch_model(small_model(head=(6,), dtype=np.float32, seed=5))
    for p in net.parameters():  # fresh torch init, not rnncore's
        torch.nn.init.uniform_(p, -0.3, 0.3)
    model.load_state_dict(net.state_dict())
    x = np.random.default_rng(0).normal(size=(T, B, I)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(model(x), want, rtol=2e-5, atol=2e-6)
