"""rnncore.distributed on a LocalCluster of 2 worker processes x 1 thread, over the loopback
interface: training equal to rnncore.fit, bit for bit from run to run, predict equal to model(x),
and killed workers (fit raises WorkerLost and resumes from its checkpoint; predict still finishes).
Skipped without the `dask` extra."""

import os
import time

import numpy as np
import pytest

import rnncore

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
rd = pytest.importorskip("rnncore.distributed")

WAIT_S = 60  # the most any wait on the cluster may take


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster, timeout=WAIT_S)
    try:
        c.wait_for_workers(2, timeout=WAIT_S)
        yield c
    finally:
        c.close(timeout=WAIT_S)
        cluster.close(timeout=WAIT_S)


def two_workers_again(client, lost):
    """Wait until the nanny has replaced the `lost` worker, so the cluster has 2 again."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        workers = set(client.scheduler_info(n_workers=-1)["workers"])
        if len(workers) == 2 and lost not in workers:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the cluster did not get 2 workers back within {WAIT_S} s")


def make_model(dtype=np.float64, **options):
    kwargs = dict(input_size=3, hidden_size=6, output_size=2, num_layers=2, head=(5,),
                  bidirectional=True, dtype=dtype, seed=0)
    kwargs.update(options)
    return rnncore.RNNModel(**kwargs)


def arrays(N=40, T=9, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, N, 3)), rng.standard_normal((T, N, 2))


def sequences(N=36, seed=2):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 14, N)
    X = [rng.standard_normal((n, 3)) for n in lengths]
    return X, [rng.standard_normal((n, 2)) for n in lengths]


def train_both(make, X, Y, client, **kwargs):
    """The same training in one process and on the cluster; the two models, histories."""
    ours, theirs = make(), make()
    kwargs = dict(dict(progress=False, seed=3), **kwargs)
    only_ours = {k: kwargs.pop(k) for k in ("replicate_data",) if k in kwargs}
    want = rnncore.fit(theirs, X, Y, optimizer=rnncore.optim.Adam(theirs, lr=0.01), **kwargs)
    got = rd.fit(ours, X, Y, client=client, optimizer=rnncore.optim.Adam(ours, lr=0.01),
                 timeout=WAIT_S, **kwargs, **only_ours)
    return ours, theirs, got, want


def assert_same_parameters(got, want, **tol):
    for name, p in want.parameters().items():
        if tol:
            np.testing.assert_allclose(got.parameters()[name], p, err_msg=name, **tol)
        else:
            np.testing.assert_array_equal(got.parameters()[name], p, err_msg=name)


# 20 optimizer steps in each case (4 epochs x 5 batches; 1 x 5 x 4 tbptt chunks; ...)
FIT_CASES = {
    "bidirectional": (lambda: make_model(), lambda: arrays(), dict(epochs=4, batch_size=8)),
    "lengths": (lambda: make_model(), lambda: sequences(N=40),
                dict(epochs=4, batch_size=8, clip=0.5)),
    "tbptt": (lambda: make_model(bidirectional=False), lambda: arrays(N=20, T=20),
              dict(epochs=1, batch_size=4, tbptt=5)),
    "lengths+tbptt+mask": (lambda: make_model(bidirectional=False), lambda: sequences(N=20),
                           dict(epochs=2, batch_size=4, tbptt=6, clip=0.3)),
    "float32+batch_first": (lambda: make_model(np.float32, batch_first=True),
                            lambda: tuple(a.swapaxes(0, 1) for a in arrays()),
                            dict(epochs=4, batch_size=8)),
}


FIT_CASES["cross_entropy"] = (lambda: make_model(output_size=4),
                             lambda: (arrays()[0], np.random.default_rng(5).integers(0, 4, (9, 40))),
                             dict(epochs=4, batch_size=8, loss="cross_entropy"))
FIT_CASES["lengths+tbptt, replicate_data"] = (*FIT_CASES["lengths+tbptt+mask"][:2],
                                              dict(epochs=2, batch_size=5, tbptt=6,
                                                   replicate_data=True))


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_equals_single_process_fit(client, case):
    make, data, kwargs = FIT_CASES[case]
    X, Y = data()
    if "mask" in case:  # every third step of each sequence does not count
        kwargs = dict(kwargs, mask=[np.arange(len(x)) % 3 != 0 for x in X])
    ours, theirs, got, want = train_both(make, X, Y, client, **kwargs)
    tol = dict(rtol=1e-4, atol=1e-5) if ours.dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    assert_same_parameters(ours, theirs, **tol)
    np.testing.assert_allclose(got, want, **tol)
    assert not np.array_equal(theirs.parameters()["rnn.weight_hh_l0"],
                              make().parameters()["rnn.weight_hh_l0"])  # it did train


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fit_is_bit_identical_from_run_to_run(client, dropout):
    X, Y = sequences()
    runs = []
    for _ in range(2):
        model = make_model(bidirectional=False, dropout=dropout)
        history = rd.fit(model, X, Y, client=client, epochs=2, batch_size=8, tbptt=4, clip=1.0,
                         seed=5, progress=False, timeout=WAIT_S)
        runs.append((model, history))
    assert_same_parameters(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_optimizer_step_on_the_replicas_gives_the_same_bits(client):
    X, Y = arrays()
    models = []
    for step_on in ("driver", "replicas"):
        model = make_model()
        rd.fit(model, X, Y, client=client, epochs=2, batch_size=8, clip=0.5, seed=1,
               optimizer=rnncore.optim.SGD(model, lr=0.05, momentum=0.9), progress=False,
               timeout=WAIT_S, _step_on=step_on)
        models.append(model)
    assert_same_parameters(*models)


def killer(flag, at_call):
    """mse, but the first replica to reach its `at_call`-th call kills its worker process."""
    calls = [0]

    def loss(pred, target, mask):
        calls[0] += 1
        if calls[0] == at_call:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return rnncore.losses.mse(pred, target, mask)

    return loss


@pytest.mark.parametrize("case", ["arrays", "lengths"])
def test_killed_worker_raises_and_resume_gives_the_uninterrupted_result(client, tmp_path, case):
    X, Y = arrays(N=32, T=12) if case == "arrays" else sequences(N=24)
    kwargs = dict(client=client, epochs=2, batch_size=8, tbptt=4, shuffle=True, seed=7,
                  progress=False, timeout=WAIT_S)
    whole = make_model(bidirectional=False)
    want = rd.fit(whole, X, Y, **kwargs)  # arrays: 2 epochs x 4 batches x 3 chunks = 24 steps

    model = make_model(bidirectional=False)
    ckpt = tmp_path / "ckpt.npz"
    before = set(client.scheduler_info(n_workers=-1)["workers"])
    with pytest.raises(rd.WorkerLost, match="during optimizer step ") as err:
        rd.fit(model, X, Y, loss=killer(str(tmp_path / "killed"), 8), checkpoint=ckpt,
               checkpoint_every=5, **kwargs)
    if case == "arrays":  # both replicas have rows in every step: call = step
        assert err.value.step == 8
    assert err.value.checkpoint_step == (err.value.step - 1) // 5 * 5 > 0
    assert err.value.worker in before and isinstance(err.value, RuntimeError)
    two_workers_again(client, err.value.worker)
    assert rnncore.RNNModel.load(ckpt).config() == model.config()  # an ordinary model file too
    with np.load(ckpt) as saved:
        assert "train/carried/0" in saved  # written inside a batch: resuming needs the states

    resumed = make_model(bidirectional=False, seed=9)  # parameters come from the checkpoint
    got = rd.fit(resumed, X, Y, resume=ckpt, **kwargs)
    assert_same_parameters(resumed, whole)
    assert got == want


def test_a_worker_that_does_not_answer_in_time_raises_worker_lost(client):
    def stalls(pred, target, mask):  # the replicas' third call takes 2.5 s
        stalls.calls = getattr(stalls, "calls", 0) + 1
        if stalls.calls == 3:
            time.sleep(2.5)
        return rnncore.losses.mse(pred, target, mask)

    X, Y = arrays(N=16)
    with pytest.raises(rd.WorkerLost, match=r"during optimizer step 3 \(no answer within 1.0 s"):
        rd.fit(make_model(), X, Y, client=client, loss=stalls, epochs=2, batch_size=8,
               progress=False, timeout=1.0)


def test_predict_on_a_chunked_dask_array_equals_the_model(client):
    model = make_model(bidirectional=False, batch_first=True, num_layers=1).eval()
    x = np.random.default_rng(4).standard_normal((23, 7, 3))  # (N, T, I)
    y, h_n = rd.predict(model, da.from_array(x, chunks=(6, 7, 3)), return_h_n=True)
    assert y.chunks[0] == (6, 6, 6, 5) and h_n.chunks[1] == (6, 6, 6, 5)
    got_y, got_h = client.compute([y, h_n], sync=True)
    want_y = model(x)
    np.testing.assert_allclose(got_y, want_y, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_h, model.h_n, rtol=1e-12, atol=1e-13)
    # The model is one key of the graph, shared by every chunk (it travels once per worker).
    assert sum(str(k).startswith("rnncore-model-") for k in y.__dask_graph__()) == 1


def test_predict_on_variable_length_sequences(client):
    model = make_model()
    X, _ = sequences(N=11)
    got = client.compute(rd.predict(model, X, partition_size=4, return_h_n=True),
                         sync=True)
    assert len(got) == len(X)
    for x, (y, h) in zip(X, got):
        np.testing.assert_allclose(y, model(x), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h, model.h_n, rtol=1e-12, atol=1e-13)


def test_killed_worker_during_predict_still_gives_the_full_result(client):
    model = make_model(bidirectional=False)
    x = np.random.default_rng(6).standard_normal((5, 40, 3))  # (T, N, I)

    def slowly(block):  # a second per 4 chunks: the kill lands while chunks are running
        time.sleep(0.25)
        return block

    data = da.from_array(x, chunks=(5, 2, 3)).map_blocks(slowly, dtype=x.dtype)
    future = client.compute(rd.predict(model, data))
    time.sleep(1.0)
    assert not future.done()
    lost = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
    try:
        client.run(os._exit, 1, workers=[lost])
    except (OSError, distributed.comm.CommClosedError):  # the worker goes before it answers
        pass
    np.testing.assert_allclose(future.result(timeout=WAIT_S), model(x), rtol=1e-12, atol=1e-13)
    two_workers_again(client, lost)


def test_replicas_use_the_workers_threads(client):
    X, Y = arrays(N=4)
    rd.fit(make_model(), X, Y, client=client, batch_size=4, progress=False, timeout=WAIT_S)
    assert set(client.run(rnncore.get_num_threads).values()) == {1}


def test_import_rnncore_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, rnncore; print(any(m.split('.')[0] in ('dask', 'distributed') " \
           "for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=WAIT_S)
    assert out.stdout.strip() == "False", out.stderr
