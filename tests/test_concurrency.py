"""Compute runs with the GIL released and the kernels' thread pool serves one caller at a time
(others run their tasks themselves): models used from several Python threads at once must give
the serial results, and sharing one model between threads must not crash or hang."""

import threading

import numpy as np
import pytest

import rnncore


def train_step(rnn, x, grad):
    rnn.zero_grad()
    output, h_n = rnn(x)
    grad_x, grad_h0 = rnn.backward(grad)
    return [output.copy(), h_n, grad_x, grad_h0] + [g.copy() for g in rnn.grads.values()]


def make_problem(seed, batch=24):
    # Large enough for the kernels to use their threads (more than 8 Mflop per call). A batch of
    # 24 splits into even slices of micro-tiles; 64 (10 tiles and 4 rows) does not, and 2 threads
    # share each step by columns instead.
    rnn = rnncore.RNN(48, 96, num_layers=2, bidirectional=True, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, batch, 48)).astype(np.float32)
    grad = rng.standard_normal((40, batch, 192)).astype(np.float32)
    return rnn, x, grad


def run_in_threads(jobs):
    results, errors = [None] * len(jobs), []

    def work(i, job):
        try:
            results[i] = job()
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


@pytest.mark.parametrize("batch", [24, 64])
def test_separate_models_in_threads_match_serial(batch):
    problems = [make_problem(seed, batch) for seed in range(4)]
    serial = [train_step(*p) for p in problems]
    for _ in range(3):
        parallel = run_in_threads([lambda p=p: [train_step(*p) for _ in range(5)][-1] for p in problems])
        for got, want in zip(parallel, serial):
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("batch", [24, 64])
def test_results_do_not_depend_on_the_thread_count(batch):
    rnn, x, grad = make_problem(7, batch)
    before = rnncore.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            rnncore.set_num_threads(n)
            results.append(train_step(rnn, x, grad))
    finally:
        rnncore.set_num_threads(before)
    for other in results[1:]:
        for g, w in zip(other, results[0]):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("batch", [24, 64])
def test_one_model_shared_by_threads_neither_crashes_nor_hangs(batch):
    rnn, x, grad = make_problem(3, batch)
    # Interleaved forward/backward calls may pair one thread's backward with another's forward,
    # so only the absence of crashes, hangs and undocumented errors is checked, then that the
    # model still works alone.
    run_in_threads([lambda: [train_step(rnn, x, grad) for _ in range(5)] for _ in range(3)])
    want = train_step(*make_problem(3, batch))
    for g, w in zip(train_step(rnn, x, grad), want):
        np.testing.assert_array_equal(g, w)
