"""The buffers a training step works in, reused rather than reallocated.

`FlatParameters`: one contiguous, cache-aligned buffer for all of a model's parameters (and one
for their gradients), with the named arrays as views into it. A model made of parts (an RNN, a
head, an embedding, ...) builds its buffers from its parts' parameter lists with
`FlatParameters.gather` and hands each part its views (``part.adopt``), so that zeroing the
gradients, clipping their norm and an optimizer step are each one pass over one buffer. The views
never change identity: loading a state dict copies into them, so nothing can be detached from the
buffer behind an optimizer's back.

`ArrayPool`: output arrays handed out again once nobody holds them, so that a steady training
loop runs without allocating while every array a caller keeps stays valid. ``get(shape, dtype)``
returns one of the pool's arrays of that shape that no one else references (no variable, no view
of it, no record), else a new one, which it keeps for next time (a few at most). In a loop
``y = model(x)`` the previous y is still bound while the next call runs, so two arrays alternate;
an array the caller keeps is never overwritten.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import numpy as np

from ._checks import CACHE_LINE

__all__ = ["FlatParameters", "ArrayPool"]


def _aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 array of nbytes starting on a cache line (a view of a slightly larger one)."""
    raw = np.empty(nbytes + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + nbytes]


class FlatParameters:
    """Named arrays of `dtype` laid out one after the other in one buffer, each starting on a
    cache line (the gaps between them are zeros and stay zero under every optimizer).

    ``params`` and ``grads`` are the two flat 1-D buffers; ``param_views`` and ``grad_views`` map
    each name to its array, a view of the matching buffer. ``like()`` makes another flat buffer
    (an optimizer's state) with views at the same places.
    """

    def __init__(self, shapes: Iterable[tuple[str, tuple]], dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        per_line = CACHE_LINE // self.dtype.itemsize
        self.layout: dict[str, tuple[int, tuple]] = {}  # name -> (offset in elements, shape)
        offset = 0
        for name, shape in shapes:
            shape = tuple(int(s) for s in shape)
            self.layout[name] = (offset, shape)
            size = int(np.prod(shape, dtype=np.int64))
            offset += -(-size // per_line) * per_line  # the next one starts on a cache line
        self.size = offset
        self.params = self.like()
        self.grads = self.like()
        self.param_views = self.views(self.params)
        self.grad_views = self.views(self.grads)

    def like(self) -> np.ndarray:
        """A new zeroed flat buffer of this layout (1-D, cache-aligned)."""
        flat = _aligned_empty(self.size * self.dtype.itemsize).view(self.dtype)
        flat.fill(0)
        return flat

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The named arrays of this layout as views of `flat`."""
        return {name: flat[off:off + int(np.prod(shape, dtype=np.int64))].reshape(shape)
                for name, (off, shape) in self.layout.items()}

    @classmethod
    def gather(cls, parts: dict, dtype: np.dtype) -> FlatParameters:
        """One buffer for a model made of `parts` (prefix -> part with ``parameters()`` and
        ``adopt(params, grads)``): names ``prefix.name`` in the parts' order. Each part's current
        values are copied in, then the part is handed its views and uses them from then on."""
        current = {f"{prefix}.{name}": p for prefix, part in parts.items()
                   for name, p in part.parameters().items()}
        flat = cls(((name, p.shape) for name, p in current.items()), dtype)
        for name, p in current.items():
            np.copyto(flat.param_views[name], p)
        for prefix, part in parts.items():
            n = len(prefix) + 1
            part.adopt({k[n:]: v for k, v in flat.param_views.items() if k.startswith(prefix + ".")},
                       {k[n:]: v for k, v in flat.grad_views.items() if k.startswith(prefix + ".")})
        return flat

    def owns(self, params: dict[str, np.ndarray]) -> bool:
        """Whether `params` (name -> array, as a model's ``parameters()`` gives them) are exactly
        this buffer's views, none replaced."""
        return (params.keys() == self.param_views.keys()
                and all(params[k] is v for k, v in self.param_views.items()))


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
