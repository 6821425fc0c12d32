"""rnncore.optim.SGD / Adam and clip_grad_norm against torch.optim / torch.nn.utils, step by step
on the same parameters and gradients; argument errors."""

import numpy as np
import pytest

import rnncore
from model_helpers import small_model
from rnncore import optim

STEPS = 12


def run_both(make_ours, make_theirs, dtype):
    """Step an rnncore optimizer and a torch one side by side, feeding both the same gradient at
    each step (a fixed random part plus a part that depends on the current parameters, so that
    the trajectories matter), and compare the parameters after every step."""
    torch = pytest.importorskip("torch")
    model = small_model(dtype=dtype, head=(6,))
    theirs = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in model.parameters().items()}
    opt, topt = make_ours(model), make_theirs(list(theirs.values()))
    rng = np.random.default_rng(0)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
    for step in range(STEPS):
        opt.zero_grad()
        for name, g in model.grads.items():
            grad = (rng.normal(size=g.shape) + np.sin(3 * model.parameters()[name])).astype(dtype)
            g += grad
            theirs[name].grad = torch.tensor(grad)
        opt.step()
        topt.step()
        for name, p in model.parameters().items():
            np.testing.assert_allclose(p, theirs[name].detach().numpy(), **tol,
                                       err_msg=f"{name} after step {step + 1}")
    return model


SGD_CASES = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
             dict(lr=0.02, momentum=0.5, dampening=0.3, weight_decay=0.01)]
ADAM_CASES = [dict(), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6), dict(lr=3e-3, weight_decay=0.1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kwargs", SGD_CASES, ids=str)
def test_sgd_matches_torch(kwargs, dtype):
    torch = pytest.importorskip("torch")
    run_both(lambda m: optim.SGD(m, **kwargs), lambda ps: torch.optim.SGD(ps, **kwargs), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kwargs", ADAM_CASES, ids=str)
def test_adam_matches_torch(kwargs, dtype):
    torch = pytest.importorskip("torch")
    run_both(lambda m: optim.Adam(m, **kwargs), lambda ps: torch.optim.Adam(ps, **kwargs), dtype)


def test_optimizers_change_parameters_in_place():
    model = small_model()
    before = {k: v for k, v in model.parameters().items()}
    copies = model.state_dict()
    for g in model.grads.values():
        g.fill(1.0)
    optim.Adam(model, lr=0.1).step()
    for name, p in model.parameters().items():
        assert p is before[name]  # the same array, updated
        np.testing.assert_allclose(p, copies[name] - 0.1, atol=1e-8)  # first step: lr * sign(g)


def test_zero_grad_zeroes_the_models_gradients():
    model = small_model()
    for g in model.grads.values():
        g.fill(2.0)
    optim.SGD(model, lr=0.1).zero_grad()
    assert all(not g.any() for g in model.grads.values())


def _feed(model, step):
    for name, g in model.grads.items():
        g += (np.sin(step + np.arange(g.size).reshape(g.shape)) + model.parameters()[name])


@pytest.mark.parametrize("make", [lambda m: optim.Adam(m, lr=0.01, weight_decay=0.1),
                                  lambda m: optim.SGD(m, lr=0.05, momentum=0.9, nesterov=True)],
                         ids=["Adam", "SGD"])
def test_state_dict_resumes_bit_for_bit(make):
    """Save an optimizer's state after 3 steps, go on in a fresh model and optimizer from the saved
    parameters and state: the same bits as 6 uninterrupted steps."""
    model = small_model(dtype=np.float32)
    opt = make(model)
    for step in range(6):
        if step == 3:
            params, saved = model.state_dict(), opt.state_dict()
        opt.zero_grad()
        _feed(model, step)
        opt.step()
    resumed = small_model(dtype=np.float32, seed=1)
    resumed.load_state_dict(params)
    opt2 = make(resumed)
    opt2.load_state_dict(saved)
    for step in range(3, 6):
        opt2.zero_grad()
        _feed(resumed, step)
        opt2.step()
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[name], p, err_msg=name)
    assert saved["hyperparameters"] == opt.state_dict()["hyperparameters"]


def test_state_dict_holds_copies_and_checks_names():
    model = small_model()
    opt = optim.Adam(model)
    for g in model.grads.values():
        g.fill(1.0)
    opt.step()
    saved = opt.state_dict()
    assert saved["state"]["head.0.bias"]["step"] == 1
    saved["state"]["head.0.bias"]["exp_avg"] += 1  # a copy: the optimizer's state is unchanged
    assert not np.shares_memory(saved["state"]["head.0.bias"]["exp_avg"],
                                opt.state["head.0.bias"]["exp_avg"])
    with pytest.raises(ValueError, match="not a parameter"):
        opt.load_state_dict({"state": {"nope": {}}, "hyperparameters": saved["hyperparameters"]})
    with pytest.raises(ValueError, match="hyperparameters"):
        opt.load_state_dict({"state": {}, "hyperparameters": {"lr": 1.0}})


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    model = small_model()
    rng = np.random.default_rng(0)
    tensors = []
    for g in model.grads.values():
        g[...] = rng.normal(size=g.shape)
        p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
        p.grad = torch.tensor(g)
        tensors.append(p)
    norm = rnncore.clip_grad_norm(model, max_norm)
    want = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    np.testing.assert_allclose(norm, want.item(), rtol=1e-12)
    for g, p in zip(model.grads.values(), tensors):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    if max_norm < 1:
        total = np.sqrt(sum(np.sum(g ** 2) for g in model.grads.values()))
        np.testing.assert_allclose(total, max_norm, rtol=1e-5)


@pytest.mark.parametrize("call, error, match", [
    (lambda m: optim.SGD(m, lr=-1), ValueError, "Invalid learning rate value: -1"),
    (lambda m: optim.SGD(m, lr=0.1, momentum=-0.5), ValueError, "Invalid momentum"),
    (lambda m: optim.SGD(m, lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda m: optim.Adam(m, betas=(0.9, 1.0)), ValueError, "beta parameter at index 1"),
    (lambda m: optim.Adam(m, betas=(0.9,)), ValueError, "betas should be a pair"),
    (lambda m: optim.Adam(m, eps=-1e-8), ValueError, "Invalid epsilon"),
    (lambda m: optim.Adam(m, lr="fast"), TypeError, "learning rate should be a real number"),
    (lambda m: optim.Adam(object()), TypeError, "expected a model with parameters"),
    (lambda m: rnncore.clip_grad_norm(m, 0), ValueError, "max_norm must be a positive"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(small_model())
