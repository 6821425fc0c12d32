"""RNNModel's many-to-one readouts ("last", "mean"): against a plain-numpy reference, float64
finite differences on every parameter, torch's nn.RNN + nn.Linear on h_n, fit, save/load, ONNX,
and the errors for bad input."""

import numpy as np
import pytest

import rnncore
from fuzz_helpers import reference_head
from model_helpers import numerical_gradient, small_model
from reference import reference_rnn
from rnncore import losses

T, B, I, O = 5, 3, 3, 4

CONFIGS = [
    dict(readout="last"),
    dict(readout="last", bidirectional=True, lengths=True),
    dict(readout="last", bidirectional=True, batch_first=True, nonlinearity="relu"),
    dict(readout="last", unbatched=True, num_layers=1, head=()),
    dict(readout="mean"),
    dict(readout="mean", bidirectional=True, lengths=True, batch_first=True),
    dict(readout="mean", unbatched=True, head_activation="tanh"),
    dict(readout="last", lengths=True, num_layers=3, head=(4,)),
]


def config_id(config):
    return "-".join(f"{k}={v}" for k, v in config.items())


def make_case(config, dtype=np.float64, seed=3):
    options = dict(config)
    unbatched, use_lengths = options.pop("unbatched", False), options.pop("lengths", False)
    model = small_model(dtype=dtype, **options)
    rng = np.random.default_rng(seed)
    lead = (T,) if unbatched else (B, T) if model.batch_first else (T, B)
    x = rng.normal(size=lead + (I,)).astype(dtype)
    L = model.num_layers * model.num_directions
    h0 = rng.uniform(-0.5, 0.5, (L, model.hidden_size) if unbatched
                     else (L, B, model.hidden_size)).astype(dtype)
    lengths = np.array([T, 2, 4]) if use_lengths else None
    return model, x, h0, lengths


def reference_pooled(model, x, h0, lengths, grad_y):
    """The readout written out in float64: RNN reference, then the pooled rows by loops, then the
    head; and the backward of all of it. Returns y, grad_x, grad_h0, grads."""
    params = {k[4:]: v for k, v in model.parameters().items() if k.startswith("rnn.")}
    head = {k[5:]: v for k, v in model.parameters().items() if k.startswith("head.")}
    D, H, L = model.num_directions, model.hidden_size, model.num_layers
    unbatched = x.ndim == 2
    opts = dict(num_layers=L, nonlinearity=model.nonlinearity, bidirectional=model.bidirectional,
                batch_first=model.batch_first, lengths=lengths)
    out_shape = x.shape[:-1] + (D * H,)
    output, h_n = reference_rnn(x, h0, params, np.zeros(out_shape), None, **opts)[:2]
    out_tm = output[:, None] if unbatched else output.swapaxes(0, 1) if model.batch_first \
        else output
    h_n = h_n[:, None] if unbatched else h_n
    n_b = out_tm.shape[1]
    steps = np.full(n_b, out_tm.shape[0]) if lengths is None else lengths
    rows = np.zeros((n_b, D * H))
    for b in range(n_b):
        if model.readout == "last":
            rows[b] = np.concatenate([h_n[(L - 1) * D + d, b] for d in range(D)])
        else:
            rows[b] = sum(out_tm[t, b] for t in range(steps[b])) / steps[b]
    g = np.asarray(grad_y, np.float64).reshape(n_b, -1)
    y, d_rows, head_grads = reference_head(head, rows, model.head_activation, g)
    d_out = np.zeros(out_tm.shape)
    d_h_n = np.zeros(h_n.shape)
    for b in range(n_b):
        if model.readout == "last":
            for d in range(D):
                d_h_n[(L - 1) * D + d, b] = d_rows[b, d * H:(d + 1) * H]
        else:
            d_out[:steps[b], b] = d_rows[b] / steps[b]
    if unbatched:
        d_out, d_h_n = d_out[:, 0], d_h_n[:, 0]
    elif model.batch_first:
        d_out = d_out.swapaxes(0, 1)
    res = reference_rnn(x, h0, params, d_out, d_h_n, **opts)
    grads = {**{f"rnn.{k}": v for k, v in res[4].items()},
             **{f"head.{k}": v for k, v in head_grads.items()}}
    return (y[0] if unbatched else y), res[2], res[3], grads


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_matches_numpy_reference(config):
    model, x, h0, lengths = make_case(config)
    y = model(x, h0, lengths=lengths)
    assert y.shape == ((O,) if x.ndim == 2 else (B, O))
    grad_y = np.random.default_rng(7).normal(size=y.shape)
    model.zero_grad()
    grad_x = model.backward(grad_y)
    want_y, want_gx, want_gh0, want_grads = reference_pooled(model, x, h0, lengths, grad_y)
    tol = dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(y, want_y, **tol, err_msg="y")
    np.testing.assert_allclose(grad_x, want_gx, **tol, err_msg="grad_x")
    np.testing.assert_allclose(model.grad_h0, want_gh0, **tol, err_msg="grad_h0")
    assert list(model.grads) == list(want_grads)
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, want_grads[name], **tol, err_msg=name)


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_backward_matches_finite_differences(config, loss_name):
    model, x, h0, lengths = make_case(config)
    rng = np.random.default_rng(11)
    y_shape = (O,) if x.ndim == 2 else (B, O)
    target = rng.normal(size=y_shape) if loss_name == "mse" else rng.integers(0, O, y_shape[:-1])
    loss_fn = getattr(losses, loss_name)
    G_h = rng.normal(size=h0.shape)  # a loss on h_n as well: its gradient adds to the readout's

    def loss():
        value, grad = loss_fn(model(x, h0, lengths=lengths), target)
        return value + float(np.sum(model.h_n * G_h)), grad

    _, grad_y = loss()
    model.zero_grad()
    grad_x = model.backward(grad_y, G_h)
    analytic = {"x": grad_x, "h0": model.grad_h0, **model.grads}
    arrays = {"x": x, "h0": h0, **model.parameters()}
    for name, a in arrays.items():
        numeric = numerical_gradient(lambda: loss()[0], a)
        assert np.any(numeric), f"{name}: the check would be vacuous"
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


