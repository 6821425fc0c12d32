"""A character-level language model: trained on Python's own standard-library docstrings
(offline), then sampled.

The text is cut into B parallel streams, shaped (T, B) as ids and (T, B, V) as one-hot input for
a vocabulary of V characters; step t of a stream predicts the character at t+1. Training uses
truncated backpropagation through time: the state runs on from chunk to chunk, gradients stop at
chunk boundaries.
"""

import numpy as np

import rnncore
from rnncore.datasets import CharVocab, stdlib_text

STREAMS, TBPTT, EPOCHS = 16, 25, 10

text = stdlib_text(20_000)
vocab = CharVocab(text)
V, ids = len(vocab), vocab.encode(text)
T = (ids.size - 1) // STREAMS
x = ids[:T * STREAMS].reshape(STREAMS, T).T  # (T, B): stream b is the text's b-th slice
y = ids[1:T * STREAMS + 1].reshape(STREAMS, T).T  # (T, B): the next character of each step

model = rnncore.RNNModel(V, 96, V, seed=0)
history = rnncore.fit(model, rnncore.one_hot(x, V), y, loss="cross_entropy",
                      optimizer=rnncore.optim.Adam(model, lr=5e-3), epochs=EPOCHS,
                      batch_size=STREAMS, tbptt=TBPTT, clip=5.0, shuffle=False, progress=False)
freq = np.bincount(ids, minlength=V) / ids.size
print(f"{model} on {ids.size} characters, {V} distinct")
print(f"loss (nats/char): {history[0]:.3f} -> {history[-1]:.3f} after {EPOCHS} epochs; "
      f"letter frequencies alone give {-(freq * np.log(freq)).sum():.3f}")

prompt = "The "
generated = rnncore.sample(model, vocab.encode(prompt), 200, temperature=0.7, seed=0)
print("sampled text:\n" + prompt + vocab.decode(generated))
