"""Every kernel set this CPU runs (rnncore.available_isas(): baseline, avx2, avx512) against the
numpy reference's error bound, on odd sizes and wide batches, with lengths, streaming and on 1
and 2 threads; and the ways to choose a set (set_isa, RNNCORE_ISA, rnncore info)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import rnncore
from helpers import assert_results_close, assert_within, make_data, run_reference, run_rnncore
from reference import LAMBDA, UNIT_ROUNDOFF

SETS = rnncore.available_isas()


@pytest.fixture(params=SETS)
def kernel_set(request):
    before = rnncore.get_isa()
    rnncore.set_isa(request.param)
    yield request.param
    rnncore.set_isa(before)


# Around every set's tile heights (6 and 12 rows) and panel widths (16 and 32 floats, 8 and 16
# doubles), and wide batches that split across threads.
SHAPES = [(3, 1, 1, 1), (4, 7, 5, 13), (3, 13, 17, 33), (2, 29, 9, 47), (2, 70, 31, 65),
          (2, 130, 8, 40)]


@pytest.mark.parametrize("T, B, I, H", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_each_set_matches_the_reference(kernel_set, T, B, I, H, dtype, nonlinearity):
    opts = dict(num_layers=2, nonlinearity=nonlinearity, bias=True, batch_first=False,
                bidirectional=True)
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    data = make_data(np.random.default_rng(1), T, B, I, H, dtype=dtype, **opts)
    got = run_rnncore(rnn, *data)
    assert rnncore.get_isa() == kernel_set
    assert_results_close(got, run_reference(rnn.parameters(), *data, **opts), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_set_with_lengths(kernel_set, dtype):
    opts = dict(num_layers=2, nonlinearity="tanh", bias=True, batch_first=True,
                bidirectional=True)
    T, B, I, H = 9, 27, 11, 37
    rnn = rnncore.RNN(I, H, **opts, dtype=dtype, seed=0)
    data = make_data(np.random.default_rng(2), T, B, I, H, dtype=dtype, **opts)
    lengths = np.random.default_rng(3).integers(1, T + 1, B)
    got = run_rnncore(rnn, *data, lengths=lengths)
    want = run_reference(rnn.parameters(), *data, lengths=lengths, **opts)
    assert_results_close(got, want, dtype)


def test_each_set_is_independent_of_the_thread_count(kernel_set):
    rnn = rnncore.RNN(40, 96, num_layers=2, bidirectional=True, seed=0)
    data = make_data(np.random.default_rng(4), 30, 64, 40, 96, num_layers=2, bidirectional=True,
                     dtype=np.float32)
    before = rnncore.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            rnncore.set_num_threads(n)
            results.append(run_rnncore(rnn, *data))
    finally:
        rnncore.set_num_threads(before)
    for a, b in zip(results[0][:4], results[1][:4]):
        np.testing.assert_array_equal(a, b)
    for name in results[0][4]:
        np.testing.assert_array_equal(results[0][4][name], results[1][4][name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_set_streams_like_its_forward(kernel_set, dtype):
    """The step kernel sums in another order than the time loop: equal to the reference's bound."""
    rnn = rnncore.RNN(7, 64, num_layers=1, dtype=dtype, seed=0)
    x, h0, grad_output, grad_h_n = make_data(np.random.default_rng(5), 5, 3, 7, 64, dtype=dtype)
    want = run_reference(rnn.parameters(), x, h0, grad_output, grad_h_n)
    h, outputs = h0, []
    for t in range(len(x)):
        y, h = rnn.step(x[t], h)
        outputs.append(y)
    u = UNIT_ROUNDOFF[np.dtype(dtype)] + UNIT_ROUNDOFF[np.dtype(np.float64)]
    for name, g, w, sd in [("output", np.stack(outputs), want[0], want.sd[0]),
                           ("h_n", h, want[1], want.sd[1])]:
        assert g.dtype == dtype
        assert_within(g, w, LAMBDA * u * sd, name)


def test_set_isa_refuses_unknown_sets():
    before = rnncore.get_isa()
    for bad in ("sse9", "", "AVX2"):
        with pytest.raises(ValueError, match="baseline"):
            rnncore.set_isa(bad)
        assert rnncore.get_isa() == before
    with pytest.raises(TypeError, match="str"):
        rnncore.set_isa(2)


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_environment_variable_chooses_the_set():
    for name in SETS:
        done = run_python("import rnncore; print(rnncore.get_isa())", RNNCORE_ISA=name)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == name
    done = run_python("import rnncore", RNNCORE_ISA="avx1024")
    assert done.returncode != 0
    assert "RNNCORE_ISA=avx1024" in done.stderr and "baseline" in done.stderr


def test_info_names_the_set_in_use_and_the_available_ones():
    done = run_python("from rnncore.__main__ import main; main(['info'])", RNNCORE_ISA="baseline")
    assert done.returncode == 0, done.stderr
    assert f"kernel set: baseline (available: {', '.join(SETS)}" in done.stdout


# The head's GEMMs at a size where the AVX-512 set runs them on its tiles (gemm_rows: at least 32
# columns and depth and 2^20 multiply-adds): 301 rows (a remainder of 1 row after the 6-row tiles),
# 96 -> 70 columns (a part panel). The bound is Higham's for a sum of n products, n u sum|terms|
# (with n one more than the terms, for the bias), against a long-double reference: it holds for
# any order of the sums, so for every set and CPU.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_set_runs_a_wide_head_within_the_rounding_bound(kernel_set, dtype):
    N, I, O = 301, 96, 70
    model = rnncore.RNNModel(4, I, O, head=(), dtype=dtype, seed=0)
    rng = np.random.default_rng(4)
    a, dy = rng.standard_normal((N, I)).astype(dtype), rng.standard_normal((N, O)).astype(dtype)
    w, b = model.parameters()["head.0.weight"], model.parameters()["head.0.bias"]
    u = np.finfo(dtype).eps / 2
    wide = [x.astype(np.longdouble) for x in (a, dy, w, b)]
    a_, dy_, w_, b_ = wide

    def results(threads):
        rnncore.set_num_threads(threads)
        model.zero_grad()
        y = model.head.forward(a).copy()
        da = model.head.backward(dy).copy()
        return y, da, model.grads["head.0.weight"].copy(), model.grads["head.0.bias"].copy()

    before = rnncore.get_num_threads()
    try:
        y, da, dw, db = results(1)
        again = results(2)
    finally:
        rnncore.set_num_threads(before)
    assert_within(y, a_ @ w_.T + b_, (I + 1) * u * (abs(a_) @ abs(w_).T + abs(b_)), "y")
    assert_within(da, dy_ @ w_, O * u * (abs(dy_) @ abs(w_)), "da")
    assert_within(dw, dy_.T @ a_, N * u * (abs(dy_).T @ abs(a_)), "dw")
    assert_within(db, dy_.sum(0), N * u * abs(dy_).sum(0), "db")
    for name, one, two in zip(("y", "da", "dw", "db"), (y, da, dw, db), again):
        assert np.array_equal(one, two), f"{name}: other bits on 2 threads"
