"""The module around the kernel: parameters and their init, gradient accumulation, state dicts,
train/eval and dropout, input conversion, threads."""

import numpy as np
import pytest

import rnncore
from helpers import assert_results_close, make_data, run_reference, run_rnncore
from reference import param_shapes

I, H = 4, 5
OPTS = dict(num_layers=2, nonlinearity="tanh", bias=True, bidirectional=True)


def test_public_api():
    for name in ("RNN", "set_num_threads", "get_num_threads"):
        assert name in rnncore.__all__ and callable(getattr(rnncore, name))


# --- parameters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_shapes_order_and_dtype(bias, dtype):
    rnn = rnncore.RNN(I, H, num_layers=3, bias=bias, bidirectional=True, dtype=dtype)
    params = rnn.parameters()
    assert [(k, v.shape) for k, v in params.items()] == \
        list(param_shapes(I, H, 3, bias, bidirectional=True).items())
    assert all(v.dtype == dtype for v in params.values())
    assert [(k, g.shape, g.dtype) for k, g in rnn.grads.items()] == \
        [(k, v.shape, v.dtype) for k, v in params.items()]
    assert all(not g.any() for g in rnn.grads.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameters_and_gradients_start_on_a_cache_line(dtype):
    # The kernels read weight rows in 32-byte vectors; numpy alone aligns to 16 bytes.
    rnn = rnncore.RNN(3, 7, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    state = rnn.state_dict()
    rnn.load_state_dict({k: v[..., ::-1].copy() for k, v in state.items()})  # copied in place
    arrays = {**rnn.parameters(), **{f"grad {k}": g for k, g in rnn.grads.items()}}
    assert {k: a.ctypes.data % 64 for k, a in arrays.items()} == dict.fromkeys(arrays, 0)
    assert all(a.flags.c_contiguous and a.flags.writeable for a in arrays.values())
    np.testing.assert_array_equal(rnn.parameters()["weight_hh_l1_reverse"],
                                  state["weight_hh_l1_reverse"][:, ::-1])


def test_default_dtype_is_float32():
    rnn = rnncore.RNN(I, H)
    assert rnn.parameters()["weight_ih_l0"].dtype == np.float32
    assert rnn(np.zeros((2, 1, I)))[0].dtype == np.float32


def test_init_is_uniform_within_one_over_sqrt_h():
    hidden = 64
    params = rnncore.RNN(I, hidden, seed=0).parameters()
    values = np.concatenate([p.ravel() for p in params.values()])
    bound = 1 / np.sqrt(hidden)
    assert np.all(np.abs(values) <= bound)
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert abs(values.mean()) < 0.05 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound  # the std of U(-b, b)


def test_seed_reproduces_parameters():
    def params(seed):
        return rnncore.RNN(I, H, **OPTS, seed=seed).parameters()

    same, again, other = params(7), params(7), params(8)
    for name in same:
        np.testing.assert_array_equal(same[name], again[name])
        assert not np.array_equal(same[name], other[name])
    unseeded = [rnncore.RNN(I, H, **OPTS).parameters()["weight_hh_l0"] for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_parameters_are_live():
    rnn = rnncore.RNN(I, H, **OPTS, dtype=np.float64, seed=0)
    scaled = {k: 1.5 * v for k, v in rnn.state_dict().items()}
    for p in rnn.parameters().values():
        p *= 1.5  # in place, as an optimizer would
    for name, p in rnn.state_dict().items():
        np.testing.assert_array_equal(p, scaled[name])
    data = make_data(np.random.default_rng(1), 5, 2, I, H, **OPTS)
    assert_results_close(run_rnncore(rnn, *data), run_reference(scaled, *data, **OPTS), np.float64)


# --- gradients -----------------------------------------------------------------------------------

def test_gradients_accumulate_until_zero_grad():
    rnn = rnncore.RNN(I, H, **OPTS, dtype=np.float64, seed=0)
    first = make_data(np.random.default_rng(1), 5, 2, I, H, **OPTS)
    second = make_data(np.random.default_rng(2), 5, 2, I, H, **OPTS)
    for x, h0, grad_output, grad_h_n in (first, second):
        rnn(x, h0)
        rnn.backward(grad_output, grad_h_n)
    grads_1 = run_reference(rnn.parameters(), *first, **OPTS)[-1]
    grads_2 = run_reference(rnn.parameters(), *second, **OPTS)[-1]
    for name, g in rnn.grads.items():
        np.testing.assert_allclose(g, grads_1[name] + grads_2[name], rtol=1e-10, atol=1e-12)
    rnn.zero_grad()
    assert all(not g.any() for g in rnn.grads.values())


def test_backward_uses_the_latest_forward():
    rnn = rnncore.RNN(I, H, **OPTS, dtype=np.float64, seed=0)
    old = make_data(np.random.default_rng(1), 3, 1, I, H, **OPTS)
    new = make_data(np.random.default_rng(2), 5, 2, I, H, **OPTS)
    rnn(old[0], old[1])
    rnn.zero_grad()
    output, h_n = rnn.forward(new[0], new[1])  # forward() is the same as calling the module
    grad_x, grad_h0 = rnn.backward(new[2], new[3])
    got = (output, h_n, grad_x, grad_h0, rnn.grads)
    assert_results_close(got, run_reference(rnn.parameters(), *new, **OPTS), np.float64)


# --- state dicts ---------------------------------------------------------------------------------

def test_state_dict_is_a_copy():
    rnn = rnncore.RNN(I, H, **OPTS, seed=0)
    state = rnn.state_dict()
    assert list(state) == list(rnn.parameters())
    state["weight_ih_l0"][...] = 0
    assert rnn.parameters()["weight_ih_l0"].any()


@pytest.mark.parametrize("convert", [np.float64, list], ids=["float64-arrays", "nested-lists"])
def test_load_state_dict_round_trip(convert):
    source = rnncore.RNN(I, H, **OPTS, seed=1)
    target = rnncore.RNN(I, H, **OPTS, seed=2)
    state = {k: v.astype(np.float64) if convert is np.float64 else v.tolist()
             for k, v in source.state_dict().items()}
    result = target.load_state_dict(state)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for name, p in target.parameters().items():
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p, source.parameters()[name])
    x = np.random.default_rng(3).uniform(-1, 1, (5, 2, I)).astype(np.float32)
    np.testing.assert_array_equal(target(x)[0], source(x)[0])


def refused(rnn, state, strict=True):
    """load_state_dict(state) raises ValueError (not KeyError) and changes no parameter."""
    before = rnn.state_dict()
    with pytest.raises(ValueError) as info:
        rnn.load_state_dict(state, strict=strict)
    for name, p in rnn.parameters().items():
        np.testing.assert_array_equal(p, before[name])
    return str(info.value)


def test_load_state_dict_refusals_are_atomic():
    rnn = rnncore.RNN(I, H, **OPTS, seed=0)
    good = {k: np.zeros_like(v) for k, v in rnn.state_dict().items()}  # all valid, all different
    last = list(good)[-1]
    assert last in refused(rnn, {k: v for k, v in good.items() if k != last})  # missing
    assert "weight_xx_l0" in refused(rnn, {**good, "weight_xx_l0": np.zeros(3)})  # unexpected
    wrong_shape = {**good, last: np.zeros(H + 1)}
    assert last in refused(rnn, wrong_shape)
    assert last in refused(rnn, wrong_shape, strict=False)  # shapes are checked even when lenient
    assert "weight_ih_l0" in refused(rnn, {**good, "weight_ih_l0": good["weight_ih_l0"].T})


def test_load_state_dict_not_strict_reports_keys():
    rnn = rnncore.RNN(I, H, **OPTS, seed=0)
    state = rnn.state_dict()
    new_value = np.full_like(state["weight_hh_l0"], 0.25)
    partial = {"weight_hh_l0": new_value, "extra": np.zeros(2)}
    missing, unexpected = rnn.load_state_dict(partial, strict=False)
    assert sorted(missing) == sorted(k for k in state if k != "weight_hh_l0")
    assert list(unexpected) == ["extra"]
    np.testing.assert_array_equal(rnn.parameters()["weight_hh_l0"], new_value)
    np.testing.assert_array_equal(rnn.parameters()["weight_ih_l0"], state["weight_ih_l0"])


# --- train / eval and dropout --------------------------------------------------------------------

def test_train_eval_flag():
    rnn = rnncore.RNN(I, H)
    assert rnn.training
    rnn.eval()
    assert not rnn.training
    rnn.train()
    assert rnn.training


def test_dropout_only_in_training():
    rnn = rnncore.RNN(I, H, **OPTS, dropout=0.5, dtype=np.float64, seed=0)
    x = np.random.default_rng(1).uniform(-1, 1, (5, 2, I))
    first, second = rnn(x)[0], rnn(x)[0]
    assert not np.array_equal(first, second)  # a fresh mask per call
    rnn.eval()
    np.testing.assert_array_equal(rnn(x)[0], rnn(x)[0])


def test_dropout_mask_scaling_and_backward():
    """Layer 1 is made the identity on non-negative inputs (relu, W_ih = I, W_hh = 0, no bias), so
    output = dropout(layer 0's output) = mask * 2 * h0_out, and the backward must route
    grad_output through the same mask into layer 0."""
    T, B, hidden, p = 3, 64, 32, 0.5
    rnn = rnncore.RNN(I, hidden, num_layers=2, nonlinearity="relu", bias=False, dropout=p,
                      dtype=np.float64, seed=0)
    params = rnn.parameters()
    params["weight_ih_l1"][...] = np.eye(hidden)
    params["weight_hh_l1"][...] = 0
    x, _, grad_output, grad_h_n = make_data(np.random.default_rng(1), T, B, I, hidden, num_layers=2)
    grad_h_n[1] = 0  # layer 1's final state is output[-1]; keep all of layer 1's gradient in G
    output, h_n = rnn(x)
    grad_x, _ = rnn.backward(grad_output, grad_h_n)

    layer0 = {k: v for k, v in params.items() if k.endswith("l0")}
    want_layer0_output = run_reference(layer0, x, None, grad_output, None, nonlinearity="relu")[0]
    kept = output > 0
    np.testing.assert_allclose(output[kept], want_layer0_output[kept] / (1 - p), rtol=1e-12)
    assert 0.4 < 1 - kept.sum() / (want_layer0_output > 0).sum() < 0.6  # dropped fraction ~ p

    # d output / d layer0_output = mask / (1 - p) where kept, 0 elsewhere
    want = run_reference(layer0, x, None, grad_output * kept / (1 - p), grad_h_n[:1],
                         nonlinearity="relu")
    np.testing.assert_allclose(grad_x, want[2], rtol=1e-10, atol=1e-12)
    for name, g in want[4].items():
        np.testing.assert_allclose(rnn.grads[name], g, rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(h_n[0], want[1][0], rtol=1e-12)  # h_n is taken before dropout


def test_dropout_one_drops_everything_between_layers():
    rnn = rnncore.RNN(I, H, **OPTS, dropout=1.0, dtype=np.float64, seed=0)
    x, h0, grad_output, _ = make_data(np.random.default_rng(1), 5, 2, I, H, **OPTS)
    output, _ = rnn(x, h0)
    np.testing.assert_array_equal(rnn(2 * x, h0)[0], output)  # layer 1 never sees x
    grad_x, grad_h0 = rnn.backward(grad_output)
    assert np.all(np.isfinite(output)) and np.all(np.isfinite(grad_h0))
    np.testing.assert_array_equal(grad_x, 0)


# --- input conversion ----------------------------------------------------------------------------

@pytest.mark.parametrize("convert", [
    lambda a: a.astype(np.float64), lambda a: a.astype(np.float16), lambda a: a.tolist(),
    lambda a: np.round(4 * a).astype(np.int32),
], ids=["float64", "float16", "list", "int32"])
def test_real_inputs_of_other_types_are_converted(convert):
    rnn = rnncore.RNN(I, H, **OPTS, dtype=np.float32, seed=0)
    x, h0, grad_output, grad_h_n = (convert(a) for a in
                                    make_data(np.random.default_rng(1), 5, 2, I, H, **OPTS))
    as_float32 = [np.asarray(a, dtype=np.float32) for a in (x, h0, grad_output, grad_h_n)]
    got = run_rnncore(rnn, x, h0, grad_output, grad_h_n)
    want = run_rnncore(rnn, *as_float32)
    for name, g, w in zip(("output", "h_n", "grad_x", "grad_h0"), got, want):
        assert g.dtype == np.float32, name
        np.testing.assert_array_equal(g, w, err_msg=name)


# --- threads -------------------------------------------------------------------------------------

def test_num_threads():
    before = rnncore.get_num_threads()
    rnn = rnncore.RNN(16, 32, **OPTS, dtype=np.float64, seed=0)
    data = make_data(np.random.default_rng(1), 20, 8, 16, 32, **OPTS)
    try:
        results = []
        for n in (1, 2):
            rnncore.set_num_threads(n)
            assert rnncore.get_num_threads() == n
            results.append(run_rnncore(rnn, *data))
    finally:
        rnncore.set_num_threads(before)
    assert rnncore.get_num_threads() == before
    assert_results_close(results[1], results[0], np.float64)


def test_dtype_none_means_the_default_float32():
    # torch's dtype=None is its default dtype, float32; numpy would read None as float64.
    assert rnncore.RNN(2, 3, dtype=None).dtype == np.float32
    assert rnncore.RNNModel(2, 3, 1, dtype=None).dtype == np.float32


@pytest.mark.parametrize("make", [lambda: rnncore.RNN(2, 3), lambda: rnncore.RNNModel(2, 3, 1)])
@pytest.mark.parametrize("not_a_mapping", [None, [("weight_ih_l0", np.zeros((3, 2)))], "weights"])
def test_load_state_dict_names_a_non_mapping(make, not_a_mapping):
    module = make()
    before = {k: v.copy() for k, v in module.parameters().items()}
    with pytest.raises(TypeError, match="expected a mapping of parameter names to arrays, got"):
        module.load_state_dict(not_a_mapping)
    for k, v in module.parameters().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copied_layer_runs_like_the_original(how):
    """copy.deepcopy and pickle give arrays whose dtype objects are equivalent, not identical, to
    numpy's canonical ones: the kernels must take them (they once raised "expected dtype float32,
    got float32")."""
    import copy
    import pickle

    rnn = rnncore.RNN(I, H, **OPTS, seed=0)
    data = make_data(np.random.default_rng(1), 5, 2, I, H, dtype=np.float32, **OPTS)
    twin = copy.deepcopy(rnn) if how == "deepcopy" else pickle.loads(pickle.dumps(rnn))
    for a, b in zip(run_rnncore(rnn, *data)[:4], run_rnncore(twin, *data)[:4]):
        np.testing.assert_array_equal(a, b)
