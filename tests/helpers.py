"""Shared test helpers: random data in the user-facing layouts, tolerances, and one function each
to run rnncore, the numpy reference and torch on the same data and return the same five things:
output, h_n, grad_x, grad_h0, {parameter name: gradient}."""

import numpy as np

from reference import LAMBDA, UNIT_ROUNDOFF, param_shapes, reference_rnn

# Comparisons with the reference use its error bound (reference.py, ROUNDING). These fixed
# tolerances are for results it does not bound (heads, other frameworks' layers, streaming):
# float32 results against a float64 computation from the same values, measured with torch's float32
# RNN as a stand-in on this suite's small shapes: the worst error is 5e-7 beyond rtol * |want|.
TOLERANCES = {
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
}
NAMES = ("output", "h_n", "grad_x", "grad_h0")


def make_params(rng, input_size, hidden_size, num_layers=1, bias=True, bidirectional=False,
                dtype=np.float64, **_):
    """Random parameters {torch name: array}, drawn like torch's init: U(-1/sqrt(H), 1/sqrt(H))."""
    k = 1 / np.sqrt(hidden_size)
    shapes = param_shapes(input_size, hidden_size, num_layers, bias, bidirectional)
    return {name: rng.uniform(-k, k, shape).astype(dtype) for name, shape in shapes.items()}


def make_data(rng, T, B, input_size, hidden_size, num_layers=1, bidirectional=False,
              batch_first=False, unbatched=False, dtype=np.float64, **_):
    """Random x, h0, grad_output, grad_h_n shaped as rnncore/torch expect them. Extra keyword
    arguments (nonlinearity, bias, ...) are ignored so a whole options dict can be passed."""
    D = 2 if bidirectional else 1
    LD, H = num_layers * D, hidden_size
    if unbatched:
        x_shape, h_shape, out_shape = (T, input_size), (LD, H), (T, D * H)
    elif batch_first:
        x_shape, h_shape, out_shape = (B, T, input_size), (LD, B, H), (B, T, D * H)
    else:
        x_shape, h_shape, out_shape = (T, B, input_size), (LD, B, H), (T, B, D * H)
    x = rng.uniform(-1, 1, x_shape)
    h0 = rng.uniform(-0.5, 0.5, h_shape)
    grad_output = rng.standard_normal(out_shape)
    grad_h_n = rng.standard_normal(h_shape)
    return tuple(a.astype(dtype) for a in (x, h0, grad_output, grad_h_n))


def run_rnncore(rnn, x, h0=None, grad_output=None, grad_h_n=None, lengths=None):
    """Forward and backward through a fresh set of gradients; returns copies."""
    rnn.zero_grad()
    output, h_n = rnn(x, h0, lengths=lengths)
    grad_x, grad_h0 = rnn.backward(grad_output, grad_h_n)
    grads = {name: g.copy() for name, g in rnn.grads.items()}
    return output.copy(), h_n.copy(), grad_x.copy(), grad_h0.copy(), grads


def run_reference(params, x, h0, grad_output, grad_h_n, num_layers=1, nonlinearity="tanh",
                  bidirectional=False, batch_first=False, lengths=None, **_):
    """The reference's five results for rnncore-style options (bias follows the params' keys)."""
    return reference_rnn(x, h0, params, grad_output, grad_h_n, num_layers=num_layers,
                         nonlinearity=nonlinearity, bidirectional=bidirectional,
                         batch_first=batch_first, lengths=lengths)


def make_torch_rnn(state_dict, input_size, hidden_size, dtype, dropout=0.0, **options):
    """torch.nn.RNN with the given options, loaded from a dict of numpy arrays."""
    import torch

    torch.set_num_threads(1)  # these shapes are tiny; threads only contend on a shared machine
    options.pop("unbatched", None)
    torch_dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    rnn = torch.nn.RNN(input_size, hidden_size, dropout=dropout, dtype=torch_dtype, **options)
    rnn.load_state_dict({k: torch.from_numpy(np.array(v, dtype=dtype))
                         for k, v in state_dict.items()})
    return rnn


