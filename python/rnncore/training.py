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
from .seq2seq import Seq2Seq

_LOSSES = {"mse": losses.mse, "cross_entropy": losses.cross_entropy}


def resolve_loss(loss):
    """`fit`'s loss argument as a function (pred, target, mask) -> (loss, grad_pred): a name of
    rnncore.losses or such a function; ValueError otherwise."""
    loss_fn = _LOSSES.get(loss, loss) if isinstance(loss, str) else loss
    if not callable(loss_fn):
        raise ValueError(f"Unknown loss {loss!r}. Select from 'mse', 'cross_entropy' or pass a "
                         "function (pred, target, mask) -> (loss, grad_pred).")
    return loss_fn


def check_fit_options(loss, epochs, batch_size, tbptt) -> tuple:
    """The arguments `fit` and `distributed.fit` share, checked: (loss function, epochs,
    batch_size, tbptt or None)."""
    return (resolve_loss(loss), check_positive_int(epochs, "epochs"),
            check_positive_int(batch_size, "batch_size"),
            None if tbptt is None else check_positive_int(tbptt, "tbptt"))


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


class History(list):
    """The mean training loss of each epoch (a list of floats, as before), with ``validation``:
    the validation loss after each epoch (empty without validation data) and ``best_epoch``: the
    epoch (from 1) whose parameters early stopping restored, or None."""

    def __init__(self) -> None:
        super().__init__()
        self.validation: list[float] = []
        self.best_epoch: int | None = None


