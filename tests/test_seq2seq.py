"""rnncore.Seq2Seq: the bridge against plain numpy, every gradient (encoder, bridge, decoder, the
handed-over state) against float64 finite differences, the same encoder-decoder written in torch,
greedy decoding against teacher forcing, fit_seq2seq, save/load and the errors."""

import numpy as np
import pytest

import rnncore
from model_helpers import numerical_gradient
from rnncore import losses

V_SRC, V_TGT, S, T, B = 6, 5, 4, 3, 3

CONFIGS = [
    dict(),
    dict(bidirectional=True),
    dict(bidirectional=True, bridge="concat", dec_hidden=3),
    dict(num_layers=2, lengths=True),
    dict(float_encoder=True, bidirectional=True, lengths=True, bridge="concat"),
    dict(enc_batch_first=True, dec_batch_first=True, lengths=True, bidirectional=True),
]


def config_id(config):
    return "-".join(f"{k}={v}" for k, v in config.items()) or "default"


def make_case(config, dtype=np.float64, seed=0):
    c = dict(config)
    L, H = c.get("num_layers", 1), 4
    if c.get("float_encoder"):
        encoder = rnncore.RNN(2, H, L, bidirectional=c.get("bidirectional", False),
                              batch_first=c.get("enc_batch_first", False), dtype=dtype, seed=seed)
    else:
        encoder = rnncore.RNNModel(3, H, 2, num_layers=L, vocab_size=V_SRC,
                                   bidirectional=c.get("bidirectional", False),
                                   batch_first=c.get("enc_batch_first", False), dtype=dtype,
                                   seed=seed)
    decoder = rnncore.RNNModel(3, c.get("dec_hidden", H), V_TGT, num_layers=L, head=(4,),
                               vocab_size=V_TGT, batch_first=c.get("dec_batch_first", False),
                               dtype=dtype, seed=seed + 1)
    model = rnncore.Seq2Seq(encoder, decoder, bridge=c.get("bridge", "sum"), seed=seed + 2)
    rng = np.random.default_rng(seed + 3)
    src_shape = (B, S) if encoder.batch_first else (S, B)
    src = rng.normal(size=src_shape + (2,)) if c.get("float_encoder") else \
        rng.integers(0, V_SRC, src_shape)
    tgt_in = rng.integers(0, V_TGT, (B, T) if decoder.batch_first else (T, B))
    lengths = (np.array([S, 1, 3]), np.array([2, T, 1])) if c.get("lengths") else (None, None)
    return model, src, tgt_in, lengths


def bridge_by_hand(model, h_n):
    """h0 from the encoder's h_n, written out per layer."""
    L, De = model.encoder.num_layers, model.encoder.num_directions
    h0 = []
    for k in range(L):
        parts = [h_n[k * De + d] for d in range(De)]
        if model.bridge == "sum":
            h0.append(sum(parts))
        else:
            w, b = model.parameters()["bridge.0.weight"], model.parameters()["bridge.0.bias"]
            h0.append(np.concatenate(parts, axis=-1) @ w.T + b)
    return np.stack(h0)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_forward_is_encoder_bridge_decoder(config):
    model, src, tgt_in, (src_len, tgt_len) = make_case(config)
    y = model(src, tgt_in, src_lengths=src_len, tgt_lengths=tgt_len)
    enc = model.encoder
    if isinstance(enc, rnncore.RNNModel):
        enc(src, lengths=src_len)
        h_n = enc.h_n
    else:
        h_n = enc(src, lengths=src_len)[1]
    want = model.decoder(tgt_in, bridge_by_hand(model, h_n), lengths=tgt_len)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_gradients_match_finite_differences(config):
    model, src, tgt_in, (src_len, tgt_len) = make_case(config)
    rng = np.random.default_rng(9)
    dec_first = model.decoder.batch_first
    target = rng.integers(0, V_TGT, tgt_in.shape)
    mask = None if tgt_len is None else rnncore.length_mask(tgt_len, tgt_in.shape[dec_first],
                                                            dec_first)

    def loss():
        return losses.cross_entropy(model(src, tgt_in, src_len, tgt_len), target, mask)

    _, grad = loss()
    model.zero_grad()
    model.backward(grad)
    params = model.parameters()
    assert any(k.startswith("encoder.") for k in params)
    assert ("bridge.0.weight" in params) == (model.bridge == "concat")
    for name, a in params.items():
        if name.startswith("encoder.head."):  # an RNNModel encoder's head is not used
            assert not model.grads[name].any()
            continue
        numeric = numerical_gradient(lambda: loss()[0], a)
        if name.startswith("encoder.rnn.weight_ih") or name.startswith("encoder.embedding"):
            assert np.any(numeric), f"{name}: the state handed over carries no gradient"
        np.testing.assert_allclose(model.grads[name], numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=name)


