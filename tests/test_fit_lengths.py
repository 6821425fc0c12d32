"""rnncore.fit on lists of sequences of different lengths: minibatches padded to their longest
sequence, run with lengths= and scored with the mask of the valid steps; truncated BPTT carries
each sequence's own state; equal-length lists train exactly like the array path."""

import numpy as np
import pytest

import rnncore
from rnncore import losses, optim


def delay_sequences(rng, lengths, delay=2):
    """Sequences x ~ N(0, 1) of the given lengths with targets y_t = x_{t-delay} (0 before)."""
    X, Y = [], []
    for n in lengths:
        x = rng.normal(size=(n, 1))
        y = np.zeros_like(x)
        y[delay:] = x[:-delay]
        X.append(x)
        Y.append(y)
    return X, Y


def spy(model):
    """Record (x.shape, h0 copy, lengths copy) of every forward of `model`."""
    calls, forward = [], model.forward

    def spy_forward(x, h0=None, lengths=None):
        calls.append((x.shape, None if h0 is None else np.array(h0),
                      None if lengths is None else np.array(lengths)))
        return forward(x, h0, lengths=lengths)

    model.forward = spy_forward
    return calls


def test_learns_a_delay_task_on_sequences_of_different_lengths():
    rng = np.random.default_rng(0)
    X, Y = delay_sequences(rng, rng.integers(3, 25, 192))
    model = rnncore.RNNModel(1, 16, 1, seed=0)
    history = rnncore.fit(model, X, Y, optimizer=optim.Adam(model, lr=0.01), epochs=25,
                          batch_size=32, seed=0, progress=False)
    assert len(history) == 25
    assert history[-1] < 0.03 < 0.5 < history[0]
    # Held-out sequences, one at a time (no padding at all).
    X_test, Y_test = delay_sequences(rng, [7, 20, 3])
    model.eval()
    for x, y in zip(X_test, Y_test):
        assert losses.mse(model(x[:, None]), y[:, None])[0] < 0.05


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("tbptt", [None, 4])
def test_equal_length_list_trains_like_the_array(tbptt, batch_first):
    rng = np.random.default_rng(1)
    X, Y = delay_sequences(rng, [9] * 10)
    a = rnncore.RNNModel(1, 5, 1, head=(4,), seed=0, dtype=np.float64, batch_first=batch_first)
    b = rnncore.RNNModel(1, 5, 1, head=(4,), seed=0, dtype=np.float64, batch_first=batch_first)
    kwargs = dict(epochs=2, batch_size=4, tbptt=tbptt, seed=3, clip=1.0, progress=False)
    got = rnncore.fit(a, X, Y, optimizer=optim.SGD(a, lr=0.05), **kwargs)
    stack = np.stack if batch_first else (lambda arrays: np.stack(arrays, axis=1))
    want = rnncore.fit(b, stack(X), stack(Y), optimizer=optim.SGD(b, lr=0.05), **kwargs)
    # The same steps bit for bit (full lengths run as the plain call); the reported losses may
    # differ in the last bit: the masked loss sums its elements in another memory order.
    for name, p in a.parameters().items():
        np.testing.assert_array_equal(p, b.parameters()[name], err_msg=name)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_minibatches_are_padded_to_their_longest_sequence_and_masked():
    lengths = [3, 5, 2, 2, 4]
    X, Y = delay_sequences(np.random.default_rng(2), lengths)
    model = rnncore.RNNModel(1, 4, 1, seed=0, dtype=np.float64)
    calls = spy(model)
    seen = []

    def recording_mse(pred, target, m):
        value, grad = losses.mse(pred, target, m)
        seen.append((value, m.copy(), grad.copy()))
        return value, grad

    history = rnncore.fit(model, X, Y, loss=recording_mse, epochs=1, batch_size=2,
                          shuffle=False, progress=False)
    assert [shape for shape, _, _ in calls] == [(5, 2, 1), (2, 2, 1), (4, 1, 1)]
    assert [list(n) for _, _, n in calls] == [[3, 5], [2, 2], [4]]
    for (_, m, grad), (_, _, n) in zip(seen, calls):
        np.testing.assert_array_equal(m, rnncore.length_mask(n, max(n)))
        assert np.all(grad[~m] == 0)  # padded steps get no gradient
    want = sum(v * m.sum() for v, m, _ in seen) / sum(lengths)  # the valid steps only
    assert history == [pytest.approx(want, rel=1e-12)]


def test_padded_targets_do_not_count():
    """The loss of a minibatch is the loss of its valid steps: equal to the mean over the
    sequences run one by one."""
    lengths = [4, 1, 3]
    X, Y = delay_sequences(np.random.default_rng(3), lengths, delay=1)
    model = rnncore.RNNModel(1, 4, 1, seed=0, dtype=np.float64)
    want = sum(losses.mse(model(x[:, None]), y[:, None])[0] * len(x)
               for x, y in zip(X, Y)) / sum(lengths)
    history = rnncore.fit(model, X, Y, optimizer=optim.SGD(model, lr=0.0), epochs=1,
                          batch_size=3, shuffle=False, progress=False)
    assert history == [pytest.approx(want, rel=1e-12)]


def test_batch_first_model_gets_batch_first_minibatches():
    X, Y = delay_sequences(np.random.default_rng(4), [3, 6, 2])
    model = rnncore.RNNModel(1, 4, 1, seed=0, batch_first=True)
    calls = spy(model)
    rnncore.fit(model, X, Y, epochs=1, batch_size=3, shuffle=False, progress=False)
    assert calls[0][0] == (3, 6, 1) and list(calls[0][2]) == [3, 6, 2]


