"""rnncore.Embedding and RNNModel(vocab_size=...): torch's init and names, the scatter-add
gradient against a dense numpy reference and finite differences, torch's nn.Embedding, fit on
token ids, save/load, ONNX, and the errors for bad ids."""

import numpy as np
import pytest

import rnncore
from model_helpers import numerical_gradient
from rnncore import losses

V, E = 7, 3


def test_forward_is_a_row_gather_and_padding_row_is_zero():
    emb = rnncore.Embedding(V, E, padding_idx=-2, dtype=np.float64, seed=0)
    assert emb.padding_idx == V - 2
    w = emb.parameters()["weight"]
    assert w.shape == (V, E) and not w[V - 2].any() and w.dtype == np.float64
    ids = np.array([[0, 6], [5, 5], [3, 0]])
    np.testing.assert_array_equal(emb(ids), w[ids])
    same = rnncore.Embedding(V, E, padding_idx=5, dtype=np.float64, seed=0)
    np.testing.assert_array_equal(same.parameters()["weight"], w)  # N(0, 1) draws, seeded


def test_init_is_standard_normal():
    w = rnncore.Embedding(4000, 50, seed=1).parameters()["weight"]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_backward_against_dense_reference(padding_idx):
    """The scatter-add equals the dense one-hot product one_hot(ids).T @ grad, padding row
    excepted, and it accumulates across calls."""
    rng = np.random.default_rng(0)
    emb = rnncore.Embedding(V, E, padding_idx=padding_idx, dtype=np.float64, seed=0)
    ids = rng.integers(0, V, (9, 4))
    emb(ids)
    g = rng.normal(size=(9, 4, E))
    emb.backward(g)
    emb.backward(g)
    one_hot = np.eye(V)[ids.reshape(-1)]
    want = 2 * one_hot.T @ g.reshape(-1, E)
    if padding_idx is not None:
        want[padding_idx] = 0
    np.testing.assert_allclose(emb.grads["weight"], want, rtol=1e-12, atol=1e-12)
    emb.zero_grad()
    assert not emb.grads["weight"].any()


def test_matches_torch_embedding():
    torch = pytest.importorskip("torch")
    emb = rnncore.Embedding(V, E, padding_idx=1, seed=3)
    ref = torch.nn.Embedding(V, E, padding_idx=1)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in emb.state_dict().items()})
    ids = np.random.default_rng(1).integers(0, V, (5, 6))
    g = np.random.default_rng(2).normal(size=(5, 6, E)).astype(np.float32)
    out = emb(ids)
    emb.backward(g)
    out_t = ref(torch.from_numpy(ids))
    out_t.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(emb.grads["weight"], ref.weight.grad.numpy(), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("bad, error, message", [
    (np.array([[0, 7]]), ValueError, r"input: expected ids in \[0, 7\) .*got 7"),
    (np.array([-1, 2]), ValueError, r"input: expected ids in \[0, 7\) .*got -1"),
    (np.array([0.0, 1.0]), TypeError, "input: expected integer ids .*got dtype float64"),
    (np.array([True, False]), TypeError, "got dtype bool"),
    ([[1, 2], [3]], ValueError, "input: expected a rectangular array of integer ids"),
])
def test_bad_ids(bad, error, message):
    emb = rnncore.Embedding(V, E)
    with pytest.raises(error, match=message):
        emb(bad)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"padding_idx must be within num_embeddings: expected "
                                         r"\[-7, 7\), got 7"):
        rnncore.Embedding(V, E, padding_idx=7)
    with pytest.raises(TypeError, match="padding_idx should be an int"):
        rnncore.Embedding(V, E, padding_idx=1.0)
    with pytest.raises(ValueError, match="num_embeddings must be greater than zero"):
        rnncore.Embedding(0, E)
    with pytest.raises(ValueError, match="padding_idx: expected None without vocab_size"):
        rnncore.RNNModel(2, 3, 4, padding_idx=0)
    emb = rnncore.Embedding(V, E)
    emb(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"grad_output: expected shape \(2, 3\)"):
        emb.backward(np.zeros((3, 3)))


