"""Variable-length batches without packing: the checks of a `lengths` argument and the mask of the
valid steps it implies.

Shape letters: T steps (the padded length), B batch. ``lengths[b]`` is the number of valid steps
of sequence b: steps ``0 .. lengths[b]-1`` hold data, steps ``lengths[b] .. T-1`` are padding.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._checks import to_numpy

__all__ = ["check_lengths", "length_mask"]


def check_lengths(lengths: ArrayLike, T: int, B: int | None) -> np.ndarray:
    """`lengths` as a new int64 array of shape (B,) with ``1 <= lengths[b] <= T``.

    Takes lists, numpy arrays of any integer dtype and CPU torch tensors. ValueError, naming what
    was expected and what was got, for a wrong shape (B=None: any 1-D length), a non-integer dtype
    (floats, even integral ones, bools, objects) and values outside [1, T].
    """
    arr = to_numpy(lengths, "lengths", "a 1-D array of integers")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"lengths: expected integers, got dtype {arr.dtype}")
    want = "(B,)" if B is None else f"(B,) = ({B},)"
    if arr.ndim != 1 or (B is not None and arr.shape[0] != B):
        raise ValueError(f"lengths: expected shape {want}, one length per sequence, got shape "
                         f"{arr.shape}")
    if arr.size:
        low, high = arr.min(), arr.max()  # in arr's own dtype: no overflow before the check
        if low < 1 or high > T:
            bad = low if low < 1 else high
            raise ValueError(f"lengths: expected every length in [1, T] = [1, {T}], got {bad} "
                             f"(at index {int(np.flatnonzero(arr == bad)[0])})")
    return arr.astype(np.int64)


def length_mask(lengths: ArrayLike, T: int, batch_first: bool = False) -> np.ndarray:
    """Bool mask of the valid steps: (T, B), or (B, T) with `batch_first`; True where
    ``t < lengths[b]``. Ready as the `mask` of ``rnncore.losses.mse`` / ``cross_entropy``.

        >>> length_mask([3, 1], 4)
        array([[ True,  True],
               [ True, False],
               [ True, False],
               [False, False]])
    """
    if isinstance(T, (bool, np.bool_)) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T: expected a positive integer (the padded length), got {T!r}")
    lengths = check_lengths(lengths, int(T), None)
    steps = np.arange(T)
    if batch_first:
        return steps[None, :] < lengths[:, None]
    return steps[:, None] < lengths[None, :]
