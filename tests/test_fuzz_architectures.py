"""Property tests of the many-to-one readouts, token input and Seq2Seq on generated sizes and
options: valid input agrees with the float64 numpy reference of test_readout.py (forward and
backward) and Seq2Seq's gradients with finite differences; bad input (wrong dtypes, out-of-range ids, lengths or gradients that disagree with the input)
raises TypeError/ValueError naming the argument, nothing else."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnncore
from fuzz_helpers import examples
from test_readout import reference_pooled


@st.composite
def readout_cases(draw):
    return dict(T=draw(st.integers(1, 5)), B=draw(st.integers(1, 4)),
                I=draw(st.integers(1, 4)), H=draw(st.integers(1, 5)),
                O=draw(st.integers(1, 3)), L=draw(st.integers(1, 3)),
                readout=draw(st.sampled_from(["last", "mean"])),
                bidirectional=draw(st.booleans()), batch_first=draw(st.booleans()),
                nonlinearity=draw(st.sampled_from(["tanh", "relu"])),
                head=tuple(draw(st.lists(st.integers(1, 4), max_size=2))),
                lengths=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


@settings(max_examples=examples(60), deadline=None)
@given(readout_cases())
def test_readouts_match_reference(case):
    rng = np.random.default_rng(case["seed"])
    model = rnncore.RNNModel(case["I"], case["H"], case["O"], num_layers=case["L"],
                             head=case["head"], nonlinearity=case["nonlinearity"],
                             bidirectional=case["bidirectional"], batch_first=case["batch_first"],
                             readout=case["readout"], dtype=np.float64, seed=case["seed"])
    T, B = case["T"], case["B"]
    x = rng.normal(size=((B, T) if case["batch_first"] else (T, B)) + (case["I"],))
    h0 = rng.uniform(-1, 1, (case["L"] * model.num_directions, B, case["H"]))
    lengths = rng.integers(1, T + 1, B) if case["lengths"] else None
    y = model(x, h0, lengths=lengths)
    g = rng.normal(size=y.shape)
    model.zero_grad()
    grad_x = model.backward(g)
    want_y, want_gx, want_gh0, want_grads = reference_pooled(model, x, h0, lengths, g)
    tol = dict(rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(y, want_y, **tol)
    np.testing.assert_allclose(grad_x, want_gx, **tol)
    np.testing.assert_allclose(model.grad_h0, want_gh0, **tol)
    for name, value in model.grads.items():
        np.testing.assert_allclose(value, want_grads[name], **tol, err_msg=name)


@settings(max_examples=examples(60), deadline=None)
@given(V=st.integers(1, 6), E=st.integers(1, 4), T=st.integers(1, 5), B=st.integers(1, 4),
       padding=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_embedding_gradient_is_dense_one_hot_product(V, E, T, B, padding, seed):
    rng = np.random.default_rng(seed)
    padding_idx = int(rng.integers(0, V)) if padding else None
    emb = rnncore.Embedding(V, E, padding_idx=padding_idx, dtype=np.float64, seed=seed)
    ids = rng.integers(0, V, (T, B)).astype(rng.choice([np.int8, np.int32, np.int64, np.uint16]))
    out = emb(ids)
    np.testing.assert_array_equal(out, emb.parameters()["weight"][ids.astype(np.int64)])
    g = rng.normal(size=out.shape)
    emb.backward(g)
    want = np.eye(V)[ids.reshape(-1)].T @ g.reshape(-1, E)
    if padding_idx is not None:
        want[padding_idx] = 0
    np.testing.assert_allclose(emb.grads["weight"], want, rtol=1e-12, atol=1e-12)


BAD = st.sampled_from(["float_ids", "bool_ids", "id_too_big", "negative_id", "lengths_long",
                       "lengths_count", "grad_shape", "ragged"])


@settings(max_examples=examples(60), deadline=None)
@given(kind=BAD, V=st.integers(1, 6), T=st.integers(1, 4), B=st.integers(1, 3),
       readout=st.sampled_from(["all", "last", "mean"]), seed=st.integers(0, 2 ** 16))
def test_bad_input_raises_a_clear_error(kind, V, T, B, readout, seed):
    rng = np.random.default_rng(seed)
    model = rnncore.RNNModel(2, 3, V, vocab_size=V, readout=readout, seed=seed)
    ids = rng.integers(0, V, (T, B))
    lengths = None
    expected, match = ValueError, None
    if kind == "float_ids":
        ids, expected, match = ids.astype(np.float32), TypeError, "input: expected integer ids"
    elif kind == "bool_ids":
        ids, expected, match = ids > 0, TypeError, "input: expected integer ids"
    elif kind == "id_too_big":
        ids[rng.integers(0, T), rng.integers(0, B)] = V
        match = rf"input: expected ids in \[0, {V}\).*got {V}"
    elif kind == "negative_id":
        ids[0, 0] = -1
        match = r"got -1"
    elif kind == "lengths_long":
        lengths, match = np.full(B, T + 1), "lengths"
    elif kind == "lengths_count":
        lengths, match = np.ones(B + 1, int), "lengths"
    elif kind == "ragged":
        ids, match = [[0] * T, [0] * (T + 1)], "input: expected a rectangular array"
    if kind == "grad_shape":
        y = model(ids)
        with pytest.raises(ValueError, match="grad_y: expected shape"):
            model.backward(np.zeros(y.shape + (1,)))
        return
    with pytest.raises(expected, match=match):
        model(ids, lengths=lengths)


@st.composite
def seq2seq_cases(draw):
    return dict(L=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                bridge=draw(st.sampled_from(["sum", "concat"])), He=draw(st.integers(1, 4)),
                H=draw(st.integers(1, 4)), S=draw(st.integers(1, 4)), T=draw(st.integers(1, 4)),
                B=draw(st.integers(1, 3)), enc_first=draw(st.booleans()),
                dec_first=draw(st.booleans()), lengths=draw(st.booleans()),
                tokens=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


@settings(max_examples=examples(30), deadline=None)
@given(seq2seq_cases())
def test_seq2seq_gradients_on_random_configurations(case):
    """Random encoder-decoders: the gradient of every parameter, at a few random entries each,
    against float64 central differences; the forward against encoder, bridge and decoder run
    one after the other."""
    from test_seq2seq import bridge_by_hand

    c = case
    H = c["He"] if c["bridge"] == "sum" else c["H"]
    rng = np.random.default_rng(c["seed"])
    if c["tokens"]:
        enc = rnncore.RNNModel(2, c["He"], 1, num_layers=c["L"], vocab_size=5,
                               bidirectional=c["bidirectional"], batch_first=c["enc_first"],
                               dtype=np.float64, seed=c["seed"])
        src = rng.integers(0, 5, (c["B"], c["S"]) if c["enc_first"] else (c["S"], c["B"]))
    else:
        enc = rnncore.RNN(2, c["He"], c["L"], bidirectional=c["bidirectional"],
                          batch_first=c["enc_first"], dtype=np.float64, seed=c["seed"])
        src = rng.normal(size=((c["B"], c["S"]) if c["enc_first"] else (c["S"], c["B"])) + (2,))
    dec = rnncore.RNNModel(2, H, 3, num_layers=c["L"], vocab_size=3, batch_first=c["dec_first"],
                           dtype=np.float64, seed=c["seed"] + 1)
    model = rnncore.Seq2Seq(enc, dec, bridge=c["bridge"], seed=c["seed"] + 2)
    tgt_shape = (c["B"], c["T"]) if c["dec_first"] else (c["T"], c["B"])
    tgt_in, target = rng.integers(0, 3, tgt_shape), rng.integers(0, 3, tgt_shape)
    src_len = rng.integers(1, c["S"] + 1, c["B"]) if c["lengths"] else None
    tgt_len = rng.integers(1, c["T"] + 1, c["B"]) if c["lengths"] else None
    mask = None if tgt_len is None else rnncore.length_mask(tgt_len, c["T"], c["dec_first"])

    def loss():
        return rnncore.losses.cross_entropy(model(src, tgt_in, src_len, tgt_len), target, mask)

    _, grad = loss()
    model.zero_grad()
    model.backward(grad)
    y = model(src, tgt_in, src_len, tgt_len)
    h_n = enc.h_n if isinstance(enc, rnncore.RNNModel) else None
    if h_n is None:
        h_n = enc(src, lengths=src_len)[1]
    want = dec(tgt_in, bridge_by_hand(model, h_n), lengths=tgt_len)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    eps = 1e-6
    for name, a in model.parameters().items():
        for _ in range(3):
            i = tuple(rng.integers(0, n) for n in a.shape)
            saved = a[i]
            a[i] = saved + eps
            plus = loss()[0]
            a[i] = saved - eps
            minus = loss()[0]
            a[i] = saved
            numeric = (plus - minus) / (2 * eps)
            if name.startswith("encoder.head."):  # an RNNModel encoder's head is unused
                assert model.grads[name][i] == 0 and numeric == 0
                continue
            np.testing.assert_allclose(model.grads[name][i], numeric, rtol=1e-5, atol=1e-8,
                                       err_msg=f"{name}{i}")
