"""Encoder-decoder (seq2seq) on input and output sequences of different lengths: numbers written
in English words ("seven hundred and forty two", 1 to 6 words) to their digits ("742", 1 to 3
digits).

A bidirectional encoder reads the words (token ids through an embedding); its final states,
concatenated and projected (bridge="concat"), start a decoder that writes the digits one at a
time and then an end token: trained with teacher forcing (``rnncore.fit_seq2seq``) on 800 of the
numbers 0-999, decoded greedily (``Seq2Seq.generate``) on the 200 others, never seen. Scored by
exact match, against the best constant answer (the most frequent training target).
"""

import os

# Small matrices: on a busy 2-core machine, numpy's BLAS threads cost far more than they give.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time

import numpy as np

import rnncore

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
       "fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
WORDS = ONES + TENS[2:] + ["hundred", "and"]
START, END = 10, 11  # target ids: the digits 0-9, then these two


def in_words(n):
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"] + (["and"] if n % 100 else [])
    rest = n % 100
    if rest >= 20:
        words += [TENS[rest // 10]] + ([ONES[rest % 10]] if rest % 10 else [])
    elif rest or n < 100:
        words += [ONES[rest]]
    return words


def pairs(numbers):
    src = [np.array([WORDS.index(w) for w in in_words(n)]) for n in numbers]
    tgt = [np.array([int(d) for d in str(n)] + [END]) for n in numbers]
    return src, tgt


start = time.perf_counter()
numbers = np.random.default_rng(0).permutation(1000)
src, tgt = pairs(numbers[:800])
test_src, test_tgt = pairs(numbers[800:])
encoder = rnncore.RNNModel(16, 64, 1, vocab_size=len(WORDS), bidirectional=True, seed=0)
decoder = rnncore.RNNModel(16, 64, 12, vocab_size=12, seed=1)
model = rnncore.Seq2Seq(encoder, decoder, bridge="concat", seed=2)
history = rnncore.fit_seq2seq(model, src, tgt, start_id=START, epochs=60, batch_size=32,
                              clip=1.0, optimizer=rnncore.optim.Adam(model, lr=5e-3), seed=0,
                              progress=False)

longest = max(len(s) for s in test_src)
batch = np.zeros((longest, len(test_src)), np.int64)  # (S, B), time-major as the encoder reads
for i, s in enumerate(test_src):
    batch[:len(s), i] = s
out = model.generate(batch, max_len=4, start_id=START, end_id=END,
                     src_lengths=[len(s) for s in test_src])
exact = np.mean([np.array_equal(o[:len(t)], t) for o, t in zip(out, test_tgt)])
common = max(set(map(tuple, tgt)), key=[tuple(t) for t in tgt].count)
constant = np.mean([tuple(t) == common for t in test_tgt])
print(f"{model.encoder} -> {model.decoder}: {len(src)} training pairs")
print(f"training loss {history[0]:.3f} -> {history[-1]:.3f}")
shown = " ".join(WORDS[w] for w in test_src[0])
print(f"e.g. {shown!r} -> {''.join(str(d) for d in out[0] if d < 10)!r}")
print(f"exact match on {len(test_src)} unseen numbers: model {exact:.3f}, best constant answer "
      f"{constant:.3f}")
print(f"took {time.perf_counter() - start:.1f} s")
