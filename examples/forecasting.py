"""Next-step forecasting of a noisy price-like series with an RNN and an MLP head.

The series' log returns are cut into windows of WINDOW steps, shaped (T, N, 1) as rnncore takes
sequences; the model learns to predict every step's next return. On the last 20% of the series,
each forecast reads the WINDOW returns before it, and its price forecast is scored against the
naive "tomorrow's price is today's".
"""

import numpy as np

import rnncore
from rnncore.datasets import price_series

WINDOW, TRAIN_FRACTION = 40, 0.8


def windows(z, starts):
    """Inputs z[s .. s+W-1] and targets z[s+1 .. s+W] for each start s: two (W, N, 1) arrays."""
    x = np.stack([z[s:s + WINDOW] for s in starts], axis=1)
    y = np.stack([z[s + 1:s + WINDOW + 1] for s in starts], axis=1)
    return x[..., None], y[..., None]


prices = price_series(2000, seed=0)
r = np.diff(np.log(prices))  # r[t] = log p[t+1] - log p[t]
split = int(TRAIN_FRACTION * r.size)
mu, sd = r[:split].mean(), r[:split].std()
z = (r - mu) / sd  # standardised with the training part's statistics only

X, Y = windows(z, np.arange(0, split - WINDOW, 2))  # every window inside the training part
model = rnncore.RNNModel(1, 32, 1, head=(16,), seed=0)
history = rnncore.fit(model, X, Y, loss="mse", optimizer=rnncore.optim.Adam(model, lr=3e-3),
                      epochs=8, batch_size=32, seed=0, progress=False)
print(f"{model}: {X.shape[1]} training windows of {WINDOW} steps")
print(f"training loss (MSE of standardised returns): {history[0]:.3f} -> {history[-1]:.3f}")

# Test: the window ending at return t predicts r[t+1], hence the price p[t+2] = p[t+1] e^r[t+1].
model.eval()
ends = np.arange(split, r.size - 1)
x_test, _ = windows(z, ends - WINDOW + 1)
predicted = model(x_test)[-1, :, 0] * sd + mu  # the last step of each window
truth = prices[ends + 2]
forecast = prices[ends + 1] * np.exp(predicted)
naive = prices[ends + 1]
rmse = np.sqrt(np.mean((forecast - truth) ** 2))
naive_rmse = np.sqrt(np.mean((naive - truth) ** 2))
print(f"test RMSE over {truth.size} steps: model {rmse:.4f}, naive last value {naive_rmse:.4f} "
      f"(ratio {rmse / naive_rmse:.3f})")