@pytest.mark.parametrize("config", [dict(), dict(bidirectional=True, bridge="concat",
                                                 dec_hidden=3, lengths=True),
                                    dict(num_layers=2, bidirectional=True)], ids=config_id)
def test_matches_torch_encoder_decoder(config):
    """The same model written in torch: nn.Embedding + nn.RNN (packed when lengths are given),
    the bridge, nn.Embedding + nn.RNN + nn.Sequential head."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model, src, tgt_in, (src_len, tgt_len) = make_case(config)
    enc, dec = model.encoder, model.decoder
    L, De, He, H = enc.num_layers, enc.num_directions, enc.hidden_size, dec.hidden_size
    t = {k: torch.tensor(v, requires_grad=True) for k, v in model.parameters().items()}

    def rnn_module(prefix, input_size, hidden, bidirectional):
        m = nn.RNN(input_size, hidden, L, bidirectional=bidirectional, dtype=torch.float64)
        for name, _ in list(m.named_parameters()):
            delattr(m, name)
            setattr(m, name, t[f"{prefix}.{name}"])
        return m

    enc_rnn = rnn_module("encoder.rnn", 3, He, enc.bidirectional)
    dec_rnn = rnn_module("decoder.rnn", 3, H, False)
    x = nn.functional.embedding(torch.from_numpy(src), t["encoder.embedding.weight"])
    if src_len is not None:
        x = nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(src_len),
                                              enforce_sorted=False)
    _, h_n = enc_rnn(x)
    parts = h_n.reshape(L, De, B, He)
    if model.bridge == "sum":
        h0 = parts.sum(1)
    else:
        rows = parts.permute(0, 2, 1, 3).reshape(L, B, De * He)
        h0 = rows @ t["bridge.0.weight"].T + t["bridge.0.bias"]
    d = nn.functional.embedding(torch.from_numpy(tgt_in), t["decoder.embedding.weight"])
    out, _ = dec_rnn(d, h0)
    hidden = torch.relu(out @ t["decoder.head.0.weight"].T + t["decoder.head.0.bias"])
    logits = hidden @ t["decoder.head.2.weight"].T + t["decoder.head.2.bias"]
    G = np.random.default_rng(4).normal(size=logits.shape)
    if tgt_len is not None:
        G[~rnncore.length_mask(tgt_len, T)] = 0  # padded decoder steps: no gradient in either
    logits.backward(torch.from_numpy(G))

    y = model(src, tgt_in, src_len, tgt_len)
    model.zero_grad()
    model.backward(G)
    valid = np.ones(y.shape[:2], bool) if tgt_len is None else rnncore.length_mask(tgt_len, T)
    np.testing.assert_allclose(y[valid], logits.detach().numpy()[valid], rtol=1e-10, atol=1e-12)
    for name, tensor in t.items():
        if name.startswith("encoder.head."):
            continue
        np.testing.assert_allclose(model.grads[name], tensor.grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)


@pytest.mark.parametrize("config", [dict(bidirectional=True, bridge="concat", dec_hidden=3,
                                         lengths=True, enc_batch_first=True),
                                    dict(float_encoder=True, num_layers=2, lengths=True),
                                    dict(dec_batch_first=True)], ids=config_id)
def test_to_torch_module_computes_the_same(config):
    torch = pytest.importorskip("torch")
    model, src, tgt_in, (src_len, _) = make_case(config)
    net = model.to_torch()
    assert list(net.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        want = net(torch.from_numpy(src), torch.from_numpy(tgt_in), src_len).numpy()
    np.testing.assert_allclose(model(src, tgt_in, src_len), want, rtol=1e-10, atol=1e-12)


def test_generate_is_greedy_teacher_forcing_on_its_own_output():
    model, src, _, _ = make_case(dict(bidirectional=True, bridge="concat", dec_hidden=3))
    out = model.generate(src, max_len=6, start_id=0)
    assert out.shape == (B, 6) and out.dtype == np.int64
    tgt_in = np.concatenate([np.zeros((B, 1), np.int64), out[:, :-1]], axis=1).T  # (T, B)
    logits = model(src, tgt_in)
    np.testing.assert_array_equal(logits.argmax(-1).T, out)
    assert model.training  # mode restored


def test_generate_stops_at_end_id():
    model, src, _, _ = make_case(dict())
    first = model.generate(src, max_len=1, start_id=0)[:, 0]
    end = int(first[0])
    out = model.generate(src, max_len=5, start_id=0, end_id=end)
    assert out[0, 0] == end
    for row in out:  # after the first end token, only end tokens
        hits = np.flatnonzero(row == end)
        if hits.size:
            assert (row[hits[0]:] == end).all()


def test_fit_learns_to_reverse_digit_strings(tmp_path):
    """Reverse strings of 2-4 digits: ids 0-9 digits, 10 start, 11 end."""
    rng = np.random.default_rng(0)
    src = [rng.integers(0, 10, rng.integers(2, 5)) for _ in range(400)]
    tgt = [np.r_[s[::-1], 11] for s in src]
    enc = rnncore.RNNModel(16, 48, 1, vocab_size=12, bidirectional=True, seed=0)
    dec = rnncore.RNNModel(16, 48, 12, vocab_size=12, seed=1)
    model = rnncore.Seq2Seq(enc, dec, bridge="concat", seed=2)
    history = rnncore.fit_seq2seq(model, src, tgt, start_id=10, epochs=30, batch_size=32,
                                  optimizer=rnncore.optim.Adam(model, lr=0.01), clip=5.0,
                                  progress=False, seed=0)
    assert history[-1] < 0.25 * history[0]
    test = [rng.integers(0, 10, 3) for _ in range(50)]
    out = model.generate(np.stack(test).T, max_len=4, start_id=10, end_id=11)
    exact = np.mean([np.array_equal(o, np.r_[s[::-1], 11]) for o, s in zip(out, test)])
    assert exact > 0.5
    model.save(tmp_path / "s2s.npz")
    back = rnncore.Seq2Seq.load(tmp_path / "s2s.npz")
    assert repr(back) == repr(model)
    np.testing.assert_array_equal(back.generate(np.stack(test).T, 4, 10, 11), out)
    with pytest.raises(ValueError, match="not an rnncore model file"):
        rnncore.RNNModel.load(tmp_path / "s2s.npz")


def test_errors():
    enc = rnncore.RNNModel(3, 4, 2, vocab_size=V_SRC, bidirectional=True)
    dec = rnncore.RNNModel(3, 4, V_TGT, vocab_size=V_TGT)
    with pytest.raises(TypeError, match="decoder: expected an rnncore.RNNModel, got RNN"):
        rnncore.Seq2Seq(enc, rnncore.RNN(3, 4))
    with pytest.raises(TypeError, match="encoder: expected an rnncore.RNN or"):
        rnncore.Seq2Seq("rnn", dec)
    with pytest.raises(ValueError, match="bridge: expected 'sum' or 'concat', got 'mean'"):
        rnncore.Seq2Seq(enc, dec, bridge="mean")
    with pytest.raises(ValueError, match=r"bridge='sum' needs the encoder's hidden_size \(4\)"):
        rnncore.Seq2Seq(enc, rnncore.RNNModel(3, 5, V_TGT, vocab_size=V_TGT))
    with pytest.raises(ValueError, match="decoder: expected num_layers=1"):
        rnncore.Seq2Seq(enc, rnncore.RNNModel(3, 4, V_TGT, num_layers=2, vocab_size=V_TGT))
    with pytest.raises(ValueError, match="decoder: expected a unidirectional"):
        rnncore.Seq2Seq(enc, rnncore.RNNModel(3, 4, V_TGT, bidirectional=True))
    model = rnncore.Seq2Seq(enc, dec)
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(np.zeros((T, B, V_TGT)))
    src = np.zeros((S, B), np.int64)
    with pytest.raises(ValueError, match="tgt_in: expected a batch of 3 sequences like src"):
        model(src, np.zeros((T, B + 1), np.int64))
    with pytest.raises(ValueError, match=r"input: expected ids in \[0, 5\)"):
        model(src, np.full((T, B), V_TGT))
    with pytest.raises(ValueError, match="lengths"):
        model(src, np.zeros((T, B), np.int64), src_lengths=[S + 1, 1, 1])
    with pytest.raises(ValueError, match=r"start_id: expected ids in \[0, 5\)"):
        model.generate(src, 3, start_id=7)
    with pytest.raises(ValueError, match="generate: the decoder must take token ids"):
        rnncore.Seq2Seq(enc, rnncore.RNNModel(3, 4, V_TGT)).generate(src, 3, 0)
    with pytest.raises(TypeError, match="fit: a Seq2Seq .* rnncore.fit_seq2seq"):
        rnncore.fit(model, src, src, progress=False)
    with pytest.raises(ValueError, match="src, tgt: expected the same number"):
        rnncore.fit_seq2seq(model, [src[:, 0]], [], start_id=0, progress=False)
    with pytest.raises(ValueError, match=r"tgt\[0\]: expected a non-empty 1-D array of integer"):
        rnncore.fit_seq2seq(model, [src[:, 0]], [np.array([0.5])], start_id=0, progress=False)