TORCH_CONFIGS = [c for c in CONFIGS if "lengths" not in c]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", TORCH_CONFIGS, ids=config_id)
def test_matches_torch(config, dtype):
    """to_torch gives nn.RNN + nn.Sequential reading h_n (or the mean output): same y, same
    gradients; from_torch brings it back."""
    torch = pytest.importorskip("torch")
    model, x, h0, _ = make_case(config, dtype)
    net = model.to_torch()
    G = np.random.default_rng(2).normal(size=(O,) if x.ndim == 2 else (B, O)).astype(dtype)
    y = model(x, h0)
    model.zero_grad()
    grad_x = model.backward(G)
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    yt, _ = net(xt, h0t)
    yt.backward(torch.tensor(G))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(model.grad_h0, h0t.grad.numpy(), **tol)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), **tol, err_msg=name)
    back = rnncore.RNNModel.from_torch(net.rnn, net.head, readout=model.readout)
    np.testing.assert_allclose(back(x, h0), y, **tol)


def test_last_equals_h_n_with_lengths():
    """readout="last" with an identity-like single Linear reads exactly the last valid state."""
    model = rnncore.RNNModel(2, 3, 3, readout="last", dtype=np.float64, seed=0)
    model.head.params["0.weight"][:] = np.eye(3)
    model.head.params["0.bias"][:] = 0
    x = np.random.default_rng(0).normal(size=(6, 4, 2))
    lengths = np.array([6, 1, 3, 5])
    y = model(x, lengths=lengths)
    output, _ = model.rnn(x, lengths=lengths)
    np.testing.assert_array_equal(y, output[lengths - 1, np.arange(4)])


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_fit_learns_sequence_labels(readout):
    """Classify sequences by the sign of their sum, arrays and lists of different lengths."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 64, 1)).astype(np.float32)
    labels = (X.sum(axis=(0, 2)) > 0).astype(np.int64)
    model = rnncore.RNNModel(1, 16, 2, readout=readout, seed=0)
    history = rnncore.fit(model, X, labels, loss="cross_entropy", epochs=30, batch_size=16,
                          optimizer=rnncore.optim.Adam(model, lr=0.02), progress=False, seed=0)
    assert history[-1] < 0.5 * history[0]
    seqs = [X[:n, i] for i, n in enumerate(rng.integers(3, 13, 64))]
    y_seq = np.array([int(s.sum() > 0) for s in seqs])
    hist2 = rnncore.fit(model, seqs, y_seq, loss="cross_entropy", epochs=5, progress=False)
    assert np.isfinite(hist2).all()
    pred = model(X).argmax(-1)
    assert (pred == labels).mean() > 0.8


def test_fit_batch_first_regression_and_errors():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 6, 2))
    Y = X.mean(axis=1)  # (N, O=2)
    model = rnncore.RNNModel(2, 8, 2, readout="mean", batch_first=True, dtype=np.float64, seed=0)
    history = rnncore.fit(model, X, Y, epochs=3, progress=False)
    assert len(history) == 3 and history[-1] < history[0]
    with pytest.raises(ValueError, match=r"Y: expected one target per sequence, shape \(20"):
        rnncore.fit(model, X, Y[:5], progress=False)
    with pytest.raises(ValueError, match="tbptt"):
        rnncore.fit(model, X, Y, tbptt=2, progress=False)
    with pytest.raises(ValueError, match="mask"):
        rnncore.fit(model, X, Y, mask=np.ones((20, 6), bool), progress=False)
    with pytest.raises(ValueError, match=r"Y: expected one target per sequence"):
        rnncore.fit(model, [x for x in X], Y[:3], progress=False)


def test_bad_readout_and_gradient_shapes():
    with pytest.raises(ValueError, match="readout: expected one of 'all', 'last', 'mean', got "
                                         "'first'"):
        rnncore.RNNModel(1, 2, 1, readout="first")
    model = rnncore.RNNModel(1, 2, 3, readout="last", seed=0)
    model(np.zeros((4, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"grad_y: expected shape \(2, 3\)"):
        model.backward(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="grad_h_n"):
        model.backward(np.zeros((2, 3)), np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match="lengths"):
        model(np.zeros((4, 2, 1), np.float32), lengths=[5, 1])


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_save_load_round_trip(tmp_path, readout):
    model = small_model(readout=readout, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(T, B, I))
    model.save(tmp_path / "m.npz")
    back = rnncore.RNNModel.load(tmp_path / "m.npz")
    assert back.readout == readout and repr(back) == repr(model)
    np.testing.assert_array_equal(back(x), model(x))


@pytest.mark.parametrize("config", [dict(readout="last", bidirectional=True, lengths=True),
                                    dict(readout="mean", lengths=True, batch_first=True),
                                    dict(readout="mean"), dict(readout="last", num_layers=1)],
                         ids=config_id)
def test_onnx_export(tmp_path, config):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, x, h0, lengths = make_case(config, np.float32)
    rnncore.onnx.export(model, tmp_path / "m.onnx", with_lengths=lengths is not None)
    feeds = {"x": x} if lengths is None else {"x": x, "lengths": lengths.astype(np.int32)}
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    y, h_n = session.run(["y", "h_n"], feeds)
    np.testing.assert_allclose(y, model(x, lengths=lengths), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_n, model.h_n, rtol=1e-4, atol=1e-5)
