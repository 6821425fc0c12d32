"""rnncore.RNN.backward against float64 central finite differences of
loss = sum(output * G) + sum(h_n * Gh), for x, h0 and every parameter (perturbed in place)."""

import numpy as np
import pytest

import rnncore
from helpers import make_data
from model_helpers import numerical_gradient

CONFIGS = [
    dict(num_layers=2, bidirectional=True, nonlinearity="tanh"),
    dict(num_layers=2, bidirectional=True, nonlinearity="relu"),
    dict(num_layers=3, nonlinearity="tanh", batch_first=True),
    dict(num_layers=2, bidirectional=True, nonlinearity="relu", unbatched=True),
    dict(num_layers=2, bidirectional=True, nonlinearity="tanh", bias=False, batch_first=True),
]


@pytest.mark.parametrize("config", CONFIGS,
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_backward_matches_finite_differences(config):
    opts = dict(config)
    unbatched = opts.pop("unbatched", False)
    rnn = rnncore.RNN(3, 4, **opts, dtype=np.float64, seed=0)
    x, h0, G, Gh = make_data(np.random.default_rng(1), 4, 2, 3, 4, unbatched=unbatched, **opts)

    def loss():
        output, h_n = rnn(x, h0)
        return np.sum(output * G) + np.sum(h_n * Gh)

    loss()
    rnn.zero_grad()
    grad_x, grad_h0 = rnn.backward(G, Gh)
    analytic = {"x": grad_x, "h0": grad_h0, **rnn.grads}
    arrays = {"x": x, "h0": h0, **rnn.parameters()}
    assert analytic.keys() == arrays.keys()
    for name, a in arrays.items():
        np.testing.assert_allclose(analytic[name], numerical_gradient(loss, a),
                                   rtol=1e-6, atol=1e-8, err_msg=name)
