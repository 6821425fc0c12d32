"""rnncore.RNN: the multi-layer, optionally bidirectional Elman RNN of torch.nn.RNN.

Python owns shapes, layers, directions and dropout; each layer and direction is one call into the
C++ kernel (`_core.forward` / `_core.backward`), which runs the whole time loop.

Shape letters: T steps, B batch, I input features, H hidden units, D directions (1 or 2),
L layers. Internally every sequence is time-major (T, B, features) and C-contiguous.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _core
from ._checks import as_real_array, c_aligned, check_bool, check_float_dtype, check_positive_int
from ._registry import implementation
from .buffers import ArrayPool, FlatParameters
from .init import check_init, initialise
from .lengths import check_lengths

_NONLINEARITIES = ("tanh", "relu")


class LoadResult(NamedTuple):
    """What `load_state_dict(strict=False)` left out, as torch's `_IncompatibleKeys`."""

    missing_keys: list
    unexpected_keys: list


def load_parameters(params: dict, state_dict: Mapping[str, ArrayLike], dtype: np.dtype,
                    owner: str, strict: bool) -> LoadResult:
    """Copy `state_dict`'s entries into the live arrays `params` (name -> array), converted to
    `dtype`: all or nothing, so a refused entry (ValueError) changes no parameter. `owner` names
    the module in messages, as torch's do."""
    if not isinstance(state_dict, Mapping):
        raise TypeError("state_dict: expected a mapping of parameter names to arrays, got "
                        f"{type(state_dict).__name__}")
    missing = [k for k in params if k not in state_dict]
    unexpected = [k for k in state_dict if k not in params]
    if strict and (missing or unexpected):
        raise ValueError(f"Error(s) in loading state_dict for {owner}: "
                         f"missing keys {missing}, unexpected keys {unexpected}")
    staged = {}
    for name in (k for k in params if k in state_dict):
        value = as_real_array(state_dict[name], dtype, name)
        if value.shape != params[name].shape:
            raise ValueError(f"size mismatch for {name}: copying a param with shape "
                             f"{value.shape}, the shape in current model is {params[name].shape}")
        staged[name] = value
    for name, value in staged.items():
        np.copyto(params[name], value)
    return LoadResult(missing, unexpected)


class _LayerRecord(NamedTuple):
    """What one layer's forward leaves for its backward."""

    inputs: np.ndarray  # (T, B, in_k): the layer's input, after dropout
    outputs: np.ndarray  # (T, B, D*H): every h_t of both directions (the only stored state)
    dropout_mask: np.ndarray | None  # (T, B, in_k) scaled keep-mask applied to the input, or None


class _ForwardRecord(NamedTuple):
    layers: list  # [_LayerRecord] for layers 0..L-1
    h0: np.ndarray | None  # (L*D, B, H) or None (zeros)
    lengths: np.ndarray | None  # (B,) int64 steps of each sequence, or None (all T)
    input_shape: tuple  # x's shape as the caller gave it
    output_shape: tuple
    h_n_shape: tuple
    batched: bool


