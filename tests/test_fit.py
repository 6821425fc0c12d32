"""rnncore.fit: a task that needs memory is learnt; truncated BPTT carries the state across chunks
without backpropagating into it; the loss history; progress bar and callback; argument errors."""

import functools

import numpy as np
import pytest

import rnncore
from rnncore import losses, optim, training


def delay_task(rng, T, N, delay=3):
    """x ~ N(0, 1), y_t = x_{t-delay} (0 before): the model must remember `delay` steps."""
    X = rng.normal(size=(T, N, 1))
    Y = np.zeros_like(X)
    Y[delay:] = X[:-delay]
    return X, Y


def test_learns_to_output_the_input_three_steps_back():
    rng = np.random.default_rng(0)
    X, Y = delay_task(rng, 20, 256)
    model = rnncore.RNNModel(1, 16, 1, seed=0)
    history = rnncore.fit(model, X, Y, optimizer=optim.Adam(model, lr=0.01), epochs=30,
                          batch_size=32, seed=0, progress=False)  # 240 optimizer steps
    assert len(history) == 30 and all(isinstance(v, float) for v in history)
    assert history[-1] < 0.02 < 0.5 < history[0]
    X_test, Y_test = delay_task(rng, 20, 64)
    model.eval()
    assert losses.mse(model(X_test), Y_test)[0] < 0.02  # predicting 0 scores 0.85


def test_tbptt_carries_the_state_but_not_the_gradient():
    rng = np.random.default_rng(1)
    X, Y = delay_task(rng, 10, 4)
    model = rnncore.RNNModel(1, 6, 1, seed=0, dtype=np.float64)
    forwards, backwards = [], []
    forward, backward = model.forward, model.backward

    def spy_forward(x, h0=None, lengths=None):
        forwards.append((x.shape, None if h0 is None else h0.copy()))
        return forward(x, h0, lengths)

    def spy_backward(grad_y, grad_h_n=None, **kwargs):
        backwards.append((grad_y.shape, grad_h_n))
        return backward(grad_y, grad_h_n, **kwargs)

    model.forward, model.backward = spy_forward, spy_backward
    finals = []
    rnncore.fit(model, X, Y, optimizer=optim.SGD(model, lr=0.1), epochs=1, batch_size=4,
                tbptt=4, shuffle=False, progress=False,
                loss=lambda p, t, m: finals.append(model.h_n.copy()) or losses.mse(p, t, m))
    assert [shape for shape, _ in forwards] == [(4, 4, 1), (4, 4, 1), (2, 4, 1)]  # 10 = 4+4+2
    assert forwards[0][1] is None
    for (_, h0), previous_final in zip(forwards[1:], finals[:-1]):
        np.testing.assert_array_equal(h0, previous_final)  # each chunk starts where the last ended
    assert [shape for shape, _ in backwards] == [(4, 4, 1), (4, 4, 1), (2, 4, 1)]
    assert all(grad_h_n is None for _, grad_h_n in backwards)  # nothing flows back across chunks


