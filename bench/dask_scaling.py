"""Training throughput of rnncore.distributed.fit on a LocalCluster of 1 and of 2 worker processes
(1 thread each, loopback), at S3 (T=100, I=256, H=256; a global batch of 128 sequences), with the
breakdown of a step: compute (forward + backward of a worker's share, timed in this process),
communication (an actor round trip carrying the parameters out and a gradient back, no compute:
serialisation + transfer + actor dispatch), serialisation alone, and the driver's own work (sum
of the gradients and the optimizer step). Also the other design: every replica applies the
optimizer step (`_step_on="replicas"`) against the driver applying it and sending parameters; and
shuffled batches, whose shares per worker are uneven unless `replicate_data=True`.

    python bench/dask_scaling.py [--steps-per-epoch K] [--epochs E]

It first checks that 2 workers give rnncore.fit's parameters (SGD, float32 rounding), then
times. Medians over epochs after the first; ratios are the signal on a shared machine.
"""

import argparse
import pickle
import statistics
import time

import numpy as np
from distributed import Client, LocalCluster

import rnncore
import rnncore.distributed as rd

T, I, H, O, BATCH = 100, 256, 256, 8, 128


def make_model():
    return rnncore.RNNModel(I, H, O, seed=0)


def data(n):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((T, n, I)).astype(np.float32),
            rng.standard_normal((T, n, O)).astype(np.float32))


class Echo:
    """Receives the parameters and answers with a gradient-sized dict: a step without compute."""

    def __init__(self, grads):
        self.grads = grads

    def step(self, params):
        return self.grads, 0.0, 1


def cluster(n_workers):
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None)


def seconds_per_step(client, X, Y, epochs, **kwargs):
    """Median time of an epoch after the first (actor start-up, first touch) over its steps, and
    the slowest worker's mean time inside a replica's step() (over every step)."""
    stamps: list[float] = []
    stats: dict = {}
    model = make_model()
    rd.fit(model, X, Y, client=client, epochs=epochs, batch_size=BATCH, progress=False,
           optimizer=rnncore.optim.Adam(model), timeout=600, _stats=stats,
           callback=lambda epoch, loss: stamps.append(time.perf_counter()), **kwargs)
    steps = X.shape[1] // BATCH
    return statistics.median(np.diff(stamps)) / steps, max(stats["busy"]) / (steps * epochs)


def comm_per_step(client, workers, params, grads, rounds=20):
    """Median round trip: params to every worker at once, a gradient back from each."""
    actors = [client.submit(Echo, grads, actor=True, workers=[w]).result(timeout=60)
              for w in workers]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        calls = [a.step(params) for a in actors]
        [c.result(timeout=60) for c in calls]
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def median_time(call, rounds=7):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-per-epoch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    X, Y = data(BATCH * args.steps_per_epoch)
    rnncore.set_num_threads(1)

    # In-process parts of a step, 1 thread: compute of a share of B rows, the driver's work.
    model = make_model()
    compute = {}
    for share in (BATCH, BATCH // 2):
        x, y = X[:, :share], Y[:, :share]

        def train():
            value, grad = rnncore.losses.mse(model(x), y)
            model.zero_grad()
            model.backward(grad)

        compute[share] = median_time(train)
    grads = {k: g.copy() for k, g in model.grads.items()}
    params = model.state_dict()
    size_mb = sum(p.nbytes for p in params.values()) / 1e6
    opt = rnncore.optim.Adam(model)

    def driver(workers):
        def work():
            rd._sum_gradients(model, [(grads, 0.0, 1)] * workers, workers)
            opt.step()
        return median_time(work)

    serialise = median_time(lambda: pickle.loads(pickle.dumps((params, grads), protocol=5)))

    rows = {}
    for n_workers in (1, 2):
        with cluster(n_workers) as c, Client(c) as client:
            client.wait_for_workers(n_workers, timeout=60)
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
            if n_workers == 2:  # correctness first: 2 workers against rnncore.fit (SGD)
                Xc, Yc = X[:, :2 * BATCH], Y[:, :2 * BATCH]
                ours, alone = make_model(), make_model()
                rd.fit(ours, Xc, Yc, client=client, batch_size=BATCH, progress=False, seed=0,
                       optimizer=rnncore.optim.SGD(ours, lr=0.1), timeout=600)
                rnncore.fit(alone, Xc, Yc, batch_size=BATCH, progress=False, seed=0,
                            optimizer=rnncore.optim.SGD(alone, lr=0.1))
                for k, p in alone.parameters().items():
                    np.testing.assert_allclose(ours.parameters()[k], p, rtol=1e-4, atol=1e-6,
                                               err_msg=k)
            step, busy = seconds_per_step(client, X, Y, args.epochs, shuffle=False)
            rows[n_workers] = dict(step=step, busy=busy,
                                   comm=comm_per_step(client, workers, params, grads))
            if n_workers == 2:
                rows["replicas"] = seconds_per_step(client, X, Y, args.epochs, shuffle=False,
                                                    _step_on="replicas")[0]
                rows["shuffled"] = seconds_per_step(client, X, Y, args.epochs, shuffle=True,
                                                    seed=0)[0]
                rows["replicated"] = seconds_per_step(client, X, Y, args.epochs, shuffle=True,
                                                      seed=0, replicate_data=True)[0]

    print(f"S3 training (T={T}, I={I}, H={H}, O={O}, global batch {BATCH}), float32, LocalCluster "
          f"of worker processes x 1 thread, loopback; parameters {size_mb:.2f} MB")
    print("seconds per step: compute = forward + backward of a worker's share in this process; "
          "in replica = a replica's time in step() (compute, data indexing, loading parameters); "
          "comm = round trip without compute; other = step - in replica - comm - driver")
    print("workers  s/step  sequences/s  compute  in replica  comm (round trip)  "
          "driver (sum + Adam)   other")
    for w in (1, 2):
        r = rows[w]
        comp, drv = compute[BATCH // w], driver(w)
        other = r["step"] - r["busy"] - r["comm"] - drv
        print(f"{w:7d}  {r['step']:6.3f}  {BATCH / r['step']:11.1f}  {comp:7.3f}  "
              f"{r['busy']:10.3f}  {r['comm']:8.4f} ({r['comm'] / r['step']:5.1%})  "
              f"{drv:9.4f} ({drv / r['step']:5.1%})  {other:+.4f}")
    print(f"speedup 2 workers / 1 worker: {rows[1]['step'] / rows[2]['step']:.2f}x "
          f"(compute alone: {compute[BATCH] / compute[BATCH // 2]:.2f}x)")
    print(f"serialisation (pickle out and back of parameters + one gradient): {serialise:.4f} s")
    print(f"2 workers, optimizer on every replica instead of the driver: "
          f"{rows['replicas']:.3f} s/step ({rows['replicas'] / rows[2]['step']:.3f}x the "
          f"driver's)")
    print(f"2 workers, shuffled batches (uneven shares per worker): {rows['shuffled']:.3f} s/step "
          f"({rows['shuffled'] / rows[2]['step']:.3f}x unshuffled); with replicate_data=True "
          f"(even shares): {rows['replicated']:.3f} s/step "
          f"({rows['replicated'] / rows[2]['step']:.3f}x unshuffled)")


if __name__ == "__main__":
    main()
