"""Data for `rnncore demo`, all available offline: a text corpus gathered from the docstrings of
Python's standard library, a character vocabulary, and a generated noisy price-like series."""

from __future__ import annotations

import importlib
import inspect
import re

import numpy as np

# Pure-Python standard-library modules with prose docstrings, in the order they are read.
CORPUS_MODULES = (
    "json", "textwrap", "statistics", "argparse", "difflib", "heapq", "copy", "csv", "random",
    "fnmatch", "string", "collections", "itertools", "functools", "shutil", "tempfile",
    "contextlib", "calendar", "fractions", "pprint", "queue", "threading", "logging", "typing",
)


def stdlib_text(max_chars: int = 40_000) -> str:
    """The docstrings of CORPUS_MODULES (each module's, then its public functions' and classes'
    by name), ASCII only, cut at `max_chars`. Deterministic for a given Python installation.
    Empty under ``python -OO``, which strips docstrings."""
    seen, parts, size = set(), [], 0
    for module_name in CORPUS_MODULES:
        module = importlib.import_module(module_name)
        objects = [module] + [obj for name, obj in sorted(vars(module).items())
                              if not name.startswith("_")
                              and (inspect.isfunction(obj) or inspect.isclass(obj))
                              and getattr(obj, "__module__", None) == module.__name__]
        for obj in objects:
            doc = _clean(obj.__doc__ or "")
            if len(doc) < 40 or doc in seen:
                continue
            seen.add(doc)
            parts.append(doc)
            size += len(doc) + 2
            if size >= max_chars:
                return "\n\n".join(parts)[:max_chars]
    return "\n\n".join(parts)


def _clean(doc: str) -> str:
    doc = inspect.cleandoc(doc).replace("\t", "    ")
    doc = doc.encode("ascii", "ignore").decode()
    doc = re.sub(r"^[ =~*^-]{4,}$", "", doc, flags=re.MULTILINE)  # rulers: a model loops on them
    return re.sub(r"\n{3,}", "\n\n", doc).strip()


class CharVocab:
    """The characters of a text, sorted, as ids 0..V-1."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        if not self.chars:
            raise ValueError("CharVocab: the text is empty")
        self._index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """str -> int64 ids; ValueError for a character outside the vocabulary."""
        try:
            return np.array([self._index[c] for c in text], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"CharVocab: character {err.args[0]!r} is not in the vocabulary") \
                from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in np.asarray(ids).ravel())


def price_series(n: int = 3000, seed=None) -> np.ndarray:
    """A positive, noisy, price-like series of n values, starting near 100.

    log price = a random walk with a slight upward drift + two market cycles (periods 40 and 97
    steps) + measurement noise. The cycles and the noise make the next move partly predictable
    from the past, so a model can beat the naive "tomorrow = today" forecast; the random walk
    keeps most of each move unpredictable, as in a real market.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    cycles = (0.06 * np.sin(2 * np.pi * t / 40 + phase[0])
              + 0.04 * np.sin(2 * np.pi * t / 97 + phase[1]))
    walk = np.cumsum(rng.normal(2e-4, 0.008, size=n))
    noise = rng.normal(0.0, 0.003, size=n)
    return 100.0 * np.exp(cycles + walk + noise)
