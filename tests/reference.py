"""Plain-numpy Elman RNN with torch.nn.RNN semantics: the oracle the tests compare against.

Shape letters: T steps, B batch, I input, H hidden, L layers, D directions (2 if bidirectional).
The core pair works time-major: x (T, B, I), h0 (L*D, B, H). Loops are written out on purpose;
everything is computed in float64 whatever the input dtype.

    a_t = x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh
    h_t = tanh(a_t)  or  relu(a_t)

The reverse direction runs the same recurrence from t = T-1 down to t = 0. Layer k > 0 reads the
concatenation [forward, reverse] of layer k-1's outputs. h_n[k*D + d] is the last state that
direction reached.

With lengths (B,), the semantics of torch's pack_padded_sequence -> nn.RNN -> pad_packed_sequence:
sequence b is run on its own over its first lengths[b] steps (the reverse direction from
lengths[b]-1 down to 0), outputs at padded steps are 0, gradients arriving there are ignored and
grad_x there is 0.

Every result also comes with a rounding-error bound (see ROUNDING below): the standard deviation
of the error a float computation of it may carry, in units of the unit roundoff u. Tests compare
with |got - want| <= LAMBDA * (u_got + u_want) * sd (helpers.assert_results_close).
"""

import numpy as np

# --- ROUNDING ---------------------------------------------------------------------------------
# The error model is the probabilistic one of Higham & Mary ("A new approach to probabilistic
# rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019): each floating-point operation's
# relative error is an independent, mean-zero variable with |delta| <= u, so of variance <= u^2.
# Then, to first order:
# - a sum of n terms (products, in any order and blocking, with or without FMA) carries an error
#   of variance <= n * u^2 * sum(term^2): each term passes through at most n roundings;
# - an error e in an input reaches a linear result with its coefficient: variance c^2 var(e);
# - tanh adds at most TANH_ULPS ulp (the C++ test's limit: 7 ulp float32, 4 float64), and one
#   ulp of y is at most 2u|y|;
# - relu passes the error of its input on; where |a| is within LAMBDA*sd of 0 (float32's u), the
#   computed sign may flip, and the backward mask with it: da may then be off by all of dh.
# Variances are carried in units of u^2 (u = 1), so one bound serves float32 and float64.
# Higham & Mary's bound for one sum holds with probability >= 1 - 2 exp(-LAMBDA^2 / 2) per
# element; at LAMBDA = 8 that is 1 - 2.5e-14. The model overstates: uniform rounding errors have
# variance u^2 / 3, and blocked or FMA sums round each term far fewer than n times.
LAMBDA = 8.0
TANH_ULPS = 8
UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}
_U32 = UNIT_ROUNDOFF[np.dtype(np.float32)]


def sum_var(n, sum_sq):
    """Rounding variance (units of u^2) of a sum of n terms whose squares sum to sum_sq."""
    return n * sum_sq


def finite_var(var, value):
    """Where the value is exact but its variance came out inf or NaN (0 * inf: tanh(+-inf) is
    exactly +-1), the variance is 0; where the value itself is not finite it is compared
    exactly, so its variance does not matter."""
    return np.where(np.isfinite(var), var, 0.0)


def suffixes(bidirectional):
    return ("", "_reverse") if bidirectional else ("",)


def param_shapes(input_size, hidden_size, num_layers=1, bias=True, bidirectional=False):
    """{name: shape} in torch's registration order."""
    H, D = hidden_size, 2 if bidirectional else 1
    shapes = {}
    for k in range(num_layers):
        in_k = input_size if k == 0 else D * H
        for sfx in suffixes(bidirectional):
            shapes[f"weight_ih_l{k}{sfx}"] = (H, in_k)
            shapes[f"weight_hh_l{k}{sfx}"] = (H, H)
            if bias:
                shapes[f"bias_ih_l{k}{sfx}"] = (H,)
                shapes[f"bias_hh_l{k}{sfx}"] = (H,)
    return shapes


def _time_order(T, d):
    """Step indices in the order direction d visits them."""
    return list(range(T)) if d == 0 else list(range(T - 1, -1, -1))


def _activation(a, nonlinearity):
    return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)


def _activation_var(a, a_var, h, nonlinearity):
    """Variance of h = act(a) from a's variance, and where relu's sign is in doubt."""
    if nonlinearity == "tanh":
        g = 1.0 - h * h
        return finite_var(g * g * a_var + (2 * TANH_ULPS * h) ** 2, h), np.zeros(a.shape, bool)
    in_doubt = np.abs(a) <= LAMBDA * _U32 * np.sqrt(a_var)
    return finite_var(np.where((a > 0) | in_doubt, a_var, 0.0), h), in_doubt