def fit(model, X, Y, loss="mse", optimizer=None, epochs=1, batch_size=32, tbptt=None, clip=None,
        shuffle=True, seed=None, progress=True, callback=None, mask=None, validation=None,
        early_stopping=None) -> History:
    """Train `model` (an rnncore.RNNModel) on sequences X with per-step targets Y.

    X: (T, N, I) N sequences of T steps, (N, T, I) if ``model.batch_first``, or (T, I) for one long
    sequence. Y: per-step targets laid out like X: (T, N, O) floats for ``loss="mse"``, (T, N)
    integer class labels for ``loss="cross_entropy"`` (batch-first / unbatched accordingly).
    A model with an embedding (``vocab_size``) takes integer token ids without the I dim: X
    (T, N), (N, T) or (T,), or a list of (T_i,) arrays.
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

    Many-to-one models (``readout="last"`` or ``"mean"``) have one target per sequence: Y is
    (N, O) floats or (N,) integer labels (for X as an array or as a list of sequences; (O,) or a
    scalar label for one unbatched sequence), there is no mask, and tbptt is refused (the loss
    only sees each sequence's end).

    validation: ``(X_val, Y_val)`` or ``(X_val, Y_val, mask_val)`` in the form of X, Y and mask;
    after each epoch the model (in eval mode: no dropout) is scored on it, whole sequences, in
    minibatches of batch_size; the loss goes into ``history.validation`` and the progress bar.
    early_stopping: a patience, in epochs: training stops once the validation loss has not
    improved for that many epochs, and the parameters of the best epoch are restored (also when
    the epochs run out). Needs validation.
    The callback (see above) runs after the validation loss of the epoch is computed.

    Returns the loss history: one float per completed epoch, the mean training loss of that
    epoch (the chunk losses weighted by how many targets each chunk counted).
    """
    if isinstance(model, Seq2Seq):
        raise TypeError("fit: a Seq2Seq reads a source and a target sequence; train it with "
                        "rnncore.fit_seq2seq(model, src, tgt, start_id)")
    loss_fn, epochs, batch_size, tbptt = check_fit_options(loss, epochs, batch_size, tbptt)
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
        if validation is None:
            raise ValueError("early_stopping: needs validation=(X_val, Y_val) to watch")
    optimizer = Adam(model) if optimizer is None else optimizer
    per_sequence = getattr(model, "readout", "all") != "all"  # one target per sequence
    if per_sequence and mask is not None:
        raise ValueError(f"mask: a model with readout={model.readout!r} has one target per "
                         "sequence, so there are no steps to mask; expected mask=None")
    sequences = isinstance(X, (list, tuple))
    if sequences:
        data = _Sequences(model, X, Y, mask, per_sequence)
        T, N = int(data.lengths.max()), len(data.lengths)
    else:
        X, Y, mask = _time_major(model, X, Y, mask, per_sequence)
        T, N = X.shape[:2]
    if per_sequence and tbptt is not None and tbptt < T:
        raise ValueError(f"tbptt: a model with readout={model.readout!r} scores whole sequences "
                         f"only; expected tbptt=None (or >= {T} steps), got {tbptt}")
    chunk = tbptt or T
    if chunk < T and getattr(model, "bidirectional", False):
        raise ValueError("tbptt: a bidirectional model cannot carry its state across chunks (the "
                         "reverse direction would start from the wrong end); use tbptt=None")
    batches = [slice(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    chunks = [slice(t, min(t + chunk, T)) for t in range(0, T, chunk)]
    rng = np.random.default_rng(seed)
    history = History()
    best: dict = {}  # the best epoch's parameters, with early_stopping
    validate = None if validation is None else _validation(model, validation, sequences,
                                                           per_sequence, batch_size)
    model.train()

    def score(x, y, m, h=None, lengths=None):
        """The loss on a time-major chunk: (loss, grad_pred, targets counted)."""
        if model.batch_first:
            x = x.swapaxes(0, 1)
            y = y if per_sequence else y.swapaxes(0, 1)
            m = None if m is None else m.swapaxes(0, 1)
        pred = model(x, h) if lengths is None else model(x, h, lengths=lengths)
        value, grad = loss_fn(pred, y, m)
        if m is not None:
            return value, grad, int(m.sum())
        return value, grad, len(y) if per_sequence else y.shape[0] * y.shape[1]

    def train_chunk(x, y, m, h, lengths=None):
        """One optimizer step on a time-major chunk; returns (loss, targets counted)."""
        value, grad, n = score(x, y, m, h, lengths)
        optimizer.zero_grad()
        model.backward(grad, input_grad=False)  # nothing reads the input's gradient
        if clip is not None:
            clip_grad_norm(model, clip)
        optimizer.step()
        return value, n

    def array_chunks(rows):
        h = None
        for steps in chunks:
            x = X[steps, rows]  # (k, B, I)
            y = Y[rows] if per_sequence else Y[steps, rows]  # (B[, O]) or (k, B[, O])
            m = None if mask is None else mask[steps, rows]
            yield train_chunk(x, y, m, h)
            h = model.h_n  # the next chunk starts here; no gradient flows back into it

    def sequence_chunks(rows):
        x_b, y_b, m_b, lengths = data.batch(rows)  # padded to the longest sequence of the batch
        h = None
        for t in range(0, len(x_b), chunk):
            live = lengths > t  # the sequences with steps left; all of them at t = 0
            if per_sequence:  # one chunk: every sequence is live
                x, y, m = x_b, y_b, None
            else:
                x, y, m = x_b[t:t + chunk], y_b[t:t + chunk], m_b[t:t + chunk]
            if not per_sequence and not live.all():
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
            if validate is not None:
                history.validation.append(validate(score))
                bar.set_postfix(epoch=epoch, loss=f"{history[-1]:.4f}",
                                val_loss=f"{history.validation[-1]:.4f}", refresh=False)
                if early_stopping is not None:
                    if history.best_epoch is None or \
                            history.validation[-1] < history.validation[history.best_epoch - 1]:
                        history.best_epoch, best = epoch, model.state_dict()
                    elif epoch - history.best_epoch >= early_stopping:
                        break
            if callback is not None and callback(epoch, history[-1]) is True:
                break
    if early_stopping is not None and history.best_epoch is not None:
        model.load_state_dict(best)
    return history


def _validation(model, validation, sequences: bool, per_sequence: bool, batch_size: int):
    """A function score -> the mean validation loss, from (X_val, Y_val[, mask_val]) laid out as
    the training data."""
    if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
        raise ValueError("validation: expected (X_val, Y_val) or (X_val, Y_val, mask_val), got "
                         f"{type(validation).__name__}"
                         + (f" of length {len(validation)}" if isinstance(validation, (tuple, list))
                            else ""))
    Xv, Yv, mv = (*validation, None)[:3]
    if isinstance(Xv, (list, tuple)) != sequences:
        raise ValueError("validation: expected X_val in the form of X (a list of sequences or "
                         "an array, as X is)")
    if sequences:
        data = _Sequences(model, Xv, Yv, mv, per_sequence)
        N = len(data.lengths)
    else:
        Xv, Yv, mv = _time_major(model, Xv, Yv, mv, per_sequence)
        N = Xv.shape[1]

    def evaluate(score) -> float:
        was_training = model.training
        model.eval()
        total, counted = 0.0, 0
        try:
            for i in range(0, N, batch_size):
                rows = np.arange(i, min(i + batch_size, N))
                if sequences:
                    x, y, m, lengths = data.batch(rows)
                    value, _, n = score(x, y, m, None, lengths)
                else:
                    y = Yv[rows] if per_sequence else Yv[:, rows]
                    value, _, n = score(Xv[:, rows], y, None if mv is None else mv[:, rows])
                total, counted = total + value * n, counted + n
        finally:
            model.train(was_training)
        return total / max(counted, 1)

    return evaluate


class _Sequences:
    """A list of N sequences (T_i, I) with targets (T_i, ...) and optional bool masks (T_i,),
    padded minibatch by minibatch."""

    def __init__(self, model, X, Y, mask, per_sequence=False):
        if not X:
            raise ValueError("X: expected at least one sequence, got an empty list")
        self.per_sequence = per_sequence
        if per_sequence:  # Y (N, ...): one target per sequence
            Y = np.asarray(Y)
            if Y.ndim == 0 or len(Y) != len(X):
                raise ValueError(f"Y: expected one target per sequence of X, shape ({len(X)}, "
                                 f"...), got shape {Y.shape}")
            self.targets = Y
            Y = [np.zeros(np.shape(x)[:1]) for x in X]  # per-step stand-ins for the checks
        if not isinstance(Y, (list, tuple)) or len(Y) != len(X):
            raise ValueError(f"Y: expected a list of {len(X)} target arrays, one per sequence of "
                             f"X, got {type(Y).__name__}"
                             + (f" of length {len(Y)}" if isinstance(Y, (list, tuple)) else ""))
        self.xs = [_as_input(model, x, f"X[{i}]") for i, x in enumerate(X)]
        tokens = getattr(model, "embedding", None) is not None  # (T_i,) ids, else (T_i, I)
        self.ys = [np.asarray(y) for y in Y]
        for i, (x, y) in enumerate(zip(self.xs, self.ys)):
            if x.ndim != (1 if tokens else 2) or x.shape[0] == 0:
                want = "(T_i,) token ids" if tokens else "(T_i, I)"
                raise ValueError(f"X[{i}]: expected one sequence {want} with T_i >= 1, got "
                                 f"shape {x.shape}")
            if y.ndim == 0 or y.shape[0] != x.shape[0]:
                raise ValueError(f"Y[{i}]: expected {x.shape[0]} steps like X[{i}] (shape "
                                 f"({x.shape[0]}, ...)), got shape {y.shape}")
            if y.shape[1:] != self.ys[0].shape[1:] or x.shape[1:] != self.xs[0].shape[1:]:
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
        x = np.zeros((T_b, B, *self.xs[0].shape[1:]), self.xs[0].dtype)  # token id 0 pads
        if self.per_sequence:
            for j, i in enumerate(rows):
                x[:lengths[j], j] = self.xs[i]
            return x, self.targets[rows], None, lengths
        y = np.zeros((T_b, B, *self.ys[0].shape[1:]), self.y_dtype)
        m = length_mask(lengths, T_b)
        for j, i in enumerate(rows):
            n = lengths[j]
            x[:n, j], y[:n, j] = self.xs[i], self.ys[i]
            if self.masks is not None:
                m[:n, j] &= self.masks[i]
        return x, y, m, lengths


def _time_major(model, X, Y, mask, per_sequence=False):
    """X, Y and mask as time-major (T, N, ...) views, with N = 1 for unbatched data (Y (N, ...)
    if `per_sequence`)."""
    X = _as_input(model, X, "X")
    Y = np.asarray(Y)
    feat = 0 if getattr(model, "embedding", None) is not None else 1  # token ids: no feature dim
    if X.ndim not in (1 + feat, 2 + feat):
        want = "(T, N, I), (N, T, I) with batch_first, or (T, I)" if feat else \
            "token ids (T, N), (N, T) with batch_first, or (T,)"
        raise ValueError(f"X: expected {want}, got shape {X.shape}")
    lead = X.shape[:X.ndim - feat]
    if per_sequence:
        N = 1 if X.ndim == 1 + feat else lead[0] if model.batch_first else lead[1]
        if X.ndim == 1 + feat:
            return X[:, None], Y[None], None
        if Y.ndim == 0 or Y.shape[0] != N:
            raise ValueError(f"Y: expected one target per sequence, shape ({N}, ...), got shape "
                             f"{Y.shape}")
        return (X.swapaxes(0, 1) if model.batch_first else X), Y, None
    if Y.shape[:len(lead)] != lead:
        raise ValueError(f"Y: expected the leading dims of X {lead}, got shape {Y.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != lead:
            raise ValueError(f"mask: expected X's leading dims {lead}, got shape {mask.shape}")
    if X.ndim == 1 + feat:  # one sequence
        return X[:, None], Y[:, None], None if mask is None else mask[:, None]
    if model.batch_first:
        return X.swapaxes(0, 1), Y.swapaxes(0, 1), None if mask is None else mask.swapaxes(0, 1)
    return X, Y, mask


def _as_input(model, X, name: str) -> np.ndarray:
    """X as the model takes it: floats of its dtype, or integer token ids for a model with an
    embedding (checked by the model's forward)."""
    if getattr(model, "embedding", None) is None:
        return as_real_array(X, model.dtype, name)
    X = np.asarray(X)
    if X.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer token ids for a model with an embedding, got "
                        f"dtype {X.dtype}")
    return X
