"""Variable-length batches, ``rnn(x, h0, lengths=...)``: the semantics of torch's
pack_padded_sequence(enforce_sorted=False) -> nn.RNN -> pad_packed_sequence(total_length=T).

rnncore against torch's packed path and against the numpy reference (which is itself checked
against torch here), float64 finite differences, edge cases (all full, length 1, B=1, order,
dtypes of lengths), invalid lengths, thread-count independence, RNNModel, and length_mask."""

import numpy as np
import pytest

import rnncore
from helpers import (assert_results_close, make_data, make_params, make_torch_rnn, run_reference,
                     run_rnncore)
from model_helpers import numerical_gradient
from rnncore.lengths import check_lengths

I, H, T, B = 4, 5, 7, 5
LENGTHS = [4, 7, 1, 4, 6]  # unsorted, a tie, a 1 and a full-length sequence

OPTION_GRID = [dict(num_layers=L, bidirectional=bi, batch_first=bf, nonlinearity=act, bias=bias)
               for L in (1, 2) for bi in (False, True) for bf in (False, True)
               for act in ("tanh", "relu") for bias in (True, False)]
DTYPES = [np.float32, np.float64]


def option_id(opts):
    return (f"L{opts['num_layers']}{'-bi' if opts['bidirectional'] else ''}"
            f"{'-bf' if opts['batch_first'] else ''}-{opts['nonlinearity']}"
            f"{'' if opts['bias'] else '-nobias'}")


def padded(lengths, batch_first, T=T):
    """Bool (T, B) (or (B, T)): True at padded steps (t >= lengths[b])."""
    pad = np.arange(T)[:, None] >= np.asarray(lengths)[None, :]
    return pad.T if batch_first else pad


def run_lengths(rnn, x, h0, grad_output, grad_h_n, lengths):
    return run_rnncore(rnn, x, h0, grad_output, grad_h_n, lengths=lengths)


def run_torch_packed(torch_rnn, x, h0, grad_output, grad_h_n, lengths, batch_first):
    """The five results from torch's packed path, padded back to x's T (h0, grad_h_n given)."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    x, h0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    total = x.shape[1] if batch_first else x.shape[0]
    torch_rnn.zero_grad()
    packed = pack_padded_sequence(x, torch.as_tensor(np.asarray(lengths), dtype=torch.int64),
                                  batch_first=batch_first, enforce_sorted=False)
    output, h_n = torch_rnn(packed, h0)
    output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=total)
    torch.autograd.backward([output, h_n], [torch.tensor(grad_output), torch.tensor(grad_h_n)])
    grads = {name: p.grad.numpy() for name, p in torch_rnn.named_parameters()}
    return output.detach().numpy(), h_n.detach().numpy(), x.grad.numpy(), h0.grad.numpy(), grads


def problem(opts, dtype, T=T, B=B, input_size=I, hidden_size=H, seed=0):
    """An rnncore.RNN and random x, h0, grad_output, grad_h_n (also nonzero at padded steps)."""
    rnn = rnncore.RNN(input_size, hidden_size, **opts, dtype=dtype, seed=seed)
    data = make_data(np.random.default_rng(seed + 1), T, B, input_size, hidden_size, dtype=dtype,
                     **opts)
    return rnn, data


def reference_lengths(params, data, lengths, opts):
    """The reference's five results for data = (x, h0, grad_output, grad_h_n)."""
    return run_reference(params, *data, lengths=lengths, **opts)


# ---- the reference itself, against torch (float64) ----------------------------------------------

@pytest.mark.parametrize("opts", OPTION_GRID, ids=option_id)
def test_reference_matches_torch_packed(opts):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = make_params(rng, I, H, **opts)
    data = make_data(rng, T, B, I, H, **opts)
    want = run_torch_packed(make_torch_rnn(params, I, H, np.float64, **opts), *data, LENGTHS,
                            opts["batch_first"])
    assert_results_close(reference_lengths(params, data, LENGTHS, opts), want, np.float64)


