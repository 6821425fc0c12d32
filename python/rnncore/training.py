"""Training loops: `fit` (minibatches, truncated BPTT over long sequences) and `clip_grad_norm`.

Shape letters: T steps, N sequences in the data set, B sequences in a minibatch, I input, O output.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm

from . import losses
from ._checks import as_real_array, check_positive_int
from .optim import Adam

_LOSSES = {"mse": losses.mse, "cross_entropy": losses.cross_entropy}


def clip_grad_norm(model, max_norm: float) -> float:
    """Scale all of the model's gradients together so that their global L2 norm is at most
    `max_norm` (as ``torch.nn.utils.clip_grad_norm_``: factor max_norm / (norm + 1e-6) when that
    is below 1). Returns the norm before clipping."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    grads = list(model.grads.values())
    norm = math.sqrt(sum(float(np.square(g).sum(dtype=np.float64)) for g in grads))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads:
            g *= g.dtype.type(coef)
    return norm


def fit(model, X, Y, loss="mse", optimizer=None, epochs=1, batch_size=32, tbptt=None, clip=None,
        shuffle=True, seed=None, progress=True, callback=None, mask=None) -> list[float]:
    """Train `model` (an rnncore.RNNModel) on sequences X with per-step targets Y.

    X: (T, N, I) N sequences of T steps, (N, T, I) if ``model.batch_first``, or (T, I) for one long
    sequence. Y: per-step targets laid out like X: (T, N, O) floats for ``loss="mse"``, (T, N)
    integer class labels for ``loss="cross_entropy"`` (batch-first / unbatched accordingly).
    `loss` may also be a function ``(pred, target, mask) -> (loss, grad_pred)``.
    mask: optional bool (T, N) (laid out like X's leading dims): steps that count in the loss.

    Each epoch visits the sequences in minibatches of `batch_size` (shuffled if `shuffle`, with
    ``np.random.default_rng(seed)``). With ``tbptt=k`` a minibatch is cut into chunks of k steps,
    one optimizer step per chunk; the hidden state is carried from chunk to chunk (the final state
    of one is h0 of the next) but gradients stop at chunk boundaries (truncated BPTT). Without
    tbptt each minibatch is one chunk. `clip`: clip_grad_norm to this value before each step.
    optimizer: default ``optim.Adam(model)`` (lr 1e-3); pass your own to keep its state across
    calls. callback(epoch, loss) runs after each epoch (epoch counts from 1); returning True
    stops training. progress: a tqdm bar with the running loss of the epoch; False is silent.
    The model is put in training mode (dropout on) and left there.

    Returns the loss history: one float per completed epoch, the mean training loss of that
    epoch (the chunk losses weighted by how many targets each chunk counted).
    """
    loss_fn = _LOSSES.get(loss, loss) if isinstance(loss, str) else loss
    if not callable(loss_fn):
        raise ValueError(f"Unknown loss {loss!r}. Select from 'mse', 'cross_entropy' or pass a "
                         "function (pred, target, mask) -> (loss, grad_pred).")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if tbptt is not None:
        tbptt = check_positive_int(tbptt, "tbptt")
    optimizer = Adam(model) if optimizer is None else optimizer
    X, Y, mask = _time_major(model, X, Y, mask)
    T, N = X.shape[:2]
    chunk = tbptt or T
    if chunk < T and getattr(model, "bidirectional", False):
        raise ValueError("tbptt: a bidirectional model cannot carry its state across chunks (the "
                         "reverse direction would start from the wrong end); use tbptt=None")
    batches = [slice(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    chunks = [slice(t, min(t + chunk, T)) for t in range(0, T, chunk)]
    rng = np.random.default_rng(seed)
    history: list[float] = []
    model.train()

    with tqdm(total=epochs * len(batches) * len(chunks), disable=not progress, unit="step",
              leave=False, dynamic_ncols=True) as bar:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(N) if shuffle else np.arange(N)
            total, counted = 0.0, 0
            for batch in batches:
                rows = order[batch]
                h = None
                for steps in chunks:
                    x, y = X[steps, rows], Y[steps, rows]  # (k, B, I), (k, B[, O])
                    m = None if mask is None else mask[steps, rows]
                    if model.batch_first:
                        x, y = x.swapaxes(0, 1), y.swapaxes(0, 1)
                        m = None if m is None else m.swapaxes(0, 1)
                    pred = model(x, h)
                    h = model.h_n  # the next chunk starts here; no gradient flows back into it
                    value, grad = loss_fn(pred, y, m)
                    optimizer.zero_grad()
                    model.backward(grad)
                    if clip is not None:
                        clip_grad_norm(model, clip)
                    optimizer.step()
                    n = int(m.sum()) if m is not None else y.shape[0] * y.shape[1]
                    total, counted = total + value * n, counted + n
                    bar.set_postfix(epoch=epoch, loss=f"{total / max(counted, 1):.4f}",
                                    refresh=False)
                    bar.update()
            history.append(total / max(counted, 1))
            if callback is not None and callback(epoch, history[-1]) is True:
                break
    return history


def _time_major(model, X, Y, mask):
    """X, Y and mask as time-major (T, N, ...) views, with N = 1 for unbatched data."""
    X = as_real_array(X, model.dtype, "X")
    Y = np.asarray(Y)
    if X.ndim not in (2, 3):
        raise ValueError(f"X: expected (T, N, I), (N, T, I) with batch_first, or (T, I), got "
                         f"shape {X.shape}")
    lead = X.shape[:X.ndim - 1]
    if Y.shape[:len(lead)] != lead:
        raise ValueError(f"Y: expected the leading dims of X {lead}, got shape {Y.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != lead:
            raise ValueError(f"mask: expected X's leading dims {lead}, got shape {mask.shape}")
    if X.ndim == 2:  # one sequence
        return X[:, None], Y[:, None], None if mask is None else mask[:, None]
    if model.batch_first:
        return X.swapaxes(0, 1), Y.swapaxes(0, 1), None if mask is None else mask.swapaxes(0, 1)
    return X, Y, mask
