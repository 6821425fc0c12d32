"""The numpy reference itself, checked against torch.nn.RNN in float64 (and one torch-free
property), so that the other tests can trust it."""

import numpy as np
import pytest

from helpers import assert_results_close, make_data, make_params, make_torch_rnn, run_torch
from reference import reference_rnn, rnn_forward

I, H = 4, 5


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_reference_matches_torch(num_layers, bidirectional, nonlinearity, bias, batch_first,
                                 unbatched):
    pytest.importorskip("torch")
    opts = dict(num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
                batch_first=batch_first, bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    params = make_params(rng, I, H, **opts)
    x, h0, grad_output, grad_h_n = make_data(rng, 6, 3, I, H, unbatched=unbatched, **opts)
    want = run_torch(make_torch_rnn(params, I, H, np.float64, **opts),
                     x, h0, grad_output, grad_h_n)
    got = reference_rnn(x, h0, params, grad_output, grad_h_n, num_layers=num_layers,
                        nonlinearity=nonlinearity, bidirectional=bidirectional,
                        batch_first=batch_first)
    assert_results_close(got, want, np.float64)


def test_reverse_direction_final_state_is_output_at_time_zero():
    rng = np.random.default_rng(1)
    params = make_params(rng, I, H, num_layers=2, bidirectional=True)
    x, h0, _, _ = make_data(rng, 5, 2, I, H, num_layers=2, bidirectional=True)
    output, h_n, _ = rnn_forward(x, h0, params, 2, "tanh", bidirectional=True)
    np.testing.assert_array_equal(h_n[3], output[0, :, H:])   # layer 1 reverse
    np.testing.assert_array_equal(h_n[2], output[-1, :, :H])  # layer 1 forward


def test_error_bound_is_tight_enough_to_fail():
    """The rounding-error bound (reference.py, ROUNDING) must catch real errors: on a 20-step,
    2-layer problem its float32 tolerance stays within a few hundred u of each value's scale, and a
    result off by 1e-4 relative fails it."""
    from helpers import assert_results_close, run_reference
    from reference import LAMBDA, UNIT_ROUNDOFF
    opts = dict(num_layers=2, nonlinearity="tanh", bidirectional=True)
    rng = np.random.default_rng(0)
    params = make_params(rng, 16, 32, **opts)
    data = make_data(rng, 20, 8, 16, 32, **opts)
    want = run_reference(params, *data, **opts)
    u = UNIT_ROUNDOFF[np.dtype(np.float32)]
    sd_grad = want.sd[4]["weight_ih_l0"]
    tol = LAMBDA * u * sd_grad
    assert np.median(tol / np.abs(want[4]["weight_ih_l0"])) < 300 * u
    off = [np.asarray(a, np.float32) for a in want[:4]] + [
        {k: (g * (1 + 1e-4)).astype(np.float32) for k, g in want[4].items()}]
    with pytest.raises(AssertionError, match="beyond the tolerance"):
        assert_results_close(off, want, np.float32)
    close = [np.asarray(a, np.float32) for a in want[:4]] + [
        {k: g.astype(np.float32) for k, g in want[4].items()}]
    assert_results_close(close, want, np.float32)  # rounding to float32 alone is within it
