"""Optimizers with the update rules of torch.optim.SGD, torch.optim.Adam and torch.optim.AdamW
(default, single-tensor implementation), updating ``model.parameters()`` in place from
``model.grads``.

Any object with ``parameters()`` and ``grads`` (dicts of arrays by name) and ``zero_grad()`` can
be optimized: rnncore.RNNModel and rnncore.RNN both qualify. Optimizer state is kept by parameter
name and in the parameter's dtype. For a model whose parameters live in one flat buffer
(rnncore/buffers.py: RNNModel and RNN do), the state lives in flat buffers of the same layout and a
step is one fused pass over all of them in C++ (``_core.sgd_step`` / ``_core.adam_step``);
otherwise the same C++ update runs parameter by parameter.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import _core
from .buffers import FlatParameters

__all__ = ["SGD", "Adam", "AdamW"]


def _check_hyper(value, name: str, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} should be a real number, got: {type(value).__name__}")
    number = float(value)  # NaN fails both comparisons
    if not number >= low or (high is not None and not number < high):
        span = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"Invalid {name} value: {value} (expected {span})")
    return number


def _flat_1d(a: np.ndarray, name: str) -> np.ndarray:
    """a as a 1-D view (the C++ updates write through it)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: the optimizers update C-contiguous arrays in place, got one "
                         f"with strides {a.strides}")
    return a.reshape(-1)


class _Optimizer:
    # The arrays of per-parameter state, shaped like the parameter, in a flat buffer each.
    _ARRAYS: tuple[str, ...] = ()
    _COUNTS_STEPS = False  # whether the state has a per-parameter "step" count

    def __init__(self, model):
        if not (hasattr(model, "parameters") and hasattr(model, "grads")):
            raise TypeError(f"expected a model with parameters() and grads (an rnncore.RNNModel "
                            f"or rnncore.RNN), got: {type(model).__name__}")
        self.model = model
        self.state: dict[str, dict[str, Any]] = {}  # per parameter name
        # The fused path: the model's flat layout, and a flat buffer per entry of _ARRAYS whose
        # views are the arrays in self.state (None until the first step or after a load that
        # does not fit it).
        self._layout: FlatParameters | None = None
        self._flat_state: dict[str, np.ndarray] | None = None
        self._t = 0  # the common step count of the fused path
        self._fresh = True  # whether the parameters being updated have no state yet

    def zero_grad(self) -> None:
        """Zero the model's gradients (call before each backward: gradients accumulate)."""
        self.model.zero_grad()

    def _model_flat(self) -> FlatParameters | None:
        flat = getattr(self.model, "_flat", None)
        return flat if isinstance(flat, FlatParameters) else None

    def step(self) -> None:
        """Update every parameter once from its current gradient."""
        flat = self._model_flat()
        if flat is not None:
            if self._flat_state is None and not self.state:  # the first step: flat state
                self._start_flat(flat)
            if self._flat_state is not None and self._layout is flat:
                self._fresh = self._t == 0
                self._t += 1
                self._fused(flat.params, flat.grads, self._flat_state, self._t)
                if self._COUNTS_STEPS:
                    for s in self.state.values():
                        s["step"] = self._t
                return
            self._flat_state = None  # the model's buffers changed: go parameter by parameter
        grads = self.model.grads
        for name, p in self.model.parameters().items():
            state = self.state.setdefault(name, {})
            self._fresh = not state
            if self._ARRAYS and not state:
                state.update({key: np.zeros_like(p) for key in self._ARRAYS})
                if self._COUNTS_STEPS:
                    state["step"] = 0
            t = state["step"] + 1 if self._COUNTS_STEPS else 0
            if self._COUNTS_STEPS:
                state["step"] = t
            self._fused(_flat_1d(p, name), _flat_1d(grads[name], name),
                        {k: _flat_1d(state[k], name) for k in self._ARRAYS}, t)

    def _start_flat(self, flat: FlatParameters, steps: int = 0) -> None:
        """Zeroed flat state buffers over the model's layout, their views in self.state."""
        self._layout, self._t = flat, steps
        self._flat_state = {key: flat.like() for key in self._ARRAYS}
        views = {key: flat.views(buf) for key, buf in self._flat_state.items()}
        self.state = {name: {key: views[key][name] for key in self._ARRAYS}
                      for name in flat.layout}
        if self._COUNTS_STEPS:
            for s in self.state.values():
                s["step"] = steps

    def _fused(self, p: np.ndarray, g: np.ndarray, state: dict, t: int) -> None:
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments other than the model (lr, betas, ...) as plain Python
        values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()
                if k not in ("model", "state") and not k.startswith("_")}

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
        hyper = dict(state_dict["hyperparameters"])
        new_state: dict[str, dict[str, Any]] = {}
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
        self._load_state(new_state)

    def _load_state(self, new_state: dict) -> None:
        """Into flat buffers when the state covers every parameter alike (one step count),
        else parameter by parameter."""
        flat = self._model_flat()
        steps = {s.get("step") for s in new_state.values()}
        whole = (flat is not None and new_state.keys() == flat.layout.keys() and len(steps) == 1
                 and all(set(s) == set(self._ARRAYS) | ({"step"} if self._COUNTS_STEPS else set())
                         for s in new_state.values()))
        if not whole or flat is None:
            self._flat_state, self.state = None, new_state
            return
        self._start_flat(flat, int(steps.pop()) if self._COUNTS_STEPS else 1)
        for name, entries in new_state.items():
            for key in self._ARRAYS:
                np.copyto(self.state[name][key], entries[key])


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

    @property
    def _ARRAYS(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _fused(self, p, g, state, t):
        # the momentum buffer starts as the first step's gradient (torch: clone)
        _core.sgd_step(p, g, state.get("momentum_buffer"), self.lr, self.momentum,
                       self.dampening, self.weight_decay, self.nesterov, self._fresh)


class Adam(_Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam`` with amsgrad=False; at step t:

        g = grad + weight_decay * p            (L2 penalty, as torch's Adam; not AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    _ARRAYS = ("exp_avg", "exp_avg_sq")
    _COUNTS_STEPS = True
    _DECOUPLED = False

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model)
        self.lr = _check_hyper(lr, "learning rate")
        if len(betas) != 2:
            raise ValueError(f"betas should be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_hyper(betas[0], "beta parameter at index 0", 0.0, 1.0),
                      _check_hyper(betas[1], "beta parameter at index 1", 0.0, 1.0))
        self.eps = _check_hyper(eps, "epsilon")
        self.weight_decay = _check_hyper(weight_decay, "weight_decay")

    def _fused(self, p, g, state, t):
        _core.adam_step(p, g, state["exp_avg"], state["exp_avg_sq"], self.lr, self.betas[0],
                        self.betas[1], self.eps, self.weight_decay, self._DECOUPLED, t)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter), as ``torch.optim.AdamW`` with amsgrad=False: Adam whose
    weight decay is decoupled from the gradient, ``p *= 1 - lr * weight_decay`` before the Adam
    update (which then has no L2 term). torch's defaults, weight_decay=1e-2 included."""

    _DECOUPLED = True

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(model, lr, betas, eps, weight_decay)
