"""rnncore.RNN against torch.nn.RNN loaded with the same parameters."""

import numpy as np
import pytest

import rnncore
from helpers import (assert_results_close, make_data, make_torch_rnn, run_reference, run_rnncore,
                     run_torch)

torch = pytest.importorskip("torch")

I, H = 4, 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_matches_torch(num_layers, bidirectional, batch_first, unbatched, nonlinearity, bias,
                       dtype):
    opts = dict(num_layers=num_layers, nonlinearity=nonlinearity, bias=bias,
                batch_first=batch_first, bidirectional=bidirectional)
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    torch_rnn = make_torch_rnn(rnn.state_dict(), I, H, dtype, **opts)
    data = make_data(np.random.default_rng(1), 6, 3, I, H, unbatched=unbatched, dtype=dtype, **opts)
    bound = run_reference(rnn.parameters(), *data, **opts).sd
    assert_results_close(run_rnncore(rnn, *data), run_torch(torch_rnn, *data), dtype,
                         want_dtype=dtype, sd=bound)


@pytest.mark.parametrize("source", ["state_dict", "named_parameters"])  # the latter require grad
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_state_dict_accepts_torch_tensors(dtype, source):
    opts = dict(num_layers=2, nonlinearity="relu", bias=True, bidirectional=True)
    torch.manual_seed(0)
    torch_rnn = torch.nn.RNN(I, H, **opts, dtype=torch.float64)
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    rnn.load_state_dict(dict(getattr(torch_rnn, source)()))
    params = rnn.parameters()
    assert list(params) == list(torch_rnn.state_dict())
    for name, p in torch_rnn.state_dict().items():
        assert params[name].dtype == dtype
        np.testing.assert_array_equal(params[name], p.numpy().astype(dtype))


def test_default_init_has_torch_names_shapes_and_order():
    opts = dict(num_layers=3, nonlinearity="tanh", bias=True, bidirectional=True)
    rnn = rnncore.RNN(I, H, **opts)
    torch_rnn = torch.nn.RNN(I, H, **opts)
    assert [(k, v.shape) for k, v in rnn.parameters().items()] == \
        [(k, tuple(v.shape)) for k, v in torch_rnn.named_parameters()]


@pytest.mark.parametrize("batch_first", [False, True])
def test_dropout_eval_matches_torch_eval(batch_first):
    opts = dict(num_layers=3, nonlinearity="tanh", bias=True, batch_first=batch_first,
                bidirectional=True)
    rnn = rnncore.RNN(I, H, **opts, dropout=0.5, dtype=np.float64, seed=0)
    torch_rnn = make_torch_rnn(rnn.state_dict(), I, H, np.float64, dropout=0.5, **opts)
    rnn.eval()
    torch_rnn.eval()
    assert not rnn.training
    data = make_data(np.random.default_rng(1), 6, 3, I, H, **opts)
    assert_results_close(run_rnncore(rnn, *data), run_torch(torch_rnn, *data), np.float64)