def token_model(**options):
    kwargs = dict(input_size=E, hidden_size=4, output_size=V, vocab_size=V, head=(5,),
                  dtype=np.float64, seed=0)
    kwargs.update(options)
    return rnncore.RNNModel(**kwargs)


@pytest.mark.parametrize("options", [dict(), dict(padding_idx=0, batch_first=True),
                                     dict(readout="last", bidirectional=True),
                                     dict(unbatched=True, num_layers=2)],
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_model_gradients_match_finite_differences(options):
    options = dict(options)
    unbatched = options.pop("unbatched", False)
    model = token_model(**options)
    assert list(model.parameters())[0] == "embedding.weight"
    rng = np.random.default_rng(4)
    shape = (6,) if unbatched else (3, 6) if model.batch_first else (6, 3)
    ids = rng.integers(0, V, shape)
    ids.flat[:2] = 0  # padding ids, if padding_idx=0
    y_shape = model(ids).shape
    target = rng.integers(0, V, y_shape[:-1])

    def loss():
        return losses.cross_entropy(model(ids), target)

    _, grad = loss()
    model.zero_grad()
    model.backward(grad)
    for name, a in model.parameters().items():
        numeric = numerical_gradient(lambda: loss()[0], a)
        if name == "embedding.weight" and model.embedding.padding_idx is not None:
            # torch's padding_idx: the row is used (it is zero) but never trained
            assert numeric[0].any() and not model.grads[name][0].any()
            numeric[0] = 0
        np.testing.assert_allclose(model.grads[name], numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_model_matches_torch_and_round_trips():
    torch = pytest.importorskip("torch")
    model = token_model(dtype=np.float64, padding_idx=3)
    net = model.to_torch()
    assert list(net.state_dict()) == list(model.state_dict())
    assert net.embedding.padding_idx == 3
    ids = np.random.default_rng(0).integers(0, V, (6, 3))
    y = model(ids)
    G = np.random.default_rng(1).normal(size=y.shape)
    model.zero_grad()
    model.backward(G)
    yt, _ = net(torch.from_numpy(ids))
    yt.backward(torch.from_numpy(G))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    back = rnncore.RNNModel.from_torch(net.rnn, net.head, embedding=net.embedding)
    np.testing.assert_array_equal(back(ids), y)
    with pytest.raises(TypeError, match="nn.Embedding"):
        rnncore.RNNModel.from_torch(net.rnn, net.head, embedding=net.head)


def test_fit_on_token_ids_and_save_load(tmp_path):
    """Predict the previous token: learnable from ids alone, arrays and lists."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, (20, 32))
    target = np.roll(ids, 1, axis=0)
    model = token_model(dtype=np.float32, hidden_size=16, head=())
    history = rnncore.fit(model, ids[1:], target[1:], loss="cross_entropy", epochs=40,
                          optimizer=rnncore.optim.Adam(model, lr=0.03), progress=False, seed=0)
    assert history[-1] < 0.3 * history[0]
    seqs = [ids[:n, j] for j, n in enumerate(rng.integers(2, 20, 32))]
    rnncore.fit(model, seqs, [np.roll(s, 1) for s in seqs], loss="cross_entropy", epochs=1,
                progress=False)
    with pytest.raises(TypeError, match="X: expected integer token ids"):
        rnncore.fit(model, ids.astype(float), target, loss="cross_entropy", progress=False)
    with pytest.raises(ValueError, match=r"X: expected token ids \(T, N\)"):
        rnncore.fit(model, ids[..., None], target, loss="cross_entropy", progress=False)
    model.save(tmp_path / "m.npz")
    back = rnncore.RNNModel.load(tmp_path / "m.npz")
    assert repr(back) == repr(model) and "vocab_size=7" in repr(model)
    np.testing.assert_array_equal(back(ids), model(ids))


def test_onnx_export_with_embedding(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = token_model(dtype=np.float32, batch_first=True, readout="last")
    ids = np.random.default_rng(0).integers(0, V, (3, 6))
    rnncore.onnx.export(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(["y"], {"x": ids.astype(np.int64)})
    np.testing.assert_allclose(y, model(ids), rtol=1e-4, atol=1e-5)