def _activation_grad(h, nonlinearity):
    """d h / d a from the post-activation state h (nothing recomputed). relu: 0 where h <= 0, else
    1, so a NaN state passes its gradient on, as in torch's threshold_backward."""
    return 1.0 - h * h if nonlinearity == "tanh" else (~(h <= 0)).astype(h.dtype)


def rnn_forward(x, h0, params, num_layers, nonlinearity, bidirectional):
    """x (T, B, I), h0 (L*D, B, H) -> output (T, B, D*H), h_n (L*D, B, H), cache."""
    x = np.asarray(x, dtype=np.float64)
    h0 = np.asarray(h0, dtype=np.float64)
    params = {name: np.asarray(p, dtype=np.float64) for name, p in params.items()}
    T, B, _ = x.shape
    H = h0.shape[-1]
    D = 2 if bidirectional else 1
    h_n, h_n_var = np.zeros_like(h0), np.zeros_like(h0)
    layer_inputs, states = [], []  # per layer: its input; per (layer, direction): h_t for all t
    layer_input_vars, state_vars = [], []  # and their variances
    layer_input, layer_input_var = x, np.zeros_like(x)  # the given x is exact
    in_doubt = []  # per (layer, direction): (T, B, H) where relu's sign is in doubt
    for k in range(num_layers):
        layer_inputs.append(layer_input)
        layer_input_vars.append(layer_input_var)
        outputs, output_vars = [], []
        for d, sfx in enumerate(suffixes(bidirectional)):
            W_ih = params[f"weight_ih_l{k}{sfx}"]
            W_hh = params[f"weight_hh_l{k}{sfx}"]
            b_ih = params.get(f"bias_ih_l{k}{sfx}", 0.0)
            b_hh = params.get(f"bias_hh_l{k}{sfx}", 0.0)
            n = W_ih.shape[1] + H + (2 if f"bias_ih_l{k}{sfx}" in params else 0)
            hs, hs_var, doubt = np.zeros((T, B, H)), np.zeros((T, B, H)), np.zeros((T, B, H), bool)
            h, h_var = h0[k * D + d], np.zeros((B, H))
            for t in _time_order(T, d):
                x_t = layer_input[t]
                a = x_t @ W_ih.T + h @ W_hh.T + (b_ih + b_hh)
                a_var = (sum_var(n, x_t ** 2 @ (W_ih ** 2).T + h ** 2 @ (W_hh ** 2).T
                                 + (np.square(b_ih) + np.square(b_hh)))
                         + layer_input_var[t] @ (W_ih ** 2).T + h_var @ (W_hh ** 2).T)
                h = _activation(a, nonlinearity)
                h_var, doubt[t] = _activation_var(a, a_var, h, nonlinearity)
                hs[t], hs_var[t] = h, h_var
            h_n[k * D + d], h_n_var[k * D + d] = h, h_var
            states.append(hs)
            state_vars.append(hs_var)
            in_doubt.append(doubt)
            outputs.append(hs)
            output_vars.append(hs_var)
        layer_input = np.concatenate(outputs, axis=2)
        layer_input_var = np.concatenate(output_vars, axis=2)
    cache = dict(layer_inputs=layer_inputs, states=states, h0=h0, params=params,
                 num_layers=num_layers, nonlinearity=nonlinearity, bidirectional=bidirectional,
                 layer_input_vars=layer_input_vars, state_vars=state_vars, in_doubt=in_doubt,
                 output_var=layer_input_var, h_n_var=h_n_var)
    return layer_input, h_n, cache


