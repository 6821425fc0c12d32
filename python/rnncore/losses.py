"""Losses for sequence models, each returning ``(loss, grad_pred)``: the loss as a Python float and
its gradient with respect to the prediction, ready for ``model.backward(grad_pred)``.

Both reduce with torch's default ``reduction="mean"``. An optional boolean `mask` marks the steps
that count (True) and the padded ones (False): masked-out elements neither enter the mean nor get
gradient. If nothing counts, the loss is 0.0 and the gradient zero (torch would give nan).
"""

from __future__ import annotations

import threading

import numpy as np

from . import _core
from ._checks import as_real_array
from .buffers import ArrayPool

__all__ = ["mse", "cross_entropy"]

_pools = threading.local()  # per thread: the arrays of one call are never another thread's


def _pool(name: str) -> ArrayPool:
    pool = getattr(_pools, name, None)
    if pool is None:
        pool = ArrayPool()
        setattr(_pools, name, pool)
    return pool


def _as_float(value, name: str) -> np.ndarray:
    """value as a float array: float32 and float64 arrays as they are, anything else float64."""
    if isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float64):
        return value
    return as_real_array(value, np.dtype(np.float64), name)


def _check_mask(mask, shape: tuple, what: str) -> np.ndarray | None:
    """mask as a bool array of the leading dims `shape[:mask.ndim]`, or None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask: expected a bool array, got dtype {mask.dtype}")
    if mask.shape != shape[:mask.ndim]:
        raise ValueError(f"mask: expected shape {shape} or leading dims of it ({what}), "
                         f"got {mask.shape}")
    return mask


def mse(pred, target, mask=None) -> tuple[float, np.ndarray]:
    """Mean squared error, ``mean((pred - target)**2)``, and its gradient w.r.t. pred.

    pred, target: the same shape, e.g. (T, B, O). mask: bool, shaped like target or like its
    leading dims (e.g. (T, B)); the mean runs over the elements of the counted steps only.
    """
    pred = _as_float(pred, "pred")
    target = as_real_array(target, pred.dtype, "target")
    if pred.shape != target.shape:
        raise ValueError(f"mse: pred and target must have the same shape, got {pred.shape} "
                         f"and {target.shape}")
    mask = _check_mask(mask, target.shape, "target's")
    if mask is None and _same_dtype(pred, target) and pred.size:
        # the steady-loop path: the gradient in an array reused once the caller drops it
        diff = _pool("mse").get(pred.shape, pred.dtype)
        if pred.flags.c_contiguous:
            np.subtract(pred, target, out=diff)
        else:  # e.g. a batch-first view of time-major rows: a strided copy buffers nothing
            np.copyto(diff, pred)
            np.subtract(diff, target, out=diff)
        flat = diff.reshape(-1)
        loss = _core.sum_squares(flat) / diff.size
        _core.scale(flat, 2.0 / diff.size)  # diff * dtype(2 / count), as below
        return loss, diff
    diff = pred - target
    if mask is not None:
        weight = mask.reshape(mask.shape + (1,) * (diff.ndim - mask.ndim))  # broadcasts on diff
        diff = diff * weight
        count = int(mask.sum()) * (diff.size // max(mask.size, 1))
    else:
        count = diff.size
    if count == 0:
        return 0.0, np.zeros_like(pred)
    loss = float(np.square(diff).sum(dtype=np.float64)) / count
    return loss, diff * pred.dtype.type(2.0 / count)


def _same_dtype(pred: np.ndarray, target: np.ndarray) -> bool:
    """Whether pred - target can go to a new C-ordered array of pred's dtype without casting."""
    return pred.dtype == target.dtype


def cross_entropy(logits, labels, mask=None) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy of integer class labels, averaged over the labels, and its gradient
    w.r.t. the logits (as ``torch.nn.functional.cross_entropy`` with the class dim last).

    logits: (..., C) unnormalised scores, e.g. (T, B, C). labels: integers in [0, C) shaped like
    logits without the last dim, e.g. (T, B). mask: bool shaped like labels (or its leading dims);
    masked-out labels may hold any value (a padding id).
    """
    logits = _as_float(logits, "logits")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integers, got dtype {labels.dtype}")
    if logits.ndim < 1 or logits.shape[:-1] != labels.shape:
        raise ValueError(f"cross_entropy: logits must be labels' shape plus a class dim, got "
                         f"logits {logits.shape} and labels {labels.shape}")
    mask = _check_mask(mask, labels.shape, "labels'")
    if (mask is None and labels.dtype == np.int64 and logits.size
            and labels.flags.c_contiguous and labels.flags.aligned):
        # the steady-loop path: one fused C++ pass, the gradient in an array reused once the
        # caller drops it
        grad = _pool("cross_entropy").get(logits.shape, logits.dtype)
        rows = logits
        if not (logits.flags.c_contiguous and logits.flags.aligned):
            rows = _pool("cross_entropy_logits").get(logits.shape, logits.dtype)
            np.copyto(rows, logits)
        C = logits.shape[-1]
        try:
            loss = _core.cross_entropy(rows.reshape(-1, C), labels.reshape(-1),
                                       1.0 / labels.size, grad.reshape(-1, C))
            return loss, grad
        except ValueError:  # a label out of range: the general path below names it
            pass
    counted = np.ones(labels.shape, bool) if mask is None else np.broadcast_to(
        mask.reshape(mask.shape + (1,) * (labels.ndim - mask.ndim)), labels.shape)
    C = logits.shape[-1]
    bad = counted & ((labels < 0) | (labels >= C))
    if bad.any():
        raise ValueError(f"cross_entropy: labels must lie in [0, {C}), got {labels[bad][0]}")
    labels = np.where(counted, labels, 0)  # any valid index for the steps that do not count
    count = int(counted.sum())
    if count == 0:
        return 0.0, np.zeros_like(logits)

    # Stable log-softmax: subtract the row max before exponentiating.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(shifted, labels[..., None], axis=-1)[..., 0]
    nll = np.log(sum_exp[..., 0]) - picked  # -log softmax(logits)[label]
    loss = float(nll.sum(where=counted, dtype=np.float64)) / count

    # d(loss)/d(logits) = (softmax - one_hot(label)) / count on counted rows, 0 elsewhere.
    grad = exp / sum_exp
    np.put_along_axis(grad, labels[..., None],
                      np.take_along_axis(grad, labels[..., None], axis=-1) - 1, axis=-1)
    grad *= (counted / count).astype(grad.dtype)[..., None]
    return loss, grad