def test_tbptt_equals_the_manual_loop():
    rng = np.random.default_rng(2)
    X, Y = delay_task(rng, 12, 3)
    a = rnncore.RNNModel(1, 5, 1, head=(4,), seed=0, dtype=np.float64)
    b = rnncore.RNNModel(1, 5, 1, head=(4,), seed=0, dtype=np.float64)
    rnncore.fit(a, X, Y, optimizer=optim.SGD(a, lr=0.05), epochs=2, batch_size=3, tbptt=5,
                shuffle=False, clip=0.5, progress=False)
    opt = optim.SGD(b, lr=0.05)
    for _ in range(2):
        h = None
        for t in range(0, 12, 5):
            pred = b(X[t:t + 5], h)
            h = b.h_n
            _, grad = losses.mse(pred, Y[t:t + 5])
            opt.zero_grad()
            b.backward(grad)
            rnncore.clip_grad_norm(b, 0.5)
            opt.step()
    for name, p in a.parameters().items():
        np.testing.assert_allclose(p, b.parameters()[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_history_is_the_count_weighted_mean_of_chunk_losses():
    rng = np.random.default_rng(3)
    X, Y = delay_task(rng, 7, 5)
    mask = rng.random((7, 5)) < 0.7
    seen = []

    def recording_mse(pred, target, m):
        value, grad = losses.mse(pred, target, m)
        seen.append((value, int(m.sum())))
        return value, grad

    history = rnncore.fit(rnncore.RNNModel(1, 4, 1, seed=0), X, Y, loss=recording_mse,
                          epochs=1, batch_size=2, tbptt=3, mask=mask, progress=False)
    assert len(seen) == 3 * 3  # 3 minibatches (2+2+1 sequences) x 3 chunks (3+3+1 steps)
    want = sum(v * n for v, n in seen) / sum(n for _, n in seen)
    assert history == [pytest.approx(want, rel=1e-12)]


def test_cross_entropy_unbatched_and_batch_first_data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 1))
    labels = np.zeros(300, np.int64)
    labels[1:] = x[:-1, 0] > 0  # the sign of the previous input
    model = rnncore.RNNModel(1, 8, 2, seed=0)
    history = rnncore.fit(model, x, labels, loss="cross_entropy", epochs=15, tbptt=30,
                          optimizer=optim.Adam(model, lr=0.02), progress=False)
    assert history[-1] < 0.3 < history[0]  # chance is log 2 = 0.69
    bf = rnncore.RNNModel(1, 8, 2, seed=0, batch_first=True)
    same = rnncore.fit(bf, x[None], labels[None], loss="cross_entropy", epochs=15, tbptt=30,
                       optimizer=optim.Adam(bf, lr=0.02), progress=False)
    np.testing.assert_allclose(same, history, rtol=1e-5)


def test_shuffle_is_seeded():
    rng = np.random.default_rng(5)
    X, Y = delay_task(rng, 6, 16)

    def trained(seed, shuffle=True):
        model = rnncore.RNNModel(1, 4, 1, seed=0, dtype=np.float64)
        rnncore.fit(model, X, Y, epochs=2, batch_size=4, shuffle=shuffle, seed=seed,
                    progress=False)
        return model.parameters()["head.0.weight"]

    np.testing.assert_array_equal(trained(0), trained(0))
    assert not np.array_equal(trained(0), trained(1))
    np.testing.assert_array_equal(trained(0, shuffle=False), trained(1, shuffle=False))


def test_progress_bar_shows_the_running_loss_and_can_be_silenced(capfd, monkeypatch):
    X, Y = delay_task(np.random.default_rng(6), 5, 4)
    rnncore.fit(rnncore.RNNModel(1, 4, 1, seed=0), X, Y, epochs=2, progress=False)
    assert capfd.readouterr() == ("", "")
    # Redraw on every update (tqdm otherwise redraws at most every 0.1 s: this run is faster).
    monkeypatch.setattr(training, "tqdm", functools.partial(training.tqdm, mininterval=0))
    rnncore.fit(rnncore.RNNModel(1, 4, 1, seed=0), X, Y, epochs=2, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "loss=" in err and "epoch=2" in err


def test_callback_gets_each_epoch_and_can_stop_training():
    X, Y = delay_task(np.random.default_rng(7), 5, 4)
    calls = []
    history = rnncore.fit(rnncore.RNNModel(1, 4, 1, seed=0), X, Y, epochs=5, progress=False,
                          callback=lambda epoch, loss: calls.append((epoch, loss)) or epoch == 2)
    assert [e for e, _ in calls] == [1, 2] and len(history) == 2
    assert [v for _, v in calls] == history


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(loss="mae"), ValueError, "Unknown loss 'mae'"),
    (dict(epochs=0), ValueError, "epochs must be greater than zero"),
    (dict(tbptt=0), ValueError, "tbptt must be greater than zero"),
    (dict(Y=np.zeros((4, 5, 1))), ValueError, "Y: expected the leading dims of X"),
    (dict(X=np.zeros((5,))), ValueError, "X: expected"),
    (dict(mask=np.ones((5, 3), bool)), ValueError, "mask: expected X's leading dims"),
    (dict(model=rnncore.RNNModel(1, 4, 1, bidirectional=True), tbptt=2), ValueError,
     "bidirectional model cannot carry its state"),
])
def test_errors(kwargs, error, match):
    args = dict(model=rnncore.RNNModel(1, 4, 1), X=np.zeros((5, 4, 1)), Y=np.zeros((5, 4, 1)),
                progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        rnncore.fit(**args)
