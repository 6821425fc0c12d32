"""rnncore.Embedding: torch.nn.Embedding for numpy, the token input in front of an RNN.

Shape letters: V rows (num_embeddings), E embedding_dim; ids of any shape S (e.g. (T, B)).
The forward is a row gather, ``out = weight[ids]`` (S + (E,)); the backward scatters the output
gradient back into the rows used, ``grad_weight[ids] += grad_out`` with repeats summed (sorted
ids and one reduction per distinct row: no dense one-hot), rows of padding_idx excepted.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ._checks import (as_real_array, cache_aligned, check_float_dtype, check_positive_int,
                      to_numpy)
from .rnn import LoadResult, load_parameters


def check_ids(ids: ArrayLike, num_embeddings: int, name: str = "input") -> np.ndarray:
    """`ids` as an int64 array of values in [0, num_embeddings): TypeError for non-integer data,
    ValueError naming the first id out of range."""
    arr = to_numpy(ids, name, "a rectangular array of integer ids")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids (an int array), got dtype {arr.dtype}")
    if arr.size:
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            raise ValueError(f"{name}: expected ids in [0, {num_embeddings}) (num_embeddings="
                             f"{num_embeddings}), got {bad}")
    return arr.astype(np.int64, copy=False)


class Embedding:
    """A lookup table of `num_embeddings` rows of size `embedding_dim`, as ``torch.nn.Embedding``.

    ``out = emb(ids)`` maps integer ids of shape S to S + (E,); ``emb.backward(grad_out)`` adds the
    gradient of the latest forward into ``grads["weight"]`` (accumulated, like torch's ``.grad``).
    The weight is drawn from N(0, 1) (torch's init) with ``np.random.default_rng(seed)``; the row
    `padding_idx` (negative counts from the end, as torch) is zero and gets no gradient.

        >>> emb = Embedding(10, 3, padding_idx=0, seed=0)
        >>> emb(np.array([[1, 0], [9, 1]])).shape      # (T, B) -> (T, B, E)
        (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None) -> None:
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        if padding_idx is not None:
            if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx,
                                                                             (int, np.integer)):
                raise TypeError(f"padding_idx should be an int or None, got: "
                                f"{type(padding_idx).__name__}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must be within num_embeddings: expected "
                                 f"[-{self.num_embeddings}, {self.num_embeddings}), got "
                                 f"{padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.dtype = check_float_dtype(dtype)
        weight = np.random.default_rng(seed).standard_normal(
            (self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self._params = {"weight": cache_aligned(weight)}
        self._grads = {"weight": cache_aligned(np.zeros_like(weight))}
        self._ids: np.ndarray | None = None

    # ---- parameters: the protocol of RNN and MLPHead --------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        return dict(self._params)

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._grads

    def adopt(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Use `params` and `grads` (name -> array, the current values already in `params`) from
        now on: a model calls it with views of its flat buffers (`FlatParameters.gather`)."""
        self._params, self._grads = dict(params), dict(grads)

    def zero_grad(self) -> None:
        for g in self._grads.values():
            g.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike],
                        strict: bool = True) -> LoadResult:
        return load_parameters(self._params, state_dict, self.dtype, type(self).__name__, strict)

    # ---- forward and backward -------------------------------------------------------------------

    def __call__(self, ids: ArrayLike) -> np.ndarray:
        return self.forward(ids)

    def forward(self, ids: ArrayLike) -> np.ndarray:
        """The rows of `ids` (integers in [0, num_embeddings), any shape S): S + (E,)."""
        ids = check_ids(ids, self.num_embeddings)
        self._ids = ids
        return self._params["weight"][ids]

    def backward(self, grad_output: ArrayLike) -> None:
        """Add the latest forward's gradient into ``grads["weight"]``: grad_output S + (E,)."""
        if self._ids is None:
            raise RuntimeError("backward() called before forward()")
        ids = self._ids
        g = as_real_array(grad_output, self.dtype, "grad_output")
        if g.shape != ids.shape + (self.embedding_dim,):
            raise ValueError(f"grad_output: expected shape {ids.shape + (self.embedding_dim,)} "
                             f"(the latest output's), got {g.shape}")
        flat, rows = ids.reshape(-1), g.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = flat != self.padding_idx
            flat, rows = flat[keep], rows[keep]
        # out = weight[ids]: sort the ids and sum each run of equal ids in one reduceat.
        order = np.argsort(flat, kind="stable")
        sorted_ids = flat[order]
        if not len(sorted_ids):
            return
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        self._grads["weight"][sorted_ids[starts]] += np.add.reduceat(rows[order], starts, axis=0)

    def __repr__(self) -> str:
        opts = [f"{self.num_embeddings}", f"{self.embedding_dim}"]
        if self.padding_idx is not None:
            opts.append(f"padding_idx={self.padding_idx}")
        if self.dtype != np.float32:
            opts.append(f"dtype={self.dtype.name}")
        return f"Embedding({', '.join(opts)})"
