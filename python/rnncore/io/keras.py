"""Weights from Keras: a one-layer RNN from the arrays of a ``SimpleRNN`` layer. The code of
``RNN.from_keras_weights``, whose docstring gives the mapping (rnncore/_registry.py says why it
is here, not in the class)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .._checks import as_real_array, check_float_dtype
from .._registry import implements
from ..rnn import RNN


@implements("RNN.from_keras_weights")
def rnn_from_keras_weights(cls: type[RNN], kernel: ArrayLike, recurrent_kernel: ArrayLike,
                           bias: ArrayLike | None, nonlinearity: str, dtype: DTypeLike,
                           batch_first: bool) -> RNN:
    dtype = check_float_dtype(dtype)
    kernel = as_real_array(kernel, dtype, "kernel")
    recurrent_kernel = as_real_array(recurrent_kernel, dtype, "recurrent_kernel")
    if kernel.ndim != 2 or 0 in kernel.shape:
        raise ValueError(f"kernel: expected shape (input_size, hidden_size) with both sizes "
                         f"positive, got {kernel.shape}")
    I, H = kernel.shape
    if recurrent_kernel.shape != (H, H):
        raise ValueError(f"recurrent_kernel: expected shape {(H, H)} (hidden_size {H} from "
                         f"kernel's shape {kernel.shape}), got {recurrent_kernel.shape}")
    if bias is not None:
        bias = as_real_array(bias, dtype, "bias")
        if bias.shape != (H,):
            raise ValueError(f"bias: expected shape {(H,)} (hidden_size {H} from kernel's shape "
                             f"{kernel.shape}), got {bias.shape}")
    rnn = cls(I, H, nonlinearity=nonlinearity, bias=bias is not None, batch_first=batch_first,
              dtype=dtype)
    state = {"weight_ih_l0": kernel.T, "weight_hh_l0": recurrent_kernel.T}
    if bias is not None:
        state |= {"bias_ih_l0": bias, "bias_hh_l0": np.zeros(H, dtype)}
    rnn.load_state_dict(state)
    return rnn
