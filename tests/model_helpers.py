"""Shared helpers for the RNNModel / losses / optim / fit tests: central finite differences, small
models, and the equivalent torch module (rnn = nn.RNN, head = nn.Sequential) loaded from a
state dict."""

import numpy as np

import rnncore

EPS = 1e-6


def numerical_gradient(loss, a, eps=EPS):
    """Central differences of the scalar loss() w.r.t. every element of array a (perturbed in
    place and restored)."""
    grad = np.zeros_like(a, dtype=np.float64)
    for i in np.ndindex(a.shape):
        saved = a[i]
        a[i] = saved + eps
        plus = loss()
        a[i] = saved - eps
        minus = loss()
        a[i] = saved
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def small_model(dtype=np.float64, seed=0, **options):
    """A 2-layer RNNModel with a 2-hidden-layer head; options override the defaults."""
    kwargs = dict(input_size=3, hidden_size=5, output_size=4, num_layers=2, head=(6, 3),
                  dtype=dtype, seed=seed)
    kwargs.update(options)
    return rnncore.RNNModel(**kwargs)


def torch_model(model):
    """A torch module with the same structure and weights as `model` (an rnncore.RNNModel):
    forward(x, h0) -> (y, h_n)."""
    import torch

    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                  "sigmoid": torch.nn.Sigmoid}[model.head_activation]
    widths = [model.num_directions * model.hidden_size, *model.head_sizes, model.output_size]

    class TorchRNNModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(model.input_size, model.hidden_size, model.num_layers,
                                    nonlinearity=model.nonlinearity, batch_first=model.batch_first,
                                    bidirectional=model.bidirectional, dtype=dtype)
            layers = []
            for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
                if k:
                    layers.append(activation())
                layers.append(torch.nn.Linear(fan_in, fan_out, dtype=dtype))
            self.head = torch.nn.Sequential(*layers)

        def forward(self, x, h0=None):
            output, h_n = self.rnn(x, h0)
            return self.head(output), h_n

    net = TorchRNNModel()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return net
