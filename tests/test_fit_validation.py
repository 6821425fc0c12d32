"""fit(..., validation=, early_stopping=): the validation loss of each epoch equals the loss of
the model evaluated by hand; early stopping stops after `patience` epochs without improvement
and restores the best epoch's parameters; lists of sequences and many-to-one models too; bad
arguments raise."""

import numpy as np
import pytest

import rnncore
from rnncore import losses


def data(seed, n=40, T=8):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, n, 2))
    Y = np.cumsum(X[..., :1], axis=0) * 0.3
    return X, Y


def test_validation_loss_is_the_models_loss_after_each_epoch():
    X, Y = data(0)
    Xv, Yv = data(1, n=10)
    model = rnncore.RNNModel(2, 8, 1, dtype=np.float64, seed=0, dropout=0.0)
    seen = []

    def callback(epoch, loss):
        model.eval()
        seen.append(losses.mse(model(Xv), Yv)[0])
        model.train()

    history = rnncore.fit(model, X, Y, epochs=4, batch_size=16, validation=(Xv, Yv),
                          callback=callback, progress=False, seed=0)
    assert isinstance(history, list) and len(history) == 4
    np.testing.assert_allclose(history.validation, seen, rtol=1e-12)
    assert history.best_epoch is None and model.training


def test_early_stopping_restores_the_best_epoch():
    X, Y = data(0)
    Xv, Yv = data(1, n=10)
    Yv = Yv + 5.0  # unreachable targets: validation worsens while training improves
    model = rnncore.RNNModel(2, 8, 1, dtype=np.float64, seed=0)
    states = {}

    def callback(epoch, loss):
        states[epoch] = model.state_dict()

    history = rnncore.fit(model, X, Y, epochs=50, batch_size=16, validation=(Xv, Yv),
                          early_stopping=3, callback=callback, progress=False, seed=0,
                          optimizer=rnncore.optim.Adam(model, lr=0.02))
    best = history.best_epoch
    assert best == int(np.argmin(history.validation)) + 1
    assert len(history) == best + 3 < 50  # stopped 3 epochs after the best
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, states[best][name], err_msg=name)


def test_validation_with_sequence_lists_and_many_to_one():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 1)) for n in rng.integers(2, 9, 30)]
    labels = np.array([int(s.sum() > 0) for s in seqs])
    model = rnncore.RNNModel(1, 8, 2, readout="last", dtype=np.float64, seed=0)
    history = rnncore.fit(model, seqs[:20], labels[:20], loss="cross_entropy", epochs=2,
                          validation=(seqs[20:], labels[20:]), progress=False)
    model.eval()
    want = np.mean([losses.cross_entropy(model(s[:, None]), labels[20 + i:21 + i])[0]
                    for i, s in enumerate(seqs[20:])])
    np.testing.assert_allclose(history.validation[-1], want, rtol=1e-10)


def test_bad_arguments():
    X, Y = data(0)
    model = rnncore.RNNModel(2, 4, 1)
    with pytest.raises(ValueError, match="early_stopping: needs validation"):
        rnncore.fit(model, X, Y, early_stopping=2, progress=False)
    with pytest.raises(ValueError, match="early_stopping must be greater than zero"):
        rnncore.fit(model, X, Y, validation=(X, Y), early_stopping=0, progress=False)
    with pytest.raises(ValueError, match=r"validation: expected \(X_val, Y_val\)"):
        rnncore.fit(model, X, Y, validation=X, progress=False)
    with pytest.raises(ValueError, match="validation: expected X_val in the form of X"):
        rnncore.fit(model, X, Y, validation=([x for x in X.swapaxes(0, 1)], Y), progress=False)
    with pytest.raises(ValueError, match="Y: expected the leading dims of X"):
        rnncore.fit(model, X, Y, validation=(X, Y[:, :3]), progress=False)
