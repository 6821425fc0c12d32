"""Generation from a trained next-token model: `sample` with a temperature, and `one_hot`.

A next-token model reads tokens, one-hot (input_size = vocabulary size V) or as ids through an
embedding (vocab_size = V), and outputs logits over the next token (output_size = V), like the
character model of ``rnncore demo``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["one_hot", "sample"]


def one_hot(ids, size: int, dtype=np.float32) -> np.ndarray:
    """Integer ids (any shape S) -> one-hot rows of shape S + (size,)."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"one_hot: ids must lie in [0, {size}), got values in "
                         f"[{ids.min()}, {ids.max()}]")
    out = np.zeros(ids.shape + (size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def sample(model, prompt, length: int, temperature: float = 1.0, seed=None) -> np.ndarray:
    """Generate `length` token ids from a next-token model, after reading the ids in `prompt`.

    Each new token is drawn from softmax(logits / temperature) and fed back as the next input;
    temperature < 1 sharpens the distribution, > 1 flattens it, 0 always takes the most likely
    token. The model runs in eval mode (no dropout) and is put back in its previous mode after.
    Returns an int64 array of shape (length,); the prompt is not included.

        >>> ids = sample(model, vocab.encode("def "), 200, temperature=0.8, seed=0)
    """
    prompt = np.asarray(prompt)
    embedding = getattr(model, "embedding", None)  # token ids in: no one-hot needed
    V = model.input_size if embedding is None else embedding.num_embeddings

    def encode(ids: np.ndarray) -> np.ndarray:
        return ids if embedding is not None else one_hot(ids, V, model.dtype)

    if model.output_size != V:
        raise ValueError(f"sample: a next-token model needs output_size == the vocabulary size "
                         f"(input_size, or vocab_size with an embedding), got "
                         f"{model.output_size} and {V}")
    if model.bidirectional:
        raise ValueError("sample: a bidirectional model reads the future; it cannot generate")
    if prompt.ndim != 1 or prompt.size == 0:
        raise ValueError(f"sample: prompt must be a non-empty 1-D sequence of ids, got shape "
                         f"{prompt.shape}")
    if not temperature >= 0:
        raise ValueError(f"sample: temperature must be >= 0, got {temperature!r}")
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    try:
        out = np.empty(int(length), dtype=np.int64)
        logits = model(encode(prompt))[-1]  # unbatched: (T, V) -> last step
        for i in range(out.size):
            out[i] = _draw(logits.astype(np.float64), temperature, rng)
            if i + 1 < out.size:  # feed the drawn token back, continuing from the state
                logits = model(encode(out[i:i + 1]), model.h_n)[-1]
    finally:
        model.train(was_training)
    return out


def _draw(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(p.size, p=p / p.sum()))