def test_tbptt_carries_each_sequences_state_and_drops_finished_ones():
    lengths = [5, 2, 7]
    X, Y = delay_sequences(np.random.default_rng(5), lengths)
    model = rnncore.RNNModel(1, 4, 1, seed=0, dtype=np.float64)
    calls = spy(model)
    finals = []
    rnncore.fit(model, X, Y, optimizer=optim.SGD(model, lr=0.1), epochs=1, batch_size=3,
                tbptt=3, shuffle=False, progress=False,
                loss=lambda p, t, m: finals.append(model.h_n.copy()) or losses.mse(p, t, m))
    # Chunks of 3 steps over T_b = 7: every sequence, then those with steps left.
    assert [shape for shape, _, _ in calls] == [(3, 3, 1), (3, 2, 1), (1, 1, 1)]
    assert [list(n) for _, _, n in calls] == [[3, 2, 3], [2, 3], [1]]
    assert calls[0][1] is None
    np.testing.assert_array_equal(calls[1][1], finals[0][:, [0, 2]])  # sequences 0 and 2 go on
    np.testing.assert_array_equal(calls[2][1], finals[1][:, [1]])     # sequence 2 only


def test_tbptt_longer_than_every_sequence_is_no_tbptt():
    X, Y = delay_sequences(np.random.default_rng(6), [4, 9, 2, 6])
    runs = []
    for tbptt in (None, 9, 50):
        model = rnncore.RNNModel(1, 4, 1, seed=0, dtype=np.float64)
        history = rnncore.fit(model, X, Y, optimizer=optim.SGD(model, lr=0.1), epochs=2,
                              batch_size=2, tbptt=tbptt, seed=0, progress=False)
        runs.append((history, model.parameters()["rnn.weight_hh_l0"].copy()))
    for history, w in runs[1:]:
        assert history == runs[0][0]
        np.testing.assert_array_equal(w, runs[0][1])


def test_cross_entropy_labels_and_a_user_mask():
    rng = np.random.default_rng(7)
    X, labels, masks = [], [], []
    for n in rng.integers(2, 30, 96):
        x = rng.normal(size=(n, 1))
        y = np.zeros(n, np.int64)
        y[1:] = x[:-1, 0] > 0  # the sign of the previous input
        X.append(x)
        labels.append(y)
        masks.append(np.arange(n) > 0)  # step 0 has nothing to predict
    model = rnncore.RNNModel(1, 8, 2, seed=0)
    history = rnncore.fit(model, X, labels, loss="cross_entropy", epochs=15, batch_size=16,
                          mask=masks, optimizer=optim.Adam(model, lr=0.02), seed=0,
                          progress=False)
    assert history[-1] < 0.1 < 0.5 < history[0]  # chance is log 2 = 0.69


def test_user_mask_is_combined_with_the_length_mask():
    X, Y = delay_sequences(np.random.default_rng(8), [3, 5])
    masks = [np.array([True, False, True]), np.array([False, True, True, True, False])]
    seen = []
    rnncore.fit(rnncore.RNNModel(1, 4, 1, seed=0), X, Y, epochs=1, batch_size=2, mask=masks,
                shuffle=False, progress=False,
                loss=lambda p, t, m: seen.append(m.copy()) or losses.mse(p, t, m))
    np.testing.assert_array_equal(seen[0], [[1, 0], [0, 1], [1, 1], [0, 1], [0, 0]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(Y=np.zeros((3, 4, 1))), "Y: expected a list of 3 target arrays"),
    (dict(Y=[np.zeros((4, 1))] * 2), "Y: expected a list of 3 target arrays"),
    (dict(X=[]), "X: expected at least one sequence"),
    (dict(X=[np.zeros(4)] * 3), r"X\[0\]: expected one sequence \(T_i, I\) with T_i >= 1"),
    (dict(X=[np.zeros((0, 1))] * 3), r"X\[0\]: expected one sequence"),
    (dict(Y=[np.zeros((4, 1)), np.zeros((5, 1)), np.zeros((2, 1))]),
     r"Y\[1\]: expected 4 steps like X\[1\]"),
    (dict(Y=[np.zeros((4, 1)), np.zeros((4, 2)), np.zeros((4, 1))]),
     r"X\[1\], Y\[1\]: expected shapes \(T_i, 1\) and \(T_i, 1\)"),
    (dict(Y=[np.zeros(4, int), np.zeros((4, 1)), np.zeros(4, int)]),
     r"X\[1\], Y\[1\]: expected shapes \(T_i, 1\) and \(T_i,\) like the first"),
    (dict(X=[np.zeros((4, 1)), np.zeros((4, 2)), np.zeros((4, 1))]),
     r"X\[1\], Y\[1\]: expected shapes \(T_i, 1\)"),
    (dict(mask=np.ones((4, 3), bool)), "mask: expected a list of 3 bool arrays"),
    (dict(mask=[np.ones(4, bool), np.ones(3, bool), np.ones(4, bool)]),
     r"mask\[1\]: expected bool \(4,\)"),
    (dict(mask=[np.ones(4, int)] * 3), r"mask\[0\]: expected bool"),
    (dict(model=rnncore.RNNModel(1, 4, 1, bidirectional=True), tbptt=3),
     "bidirectional model cannot carry its state"),
])
def test_errors(kwargs, match):
    args = dict(model=rnncore.RNNModel(1, 4, 1), X=[np.zeros((4, 1))] * 3,
                Y=[np.zeros((4, 1))] * 3, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        rnncore.fit(**args)


def test_bidirectional_with_tbptt_covering_every_sequence_is_fine():
    X, Y = delay_sequences(np.random.default_rng(9), [3, 5])
    history = rnncore.fit(rnncore.RNNModel(1, 4, 1, bidirectional=True, seed=0), X, Y,
                          tbptt=5, epochs=1, seed=0, progress=False)
    assert len(history) == 1