class RNN:
    """Elman RNN with the semantics, parameter names and shapes of ``torch.nn.RNN``.

    ``output, h_n = rnn(x, h0=None, lengths=None)`` with x of shape (T, B, I), (B, T, I) when
    ``batch_first``, or (T, I) unbatched; ``grad_x, grad_h0 = rnn.backward(grad_output,
    grad_h_n=None)`` runs backpropagation through time for the latest forward and accumulates
    parameter gradients in ``rnn.grads``. ``lengths`` (B,) runs each sequence over its own first
    lengths[b] steps, as torch's packed sequences do.

    Weights are drawn as torch draws them, U(-1/sqrt(H), 1/sqrt(H)), from
    ``np.random.default_rng(seed)``. ``init`` picks other schemes: "keras" (Glorot input weights,
    orthogonal recurrent weights, zero biases), "irnn" (identity recurrent weights, for relu) or a
    dict {"weight_ih" | "weight_hh" | "bias": scheme} (rnncore/init.py lists the schemes).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None,
                 init: str | Mapping[str, str] | None = None) -> None:
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        self.bias = check_bool(bias, "bias")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        if (isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (int, float, np.number))
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        self.dropout = float(dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", UserWarning, stacklevel=2)
        self.dtype = check_float_dtype(dtype)
        self.training = True
        self._rng = np.random.default_rng(seed)

        # Parameters in torch's registration order, each drawn from U(-1/sqrt(H), 1/sqrt(H)),
        # then laid out in one flat buffer (and the gradients in another), each array from the
        # start of a cache line, where the kernels read their rows fastest (rnncore/buffers.py).
        bound = 1.0 / math.sqrt(self.hidden_size)
        drawn = {name: self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                 for name, shape in self._parameter_shapes()}
        self.init = check_init(init)  # other schemes overwrite those draws (rnncore/init.py)
        initialise(drawn, self.init, self._rng)
        flat = FlatParameters(((name, p.shape) for name, p in drawn.items()), self.dtype)
        for name, p in drawn.items():
            np.copyto(flat.param_views[name], p)
        self._record: _ForwardRecord | None = None
        # A _core.StepPlan over self._weights, made by the first step().
        self._step_plan: _core.StepPlan | None = None
        self._flat: FlatParameters | None = None
        # Output and scratch arrays by role, handed out again once nobody holds them (buffers.py).
        self._pools: dict[Any, ArrayPool] = {}
        self.adopt(flat.param_views, flat.grad_views)
        self._flat = flat  # this RNN's own buffers, until a model adopts it into its own

    # ---- parameters ---------------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _parameter_shapes(self):
        H, D = self.hidden_size, self.num_directions
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else D * H
            for sfx in self._suffixes():
                yield f"weight_ih_l{k}{sfx}", (H, in_k)
                yield f"weight_hh_l{k}{sfx}", (H, H)
                if self.bias:
                    yield f"bias_ih_l{k}{sfx}", (H,)
                    yield f"bias_hh_l{k}{sfx}", (H,)

    def adopt(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Use `params` and `grads` (name -> array, the current values already in `params`) as
        this RNN's parameters and gradients from now on: a model that holds this RNN calls it
        with views of its own flat buffers (`FlatParameters.gather`)."""
        self._params, self._grads = dict(params), dict(grads)
        # (w_ih, w_hh, b_ih, b_hh) of layer k, direction d at index k * D + d, biases None when
        # bias=False; the same for the gradients. The arrays never change identity (loads copy
        # into them), so these stay valid.
        self._weights = [self._unit_arrays(self._params, k, sfx)
                         for k in range(self.num_layers) for sfx in self._suffixes()]
        self._grad_arrays = [self._unit_arrays(self._grads, k, sfx)
                             for k in range(self.num_layers) for sfx in self._suffixes()]
        self._step_plan = None  # a StepPlan reads the weights it was made with
        self._flat = None  # not the owner of the buffers any more (unless __init__ says so)

    def __setstate__(self, state: dict) -> None:
        """After copy.deepcopy / pickle, which copy each view on its own: one buffer again."""
        self.__dict__.update(state)
        self._pools = {}
        if self._flat is not None:  # this RNN's own buffers (a model regathers its parts')
            flat = FlatParameters(((k, p.shape) for k, p in self._params.items()), self.dtype)
            for name, p in self._params.items():
                np.copyto(flat.param_views[name], p)
                np.copyto(flat.grad_views[name], self._grads[name])
            self.adopt(flat.param_views, flat.grad_views)
            self._flat = flat

    def _buffer(self, role, shape: tuple) -> np.ndarray:
        """An uninitialised array of `shape` for `role`, reused across calls (buffers.py)."""
        pool = self._pools.get(role)
        if pool is None:
            pool = self._pools[role] = ArrayPool()
        return pool.get(shape, self.dtype)

    def _contiguous(self, arr: np.ndarray, role) -> np.ndarray:
        """`arr` itself if C-contiguous and aligned, else a copy in a reused buffer."""
        flags = arr.flags
        if flags.c_contiguous and flags.aligned:
            return arr
        out = self._buffer(role, arr.shape)
        np.copyto(out, arr)
        return out

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by torch name (modify them in place to change the model)."""
        return dict(self._params)

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Parameter gradients by name, accumulated by every `backward` until `zero_grad`."""
        return self._grads

    def zero_grad(self) -> None:
        if self._flat is not None:
            self._flat.grads.fill(0)  # one pass over the flat buffer
        else:
            for g in self._grads.values():
                g.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike],
                        strict: bool = True) -> LoadResult:
        """Copy parameters in from numpy arrays or anything ``np.asarray`` takes (torch tensors
        too). All-or-nothing: if any entry is refused, no parameter changes."""
        return load_parameters(self._params, state_dict, self.dtype, type(self).__name__, strict)

    def train(self, mode: bool = True) -> RNN:
        self.training = check_bool(mode, "mode")
        return self

    def eval(self) -> RNN:
        return self.train(False)

    # ---- other frameworks: the code is in rnncore/io/torch.py and io/keras.py (_registry) -----

    @classmethod
    def from_torch(cls, module: Any) -> RNN:
        """An RNN with the options, dtype (float32/float64), training mode and exact weights of a
        ``torch.nn.RNN``. TypeError for anything else (nn.LSTM, nn.GRU, proj_size != 0)."""
        return implementation("RNN.from_torch")(cls, module)

    def to_torch(self) -> Any:
        """A ``torch.nn.RNN`` with this RNN's options, dtype, training mode and weights (copies)."""
        return implementation("RNN.to_torch")(self)

    @classmethod
    def from_keras_weights(cls, kernel: ArrayLike, recurrent_kernel: ArrayLike,
                           bias: ArrayLike | None, nonlinearity: str = "tanh",
                           dtype: DTypeLike = np.float32, batch_first: bool = False) -> RNN:
        """A one-layer RNN from the weights of a Keras ``SimpleRNN(H)`` (``layer.get_weights()``).

        Keras computes ``h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``, torch
        ``h_t = act(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh)``, so the mapping is:

        - kernel (I, H)           -> ``weight_ih_l0 = kernel.T``  (H, I)
        - recurrent_kernel (H, H) -> ``weight_hh_l0 = recurrent_kernel.T``  (H, H)
        - bias (H,)               -> ``bias_ih_l0 = bias``, ``bias_hh_l0 = 0``
          (bias=None, from ``use_bias=False``, gives an RNN with ``bias=False``)

        nonlinearity is the layer's activation ("tanh", Keras's default, or "relu"). Keras layers
        take (B, T, I) input: pass ``batch_first=True`` to feed the same arrays. ValueError if
        the shapes disagree.
        """
        return implementation("RNN.from_keras_weights")(cls, kernel, recurrent_kernel, bias,
                                                        nonlinearity, dtype, batch_first)

    # ---- forward ------------------------------------------------------------------------------

    def __call__(self, x: ArrayLike, h0: ArrayLike | None = None,
                 lengths: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.forward(x, h0, lengths)

    def forward(self, x: ArrayLike, h0: ArrayLike | None = None,
                lengths: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the RNN over a sequence. Returns ``(output, h_n)`` shaped as torch.nn.RNN's.

        lengths: None, or (B,) integers in [1, T] for a batch of sequences of different lengths
        padded to T steps. Sequence b then runs over its steps t < lengths[b] only, exactly as
        torch's ``pack_padded_sequence(x, lengths, enforce_sorted=False)`` then
        ``pad_packed_sequence(..., total_length=T)``: output is zero at padded steps, h_n holds
        each sequence's last valid state, and the reverse direction starts at each sequence's own
        last step. No sorting or packing is needed, and the work follows sum(lengths).

        output is read-only: the backward reads the states it holds."""
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        x = as_real_array(x, self.dtype, "input")
        if x.ndim not in (2, 3):
            raise ValueError(f"RNN: Expected input to be 2D or 3D, got {x.ndim}D array instead "
                             f"(shape {x.shape})")
        batched = x.ndim == 3
        input_shape = x.shape
        if h0 is not None:
            h0 = as_real_array(h0, self.dtype, "hx")
            if h0.ndim != x.ndim:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise ValueError(f"For {kind} input, hx should also be {x.ndim}-D but got "
                                 f"{h0.ndim}-D array (shape {h0.shape})")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input.shape[-1] must be equal to input_size. Expected "
                             f"{self.input_size}, got {x.shape[-1]}")
        if not batched:
            x = x[:, None, :]
            h0 = None if h0 is None else h0[:, None, :]
        elif self.batch_first:
            x = x.swapaxes(0, 1)
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ValueError("Expected sequence length to be larger than 0 in RNN")
        if lengths is not None:
            if not batched:
                raise ValueError("lengths: expected batched 3-D input (one length per sequence), "
                                 f"got unbatched 2-D input of shape {input_shape}")
            lengths = check_lengths(lengths, T, B)
        if h0 is not None and h0.shape != (L * D, B, H):
            want = (L * D, B, H) if batched else (L * D, H)
            got = h0.shape if batched else (h0.shape[0], h0.shape[2])
            raise ValueError(f"Expected hidden size {want}, got {got}")
        self._record = None  # drops the previous forward's arrays, so that they can be reused
        x = self._contiguous(x, "x")
        h0 = None if h0 is None else c_aligned(h0)

        layers = []
        inputs = x
        for k in range(L):
            mask = None
            if k > 0 and self.training and self.dropout > 0:
                mask = self._dropout_mask(inputs.shape)
                inputs = inputs * mask
            outputs = self._buffer(("outputs", k), (T, B, D * H))
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self._weights[k * D + d]
                _core.forward(inputs, None if h0 is None else h0[k * D + d], w_ih, w_hh, b_ih, b_hh,
                              outputs if D == 1 else outputs[:, :, d * H:(d + 1) * H], d == 1,
                              self.nonlinearity, lengths)
            layers.append(_LayerRecord(inputs, outputs, mask))
            inputs = outputs

        # The forward direction ends at t = T-1 (t = lengths[b]-1), the reverse one at t = 0.
        h_n = self._buffer("h_n", (L * D, B, H))
        for k, rec in enumerate(layers):
            if lengths is None:
                h_n[k * D] = rec.outputs[T - 1, :, :H]
            else:
                h_n[k * D] = rec.outputs[lengths - 1, np.arange(B), :H]
            if D == 2:
                h_n[k * D + 1] = rec.outputs[0, :, H:]
        output = inputs.view()
        if not batched:
            output, h_n = output[:, 0, :], h_n[:, 0, :]
        elif self.batch_first:
            output = output.swapaxes(0, 1)
        output.flags.writeable = False
        self._record = _ForwardRecord(layers, h0, lengths, input_shape, output.shape, h_n.shape,
                                      batched)
        return output, h_n

    def step(self, x: ArrayLike,
             h: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Advance a unidirectional RNN by one time step, for streaming inference.

        x is (B, I) or unbatched (I,); h is (num_layers, B, H) (unbatched (num_layers, H)) or
        None for a zero state. Returns ``(y, h_new)``: y the top layer's new state (B, H), h_new
        all layers' new states, to feed back as h. Equal to `forward` over the same steps to
        float rounding. Inference only: no dropout, no backward.
        """
        plan = self._step_plan
        if plan is not None:
            # The streaming fast path: the plan checks dtypes, shapes and layouts itself. What it
            # refuses (a list, an unbatched or misaligned array, a wrong shape) goes the general
            # way below, which converts what it can and names what it cannot.
            try:
                return plan(x, h)  # (y, h_new)
            except (ValueError, TypeError):
                pass
        L, H, dtype = self.num_layers, self.hidden_size, self.dtype
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional RNN: the reverse direction of a "
                             "bidirectional one starts from the end of the sequence")
        x = as_real_array(x, dtype, "input")
        batched = x.ndim == 2
        if not (batched or x.ndim == 1) or x.shape[-1] != self.input_size:
            raise ValueError(f"step: expected input of shape (B, {self.input_size}) or "
                             f"({self.input_size},), got {x.shape}")
        if not batched:
            x = x[None]
        B = x.shape[0]
        if h is not None:
            h = as_real_array(h, dtype, "h")
            if h.shape != ((L, B, H) if batched else (L, H)):
                raise ValueError(f"step: expected h of shape {(L, B, H) if batched else (L, H)}, "
                                 f"got {h.shape}")
            if not batched:
                h = h[:, None]
        if self._step_plan is None:  # validates the weights once; they are used live
            self._step_plan = _core.StepPlan(self._weights, self.nonlinearity)
        y, h_new = self._step_plan(c_aligned(x), None if h is None else c_aligned(h))
        if not batched:
            return y[0], h_new[:, 0]
        return y, h_new

    def _unit_arrays(self, arrays: dict, k: int, sfx: str) -> tuple:
        biases = (arrays[f"bias_ih_l{k}{sfx}"], arrays[f"bias_hh_l{k}{sfx}"]) if self.bias else (None, None)
        return arrays[f"weight_ih_l{k}{sfx}"], arrays[f"weight_hh_l{k}{sfx}"], *biases

    def _dropout_mask(self, shape) -> np.ndarray:
        """Inverted dropout: zero with probability p, scale the kept values by 1/(1-p)."""
        keep = self._rng.random(shape) >= self.dropout
        scale = 0.0 if self.dropout == 1 else 1.0 / (1.0 - self.dropout)
        return keep.astype(self.dtype) * self.dtype.type(scale)

    # ---- backward -----------------------------------------------------------------------------

    def backward(self, grad_output: ArrayLike, grad_h_n: ArrayLike | None = None, *,
                 input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """Backpropagation through time for the latest forward.

        grad_output is shaped like that forward's output, grad_h_n like its h_n (None: zero).
        Adds the parameter gradients to ``grads`` and returns ``(grad_x, grad_h0)`` shaped like x
        and h0 (grad_h0 also when h0 was omitted: the gradient w.r.t. the zero initial state).
        After a forward with lengths, grad_output at padded steps is ignored and grad_x there is
        zero. With ``input_grad=False`` grad_x is not computed and None is returned in its place:
        a training step that does not use it (as torch's, whose input does not require grad)
        saves the first layer's dz @ W_ih (2*T*B*I*H flop: a quarter of a layer's backward when
        I = H).
        """
        rec = self._record
        if rec is None:
            raise RuntimeError("backward() called before forward(): there is no sequence to "
                               "backpropagate through")
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        dy = self._gradient_like(grad_output, rec.output_shape, "grad_output")
        dh_n = None
        if grad_h_n is not None:
            dh_n = self._gradient_like(grad_h_n, rec.h_n_shape, "grad_h_n")
        # Time-major and C-contiguous (the kernel only reads them).
        if not rec.batched:
            dy = dy[:, None, :]
            dh_n = None if dh_n is None else dh_n[:, None, :]
        elif self.batch_first:
            dy = dy.swapaxes(0, 1)
        dy = self._contiguous(dy, "dy")
        dh_n = None if dh_n is None else c_aligned(dh_n)
        T, B = dy.shape[0], dy.shape[1]
        grad_h0 = self._buffer("grad_h0", (L * D, B, H))

        for k in reversed(range(L)):
            layer = rec.layers[k]
            dx = self._buffer(("dx", k), layer.inputs.shape) if k > 0 or input_grad else None
            for d in range(D):
                i = k * D + d
                w_ih, w_hh, _, _ = self._weights[i]
                dw_ih, dw_hh, db_ih, db_hh = self._grad_arrays[i]
                h = layer.outputs if D == 1 else layer.outputs[:, :, d * H:(d + 1) * H]
                dh = dy if D == 1 else dy[:, :, d * H:(d + 1) * H]
                _core.backward(layer.inputs, None if rec.h0 is None else rec.h0[i], w_ih, w_hh, h,
                               dh, None if dh_n is None else dh_n[i], dx, d > 0, grad_h0[i],
                               dw_ih, dw_hh, db_ih, db_hh, d == 1, self.nonlinearity, rec.lengths)
            if dx is None:  # the first layer's, not asked for
                break
            if layer.dropout_mask is not None:  # inputs = previous outputs * mask
                dx *= layer.dropout_mask
            dy = dx

        grad_x = dy if input_grad else None
        if not rec.batched:
            return None if grad_x is None else grad_x[:, 0, :], grad_h0[:, 0, :]
        if self.batch_first and grad_x is not None:
            grad_x = grad_x.swapaxes(0, 1)
        return grad_x, grad_h0

    def _gradient_like(self, value, shape: tuple, name: str) -> np.ndarray:
        arr = as_real_array(value, self.dtype, name)
        if arr.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
        return arr

    def __repr__(self) -> str:
        opts = [f"{self.input_size}", f"{self.hidden_size}"]
        if self.num_layers != 1:
            opts.append(f"num_layers={self.num_layers}")
        if self.nonlinearity != "tanh":
            opts.append(f"nonlinearity='{self.nonlinearity}'")
        for name, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, name) != default:
                opts.append(f"{name}={getattr(self, name)}")
        if self.dropout:
            opts.append(f"dropout={self.dropout}")
        if self.dtype != np.float32:
            opts.append(f"dtype={self.dtype.name}")
        return f"RNN({', '.join(opts)})"
