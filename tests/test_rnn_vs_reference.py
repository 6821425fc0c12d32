"""rnncore.RNN against the numpy reference: output, h_n, grad_x, grad_h0 and every parameter
gradient, over every combination of options, plus awkward memory layouts of the inputs."""

import numpy as np
import pytest

import rnncore
from helpers import assert_results_close, make_data, run_reference, run_rnncore

I, H = 4, 5


def check_against_reference(opts, dtype, T, B, input_size, hidden_size, unbatched=False,
                            give_h0=True, give_grad_h_n=True, seed=0):
    rnn = rnncore.RNN(input_size, hidden_size, **opts, dtype=dtype, seed=seed)
    x, h0, grad_output, grad_h_n = make_data(np.random.default_rng(seed + 1), T, B, input_size,
                                             hidden_size, unbatched=unbatched, dtype=dtype, **opts)
    h0 = h0 if give_h0 else None
    grad_h_n = grad_h_n if give_grad_h_n else None
    got = run_rnncore(rnn, x, h0, grad_output, grad_h_n)
    want = run_reference(rnn.parameters(), x, h0, grad_output, grad_h_n, **opts)
    assert_results_close(got, want, dtype)


@pytest.mark.parametrize("give_h0, give_grad_h_n", [(True, True), (False, False), (True, False),
                                                    (False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_matches_reference(num_layers, bidirectional, batch_first, unbatched, nonlinearity, bias,
                           dtype, give_h0, give_grad_h_n):
    opts = dict(num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
                batch_first=batch_first, bidirectional=bidirectional)
    check_against_reference(opts, dtype, T=6, B=3, input_size=I, hidden_size=H,
                            unbatched=unbatched, give_h0=give_h0, give_grad_h_n=give_grad_h_n)


# One step, one sequence, and sizes around SIMD widths (4/8/16 lanes): below one vector, a
# vector plus a tail, several vectors.
@pytest.mark.parametrize("T, B, input_size, hidden_size", [
    (1, 3, 4, 5), (7, 1, 4, 5), (1, 1, 1, 1), (3, 2, 7, 9), (4, 5, 17, 17), (2, 3, 33, 31),
    (2, 1, 8, 65)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_sizes(T, B, input_size, hidden_size, nonlinearity, dtype):
    opts = dict(num_layers=2, nonlinearity=nonlinearity, bias=True, batch_first=False,
                bidirectional=True)
    check_against_reference(opts, dtype, T, B, input_size, hidden_size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_larger_shape(nonlinearity, dtype):
    opts = dict(num_layers=2, nonlinearity=nonlinearity, bias=True, batch_first=True,
                bidirectional=True)
    check_against_reference(opts, dtype, T=20, B=8, input_size=16, hidden_size=32)


# Inputs that are not C-contiguous or not writeable must give the same results and stay unchanged.
def fortran_order(a):
    return np.asfortranarray(a)


def negative_strides(a):
    return np.ascontiguousarray(a[::-1, ..., ::-1])[::-1, ..., ::-1]


def every_other_element(a):
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def unaligned(a):
    u = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    return u


@pytest.mark.parametrize("view", [fortran_order, negative_strides, every_other_element, read_only,
                                  unaligned])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_memory_layouts(view, dtype):
    opts = dict(num_layers=2, nonlinearity="tanh", bias=True, batch_first=True,
                bidirectional=True)
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    data = make_data(np.random.default_rng(1), 6, 3, I, H, dtype=dtype, **opts)
    views = [view(a) for a in data]
    assert not any(v.flags.c_contiguous and v.flags.writeable and v.flags.aligned for v in views)
    got = run_rnncore(rnn, *views)
    assert_results_close(got, run_reference(rnn.parameters(), *data, **opts), dtype)
    for v, a in zip(views, data):  # the inputs are left alone
        np.testing.assert_array_equal(v, a)


def test_parameters_loaded_in_fortran_order():
    opts = dict(num_layers=2, nonlinearity="relu", bias=True, bidirectional=True)
    rnn = rnncore.RNN(I, H, **opts, dtype=np.float64, seed=0)
    state = {k: np.asfortranarray(v[::-1]) for k, v in rnn.state_dict().items()}
    rnn.load_state_dict(state)
    data = make_data(np.random.default_rng(1), 6, 3, I, H, **opts)
    assert_results_close(run_rnncore(rnn, *data), run_reference(state, *data, **opts), np.float64)


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_batch(batch_first):
    """torch.nn.RNN accepts B = 0 and returns empty results; so must rnncore."""
    opts = dict(num_layers=2, nonlinearity="tanh", bias=True, batch_first=batch_first,
                bidirectional=True)
    rnn = rnncore.RNN(I, H, **opts, dtype=np.float64, seed=0)
    x, h0, grad_output, grad_h_n = make_data(np.random.default_rng(1), 5, 0, I, H, **opts)
    output, h_n = rnn(x, h0)
    assert output.shape == grad_output.shape and h_n.shape == h0.shape
    grad_x, grad_h0 = rnn.backward(grad_output, grad_h_n)
    assert grad_x.shape == x.shape and grad_h0.shape == h0.shape
    assert all(not g.any() for g in rnn.grads.values())
