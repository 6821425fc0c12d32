"""Training loops: `fit` (minibatches, truncated BPTT over long sequences, variable-length
sequences) and `clip_grad_norm`.

Shape letters: T steps, N sequences in the data set, B sequences in a minibatch, I input, O output.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm

from . import _core, losses
from ._checks import as_real_array, check_positive_int
from .buffers import FlatParameters
from .lengths import length_mask
from .optim import Adam

_LOSSES = {"mse": losses.mse, "cross_entropy": losses.cross_entropy}


def clip_grad_norm(model, max_norm: float) -> float:
    """Scale all of the model's gradients together so that their global L2 norm is at most
    `max_norm` (as ``torch.nn.utils.clip_grad_norm_``: factor max_norm / (norm + 1e-6) when that
    is below 1). Returns the norm before clipping."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    flat = getattr(model, "_flat", None)
    # one pass over the flat gradient buffer when the model has one, else array by array
    grads = [flat.grads] if isinstance(flat, FlatParameters) else list(model.grads.values())
    norm = math.sqrt(sum(_core.sum_squares(g.reshape(-1)) if g.flags.c_contiguous else
                         float(np.square(g).sum(dtype=np.float64)) for g in grads))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads:
            if g.flags.c_contiguous:
                _core.scale(g.reshape(-1), coef)
            else:
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

    Sequences of different lengths: X a list (or tuple) of N arrays (T_i, I) and Y a list of their
    targets, (T_i, O) or (T_i,) labels (mask, if given, a list of bool (T_i,)). Each minibatch is
    padded to its longest sequence (time-major, or batch-first per ``model.batch_first``), run with
    ``model(x, h0, lengths=...)`` and scored with the mask of its valid steps
    (``rnncore.length_mask``, and-ed with yours): padded steps neither count nor get gradient.
    With ``tbptt=k`` every sequence carries its own state from chunk to chunk; a chunk runs only
    the sequences that have steps left in it, with their lengths clipped to the chunk.

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
    sequences = isinstance(X, (list, tuple))
    if sequences:
        data = _Sequences(model, X, Y, mask)
        T, N = int(data.lengths.max()), len(data.lengths)
    else:
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

    def train_chunk(x, y, m, h, lengths=None):
        """One optimizer step on a time-major chunk; returns (loss, targets counted)."""
        if model.batch_first:
            x, y = x.swapaxes(0, 1), y.swapaxes(0, 1)
            m = None if m is None else m.swapaxes(0, 1)
        pred = model(x, h) if lengths is None else model(x, h, lengths=lengths)
        value, grad = loss_fn(pred, y, m)
        optimizer.zero_grad()
        model.backward(grad)
        if clip is not None:
            clip_grad_norm(model, clip)
        optimizer.step()
        return value, int(m.sum()) if m is not None else y.shape[0] * y.shape[1]

    def array_chunks(rows):
        h = None
        for steps in chunks:
            x, y = X[steps, rows], Y[steps, rows]  # (k, B, I), (k, B[, O])
            m = None if mask is None else mask[steps, rows]
            yield train_chunk(x, y, m, h)
            h = model.h_n  # the next chunk starts here; no gradient flows back into it

    def sequence_chunks(rows):
        x_b, y_b, m_b, lengths = data.batch(rows)  # padded to the longest sequence of the batch
        h = None
        for t in range(0, len(x_b), chunk):
            live = lengths > t  # the sequences with steps left; all of them at t = 0
            x, y, m = x_b[t:t + chunk], y_b[t:t + chunk], m_b[t:t + chunk]
            if not live.all():
                x, y, m, h = x[:, live], y[:, live], m[:, live], h[:, live]
            yield train_chunk(x, y, m, h, np.minimum(lengths[live] - t, chunk))
            # Each live sequence's state at its last step in the chunk (rows that have ended
            # stay zero: they are never read again).
            h = np.zeros((model.h_n.shape[0], len(rows), model.h_n.shape[2]), model.h_n.dtype)
            h[:, live] = model.h_n

    with tqdm(total=epochs * len(batches) * len(chunks), disable=not progress, unit="step",
              leave=False, dynamic_ncols=True) as bar:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(N) if shuffle else np.arange(N)
            total, counted = 0.0, 0
            if sequences and tbptt:  # the chunks of a minibatch follow its longest sequence
                steps_now = sum(-(-int(data.lengths[order[b]].max()) // chunk) for b in batches)
                bar.total = bar.n + steps_now * (epochs - epoch + 1)
            for batch in batches:
                # Unshuffled arrays: the batch's rows as a slice, so x and y are views (no copy)
                rows = batch if not (shuffle or sequences) else order[batch]
                for value, n in (sequence_chunks if sequences else array_chunks)(rows):
                    total, counted = total + value * n, counted + n
                    if progress:
                        bar.set_postfix(epoch=epoch, loss=f"{total / max(counted, 1):.4f}",
                                        refresh=False)
                    bar.update()
            history.append(total / max(counted, 1))
            if callback is not None and callback(epoch, history[-1]) is True:
                break
    return history


class _Sequences:
    """A list of N sequences (T_i, I) with targets (T_i, ...) and optional bool masks (T_i,),
    padded minibatch by minibatch."""

    def __init__(self, model, X, Y, mask):
        if not X:
            raise ValueError("X: expected at least one sequence, got an empty list")
        if not isinstance(Y, (list, tuple)) or len(Y) != len(X):
            raise ValueError(f"Y: expected a list of {len(X)} target arrays, one per sequence of "
                             f"X, got {type(Y).__name__}"
                             + (f" of length {len(Y)}" if isinstance(Y, (list, tuple)) else ""))
        self.xs = [as_real_array(x, model.dtype, f"X[{i}]") for i, x in enumerate(X)]
        self.ys = [np.asarray(y) for y in Y]
        for i, (x, y) in enumerate(zip(self.xs, self.ys)):
            if x.ndim != 2 or x.shape[0] == 0:
                raise ValueError(f"X[{i}]: expected one sequence (T_i, I) with T_i >= 1, got "
                                 f"shape {x.shape}")
            if y.ndim == 0 or y.shape[0] != x.shape[0]:
                raise ValueError(f"Y[{i}]: expected {x.shape[0]} steps like X[{i}] (shape "
                                 f"({x.shape[0]}, ...)), got shape {y.shape}")
            if y.shape[1:] != self.ys[0].shape[1:] or x.shape[1] != self.xs[0].shape[1]:
                y_want = ", ".join(["T_i", *map(str, self.ys[0].shape[1:])])
                raise ValueError(f"X[{i}], Y[{i}]: expected shapes (T_i, {self.xs[0].shape[1]}) "
                                 f"and ({y_want}{',' if self.ys[0].ndim == 1 else ''}) like the "
                                 f"first sequence's, got {x.shape} and {y.shape}")
        self.masks = None
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or len(mask) != len(X):
                raise ValueError(f"mask: expected a list of {len(X)} bool arrays (T_i,), one per "
                                 f"sequence of X, got {type(mask).__name__}")
            self.masks = [np.asarray(m) for m in mask]
            for i, (m, x) in enumerate(zip(self.masks, self.xs)):
                if m.dtype != np.bool_ or m.shape != x.shape[:1]:
                    raise ValueError(f"mask[{i}]: expected bool ({x.shape[0]},), got {m.dtype} "
                                     f"{m.shape}")
        self.lengths = np.array([x.shape[0] for x in self.xs], dtype=np.int64)
        self.y_dtype = np.result_type(*self.ys)

    def batch(self, rows):
        """Time-major x (T_b, B, I), y (T_b, B, ...), mask (T_b, B) and lengths (B,) of the
        sequences `rows`, zero-padded to T_b = their longest length."""
        lengths = self.lengths[rows]
        T_b, B = int(lengths.max()), len(rows)
        x = np.zeros((T_b, B, self.xs[0].shape[1]), self.xs[0].dtype)
        y = np.zeros((T_b, B, *self.ys[0].shape[1:]), self.y_dtype)
        m = length_mask(lengths, T_b)
        for j, i in enumerate(rows):
            n = lengths[j]
            x[:n, j], y[:n, j] = self.xs[i], self.ys[i]
            if self.masks is not None:
                m[:n, j] &= self.masks[i]
        return x, y, m, lengths


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
