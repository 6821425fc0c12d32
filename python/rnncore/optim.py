"""Optimizers with the update rules of torch.optim.SGD and torch.optim.Adam (default, single-tensor
implementation), updating ``model.parameters()`` in place from ``model.grads``.

Any object with ``parameters()`` and ``grads`` (dicts of arrays by name) and ``zero_grad()`` can
be optimized: rnncore.RNNModel and rnncore.RNN both qualify. Optimizer state is kept by parameter
name and in the parameter's dtype.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["SGD", "Adam"]


def _check_hyper(value, name: str, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} should be a real number, got: {type(value).__name__}")
    number = float(value)  # NaN fails both comparisons
    if not number >= low or (high is not None and not number < high):
        span = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"Invalid {name} value: {value} (expected {span})")
    return number


class _Optimizer:
    def __init__(self, model):
        if not (hasattr(model, "parameters") and hasattr(model, "grads")):
            raise TypeError(f"expected a model with parameters() and grads (an rnncore.RNNModel "
                            f"or rnncore.RNN), got: {type(model).__name__}")
        self.model = model
        self.state: dict[str, dict[str, np.ndarray]] = {}  # per parameter name

    def zero_grad(self) -> None:
        """Zero the model's gradients (call before each backward: gradients accumulate)."""
        self.model.zero_grad()

    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        grads = self.model.grads
        for name, p in self.model.parameters().items():
            self._update(p, grads[name], self.state.setdefault(name, {}))

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments other than the model (lr, betas, ...) as plain Python
        values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()
                if k not in ("model", "state")}

    def state_dict(self) -> dict[str, Any]:
        """A copy of the optimizer's state, as ``torch.optim.Optimizer.state_dict`` gives one:
        ``{"state": {param name: {key: array or int}}, "hyperparameters": {...}}``. The state is
        keyed by parameter name (torch keys it by position) and holds copies, not live arrays."""
        state = {name: {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
                 for name, s in self.state.items()}
        return {"state": state, "hyperparameters": self.hyperparameters()}

    def load_state_dict(self, state_dict) -> None:
        """Restore a `state_dict` (of the same optimizer class, for a model with the same
        parameters): the next `step` continues exactly where the saved optimizer stopped. Arrays
        are copied in the parameter's dtype; ValueError if a name or shape does not fit, in which
        case nothing changes."""
        params = self.model.parameters()
        hyper, new_state = dict(state_dict["hyperparameters"]), {}
        if sorted(hyper) != sorted(self.hyperparameters()):
            raise ValueError(f"state_dict: expected the hyperparameters "
                             f"{sorted(self.hyperparameters())} of {type(self).__name__}, got "
                             f"{sorted(hyper)}")
        for name, entries in state_dict["state"].items():
            if name not in params:
                raise ValueError(f"state_dict: state for {name!r}, which is not a parameter of "
                                 f"the model (its parameters: {', '.join(params)})")
            p, new_state[name] = params[name], {}
            for key, value in entries.items():
                value = np.asarray(value)
                if value.ndim == 0 and value.dtype.kind in "iu":  # a step count
                    new_state[name][key] = int(value)
                elif value.shape != p.shape:
                    raise ValueError(f"state_dict: {name}/{key} has shape {value.shape}, the "
                                     f"parameter {p.shape}")
                else:
                    new_state[name][key] = value.astype(p.dtype, copy=True)
        for key, value in hyper.items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.state = new_state

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent, optionally with momentum, as ``torch.optim.SGD``:

        g = grad + weight_decay * p
        buf = g (first step), else momentum * buf + (1 - dampening) * g   [if momentum > 0]
        g = g + momentum * buf if nesterov else buf                        [if momentum > 0]
        p -= lr * g
    """

    def __init__(self, model, lr=1e-3, momentum=0.0, weight_decay=0.0, dampening=0.0,
                 nesterov=False):
        super().__init__(model)
        self.lr = _check_hyper(lr, "learning rate")
        self.momentum = _check_hyper(momentum, "momentum")
        self.weight_decay = _check_hyper(weight_decay, "weight_decay")
        self.dampening = _check_hyper(dampening, "dampening")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= p.dtype.type(self.momentum)
                buf += p.dtype.type(1 - self.dampening) * g
            g = g + p.dtype.type(self.momentum) * buf if self.nesterov else buf
        p -= p.dtype.type(self.lr) * g


class Adam(_Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam`` with amsgrad=False; at step t:

        g = grad + weight_decay * p            (L2 penalty, as torch's Adam; not AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model)
        self.lr = _check_hyper(lr, "learning rate")
        if len(betas) != 2:
            raise ValueError(f"betas should be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_hyper(betas[0], "beta parameter at index 0", 0.0, 1.0),
                      _check_hyper(betas[1], "beta parameter at index 1", 0.0, 1.0))
        self.eps = _check_hyper(eps, "epsilon")
        self.weight_decay = _check_hyper(weight_decay, "weight_decay")

    def _update(self, p, g, state):
        beta1, beta2 = self.betas
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        f = p.dtype.type
        if self.weight_decay:
            g = g + f(self.weight_decay) * p
        m += f(1 - beta1) * (g - m)  # torch: exp_avg.lerp_(grad, 1 - beta1)
        v *= f(beta2)
        v += f(1 - beta2) * g * g
        step_size = self.lr / (1 - beta1 ** t)
        bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
        denom = np.sqrt(v) / f(bias_correction2_sqrt) + f(self.eps)
        p -= f(step_size) * m / denom