def rnn_backward(grad_output, grad_h_n, cache):
    """BPTT -> grad_x (T, B, I), grad_h0 (L*D, B, H), {name: gradient} (same keys as params), and
    their variances (grad_x_var, grad_h0_var, {name: variance}) in units of u^2."""
    grad_output = np.asarray(grad_output, dtype=np.float64)
    grad_h_n = np.asarray(grad_h_n, dtype=np.float64)
    params, h0, nonlinearity = cache["params"], cache["h0"], cache["nonlinearity"]
    bidirectional = cache["bidirectional"]
    D = 2 if bidirectional else 1
    H = h0.shape[-1]
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    # Parameter gradients sum T*B terms: their squares and the propagated variance add up over t.
    grads_sq = {name: np.zeros_like(p) for name, p in params.items()}
    grads_var = {name: np.zeros_like(p) for name, p in params.items()}
    grad_h0, grad_h0_var = np.zeros_like(h0), np.zeros_like(h0)
    grad_layer_output = grad_output  # (T, B, D*H): gradient reaching the current layer's output
    grad_layer_output_var = np.zeros_like(grad_output)  # the given gradients are exact
    for k in reversed(range(cache["num_layers"])):
        layer_input = cache["layer_inputs"][k]
        layer_input_var = cache["layer_input_vars"][k]
        T, B = layer_input.shape[:2]
        grad_layer_input = np.zeros_like(layer_input)
        grad_layer_input_var = np.zeros_like(layer_input)
        for d, sfx in enumerate(suffixes(bidirectional)):
            W_ih = params[f"weight_ih_l{k}{sfx}"]
            W_hh = params[f"weight_hh_l{k}{sfx}"]
            hs, hs_var = cache["states"][k * D + d], cache["state_vars"][k * D + d]
            in_doubt = cache["in_doubt"][k * D + d]
            order = _time_order(T, d)
            dh = grad_h_n[k * D + d].copy()  # dL/dh_t, including what flows back from later steps
            dh_var = np.zeros_like(dh)
            for i in reversed(range(T)):
                t = order[i]
                h_prev = hs[order[i - 1]] if i > 0 else h0[k * D + d]
                h_prev_var = hs_var[order[i - 1]] if i > 0 else np.zeros_like(h_prev)
                g_out = grad_layer_output[t, :, d * H:(d + 1) * H]
                dh_var = (dh_var + grad_layer_output_var[t, :, d * H:(d + 1) * H]
                          + sum_var(2, dh ** 2 + g_out ** 2))
                dh = dh + g_out
                # h_t = act(a_t)
                h = hs[t]
                da = dh * _activation_grad(h, nonlinearity)
                if nonlinearity == "tanh":  # da = dh * (1 - h^2): three roundings
                    da_var = ((1 - h * h) ** 2 * dh_var + (2 * h * dh) ** 2 * hs_var[t]
                              + sum_var(3, dh ** 2 * (1 + h ** 4)))
                else:  # the mask is exact unless relu's sign was in doubt; then all of dh
                    da_var = np.where(h > 0, dh_var, 0.0) + np.where(in_doubt[t], (dh / _U32) ** 2, 0.0)
                # a_t = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
                x_t, x_t_var = layer_input[t], layer_input_var[t]
                grads[f"weight_ih_l{k}{sfx}"] += da.T @ x_t
                grads_sq[f"weight_ih_l{k}{sfx}"] += (da ** 2).T @ x_t ** 2
                grads_var[f"weight_ih_l{k}{sfx}"] += da_var.T @ x_t ** 2 + (da ** 2).T @ x_t_var
                grads[f"weight_hh_l{k}{sfx}"] += da.T @ h_prev
                grads_sq[f"weight_hh_l{k}{sfx}"] += (da ** 2).T @ h_prev ** 2
                grads_var[f"weight_hh_l{k}{sfx}"] += (da_var.T @ h_prev ** 2
                                                      + (da ** 2).T @ h_prev_var)
                for bias in (f"bias_ih_l{k}{sfx}", f"bias_hh_l{k}{sfx}"):
                    if bias in grads:
                        grads[bias] += da.sum(axis=0)
                        grads_sq[bias] += (da ** 2).sum(axis=0)
                        grads_var[bias] += da_var.sum(axis=0)
                grad_layer_input[t] += da @ W_ih  # both directions add: D*H terms
                grad_layer_input_var[t] += sum_var(D * H, da ** 2 @ W_ih ** 2) + da_var @ W_ih ** 2
                dh_var = sum_var(H, da ** 2 @ W_hh ** 2) + da_var @ W_hh ** 2
                dh = da @ W_hh
            grad_h0[k * D + d], grad_h0_var[k * D + d] = dh, dh_var
        grad_layer_output, grad_layer_output_var = grad_layer_input, grad_layer_input_var
    grads_var = {name: grads_var[name] + sum_var(T * B, grads_sq[name]) for name in grads}
    return grad_layer_output, grad_h0, grads, (grad_layer_output_var, grad_h0_var, grads_var)