def run_torch(torch_rnn, x, h0, grad_output, grad_h_n):
    """Same five results as run_rnncore, from torch autograd (h0 and grad_h_n must be given)."""
    import torch

    x, h0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    torch_rnn.zero_grad()
    output, h_n = torch_rnn(x, h0)
    torch.autograd.backward([output, h_n], [torch.tensor(grad_output), torch.tensor(grad_h_n)])
    grads = {name: p.grad.numpy() for name, p in torch_rnn.named_parameters()}
    return output.detach().numpy(), h_n.detach().numpy(), x.grad.numpy(), h0.grad.numpy(), grads


def assert_within(got, want, tol, name):
    """|got - want| <= tol elementwise where want is finite; NaN and +-inf exactly where want has
    them. The message names the worst element and its error in units of its tolerance."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    finite = np.isfinite(want)
    same_specials = np.array_equal(got[~finite], want[~finite], equal_nan=True)
    assert same_specials, f"{name}: NaN/inf differ from the expected ones"
    excess = np.where(finite, np.abs(got - want) / tol, 0.0)
    excess = np.where(np.isnan(excess), np.inf, excess)  # a NaN where a number was expected
    if excess.size and excess.max() > 1.0:
        i = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(f"{name}: {np.count_nonzero(excess > 1)} of {excess.size} beyond the "
                             f"tolerance; worst at {i}: got {got[i]!r}, want {want[i]!r}, "
                             f"tolerance {tol[i] if np.ndim(tol) else tol!r} "
                             f"({excess[i]:.3g}x)")


def assert_results_close(got, want, dtype, want_dtype=np.float64, sd=None, scale=1.0):
    """Compare two (output, h_n, grad_x, grad_h0, grads) tuples: shapes exactly, values within the
    rounding-error bound LAMBDA * (u_got + u_want) * sd of the reference (reference.py): both sides
    are within LAMBDA * u * sd of the exact result. sd comes from the reference's Results, on
    either side or given (comparisons with torch, whose result is in want_dtype). got must be in
    `dtype`. Without a bound, the fixed TOLERANCES times `scale` apply."""
    dtype = np.dtype(dtype)
    sd = sd if sd is not None else getattr(want, "sd", getattr(got, "sd", None))
    *arrays, grads = got
    *want_arrays, want_grads = want
    assert list(grads) == list(want_grads), "parameter names or order differ"
    names = list(NAMES) + list(grads)
    pairs = list(zip(arrays, want_arrays)) + [(grads[n], want_grads[n]) for n in grads]
    if sd is not None:
        *sd_arrays, sd_grads = sd
        # Higham's model adds an absolute error for underflow: the smallest normal number
        u = UNIT_ROUNDOFF[dtype] + UNIT_ROUNDOFF[np.dtype(want_dtype)]
        floor = np.finfo(dtype).smallest_normal
        tols = [LAMBDA * u * s + floor for s in [*sd_arrays, *(sd_grads[n] for n in grads)]]
    for i, (name, (g, w)) in enumerate(zip(names, pairs)):
        g = np.asarray(g)
        assert g.dtype == dtype, f"{name}: dtype {g.dtype}, expected {dtype}"
        assert g.shape == np.shape(w), f"{name}: shape {g.shape}, expected {np.shape(w)}"
        if sd is not None:
            assert_within(g, w, tols[i], name)
        else:
            tol = {k: v * scale for k, v in TOLERANCES[dtype].items()}
            np.testing.assert_allclose(g, w, **tol, err_msg=name)


def with_wrong_gradient(impl_class, name):
    """A benchmark implementation class whose train() returns its `name` gradient 5% off."""
    class WrongGradient(impl_class):
        def train(self):
            grads = super().train()
            return {**grads, name: grads[name] * 1.05}
    return WrongGradient