def test_reference_padded_steps_and_final_states():
    """Zero output and grad_x at padded steps; h_n is the forward state at lengths[b]-1 and the
    reverse state at t = 0 (torch-free)."""
    opts = dict(num_layers=2, bidirectional=True, batch_first=False, nonlinearity="tanh",
                bias=True)
    rng = np.random.default_rng(2)
    params = make_params(rng, I, H, **opts)
    data = make_data(rng, T, B, I, H, **opts)
    output, h_n, grad_x, _, _ = reference_lengths(params, data, LENGTHS, opts)
    pad = padded(LENGTHS, False)
    assert np.all(output[pad] == 0) and np.all(grad_x[pad] == 0)
    assert np.all(output[~pad] != 0)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(h_n[2, b], output[n - 1, b, :H])  # layer 1 forward
        np.testing.assert_array_equal(h_n[3, b], output[0, b, H:])      # layer 1 reverse


# ---- rnncore against torch and the reference ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", OPTION_GRID, ids=option_id)
def test_matches_torch_packed(opts, dtype):
    pytest.importorskip("torch")
    rnn, data = problem(opts, dtype)
    torch_rnn = make_torch_rnn(rnn.state_dict(), I, H, dtype, **opts)
    want = run_torch_packed(torch_rnn, *data, LENGTHS, opts["batch_first"])
    bound = reference_lengths(rnn.parameters(), data, LENGTHS, opts).sd
    assert_results_close(run_lengths(rnn, *data, LENGTHS), want, dtype, want_dtype=dtype, sd=bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", OPTION_GRID, ids=option_id)
def test_matches_reference(opts, dtype):
    rnn, data = problem(opts, dtype)
    got = run_lengths(rnn, *data, LENGTHS)
    assert_results_close(got, reference_lengths(rnn.parameters(), data, LENGTHS, opts), dtype)
    output, _, grad_x, _, _ = got
    pad = padded(LENGTHS, opts["batch_first"])
    assert np.all(output[pad] == 0) and np.all(grad_x[pad] == 0)  # exactly zero


# Sizes around SIMD widths and micro-tile edges, random lengths, no h0 / no grad_h_n.
@pytest.mark.parametrize("T, B, input_size, hidden_size", [
    (9, 13, 9, 17), (5, 3, 33, 31), (12, 17, 8, 65)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("give_h0", [True, False])
def test_sizes_against_reference(T, B, input_size, hidden_size, dtype, give_h0):
    opts = dict(num_layers=2, bidirectional=True, batch_first=False, nonlinearity="tanh",
                bias=True)
    rnn, (x, h0, grad_output, grad_h_n) = problem(opts, dtype, T, B, input_size, hidden_size)
    lengths = np.random.default_rng(3).integers(1, T + 1, B)
    h0, grad_h_n = (h0, grad_h_n) if give_h0 else (None, None)
    got = run_lengths(rnn, x, h0, grad_output, grad_h_n, lengths)
    want = reference_lengths(rnn.parameters(), (x, h0, grad_output, grad_h_n), lengths, opts)
    assert_results_close(got, want, dtype)


# ---- finite differences -------------------------------------------------------------------------

GRADCHECK_CONFIGS = [
    dict(num_layers=2, bidirectional=True, nonlinearity="tanh"),
    dict(num_layers=2, bidirectional=True, nonlinearity="relu", batch_first=True),
    dict(num_layers=1, nonlinearity="tanh", bias=False),
    dict(num_layers=2, bidirectional=True, nonlinearity="tanh", bias=False, batch_first=True),
]


@pytest.mark.parametrize("config", GRADCHECK_CONFIGS,
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_backward_matches_finite_differences(config):
    lengths = [3, 5, 1, 3]
    rnn = rnncore.RNN(3, 4, **config, dtype=np.float64, seed=0)
    x, h0, G, Gh = make_data(np.random.default_rng(1), 5, 4, 3, 4, **config)

    def loss():  # G is nonzero at padded steps too: they must not count
        output, h_n = rnn(x, h0, lengths=lengths)
        return np.sum(output * G) + np.sum(h_n * Gh)

    loss()
    rnn.zero_grad()
    grad_x, grad_h0 = rnn.backward(G, Gh)
    analytic = {"x": grad_x, "h0": grad_h0, **rnn.grads}
    arrays = {"x": x, "h0": h0, **rnn.parameters()}
    assert analytic.keys() == arrays.keys()
    for name, a in arrays.items():
        numeric = numerical_gradient(loss, a)
        assert np.any(numeric), name
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


# ---- edge cases ---------------------------------------------------------------------------------

EDGE_OPTS = [dict(num_layers=1, bidirectional=False, batch_first=False),
             dict(num_layers=2, bidirectional=True, batch_first=True),
             dict(num_layers=2, bidirectional=True, batch_first=False, nonlinearity="relu")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", EDGE_OPTS, ids=str)
def test_all_lengths_full_is_the_plain_call_bit_for_bit(opts, dtype):
    rnn, data = problem(opts, dtype, T=9, B=6, input_size=8, hidden_size=12)
    want = run_rnncore(rnn, *data)
    for lengths in ([9] * 6, np.full(6, 9, np.int32)):
        got = run_lengths(rnn, *data, lengths)
        for g, w, name in zip(got[:4], want[:4], ("output", "h_n", "grad_x", "grad_h0")):
            np.testing.assert_array_equal(g, w, err_msg=name)
        for name in want[4]:
            np.testing.assert_array_equal(got[4][name], want[4][name], err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", EDGE_OPTS, ids=str)
def test_one_sequence_equals_the_plain_call_on_its_steps(opts, dtype):
    """B=1, length n < T: the first n steps of the plain call on x[:n], zeros after."""
    n = 3
    rnn, (x, h0, G, Gh) = problem(opts, dtype, B=1)
    got = run_lengths(rnn, x, h0, G, Gh, [n])
    cut = (slice(None), slice(0, n)) if opts["batch_first"] else (slice(0, n),)
    want = run_rnncore(rnn, x[cut], h0, G[cut], Gh)
    output, h_n, grad_x, grad_h0, grads = got
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(output[cut], want[0], **tol)
    np.testing.assert_allclose(grad_x[cut], want[2], **tol)
    for got_a, want_a in ((h_n, want[1]), (grad_h0, want[3])):
        np.testing.assert_allclose(got_a, want_a, **tol)
    for name in grads:
        np.testing.assert_allclose(grads[name], want[4][name], **tol, err_msg=name)
    pad = padded([n], opts["batch_first"])
    assert np.all(output[pad] == 0) and np.all(grad_x[pad] == 0)


@pytest.mark.parametrize("opts", EDGE_OPTS, ids=str)
def test_all_lengths_one(opts):
    rnn, (x, h0, G, Gh) = problem(opts, np.float64)
    got = run_lengths(rnn, x, h0, G, Gh, [1] * B)
    want = reference_lengths(rnn.parameters(), (x, h0, G, Gh), [1] * B, opts)
    assert_results_close(got, want, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_order_of_the_sequences_does_not_matter(dtype):
    """Permuting the batch (lengths with it) permutes output, h_n, grad_x and grad_h0; the
    parameter gradients are the same sums in another order."""
    opts = dict(num_layers=2, bidirectional=True, batch_first=False)
    rnn, (x, h0, G, Gh) = problem(opts, dtype)
    order = np.argsort(LENGTHS, kind="stable")[::-1]  # sorted by decreasing length
    got = run_lengths(rnn, x, h0, G, Gh, LENGTHS)
    want = run_lengths(rnn, x[:, order], h0[:, order], G[:, order], Gh[:, order],
                       np.asarray(LENGTHS)[order])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for g, w, name in zip(got[:4], want[:4], ("output", "h_n", "grad_x", "grad_h0")):
        np.testing.assert_allclose(g[:, order], w, **tol, err_msg=name)
    for name in got[4]:
        np.testing.assert_allclose(got[4][name], want[4][name], **tol, err_msg=name)


def test_lengths_as_list_tuple_int32_int64_uint8_agree_bit_for_bit():
    opts = dict(num_layers=2, bidirectional=True, batch_first=True)
    rnn, data = problem(opts, np.float32)
    want = run_lengths(rnn, *data, LENGTHS)
    for lengths in (tuple(LENGTHS), np.array(LENGTHS, np.int32), np.array(LENGTHS, np.int64),
                    np.array(LENGTHS, np.uint8), np.repeat(LENGTHS, 2)[::2]):  # last: strided
        got = run_lengths(rnn, *data, lengths)
        for g, w in zip(got[:4], want[:4]):
            np.testing.assert_array_equal(g, w)
        for name in want[4]:
            np.testing.assert_array_equal(got[4][name], want[4][name])


@pytest.mark.parametrize("dtype", DTYPES)
def test_padded_steps_of_x_and_grad_output_are_never_read(dtype):
    """As torch's pack_padded_sequence drops them: not even nan or inf there changes anything."""
    opts = dict(num_layers=2, bidirectional=True, batch_first=True)
    rnn, (x, h0, G, Gh) = problem(opts, dtype)
    pad = padded(LENGTHS, True)
    G_changed, x_changed = G.copy(), x.copy()
    G_changed[pad] = np.inf
    x_changed[pad] = np.nan
    got = run_lengths(rnn, x, h0, G, Gh, LENGTHS)
    want = run_lengths(rnn, x_changed, h0, G_changed, Gh, LENGTHS)
    for g, w in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(g, w)
    for name in got[4]:
        np.testing.assert_array_equal(got[4][name], want[4][name])


def test_empty_batch():
    rnn = rnncore.RNN(I, H, num_layers=2, bidirectional=True, seed=0)
    output, h_n = rnn(np.zeros((T, 0, I), np.float32), lengths=np.zeros(0, np.int64))
    assert output.shape == (T, 0, 2 * H) and h_n.shape == (4, 0, H)
    grad_x, grad_h0 = rnn.backward(np.zeros_like(output))
    assert grad_x.shape == (T, 0, I) and grad_h0.shape == (4, 0, H)


def test_backward_uses_the_latest_forward_lengths_or_none():
    """A plain call after a call with lengths is a plain call again (nothing sticks)."""
    opts = dict(num_layers=2, bidirectional=True, batch_first=False)
    rnn, data = problem(opts, np.float64)
    want = run_rnncore(rnn, *data)
    run_lengths(rnn, *data, LENGTHS)
    got = run_rnncore(rnn, *data)
    for g, w in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(g, w)


def test_without_h0_and_grad_h_n():
    opts = dict(num_layers=2, bidirectional=True, batch_first=False, nonlinearity="tanh")
    rnn, (x, _, G, _) = problem(opts, np.float64)
    got = run_lengths(rnn, x, None, G, None, LENGTHS)
    want = reference_lengths(rnn.parameters(), (x, None, G, None), LENGTHS, opts)
    assert_results_close(got, want, np.float64)


def test_dropout_applies_as_usual():
    """In training mode with dropout, full lengths draw the same masks as the plain call; padded
    steps stay zero."""
    opts = dict(num_layers=3, bidirectional=True, batch_first=False, dropout=0.5)
    x, h0, G, Gh = make_data(np.random.default_rng(1), T, B, I, H, num_layers=3,
                             bidirectional=True)
    a = rnncore.RNN(I, H, **opts, dtype=np.float64, seed=0)
    b = rnncore.RNN(I, H, **opts, dtype=np.float64, seed=0)
    want = run_rnncore(a, x, h0, G, Gh)
    got = run_lengths(b, x, h0, G, Gh, [T] * B)
    for g, w in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(g, w)
    output, _, grad_x, _, _ = run_lengths(b, x, h0, G, Gh, LENGTHS)
    pad = padded(LENGTHS, False)
    assert np.all(output[pad] == 0) and np.all(grad_x[pad] == 0)


def test_results_do_not_depend_on_the_thread_count():
    # Large enough for the kernels to use their threads (more than 8 Mflop per call).
    opts = dict(num_layers=2, bidirectional=True, batch_first=False)
    rnn, (x, h0, G, Gh) = problem(opts, np.float32, T=40, B=24, input_size=48, hidden_size=96)
    lengths = np.random.default_rng(5).integers(1, 41, 24)
    before = rnncore.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            rnncore.set_num_threads(n)
            results.append(run_lengths(rnn, x, h0, G, Gh, lengths))
    finally:
        rnncore.set_num_threads(before)
    (*arrays, grads), (*want_arrays, want_grads) = results
    for g, w in zip(arrays, want_arrays):
        np.testing.assert_array_equal(g, w)
    for name in grads:
        np.testing.assert_array_equal(grads[name], want_grads[name], err_msg=name)


# ---- invalid lengths ----------------------------------------------------------------------------

@pytest.mark.parametrize("lengths, match", [
    ([4, 7, 1, 4], r"expected shape \(B,\) = \(5,\), one length per sequence, got shape \(4,\)"),
    ([[4, 7, 1, 4, 6]], r"got shape \(1, 5\)"),
    (5, r"got shape \(\)"),
    ([4, 7, 0, 4, 6], r"in \[1, T\] = \[1, 7\], got 0 \(at index 2\)"),
    ([4, 7, -1, 4, 6], r"got -1"),
    ([4, 8, 1, 4, 6], r"in \[1, T\] = \[1, 7\], got 8 \(at index 1\)"),
    ([4.0, 7.0, 1.0, 4.0, 6.0], "expected integers, got dtype float64"),
    (np.array(LENGTHS, np.float32), "expected integers, got dtype float32"),
    ([True] * 5, "expected integers, got dtype bool"),
    (["4", "7", "1", "4", "6"], "expected integers, got dtype <U1"),
    ([4, 7, None, 4, 6], "expected integers, got dtype object"),
])
def test_invalid_lengths_raise_value_error(lengths, match):
    rnn, (x, h0, _, _) = problem(dict(num_layers=1), np.float32)
    with pytest.raises(ValueError, match=match):
        check_lengths(lengths, T, B)
    with pytest.raises(ValueError, match="lengths"):
        rnn(x, h0, lengths=lengths)


def test_unbatched_input_with_lengths_raises_value_error():
    rnn = rnncore.RNN(I, H, seed=0)
    with pytest.raises(ValueError, match="lengths"):
        rnn(np.zeros((T, I), np.float32), lengths=[T])
    model = rnncore.RNNModel(I, H, 2, seed=0)
    with pytest.raises(ValueError, match="lengths"):
        model(np.zeros((T, I), np.float32), lengths=[T])


def test_invalid_lengths_through_the_model():
    model = rnncore.RNNModel(I, H, 2, batch_first=True, seed=0)
    x = np.zeros((B, T, I), np.float32)
    with pytest.raises(ValueError, match=r"\[1, T\] = \[1, 7\]"):
        model(x, lengths=[T + 1] * B)


# ---- RNNModel ------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_model_matches_torch_packed_then_head(bidirectional, batch_first):
    """model(x, lengths=...) is torch's head(pad_packed_sequence(rnn(packed))): the RNN part is 0
    at padded steps, so y there is head(0); head gradients count the padded rows too (as
    torch's), the RNN's and grad_x ignore them."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from model_helpers import small_model, torch_model

    model = small_model(bidirectional=bidirectional, batch_first=batch_first)
    net = torch_model(model)
    rng = np.random.default_rng(0)
    shape = (B, T) if batch_first else (T, B)
    x = rng.standard_normal((*shape, 3))
    h0 = rng.standard_normal((2 * model.num_directions, B, 5))
    G = rng.standard_normal((*shape, 4))  # nonzero at padded steps
    Gh = rng.standard_normal(h0.shape)

    model.zero_grad()
    y = model(x, h0, lengths=LENGTHS)
    h_n = model.h_n.copy()
    grad_x = model.backward(G, Gh)

    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=batch_first,
                                  enforce_sorted=False)
    out, h_n_t = net.rnn(packed, h0t)
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    y_t = net.head(out)
    torch.autograd.backward([y_t, h_n_t], [torch.tensor(G), torch.tensor(Gh)])

    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **tol)
    np.testing.assert_allclose(h_n, h_n_t.detach().numpy(), **tol)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(model.grad_h0, h0t.grad.numpy(), **tol)
    torch_grads = dict(net.named_parameters())
    for name, g in model.grads.items():
        np.testing.assert_allclose(g, torch_grads[name].grad.numpy(), **tol, err_msg=name)


def test_model_output_at_padded_steps_is_the_head_of_zero():
    from model_helpers import small_model

    model = small_model(batch_first=True, bidirectional=True)
    x = np.random.default_rng(1).standard_normal((B, T, 3))
    y = model(x, lengths=LENGTHS)
    pad = padded(LENGTHS, True)
    head_of_zero = model.head.forward(np.zeros((1, 2 * 5)))[0]
    # Up to rounding: BLAS may sum one row and many rows in different orders.
    np.testing.assert_allclose(y[pad], np.broadcast_to(head_of_zero, y[pad].shape), rtol=1e-12,
                               atol=1e-15)
    # The valid steps are the head of the RNN's output.
    output, _ = model.rnn(x, lengths=LENGTHS)
    assert np.all(output[pad] == 0)
    np.testing.assert_allclose(y[~pad], model.head.forward(output[~pad]), rtol=1e-12)


def test_model_backward_with_masked_loss_matches_finite_differences():
    """The training use: a masked loss; gradients w.r.t. every parameter and x."""
    from model_helpers import small_model

    model = small_model(bidirectional=True)
    rng = np.random.default_rng(2)
    lengths = [2, 4, 1]
    x = rng.standard_normal((4, 3, 3))
    target = rng.standard_normal((4, 3, 4))
    mask = rnncore.length_mask(lengths, 4)

    def loss():
        return rnncore.losses.mse(model(x, lengths=lengths), target, mask)[0]

    loss()
    model.zero_grad()
    grad_x = model.backward(rnncore.losses.mse(model(x, lengths=lengths), target, mask)[1])
    analytic = {"x": grad_x, **model.grads}
    arrays = {"x": x, **model.parameters()}
    for name, a in arrays.items():
        np.testing.assert_allclose(analytic[name], numerical_gradient(loss, a),
                                   rtol=1e-6, atol=1e-9, err_msg=name)


# ---- length_mask and check_lengths ---------------------------------------------------------------

def test_length_mask_values_and_layouts():
    mask = rnncore.length_mask([3, 1, 4], 4)
    assert mask.dtype == np.bool_ and mask.shape == (4, 3)
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1]])
    bf = rnncore.length_mask(np.array([3, 1, 4], np.int32), 4, batch_first=True)
    assert bf.shape == (3, 4) and bf.flags.c_contiguous
    np.testing.assert_array_equal(bf, mask.T)
    assert rnncore.length_mask([2], 2).all()
    assert rnncore.length_mask(np.zeros(0, np.int64), 3).shape == (3, 0)
    assert "length_mask" in rnncore.__all__


def test_length_mask_matches_the_padded_steps_of_a_forward():
    rnn, (x, h0, _, _) = problem(dict(num_layers=1), np.float64)
    output, _ = rnn(x, h0, lengths=LENGTHS)
    mask = rnncore.length_mask(LENGTHS, T)
    assert np.all(output[~mask] == 0) and np.all(output[mask] != 0)


@pytest.mark.parametrize("lengths, T_, match", [
    ([0, 2], 3, r"in \[1, T\] = \[1, 3\], got 0"),
    ([2, 4], 3, r"got 4 \(at index 1\)"),
    ([1.0, 2.0], 3, "expected integers, got dtype float64"),
    ([[1, 2]], 3, r"expected shape \(B,\), one length per sequence, got shape \(1, 2\)"),
    ([1, 2], 0, "T: expected a positive integer"),
    ([1, 2], 2.0, "T: expected a positive integer"),
    ([1, 2], True, "T: expected a positive integer"),
])
def test_length_mask_errors(lengths, T_, match):
    with pytest.raises(ValueError, match=match):
        rnncore.length_mask(lengths, T_)


def test_check_lengths_returns_a_new_int64_array():
    given = np.array([3, 1, 2], np.int64)
    got = check_lengths(given, 3, 3)
    assert got.dtype == np.int64 and got.shape == (3,) and got is not given
    np.testing.assert_array_equal(got, given)
    big = np.array([2**63 - 1], np.uint64)  # compared in its own dtype: no wrap-around to negative
    with pytest.raises(ValueError, match="got 9223372036854775807"):
        check_lengths(big, 3, 1)
    with pytest.raises(ValueError, match="got 18446744073709551615"):
        check_lengths(np.array([2**64 - 1], np.uint64), 3, 1)


def test_check_lengths_takes_torch_tensors():
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(check_lengths(torch.tensor([2, 3]), 3, 2), [2, 3])
    with pytest.raises(ValueError, match="expected integers"):
        check_lengths(torch.tensor([2.0, 3.0]), 3, 2)
