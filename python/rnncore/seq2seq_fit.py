"""`fit_seq2seq`: the training loop of an rnncore.Seq2Seq, with teacher forcing on padded
minibatches of source and target sequences of their own lengths.

Shape letters: N pairs, S_i / T_i the steps of source / target i, B pairs in a minibatch.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import losses
from ._checks import check_positive_int
from .lengths import length_mask
from .optim import Adam
from .training import clip_grad_norm


def fit_seq2seq(model, src, tgt, start_id: int, optimizer=None, epochs=1, batch_size=32,
                clip=None, shuffle=True, seed=None, progress=True, callback=None) -> list[float]:
    """Train `model` (an rnncore.Seq2Seq) to map each src[i] to tgt[i].

    src: N source sequences, token ids (S_i,) for an encoder with vocab_size, else (S_i, I)
    floats; tgt: N target id sequences (T_i,) (end each with an end token to teach the model
    to stop). The decoder reads ``[start_id, tgt[i][:-1]]`` (teacher forcing) and is scored by
    ``losses.cross_entropy`` against tgt[i] on the valid steps only. Minibatches are padded to
    their longest source and target and run with src_lengths / tgt_lengths. Optimizer, clip,
    shuffle, seed, progress and callback as `rnncore.fit`. Returns the mean loss of each epoch.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(src, (list, tuple)) or not isinstance(tgt, (list, tuple)):
        raise TypeError("src, tgt: expected lists of sequences (arrays of different lengths), "
                        f"got {type(src).__name__} and {type(tgt).__name__}")
    if len(src) != len(tgt) or not src:
        raise ValueError(f"src, tgt: expected the same number (>= 1) of sequences, got "
                         f"{len(src)} and {len(tgt)}")
    srcs = [np.asarray(s) for s in src]
    tgts = [np.asarray(t) for t in tgt]
    for i, t in enumerate(tgts):
        if t.ndim != 1 or t.size == 0 or t.dtype.kind not in "iu":
            raise ValueError(f"tgt[{i}]: expected a non-empty 1-D array of integer ids, got "
                             f"{t.dtype} of shape {t.shape}")
    for i, s in enumerate(srcs):
        if s.ndim == 0 or s.shape[0] == 0 or s.shape[1:] != srcs[0].shape[1:]:
            raise ValueError(f"src[{i}]: expected a non-empty sequence shaped like src[0] "
                             f"({srcs[0].shape[1:]} per step), got shape {s.shape}")
    optimizer = Adam(model) if optimizer is None else optimizer
    enc_first, dec_first = model.encoder.batch_first, model.decoder.batch_first
    N = len(srcs)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    model.train()
    batches = [slice(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    with tqdm(total=epochs * len(batches), disable=not progress, unit="step", leave=False,
              dynamic_ncols=True) as bar:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(N) if shuffle else np.arange(N)
            total, counted = 0.0, 0
            for batch in batches:
                rows = order[batch]
                x, src_lengths = _pad([srcs[i] for i in rows], enc_first)
                tgt_in, tgt_lengths = _pad([np.r_[start_id, tgts[i][:-1]] for i in rows],
                                           dec_first)
                tgt_out, _ = _pad([tgts[i] for i in rows], dec_first)
                logits = model(x, tgt_in, src_lengths=src_lengths, tgt_lengths=tgt_lengths)
                mask = length_mask(tgt_lengths, tgt_in.shape[1 if dec_first else 0], dec_first)
                value, grad = losses.cross_entropy(logits, tgt_out, mask)
                optimizer.zero_grad()
                model.backward(grad)
                if clip is not None:
                    clip_grad_norm(model, clip)
                optimizer.step()
                n = int(mask.sum())
                total, counted = total + value * n, counted + n
                bar.set_postfix(epoch=epoch, loss=f"{total / max(counted, 1):.4f}", refresh=False)
                bar.update()
            history.append(total / max(counted, 1))
            if callback is not None and callback(epoch, history[-1]) is True:
                break
    return history


def _pad(seqs: list, batch_first: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sequences (L_i, ...) zero-padded to (L, B, ...) or (B, L, ...), and their lengths."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    out = np.zeros((len(seqs), int(lengths.max()), *seqs[0].shape[1:]), seqs[0].dtype)
    for j, s in enumerate(seqs):
        out[j, :len(s)] = s
    return (out if batch_first else out.swapaxes(0, 1)), lengths
