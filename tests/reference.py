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
"""

import numpy as np


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
    h_n = np.zeros_like(h0)
    layer_inputs, states = [], []  # per layer: its input; per (layer, direction): h_t for all t
    layer_input = x
    for k in range(num_layers):
        layer_inputs.append(layer_input)
        outputs = []
        for d, sfx in enumerate(suffixes(bidirectional)):
            W_ih = params[f"weight_ih_l{k}{sfx}"]
            W_hh = params[f"weight_hh_l{k}{sfx}"]
            b = params.get(f"bias_ih_l{k}{sfx}", 0.0) + params.get(f"bias_hh_l{k}{sfx}", 0.0)
            hs = np.zeros((T, B, H))
            h = h0[k * D + d]
            for t in _time_order(T, d):
                h = _activation(layer_input[t] @ W_ih.T + h @ W_hh.T + b, nonlinearity)
                hs[t] = h
            h_n[k * D + d] = h
            states.append(hs)
            outputs.append(hs)
        layer_input = np.concatenate(outputs, axis=2)
    cache = dict(layer_inputs=layer_inputs, states=states, h0=h0, params=params,
                 num_layers=num_layers, nonlinearity=nonlinearity, bidirectional=bidirectional)
    return layer_input, h_n, cache


def rnn_backward(grad_output, grad_h_n, cache):
    """BPTT -> grad_x (T, B, I), grad_h0 (L*D, B, H), {name: gradient} (same keys as params)."""
    grad_output = np.asarray(grad_output, dtype=np.float64)
    grad_h_n = np.asarray(grad_h_n, dtype=np.float64)
    params, h0, nonlinearity = cache["params"], cache["h0"], cache["nonlinearity"]
    bidirectional = cache["bidirectional"]
    D = 2 if bidirectional else 1
    H = h0.shape[-1]
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    grad_h0 = np.zeros_like(h0)
    grad_layer_output = grad_output  # (T, B, D*H): gradient reaching the current layer's output
    for k in reversed(range(cache["num_layers"])):
        layer_input = cache["layer_inputs"][k]
        T = layer_input.shape[0]
        grad_layer_input = np.zeros_like(layer_input)
        for d, sfx in enumerate(suffixes(bidirectional)):
            W_ih = params[f"weight_ih_l{k}{sfx}"]
            W_hh = params[f"weight_hh_l{k}{sfx}"]
            hs = cache["states"][k * D + d]
            order = _time_order(T, d)
            dh = grad_h_n[k * D + d].copy()  # dL/dh_t, including what flows back from later steps
            for i in reversed(range(T)):
                t = order[i]
                h_prev = hs[order[i - 1]] if i > 0 else h0[k * D + d]
                dh = dh + grad_layer_output[t, :, d * H:(d + 1) * H]
                # h_t = act(a_t)
                da = dh * _activation_grad(hs[t], nonlinearity)
                # a_t = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
                grads[f"weight_ih_l{k}{sfx}"] += da.T @ layer_input[t]
                grads[f"weight_hh_l{k}{sfx}"] += da.T @ h_prev
                if f"bias_ih_l{k}{sfx}" in grads:
                    grads[f"bias_ih_l{k}{sfx}"] += da.sum(axis=0)
                    grads[f"bias_hh_l{k}{sfx}"] += da.sum(axis=0)
                grad_layer_input[t] += da @ W_ih
                dh = da @ W_hh
            grad_h0[k * D + d] = dh
        grad_layer_output = grad_layer_input
    return grad_layer_output, grad_h0, grads


def rnn_forward_backward_lengths(x, h0, params, grad_output, grad_h_n, lengths, num_layers,
                                nonlinearity, bidirectional):
    """The core pair with per-sequence lengths, time-major: x (T, B, I), h0 and grad_h_n
    (L*D, B, H), grad_output (T, B, D*H), lengths (B,) in [1, T]. Each sequence b goes through
    rnn_forward / rnn_backward alone, cut to its first lengths[b] steps; parameter gradients are
    summed over the sequences. Returns output, h_n, grad_x, grad_h0, grads."""
    x = np.asarray(x, dtype=np.float64)
    grad_output = np.asarray(grad_output, dtype=np.float64)
    T, B, _ = x.shape
    output = np.zeros(grad_output.shape)  # padded steps stay 0
    grad_x = np.zeros(x.shape)            # and get no gradient
    h_n, grad_h0 = np.zeros(np.shape(h0)), np.zeros(np.shape(h0))
    grads = {name: np.zeros(np.shape(p)) for name, p in params.items()}
    for b, n in enumerate(lengths):
        assert 1 <= n <= T, f"length {n} outside [1, {T}]"
        rows = slice(b, b + 1)
        out_b, h_n[:, rows], cache = rnn_forward(x[:n, rows], np.asarray(h0)[:, rows], params,
                                                 num_layers, nonlinearity, bidirectional)
        output[:n, rows] = out_b
        grad_x[:n, rows], grad_h0[:, rows], grads_b = rnn_backward(
            grad_output[:n, rows], np.asarray(grad_h_n)[:, rows], cache)
        for name in grads:
            grads[name] += grads_b[name]
    return output, h_n, grad_x, grad_h0, grads


def reference_rnn(x, h0, params, grad_output, grad_h_n, *, num_layers=1, nonlinearity="tanh",
                  bidirectional=False, batch_first=False, lengths=None):
    """The core pair in the user-facing layouts (batch_first, unbatched 2-D input; h0 and grad_h_n
    may be None = zeros). Returns output, h_n, grad_x, grad_h0, grads, shaped like torch's.
    lengths (B,), batched input only: the variable-length semantics (see the module docstring)."""
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

    if lengths is None:
        output, h_n, cache = rnn_forward(x, h0, params, num_layers, nonlinearity, bidirectional)
        grad_x, grad_h0, grads = rnn_backward(grad_output, grad_h_n, cache)
    else:
        output, h_n, grad_x, grad_h0, grads = rnn_forward_backward_lengths(
            x, h0, params, grad_output, grad_h_n, lengths, num_layers, nonlinearity,
            bidirectional)
    if unbatched:
        output, grad_x, h_n, grad_h0 = output[:, 0], grad_x[:, 0], h_n[:, 0], grad_h0[:, 0]
    elif batch_first:
        output, grad_x = output.transpose(1, 0, 2), grad_x.transpose(1, 0, 2)
    return output, h_n, grad_x, grad_h0, grads