def rnn_forward_backward_lengths(x, h0, params, grad_output, grad_h_n, lengths, num_layers,
                                nonlinearity, bidirectional):
    """The core pair with per-sequence lengths, time-major: x (T, B, I), h0 and grad_h_n
    (L*D, B, H), grad_output (T, B, D*H), lengths (B,) in [1, T]. Each sequence b goes through
    rnn_forward / rnn_backward alone, cut to its first lengths[b] steps; parameter gradients are
    summed over the sequences. Returns (output, h_n, grad_x, grad_h0, grads) and their
    variances in the same structure."""
    x = np.asarray(x, dtype=np.float64)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    T, B, _ = x.shape
    results = (np.zeros(grad_output.shape),  # output: padded steps stay 0
               np.zeros(np.shape(h0)),
               np.zeros(x.shape),            # grad_x: padded steps get no gradient
               np.zeros(np.shape(h0)),
               {name: np.zeros(np.shape(p)) for name, p in params.items()})
    variances = tuple(np.zeros_like(r) for r in results[:4]) + (
        {name: np.zeros(np.shape(p)) for name, p in params.items()},)
    for b, n in enumerate(lengths):
        assert 1 <= n <= T, f"length {n} outside [1, {T}]"
        rows = slice(b, b + 1)
        out_b, h_n_b, cache = rnn_forward(x[:n, rows], np.asarray(h0)[:, rows], params,
                                          num_layers, nonlinearity, bidirectional)
        grad_x_b, grad_h0_b, grads_b, (grad_x_var, grad_h0_var, grads_var) = rnn_backward(
            grad_output[:n, rows], np.asarray(grad_h_n)[:, rows], cache)
        for i, (value, var) in enumerate([(out_b, cache["output_var"]),
                                          (h_n_b, cache["h_n_var"]),
                                          (grad_x_b, grad_x_var), (grad_h0_b, grad_h0_var)]):
            where = (slice(None), rows) if i in (1, 3) else (slice(n), rows)
            results[i][where], variances[i][where] = value, var
        for name in params:
            results[4][name] += grads_b[name]
            # sequence b's sums counted n terms; the whole batch's may round over T*B of them
            variances[4][name] += grads_var[name] * (T * B / n)
    return results, variances


class Results(tuple):
    """(output, h_n, grad_x, grad_h0, grads) with .sd: the same structure of rounding-error
    standard deviations in units of u (see ROUNDING)."""

    def __new__(cls, values, variances):
        results = super().__new__(cls, values)
        *arrays, grads_var = variances
        results.sd = tuple(np.sqrt(v) for v in arrays) + (
            {name: np.sqrt(v) for name, v in grads_var.items()},)
        return results


def reference_rnn(x, h0, params, grad_output, grad_h_n, *, num_layers=1, nonlinearity="tanh",
                  bidirectional=False, batch_first=False, lengths=None):
    """The core pair in the user-facing layouts (batch_first, unbatched 2-D input; h0 and grad_h_n
    may be None = zeros). Returns Results: output, h_n, grad_x, grad_h0, grads, shaped like
    torch's, and their rounding-error bounds as .sd. lengths (B,), batched input only: the
    variable-length semantics (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    unbatched = x.ndim == 2
    if lengths is not None and unbatched:
        raise ValueError("lengths needs batched input")
    H = params["weight_hh_l0"].shape[0]
    D = 2 if bidirectional else 1
    if unbatched:  # (T, I) -> (T, 1, I): batch_first does not matter for a single sequence
        x = x[:, None]
        grad_output = np.asarray(grad_output)[:, None]
    elif batch_first:
        x = x.transpose(1, 0, 2)
        grad_output = np.asarray(grad_output).transpose(1, 0, 2)
    h_shape = (num_layers * D, x.shape[1], H)
    h0 = np.zeros(h_shape) if h0 is None else np.reshape(h0, h_shape)
    grad_h_n = np.zeros(h_shape) if grad_h_n is None else np.reshape(grad_h_n, h_shape)

    # Squares of huge values overflow and 0 * inf is NaN: such variances are inf (no bound).
    with np.errstate(over="ignore", invalid="ignore"):
        if lengths is None:
            output, h_n, cache = rnn_forward(x, h0, params, num_layers, nonlinearity,
                                             bidirectional)
            grad_x, grad_h0, grads, (grad_x_var, grad_h0_var, grads_var) = rnn_backward(
                grad_output, grad_h_n, cache)
            results = [output, h_n, grad_x, grad_h0, grads]
            variances = [cache["output_var"], cache["h_n_var"], grad_x_var, grad_h0_var,
                         grads_var]
        else:
            results, variances = map(list, rnn_forward_backward_lengths(
                x, h0, params, grad_output, grad_h_n, lengths, num_layers, nonlinearity,
                bidirectional))
    for r in (results, variances):  # back to the caller's layout
        if unbatched:
            r[0], r[1], r[2], r[3] = r[0][:, 0], r[1][:, 0], r[2][:, 0], r[3][:, 0]
        elif batch_first:
            r[0], r[2] = r[0].transpose(1, 0, 2), r[2].transpose(1, 0, 2)
    return Results(results, variances)
