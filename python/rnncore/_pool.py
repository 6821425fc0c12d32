"""Output arrays handed out again once nobody holds them: how a steady training loop runs without
allocating while every array a caller keeps stays valid.

`ArrayPool.get(shape, dtype)` returns one of the pool's arrays of that shape that no one else
references (no variable, no view of it, no record), else a new one, which it keeps for next time
(a few at most). In a loop ``y = model(x)`` the previous y is still bound while the next call
runs, so two arrays alternate; an array the caller keeps is never overwritten.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["ArrayPool"]

_KEEP = 3  # arrays kept per pool: the one in use, the previous one (still bound), one spare


class ArrayPool:
    """Arrays of one shape and dtype at a time (a new shape empties the pool)."""

    __slots__ = ("_key", "_arrays")

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._arrays: list[np.ndarray] = []

    def get(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        key = (shape, dtype)
        if key != self._key:
            self._key, self._arrays = key, []
        for arr in self._arrays:
            if sys.getrefcount(arr) <= _FREE:  # only this list and this loop hold it
                return arr
        arr = np.empty(shape, dtype)
        if len(self._arrays) < _KEEP:
            self._arrays.append(arr)
        return arr


def _free_count() -> int:
    """sys.getrefcount of an array held by nothing but a pool's list, seen from get()'s loop
    (the count differs between Python versions)."""
    arrays = [np.empty(0)]
    for arr in arrays:
        return sys.getrefcount(arr)
    return 0


_FREE = _free_count()
