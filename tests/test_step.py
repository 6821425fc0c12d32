"""RNN.step: one step at a time equals the forward over the sequence."""

import numpy as np
import pytest

import rnncore


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_steps_equal_forward(dtype, tol, num_layers, nonlinearity, bias):
    rnn = rnncore.RNN(5, 19, num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
                      dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 5)).astype(dtype)
    h0 = rng.standard_normal((num_layers, 3, 19)).astype(dtype)
    output, h_n = rnn(x, h0)
    h = h0
    for t in range(len(x)):
        y, h = rnn.step(x[t], h)
        np.testing.assert_allclose(y, output[t], rtol=tol, atol=tol)
    np.testing.assert_allclose(h, h_n, rtol=tol, atol=tol)


def test_unbatched_and_zero_state():
    rnn = rnncore.RNN(4, 9, num_layers=2, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    output, h_n = rnn(x)
    y, h = rnn.step(x[0])  # h=None: zero state
    assert y.shape == (9,) and h.shape == (2, 9)
    for t in range(1, 3):
        y, h = rnn.step(x[t], h)
    np.testing.assert_allclose(y, output[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, h_n, rtol=1e-5, atol=1e-6)


def test_weights_are_used_live():
    rnn = rnncore.RNN(3, 4, seed=0)
    x = np.ones(3, np.float32)
    before, _ = rnn.step(x)
    rnn.parameters()["weight_ih_l0"][:] = 0
    rnn.parameters()["bias_ih_l0"][:] = 0
    rnn.parameters()["bias_hh_l0"][:] = 0
    after, _ = rnn.step(x)
    assert np.any(before != 0)
    np.testing.assert_array_equal(after, 0)


def test_errors():
    rnn = rnncore.RNN(3, 4, num_layers=2, seed=0)
    with pytest.raises(ValueError, match="expected input of shape"):
        rnn.step(np.ones((2, 5)))
    with pytest.raises(ValueError, match="expected input of shape"):
        rnn.step(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"expected h of shape \(2, 2, 4\)"):
        rnn.step(np.ones((2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(TypeError):
        rnn.step(np.ones(3, complex))
    with pytest.raises(ValueError, match="unidirectional"):
        rnn_bi = rnncore.RNN(3, 4, bidirectional=True)
        rnn_bi.step(np.ones(3))


def test_plan_call_slot():
    """The plan behind step() is called through its type's call slot, not pybind11's dispatch:
    its arguments, its errors and an uninitialised plan are handled there."""
    rnn = rnncore.RNN(3, 4, seed=0)
    x = np.ones((1, 3), np.float32)
    want, _ = rnn.step(x)
    plan = rnn._step_plan
    np.testing.assert_array_equal(plan(x=x, h=None)[0], want)
    np.testing.assert_array_equal(plan(x, h=None)[0], want)
    with pytest.raises(TypeError, match="'h'"):
        plan(x)
    with pytest.raises(TypeError, match="at most 2 arguments"):
        plan(x, None, None)
    with pytest.raises(TypeError, match="'h'"):
        plan(x=x, y=None)
    with pytest.raises(ValueError, match=r"x: expected shape \(1, 3\), got \(1, 5\)"):
        plan(np.ones((1, 5), np.float32), None)
    with pytest.raises(TypeError, match="never initialised"):
        rnncore._core.StepPlan.__new__(rnncore._core.StepPlan)(x, None)
