"""Data-parallel training on a Dask cluster: a local cluster of 2 worker processes (1 thread
each) trains a model on a batch of sequences of different lengths, then runs it over a chunked
dask array; both are checked against one process (rnncore.fit and model(x)).

On a real cluster, connect to its scheduler instead (``Client("tcp://HOST:8786")``); see
docs/distributed.md. Needs the dask extra (pip install 'rnncore[dask]'); without it, prints a
message and exits 0.
"""

import sys
import time

import numpy as np

import rnncore

try:
    import dask.array as da
    from distributed import Client, LocalCluster

    import rnncore.distributed
except ImportError:
    print("skipped: dask is not installed (pip install 'rnncore[dask]')")
    sys.exit(0)


def make_model():
    return rnncore.RNNModel(4, 32, 2, num_layers=2, head=(16,), seed=0)


if __name__ == "__main__":  # the workers are new processes: they must not run this again
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 60, 256)
    X = [rng.standard_normal((n, 4)).astype(np.float32) for n in lengths]  # (T_i, I)
    Y = [np.cumsum(x[:, :2], axis=0) / 10 for x in X]  # (T_i, O): running sums to learn
    options = dict(loss="mse", epochs=3, batch_size=64, tbptt=20, clip=1.0, seed=0,
                   progress=False)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        model = make_model()
        start = time.perf_counter()
        history = rnncore.distributed.fit(model, X, Y, client=client, timeout=120,
                                          optimizer=rnncore.optim.Adam(model, lr=3e-3),
                                          **options)
        seconds = time.perf_counter() - start
        print(f"{model} on {len(client.scheduler_info()['workers'])} Dask workers: loss "
              f"{history[0]:.4f} -> {history[-1]:.4f} in {seconds:.1f} s")

        # Batch inference: a dask array (T, N, I) chunked along N, the model sent once per worker.
        x = rng.standard_normal((30, 100, 4)).astype(np.float32)
        y = rnncore.distributed.predict(model, da.from_array(x, chunks=(30, 25, 4))).compute()
        print(f"predict on {y.shape[1]} sequences in 4 chunks: max abs difference to model(x) "
              f"{np.abs(y - model.eval()(x)).max():.2e}")

    # The same training in this process: the same global minibatches, the same parameters to float
    # rounding (each worker sums the gradient of its share of a batch, in a different order).
    alone = make_model()
    rnncore.fit(alone, X, Y, optimizer=rnncore.optim.Adam(alone, lr=3e-3), **options)
    difference = max(np.abs(p - alone.parameters()[k]).max()
                     for k, p in model.parameters().items())
    print(f"distributed vs single-process fit after {options['epochs']} epochs: max abs "
          f"difference {difference:.2e}")
    if not difference < 1e-4:  # float32 rounding, grown over ~40 Adam steps, stays far below
        sys.exit(f"FAILED: the distributed parameters differ from rnncore.fit's by {difference}")
