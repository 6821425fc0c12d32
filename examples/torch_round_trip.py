"""Weights between rnncore and torch: an RNNModel goes to torch, trains a step there, and comes
back; both frameworks give the same outputs at every stage.

Needs torch (pip install 'rnncore[torch]'); without it, prints a message and exits 0.
"""

import sys

import numpy as np

import rnncore

try:
    import torch
except ImportError:
    print("skipped: torch is not installed (pip install 'rnncore[torch]')")
    sys.exit(0)


def max_difference(model, module, x):
    """Largest |rnncore - torch| over the per-step outputs and the final state for input x."""
    y = model(x)
    with torch.no_grad():
        y_torch, h_n_torch = module(torch.from_numpy(x))
    return max(np.abs(y - y_torch.numpy()).max(), np.abs(model.h_n - h_n_torch.numpy()).max())


model = rnncore.RNNModel(4, 16, 2, num_layers=2, bidirectional=True, head=(8,),
                         head_activation="tanh", seed=0)
x = np.random.default_rng(0).standard_normal((12, 3, 4)).astype(np.float32)  # (T, B, I)

module = model.to_torch()  # a torch.nn.Module with .rnn (nn.RNN) and .head (nn.Sequential)
print(f"{model} -> torch: max abs difference {max_difference(model, module, x):.2e}")

# One SGD step in torch, then the trained weights back into a new rnncore model.
optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
y_torch, _ = module(torch.from_numpy(x))
y_torch.square().mean().backward()
optimizer.step()
trained = rnncore.RNNModel.from_torch(module.rnn, module.head)
changed = max(np.abs(trained.parameters()[k] - v).max() for k, v in model.parameters().items())
print(f"torch -> rnncore after a torch training step (weights moved by up to {changed:.2e}): "
      f"max abs difference {max_difference(trained, module, x):.2e}")

# A plain nn.RNN converts the same way.
rnn = rnncore.RNN.from_torch(torch.nn.RNN(4, 8, nonlinearity="relu", batch_first=True))
print(f"nn.RNN -> {rnn}")
