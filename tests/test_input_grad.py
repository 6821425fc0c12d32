"""backward(..., input_grad=False): the input's gradient is not computed and None comes back in
its place, while every parameter gradient and grad_h0 come out bit for bit as with
input_grad=True (the weight gradients never read dx). fit, the distributed replicas and Seq2Seq
train this way."""

import numpy as np
import pytest

import rnncore
from rnncore import _core

T, B, I, H = 6, 5, 3, 4

RNN_CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, dropout=0.5, nonlinearity="relu"),
    dict(batch_first=True, lengths=True),
    dict(num_layers=2, bidirectional=True, lengths=True),
    dict(unbatched=True, num_layers=2),
    dict(dtype=np.float64, bias=False),
]


def config_id(config):
    return "-".join(f"{k}={v}" for k, v in config.items()) or "default"


def rnn_inputs(config, rng):
    """Two identical RNNs (same seed: the same weights and dropout masks) and the arguments of
    their forward for one config."""
    config = dict(config)
    with_lengths, unbatched = config.pop("lengths", False), config.pop("unbatched", False)
    dtype = config.get("dtype", np.float32)
    rnns = [rnncore.RNN(I, H, seed=0, **config) for _ in range(2)]
    shape = (T, I) if unbatched else ((B, T, I) if rnns[0].batch_first else (T, B, I))
    x = rng.standard_normal(shape).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if with_lengths else None
    return rnns, x, lengths


def grads_after_backward(rnn, x, lengths, input_grad):
    """The gradients of one forward and backward."""
    out, h_n = rnn(x, lengths=lengths)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    grad_x, grad_h0 = rnn.backward(g, np.ones_like(h_n), input_grad=input_grad)
    return grad_x, grad_h0.copy(), {k: v.copy() for k, v in rnn.grads.items()}


@pytest.mark.parametrize("config", RNN_CONFIGS, ids=config_id)
def test_rnn_without_input_grad_gives_the_same_parameter_gradients(config):
    (rnn, twin), x, lengths = rnn_inputs(config, np.random.default_rng(3))
    grad_x, grad_h0, grads = grads_after_backward(rnn, x, lengths, input_grad=True)
    none, grad_h0_skipped, grads_skipped = grads_after_backward(twin, x, lengths, input_grad=False)
    assert none is None and grad_x.shape == x.shape
    np.testing.assert_array_equal(grad_h0_skipped, grad_h0)
    assert grads_skipped.keys() == grads.keys()
    for name in grads:
        np.testing.assert_array_equal(grads_skipped[name], grads[name], err_msg=name)


MODEL_CONFIGS = [
    dict(),
    dict(readout="last", bidirectional=True),
    dict(readout="mean", num_layers=2),
    dict(vocab_size=7),
    dict(vocab_size=7, readout="last"),
]


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=config_id)
def test_model_without_input_grad_gives_the_same_gradients(config):
    model = rnncore.RNNModel(I, H, 2, head=(5,), seed=0, **config)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 7, size=(T, B)) if "vocab_size" in config else \
        rng.standard_normal((T, B, I)).astype(np.float32)

    def run(input_grad):
        model.zero_grad()
        y = model(x)
        grad_x = model.backward(np.ones_like(y), input_grad=input_grad)
        return grad_x, {k: v.copy() for k, v in model.grads.items()}

    grad_x, grads = run(True)
    none, grads_skipped = run(False)
    assert none is None and grad_x is not None
    for name in grads:  # with an embedding, its rows' gradients too
        np.testing.assert_array_equal(grads_skipped[name], grads[name], err_msg=name)


def test_seq2seq_backward_trains_as_before_without_input_grads():
    rng = np.random.default_rng(5)
    s2s = rnncore.Seq2Seq(rnncore.RNNModel(I, H, 1, seed=0),
                          rnncore.RNNModel(3, H, 3, vocab_size=6, seed=1))
    src = rng.standard_normal((4, B, I)).astype(np.float32)
    tgt_in = rng.integers(0, 6, size=(3, B))
    logits = s2s(src, tgt_in)
    s2s.backward(np.ones_like(logits))
    grads = {k: v.copy() for k, v in s2s.grads.items()}
    # the same gradients by hand, every input gradient computed
    s2s.zero_grad()
    s2s(src, tgt_in)
    s2s.decoder.backward(np.ones_like(logits))
    # bridge "sum" from a one-direction encoder: its h_n gets the decoder's grad_h0 unchanged
    s2s.encoder.backward(np.zeros(s2s._enc_out.shape, np.float32), s2s.decoder.grad_h0)
    for name, g in s2s.grads.items():
        np.testing.assert_array_equal(grads[name], g, err_msg=name)


def test_kernel_takes_no_dx():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w_ih = rng.standard_normal((H, I)).astype(np.float32)
    w_hh = rng.standard_normal((H, H)).astype(np.float32)
    h = np.empty((T, B, H), np.float32)
    _core.forward(x, None, w_ih, w_hh, None, None, h, False, "tanh")
    dh = rng.standard_normal((T, B, H)).astype(np.float32)
    grads = []
    for dx in (np.empty_like(x), None):
        dh0, dw_ih, dw_hh = np.empty((B, H), np.float32), np.zeros_like(w_ih), np.zeros_like(w_hh)
        _core.backward(x, None, w_ih, w_hh, h, dh, None, dx, False, dh0, dw_ih, dw_hh, None,
                       None, False, "tanh")
        grads.append((dh0, dw_ih, dw_hh))
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_array_equal(got, want)
