"""Sequence labelling on real text: tag every character of Python source with its token class.

The data is the standard library's own source, labelled by Python's `tokenize` module: nothing to
download. Each character is NAME, NUMBER, STRING, OP, COMMENT, NEWLINE or whitespace (anything
no token covers, indentation included). A bidirectional RNN reads character ids through an
embedding (``vocab_size``) and tags every step (``readout="all"``): a many-to-many model. It
trains on some modules and is scored on others, per character, against the majority class and a
per-character lookup (each character's most frequent class in the training text).
"""

import os

# Small matrices: on a busy 2-core machine, numpy's BLAS threads cost far more than they give.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import io
import sysconfig
import time
import tokenize
from pathlib import Path

import numpy as np

import rnncore

CLASSES = ["whitespace", "NAME", "NUMBER", "STRING", "OP", "COMMENT", "NEWLINE"]
KIND = {tokenize.NAME: 1, tokenize.NUMBER: 2, tokenize.STRING: 3, tokenize.OP: 4,
        tokenize.COMMENT: 5, tokenize.NEWLINE: 6, tokenize.NL: 6}
for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END"):  # Python 3.12+
    if hasattr(tokenize, name):
        KIND[getattr(tokenize, name)] = 3
TRAIN = ["textwrap", "string", "fractions", "bisect", "heapq", "shlex", "calendar", "glob",
         "fnmatch", "colorsys", "difflib", "functools"]
TEST = ["statistics", "numbers", "copy", "keyword", "tabnanny"]
STEPS = 100  # characters per training sequence
V = 98  # ids: 0 other, 1 "\n", 2.. printable ASCII 32..126, 97 tab


def encode(text):
    codes = np.frombuffer(text.encode("ascii", "replace"), np.uint8).astype(np.int64)
    ids = np.where((codes >= 32) & (codes < 127), codes - 30, 0)
    return np.where(codes == 10, 1, np.where(codes == 9, 97, ids))


def labelled(module):
    """(ids, labels) of every character of the module's source."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / f"{module}.py").read_text("utf-8")
    starts = np.cumsum([0] + [len(line) for line in text.splitlines(keepends=True)])
    labels = np.zeros(len(text), np.int64)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in KIND:
            a = starts[tok.start[0] - 1] + tok.start[1]
            b = starts[tok.end[0] - 1] + tok.end[1]
            labels[a:b] = KIND[tok.type]
    return encode(text), labels


def chunks(pairs):
    """All text cut into (STEPS,) pieces: ids (N, STEPS) and labels (N, STEPS)."""
    ids = np.concatenate([p[0] for p in pairs])
    labels = np.concatenate([p[1] for p in pairs])
    n = ids.size // STEPS * STEPS
    return ids[:n].reshape(-1, STEPS), labels[:n].reshape(-1, STEPS)


start = time.perf_counter()
train = [labelled(m) for m in TRAIN]
test = [labelled(m) for m in TEST]
X, Y = chunks(train)
model = rnncore.RNNModel(16, 48, len(CLASSES), head=(32,), bidirectional=True, vocab_size=V,
                         batch_first=True, seed=0)
history = rnncore.fit(model, X, Y, loss="cross_entropy", epochs=6, batch_size=32, seed=0,
                      clip=1.0, optimizer=rnncore.optim.Adam(model, lr=5e-3), progress=False)

model.eval()
test_ids, test_labels = chunks(test)  # (N, STEPS) each, as in training
pred = model(test_ids).argmax(-1)
train_ids, train_labels = np.concatenate([t[0] for t in train]), np.concatenate(
    [t[1] for t in train])
majority = np.bincount(train_labels, minlength=len(CLASSES)).argmax()
table = np.zeros((V, len(CLASSES)), np.int64)
np.add.at(table, (train_ids, train_labels), 1)
lookup = table.argmax(axis=1)[test_ids]
print(f"{model}: {train_ids.size} training characters from {len(TRAIN)} stdlib modules, "
      f"{test_ids.size} test characters from {len(TEST)} others")
print(f"training loss {history[0]:.3f} -> {history[-1]:.3f}")
print(f"per-character test accuracy: model {np.mean(pred == test_labels):.3f}, per-character "
      f"lookup {np.mean(lookup == test_labels):.3f}, majority class "
      f"({CLASSES[majority]}) {np.mean(test_labels == majority):.3f}")
print(f"took {time.perf_counter() - start:.1f} s")
