"""Stock-price prediction on real data: the daily S&P 500 closes of 1999-2018 bundled with the
`arch` package (``arch.data.sp500.load()``, no download).

A many-to-one RNN (``readout="last"``) reads the last WINDOW daily log returns and predicts two
things about tomorrow: the log return itself and its size |log return| (the day's volatility).
The split is honest: the model trains on the first 75% of the days only (inputs standardised with
that part's statistics) and is scored on the last 25%, against the two usual baselines: the last
value (tomorrow = today) and the training mean.

Expect the return itself to be no more predictable than its mean (the market is close to
efficient), and its size to be predictable: volatility clusters.
"""

import os

# Small matrices: on a busy 2-core machine, numpy's BLAS threads cost far more than they give.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time

import numpy as np

try:
    from arch.data import sp500
except ImportError:
    print("skipped: the arch package is not installed (pip install 'rnncore[examples]')")
    raise SystemExit(0)

import rnncore

WINDOW, TRAIN_FRACTION = 30, 0.75
start = time.perf_counter()
close = sp500.load()["Adj Close"].to_numpy()
r = np.diff(np.log(close))  # r[t]: the log return of day t+1
split = int(TRAIN_FRACTION * r.size)
mu, sd = r[:split].mean(), r[:split].std()
z = (r - mu) / sd


def windows(ends):
    """Inputs z[e-W+1 .. e] (W, N, 1) and the targets [z, |z|] of day e+1 (N, 2)."""
    x = np.stack([z[e - WINDOW + 1:e + 1] for e in ends], axis=1)[..., None]
    return x.astype(np.float32), np.stack([z[ends + 1], np.abs(z[ends + 1])], axis=1)


X, Y = windows(np.arange(WINDOW - 1, split - 1))  # every target inside the training part
model = rnncore.RNNModel(1, 16, 2, head=(16,), readout="last", seed=0)
history = rnncore.fit(model, X, Y, loss="mse", optimizer=rnncore.optim.Adam(model, lr=2e-3),
                      epochs=6, batch_size=64, seed=0, progress=False)
x_test, y_test = windows(np.arange(split, r.size - 1))
pred = model.eval()(x_test)

print(f"S&P 500 daily closes {close.size} days; {model}; train {X.shape[1]} windows of "
      f"{WINDOW} days, test the last {y_test.shape[0]} days")
for k, what in enumerate(["log return", "|log return|"]):
    train_mean = Y[:, k].mean()
    last = z[split:r.size - 1] if k == 0 else np.abs(z[split:r.size - 1])  # today's value
    rmse = [float(np.sqrt(np.mean((p - y_test[:, k]) ** 2))) * sd
            for p in (pred[:, k], last, np.full(y_test.shape[0], train_mean))]
    print(f"next-day {what} test RMSE: model {rmse[0]:.5f}, last value {rmse[1]:.5f}, "
          f"training mean {rmse[2]:.5f}")
print(f"took {time.perf_counter() - start:.1f} s")
