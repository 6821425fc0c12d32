"""Shared pieces of the property tests (test_fuzz*.py): case budgets, model options, input dtypes
and memory layouts, and a float64 reference for RNNModel's head."""

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st


def examples(n):
    """n cases under the "ci" profile, scaled by the loaded profile's max_examples (conftest.py)."""
    return max(1, n * settings.default.max_examples // 100)


# Real-valued input of any of these dtypes is converted to the model's dtype; the others raise
# TypeError (README, "Behaviour to know").
REAL_DTYPES = [np.int8, np.int64, np.uint8, np.float16, np.float32, np.float64, np.longdouble,
               np.dtype(">f4")]
NON_REAL_DTYPES = [np.bool_, np.complex64, np.complex128, object, np.str_]

LAYOUTS = ["contiguous", "fortran", "negative_strides", "strided", "misaligned_1",
           "misaligned_2", "misaligned_4", "read_only", "list"]


def values_as(a, dtype):
    """float64 values in [-1, 1] as `dtype`: rounded to {-1, 0, 1} for ints, {0, 1} if unsigned."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        a = np.rint(np.abs(a) if dtype.kind in "ub" else a)
    return a.astype(dtype)


def lay_out(a, layout):
    """Something equal to array `a` in the given memory layout (or a nested list)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "negative_strides":
        return np.flip(np.flip(a).copy())
    if layout == "strided":  # every other element of a buffer twice as large along each axis
        wide = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
        every_other = tuple(slice(None, None, 2) for _ in a.shape)
        wide[every_other] = a
        return wide[every_other]
    if layout.startswith("misaligned"):  # the data starts 1, 2 or 4 bytes into a byte buffer
        offset = int(layout.rsplit("_", 1)[1])
        out = np.frombuffer(bytearray(a.nbytes + offset), a.dtype, a.size, offset)
        out = out.reshape(a.shape)
        out[...] = a
        return out
    if layout == "read_only":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "list":
        return a.tolist()
    return a


def layouts_for(a):
    """The layouts that keep array `a` what it is: object arrays have no byte buffer (and as
    nested lists they would be plain numbers), and a nested list of an empty array loses its
    trailing extents."""
    return [name for name in LAYOUTS
            if not (a.dtype.hasobject and (name.startswith("misaligned") or name == "list"))
            and not (a.size == 0 and name == "list")]


@st.composite
def rnn_cases(draw, bidirectional=None):
    """Sizes, options, dtype and seed for one RNN and its data."""
    return dict(
        T=draw(st.integers(1, 6)), B=draw(st.integers(0, 5)),
        input_size=draw(st.integers(1, 9)), hidden_size=draw(st.integers(1, 9)),
        unbatched=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**32 - 1)),
        opts=dict(num_layers=draw(st.integers(1, 3)),
                  nonlinearity=draw(st.sampled_from(["tanh", "relu"])),
                  bias=draw(st.booleans()), batch_first=draw(st.booleans()),
                  bidirectional=draw(st.booleans()) if bidirectional is None else bidirectional))


HEAD_ACTIVATIONS = {  # function, and its derivative from the output a
    "relu": (lambda z: np.maximum(z, 0.0), lambda a: (a > 0) * 1.0),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a)),
}


def reference_head(params, rows, activation, grad_y):
    """RNNModel's MLP in float64: rows (N, F) -> y (N, O); for grad_y (N, O), also d rows and
    {name: gradient}. params are {"0.weight", "0.bias", "2.weight", ...}."""
    act, act_grad = HEAD_ACTIVATIONS[activation]
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    n = len(params) // 2
    inputs, a = [], rows
    for k in range(n):
        inputs.append(a)
        a = a @ params[f"{2 * k}.weight"].T + params[f"{2 * k}.bias"]
        if k < n - 1:
            a = act(a)
    grads, dz = {}, grad_y
    for k in reversed(range(n)):
        # z_k = inputs[k] @ W_k.T + b_k, inputs[k] = act(z_{k-1})
        grads[f"{2 * k}.weight"] = dz.T @ inputs[k]
        grads[f"{2 * k}.bias"] = dz.sum(axis=0)
        d_input = dz @ params[f"{2 * k}.weight"]
        if k > 0:
            dz = d_input * act_grad(inputs[k])
    return a, d_input, dict(sorted(grads.items(), key=lambda kv: int(kv[0].split(".")[0])))
