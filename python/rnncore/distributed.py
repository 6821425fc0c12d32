"""Scale-out on Dask (``dask.distributed``): data-parallel training and batch inference across the
workers of a cluster, equal to one machine. Needs the ``dask`` extra (``pip install
'rnncore[dask]'``); ``import rnncore`` never imports dask, only ``import rnncore.distributed`` does.

    >>> from distributed import Client, LocalCluster
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    >>> history = rnncore.distributed.fit(model, X, Y, client=client, epochs=3, batch_size=128)
    >>> y = rnncore.distributed.predict(model, dask_x).compute()

fit: each worker holds a replica of the model (a Dask actor) and its shard of the data (rows
k, k + W, k + 2W, ... of W workers, scattered once; or all of it, with replicate_data). Every step the driver sends the current
parameters and the rows of the global minibatch that each worker holds; each replica returns the
gradient of its share and its loss sum and target count; the driver sums the gradients in worker
order (reproducible bit for bit), scales them to the global batch's mean, clips their global norm
and applies the optimizer (the user's optimizer object, as in ``rnncore.fit``). See
docs/distributed.md for the design and its measurements.

Shape letters: T steps, N sequences, B sequences in a minibatch, I input, O output, W workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tempfile
import threading
import time
from typing import Any

import dask
import dask.array as da
import dask.bag as db
import numpy as np
from distributed import Client, get_worker
from tqdm.auto import tqdm

import rnncore
from rnncore._checks import check_positive_int
from rnncore.training import _Sequences, _time_major, check_fit_options

__all__ = ["fit", "predict", "WorkerLost"]

CHECKPOINT_VERSION = 1


class WorkerLost(RuntimeError):
    """A worker died, left the cluster or did not answer in time during `fit`.

    ``step`` is the optimizer step (counting from 1 over the whole run) that could not complete;
    the model holds the parameters after step ``step - 1`` and ``worker`` is the lost worker's
    address. Resume from the latest checkpoint (``fit(..., resume=path)``) once the cluster has
    its workers again."""

    def __init__(self, step: int, worker: str, reason: str, checkpoint_step: int | None = None):
        self.step, self.worker, self.checkpoint_step = step, worker, checkpoint_step
        where = ("no checkpoint was written" if checkpoint_step is None else
                 f"the latest checkpoint holds step {checkpoint_step}")
        super().__init__(f"worker {worker} was lost during optimizer step {step} ({reason}); the "
                         f"model holds the parameters after step {step - 1}; {where}")


# ---- the model on the workers ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _ModelSpec:
    """What rebuilds a model anywhere: its class, constructor arguments and parameters."""
    cls: type
    config: dict
    params: dict
    token: str

    @classmethod
    def of(cls, model) -> _ModelSpec:
        params = model.state_dict()
        return cls(type(model), model.config(), params, dask.base.tokenize(model.config(), params))

    def build(self, seed=None):
        model = self.cls(**self.config, seed=seed)  # the seed only drives dropout masks here
        model.load_state_dict(self.params)
        return model


def _use_worker_threads() -> None:
    """rnncore's BLAS threads = this worker's nthreads (no change outside a Dask worker)."""
    try:
        nthreads = get_worker().state.nthreads
    except ValueError:  # not in a worker: a local dask scheduler
        return
    if rnncore.get_num_threads() != nthreads:
        rnncore.set_num_threads(nthreads)


@dataclasses.dataclass
class _Shard:
    """One worker's rows of the training data: time-major arrays, or lists of sequences."""
    X: Any
    Y: Any
    mask: Any


class _Replica:
    """A model replica and its shard of the data, living on one worker as a Dask actor."""

    def __init__(self, spec: _ModelSpec, shard: _Shard, loss_fn, sequences: bool, chunk: int,
                 seed: list[int], optimizer_state: tuple | None = None):
        _use_worker_threads()
        self.model = spec.build(seed).train()
        self.loss_fn, self.chunk, self.sequences = loss_fn, chunk, sequences
        if sequences:  # (no sequences at all when there are more workers than sequences)
            self.data = _Sequences(self.model, shard.X, shard.Y, shard.mask) if shard.X else None
        else:
            self.X, self.Y, self.mask = shard.X, shard.Y, shard.mask
        self.h: np.ndarray | None = None  # the carried state of the current batch's rows
        self.batch: tuple | None = None  # (rows, x, y, mask, lengths) of the current batch
        self.optimizer: Any = None
        self.busy = 0.0  # seconds spent in step(), for bench/dask_scaling.py
        if optimizer_state is not None:  # replicas apply the optimizer step themselves
            opt_cls, hyper, state = optimizer_state
            self.optimizer = opt_cls(self.model, **hyper)
            self.optimizer.load_state_dict({"state": state, "hyperparameters": hyper})

    def step(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._step(*args, **kwargs)
        finally:
            self.busy += time.perf_counter() - start

    def _step(self, rows, index: int, params=None, grads=None, clip=None, h=None):
        """Set the parameters (or apply the optimizer with the summed `grads`), then train on
        chunk `index` of the local `rows` of a global batch. Returns (grads or None, loss sum,
        targets counted)."""
        if params is not None:
            self.model.load_state_dict(params)
        if grads is not None:
            for name, g in self.model.grads.items():
                g[...] = grads[name]
            if clip is not None:
                rnncore.clip_grad_norm(self.model, clip)
            self.optimizer.step()
        if h is not None:
            self.h = h
        if len(rows) == 0:
            return None, 0.0, 0
        if self.sequences:
            return self._sequence_chunk(rows, index)
        steps = slice(index * self.chunk, (index + 1) * self.chunk)
        x, y = self.X[steps, rows], self.Y[steps, rows]
        m = None if self.mask is None else self.mask[steps, rows]
        result = self._train(x, y, m, None if index == 0 else self.h)
        self.h = self.model.h_n
        return result

    def _sequence_chunk(self, rows, index):
        if index == 0 or self.batch is None:  # None: resumed mid-batch
            self.batch = self.data.batch(rows)
        x_b, y_b, m_b, lengths = self.batch
        t = index * self.chunk
        live = lengths > t
        if not live.any():  # every local sequence has ended: nothing to contribute
            return None, 0.0, 0
        h = None if index == 0 else self.h
        x, y, m = x_b[t:t + self.chunk], y_b[t:t + self.chunk], m_b[t:t + self.chunk]
        if not live.all():
            x, y, m, h = x[:, live], y[:, live], m[:, live], h[:, live]
        result = self._train(x, y, m, h, np.minimum(lengths[live] - t, self.chunk))
        h_n = self.model.h_n
        self.h = np.zeros((h_n.shape[0], len(rows), h_n.shape[2]), h_n.dtype)
        self.h[:, live] = h_n
        return result

    def _train(self, x, y, m, h, lengths=None):
        """As rnncore.fit's train_chunk, without the optimizer step."""
        model = self.model
        if model.batch_first:
            x, y = x.swapaxes(0, 1), y.swapaxes(0, 1)
            m = None if m is None else m.swapaxes(0, 1)
        pred = model(x, h) if lengths is None else model(x, h, lengths=lengths)
        value, grad = self.loss_fn(pred, y, m)
        model.zero_grad()
        model.backward(grad, input_grad=False)  # nothing reads the input's gradient
        n = int(m.sum()) if m is not None else y.shape[0] * y.shape[1]
        return model.grads, value * n, n

    def busy_seconds(self) -> float:
        return self.busy

    def carried_state(self):
        return self.h

    def state(self):
        """Parameters and optimizer state (replica-step mode)."""
        opt = None if self.optimizer is None else self.optimizer.state_dict()
        return self.model.state_dict(), opt


# ---- training ----------------------------------------------------------------------------------

def fit(model, X, Y, *, client: Client, loss="mse", optimizer=None, epochs=1, batch_size=32,
        tbptt=None, clip=None, shuffle=True, seed=None, progress=True, callback=None, mask=None,
        checkpoint=None, checkpoint_every=None, resume=None, timeout=None,
        replicate_data=False, _step_on="driver", _stats=None) -> list[float]:
    """``rnncore.fit`` on the workers of a Dask cluster: the same arguments (after `client`),
    the same global minibatches (the same shuffle for the same `seed`) and the same loss history;
    the parameters equal ``rnncore.fit``'s to float rounding (the gradient of a batch is summed
    in a different order), and bit-identical from run to run on the same number of workers.

    client: a ``distributed.Client``; every worker it has when fit starts gets a replica (worker
    k of W, in address order, holds sequences k, k + W, ...). A global minibatch is split by
    those rows, so a worker computes the part of it that it holds: with ``shuffle`` the shares of
    a batch are uneven (binomial) and each step waits for the largest.
    replicate_data: True sends every worker all of X and Y (once; W times the memory, on W
    machines) and splits each global batch into W parts of equal size by position instead: no
    uneven shares.
    checkpoint: a path written every `checkpoint_every` optimizer steps and after the last: an
    rnncore model file (``rnncore.RNNModel.load`` reads it) with the optimizer state and the
    position in training as extra entries. resume: a checkpoint path to continue from (the same
    X, Y, batch_size, tbptt, shuffle, seed and epochs): the model and optimizer take the saved
    state and training goes on from the saved step; the final parameters are those of an
    uninterrupted run, bit for bit on the same number of workers. The returned history covers all
    epochs, the saved ones included.
    timeout: seconds to wait for the workers at each step (None: no limit).
    loss: as in ``rnncore.fit``; a function of your own must return the mean over the targets
    its mask counts, as the built-in ones do (each replica's gradient is rescaled by its count).

    Raises WorkerLost (naming the step) if a worker dies or leaves, or does not answer within
    `timeout`; the model then holds the parameters of the last completed step.

    Dropout: replica k draws its masks from ``np.random.default_rng([seed or 0, k])``, so with
    dropout > 0 the parameters are not ``rnncore.fit``'s (they are reproducible run to run, but a
    resumed run draws other masks than an uninterrupted one). ``model.h_n`` is not set.
    """
    loss_fn, epochs, batch_size, tbptt = check_fit_options(loss, epochs, batch_size, tbptt)
    if checkpoint_every is not None:
        checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
        if checkpoint is None:
            raise ValueError("checkpoint_every: also give checkpoint, the path to write")
    if _step_on not in ("driver", "replicas"):
        raise ValueError(f"_step_on: expected 'driver' or 'replicas', got {_step_on!r}")
    optimizer = rnncore.optim.Adam(model) if optimizer is None else optimizer
    sequences = isinstance(X, (list, tuple))
    if sequences:
        data = _Sequences(model, X, Y, mask)
        T, N = int(data.lengths.max()), len(data.lengths)
    else:
        X, Y, mask = _time_major(model, X, Y, mask)
        T, N = X.shape[:2]
    chunk = tbptt or T
    if chunk < T and getattr(model, "bidirectional", False):
        raise ValueError("tbptt: a bidirectional model cannot carry its state across chunks (the "
                         "reverse direction would start from the wrong end); use tbptt=None")
    batches = [slice(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise ValueError("client: the cluster has no workers")
    W = len(workers)
    settings = dict(N=N, T=T, batch_size=batch_size, tbptt=tbptt or 0, shuffle=bool(shuffle),
                    epochs=epochs, workers=W, replicate_data=bool(replicate_data))

    def n_chunks(rows):
        longest = int(data.lengths[rows].max()) if sequences else T
        return -(-longest // chunk)

    rng = np.random.default_rng(seed)
    history: list[float] = []
    position: dict[str, Any] = dict(epoch=1, batch=0, chunk=0, step=0, total=0.0, counted=0)
    order = None
    carried: list | None = None
    if resume is not None:
        saved = _read_checkpoint(os.fspath(resume), model, optimizer, settings)
        history, order, carried = saved["history"], saved["order"], saved["carried"]
        position.update(saved["position"])
        rng.bit_generator.state = saved["rng"]
    model.train()

    def shard(k):
        if replicate_data:
            return _Shard(data.xs, data.ys, data.masks) if sequences else _Shard(X, Y, mask)
        if sequences:
            pick = range(k, N, W)
            return _Shard([data.xs[i] for i in pick], [data.ys[i] for i in pick],
                          None if data.masks is None else [data.masks[i] for i in pick])
        return _Shard(np.ascontiguousarray(X[:, k::W]), np.ascontiguousarray(Y[:, k::W]),
                      None if mask is None else np.ascontiguousarray(mask[:, k::W]))

    spec = _ModelSpec.of(model)
    opt_state = None
    if _step_on == "replicas":
        saved_opt = optimizer.state_dict()
        opt_state = (type(optimizer), saved_opt["hyperparameters"], saved_opt["state"])
    futures: list = []
    checkpoint_step = None
    try:
        replicas: list[Any] = []  # actors: their methods return ActorFutures
        for k, address in enumerate(workers):
            if k == 0 or not replicate_data:
                data_k = client.scatter(shard(k), workers=None if replicate_data else [address],
                                        broadcast=bool(replicate_data), hash=False)
            dropout_seed = [int(seed) if isinstance(seed, (int, np.integer)) else 0, k]
            actor = client.submit(_Replica, spec, data_k, loss_fn, sequences, chunk, dropout_seed,
                                  opt_state, actor=True, workers=[address],
                                  allow_other_workers=False, pure=False)
            futures += [data_k, actor]
            replicas.append(actor)
        replicas = [_result(a, timeout, workers[k], position["step"] + 1, client)
                    for k, a in enumerate(replicas)]

        def train_step(step, local, c, h):
            """One optimizer step: every replica's share of chunk c, then the update."""
            nonlocal summed
            send: dict[str, Any] = {}  # nothing before the replicas' first step
            if summed is not None and _step_on == "driver":
                send = dict(params=model.state_dict())
            elif summed is not None:  # the replicas apply the previous step first
                send = dict(grads=summed, clip=clip)
            calls = [a.step(local[k], c, h=h[k], **send) for k, a in enumerate(replicas)]
            answers = [_result(f, timeout, workers[k], step, client, checkpoint_step)
                       for k, f in enumerate(calls)]
            n = sum(a[2] for a in answers)
            summed = _sum_gradients(model, answers, n)
            if _step_on == "driver":
                for name, g in model.grads.items():
                    g[...] = summed[name]
                if clip is not None:
                    rnncore.clip_grad_norm(model, clip)
                optimizer.step()
            return sum(a[1] for a in answers), n  # the loss summed over the n targets

        def save(step):
            nonlocal summed
            if _step_on == "replicas":  # the replicas step now, and the driver takes the result
                _sync(replicas, summed, clip, model, optimizer, timeout, workers, step, client)
                summed = None
            states = None
            if position["chunk"]:  # inside a batch: the state each replica carries on
                states = [_result(a.carried_state(), timeout, workers[k], step, client,
                                  checkpoint_step) for k, a in enumerate(replicas)]
            _write_checkpoint(os.fspath(checkpoint), model, optimizer, settings, position, order,
                              rng, history, states)

        # `position` is always the next step to run: epoch, batch, chunk (and the step count, the
        # loss total and target count of the epoch so far).
        total_steps = None if sequences else epochs * len(batches) * n_chunks(None)
        bar = tqdm(total=total_steps, initial=position["step"], disable=not progress, unit="step",
                   leave=False, dynamic_ncols=True)
        summed: dict | None = None  # the latest step's gradient
        with bar:
            for epoch in range(position["epoch"], epochs + 1):
                if order is None:  # a new epoch, not one resumed in its middle
                    order = rng.permutation(N) if shuffle else np.arange(N)
                    position.update(batch=0, chunk=0, total=0.0, counted=0)
                for b in range(position["batch"], len(batches)):
                    rows = order[batches[b]]
                    if replicate_data:  # W parts of (nearly) equal size
                        local = np.array_split(rows, W)
                    else:  # the rows that each worker holds, as indices into its shard
                        local = [rows[rows % W == k] // W for k in range(W)]
                    last = n_chunks(rows) - 1
                    for c in range(position["chunk"], last + 1):
                        step = position["step"] + 1
                        h = carried if carried is not None else [None] * W
                        carried = None
                        total, n = train_step(step, local, c, h)
                        position.update(step=step, total=position["total"] + total,
                                        counted=position["counted"] + n,
                                        batch=b + (c == last), chunk=0 if c == last else c + 1)
                        mean = position["total"] / max(position["counted"], 1)
                        bar.set_postfix(epoch=epoch, loss=f"{mean:.4f}", refresh=False)
                        bar.update()
                        if checkpoint_every and step % checkpoint_every == 0:
                            save(step)
                            checkpoint_step = step
                history.append(position["total"] / max(position["counted"], 1))
                position.update(epoch=epoch + 1, batch=0, chunk=0, total=0.0, counted=0)
                order = None
                if callback is not None and callback(epoch, history[-1]) is True:
                    break
        if _stats is not None:  # for bench/dask_scaling.py: each worker's time in step()
            _stats["busy"] = [_result(a.busy_seconds(), timeout, workers[k], position["step"],
                                      client) for k, a in enumerate(replicas)]
        if _step_on == "replicas" and summed is not None:
            _sync(replicas, summed, clip, model, optimizer, timeout, workers, position["step"],
                  client)
        if checkpoint is not None and position["step"] != checkpoint_step:
            _write_checkpoint(os.fspath(checkpoint), model, optimizer, settings, position, None,
                              rng, history, None)
    finally:
        client.cancel(futures)
    return history


def _sync(replicas, summed, clip, model, optimizer, timeout, workers, step, client):
    """Replica-step mode: apply the pending step on the replicas and bring the parameters and the
    optimizer state back to the driver's model and optimizer."""
    calls = [a.step([], 0, grads=summed, clip=clip) for a in replicas]
    for k, f in enumerate(calls):
        _result(f, timeout, workers[k], step, client)
    params, opt = _result(replicas[0].state(), timeout, workers[0], step, client)
    model.load_state_dict(params)
    optimizer.load_state_dict(opt)


def _sum_gradients(model, answers, n) -> dict[str, np.ndarray]:
    """sum_k grad_k * n_k / n in worker order: each replica's gradient is of the mean over its
    own n_k targets; the global batch's loss is the mean over all n."""
    summed = {name: np.zeros_like(g) for name, g in model.grads.items()}
    for grads, _, n_k in answers:
        if grads is None or n_k == 0:
            continue
        scale = model.dtype.type(n_k / n)
        for name, g in grads.items():
            summed[name] += g * scale
    return summed


def _result(future, timeout, worker, step, client, checkpoint_step=None):
    """future.result(timeout), with a lost worker or a timeout turned into WorkerLost."""
    try:
        return future.result(timeout=timeout)
    except (OSError, asyncio.TimeoutError) as err:  # CommClosedError and TimeoutError: OSErrors
        if isinstance(err, (TimeoutError, asyncio.TimeoutError)):  # the same class from 3.11
            reason = f"no answer within {timeout} s"
        else:
            reason = f"{type(err).__name__}: {err}"
        raise WorkerLost(step, worker, reason, checkpoint_step) from err
    except Exception as err:
        if worker not in client.scheduler_info(n_workers=-1)["workers"]:
            raise WorkerLost(step, worker, f"{type(err).__name__}: {err}",
                             checkpoint_step) from err
        raise


# ---- checkpoints -------------------------------------------------------------------------------

def _write_checkpoint(path, model, optimizer, settings, position, order, rng, history, carried):
    """An rnncore model file (model.save) with extra entries: train/... the position in
    training, optim/... the optimizer state. Written to a temporary file and renamed, so a crash
    leaves the previous checkpoint whole."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnncore-ckpt-", suffix=".npz", dir=directory)
    os.close(fd)
    try:
        model.save(tmp)
        with np.load(tmp, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
        opt = optimizer.state_dict()
        arrays["optim/hyperparameters"] = np.array(json.dumps(opt["hyperparameters"]))
        arrays["optim/class"] = np.array(type(optimizer).__name__)
        for name, entries in opt["state"].items():
            for key, value in entries.items():
                arrays[f"optim/state/{name}/{key}"] = np.asarray(value)
        meta = dict(version=CHECKPOINT_VERSION, settings=settings,
                    position={k: position[k] for k in ("epoch", "batch", "chunk", "step",
                                                       "counted")},
                    rng=rng.bit_generator.state)
        arrays["train/meta"] = np.array(json.dumps(meta))
        arrays["train/total"] = np.float64(position["total"])
        arrays["train/history"] = np.array(history, np.float64)
        if order is not None:
            arrays["train/order"] = order
        for k, h in enumerate(carried or ()):
            if h is not None:
                arrays[f"train/carried/{k}"] = h
        with open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _read_checkpoint(path, model, optimizer, settings) -> dict:
    """Load a checkpoint's parameters into `model` and its state into `optimizer`; the position
    in training."""
    saved = type(model).load(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    if "train/meta" not in arrays:
        raise ValueError(f"resume: {path} is a model file without training state (not written "
                         f"by rnncore.distributed.fit's checkpoint)")
    meta = json.loads(str(arrays["train/meta"]))
    if meta["version"] != CHECKPOINT_VERSION:
        raise ValueError(f"resume: checkpoint format {meta['version']} is not supported")
    mismatch = {k: (v, settings[k]) for k, v in meta["settings"].items()
                if settings[k] != v and k not in ("workers", "epochs", "replicate_data")}
    if mismatch:
        raise ValueError(f"resume: the checkpoint was written by a run with other settings "
                         f"(saved, now): {mismatch}")
    if saved.config() != model.config():
        raise ValueError(f"resume: the checkpoint holds a model {saved.config()}, the model is "
                         f"{model.config()}")
    if str(arrays["optim/class"]) != type(optimizer).__name__:
        raise ValueError(f"resume: the checkpoint holds the state of a "
                         f"{arrays['optim/class']} optimizer, got {type(optimizer).__name__}")
    position = dict(meta["position"], total=float(arrays["train/total"]))
    carried = None
    if position["chunk"]:  # mid-batch: each replica's carried state
        written = {k: meta["settings"][k] for k in ("workers", "replicate_data")}
        if written != {k: settings[k] for k in written}:
            raise ValueError(f"resume: the checkpoint was written inside a batch by a run with "
                             f"{written}; resume it with the same (got {settings['workers']} "
                             f"workers, replicate_data={settings['replicate_data']})")
        carried = [arrays.get(f"train/carried/{k}") for k in range(settings["workers"])]
    state: dict[str, dict] = {}
    for key, value in arrays.items():
        if key.startswith("optim/state/"):
            name, entry = key[len("optim/state/"):].rsplit("/", 1)
            state.setdefault(name, {})[entry] = value
    optimizer.load_state_dict({"state": state,
                               "hyperparameters": json.loads(str(arrays["optim/hyperparameters"]))})
    model.load_state_dict(saved.state_dict())
    rng = meta["rng"]
    return dict(history=[float(v) for v in arrays["train/history"]],
                order=arrays.get("train/order"), carried=carried, position=position, rng=rng)


# ---- inference ---------------------------------------------------------------------------------

_CACHE = threading.local()  # per worker thread: token -> model (forward keeps state on the model)


def _model_for(spec: _ModelSpec):
    _use_worker_threads()
    models = getattr(_CACHE, "models", None)
    if models is None:
        models = _CACHE.models = {}
    model = models.get(spec.token)
    if model is None:
        if len(models) >= 4:
            models.clear()
        model = models[spec.token] = spec.build().eval()
    return model


def _predict_block(spec: _ModelSpec, x: np.ndarray):
    model = _model_for(spec)
    y = model(x)
    return y, model.h_n


def _predict_sequences(sequences, spec: _ModelSpec, return_h_n: bool) -> list:
    """One partition of variable-length sequences (T_i, I): padded into one batch, run with
    lengths, and cut back into (T_i, O) outputs (and (L*D, H) final states)."""
    model = _model_for(spec)
    sequences = [np.asarray(s) for s in sequences]
    if not sequences:
        return []
    lengths = np.array([len(s) for s in sequences], np.int64)
    x = np.zeros((int(lengths.max()), len(sequences), sequences[0].shape[-1]), model.dtype)
    for j, s in enumerate(sequences):
        x[:len(s), j] = s
    if model.batch_first:
        x = x.swapaxes(0, 1)
    y = model(x, lengths=lengths)
    if model.batch_first:
        y = y.swapaxes(0, 1)
    outputs = [y[:n, j].copy() for j, n in enumerate(lengths)]
    if return_h_n:
        return [(o, model.h_n[:, j].copy()) for j, o in enumerate(outputs)]
    return outputs


def predict(model, data, *, return_h_n=False, partition_size=64):
    """The model's outputs over `data`, as a lazy dask collection (``.compute()`` runs it on the
    cluster of the current ``distributed.Client``, or on any dask scheduler).

    data: a dask array (T, N, I), or (N, T, I) with ``model.batch_first``, chunked along N (any
    chunking along T and I is merged into one chunk): returns the dask array y shaped as
    ``model(x)``'s, chunked like data along N; with return_h_n, (y, h_n) with h_n (L*D, N, H)
    chunked along N (compute both together, ``dask.compute(y, h_n)``, to run each chunk once).
    Or a list of variable-length sequences (T_i, I), or a dask bag of them (the list is cut into
    partitions of `partition_size`): returns a dask bag of the outputs (T_i, O), or of (y_i, h_n_i)
    pairs with return_h_n; each partition runs as one padded batch with ``lengths=``.

    The model (its constructor arguments and a copy of its parameters, taken now) is one key in
    the graph: it travels to each worker once, not with every chunk, and a lost copy is rebuilt.
    Chunks run in evaluation mode (no dropout), with rnncore using the worker's nthreads.
    """
    spec = _ModelSpec.of(model)
    spec_key = dask.delayed(spec, name=f"rnncore-model-{spec.token}")
    if isinstance(data, da.Array):
        if data.ndim != 3:
            raise ValueError(f"data: expected a dask array (T, N, I), or (N, T, I) with "
                             f"batch_first, got shape {data.shape}")
        n_axis = 0 if model.batch_first else 1
        data = data.rechunk({1 - n_axis: -1, 2: -1})
        T = data.shape[1 - n_axis]
        L, H, O = model.num_layers * model.num_directions, model.hidden_size, model.output_size
        ys, hs = [], []
        for block, n in zip(data.to_delayed().ravel(), data.chunks[n_axis]):
            y_b, h_b = dask.delayed(_predict_block, nout=2, pure=True)(spec_key, block)
            ys.append(da.from_delayed(y_b, (n, T, O) if n_axis == 0 else (T, n, O), model.dtype))
            hs.append(da.from_delayed(h_b, (L, n, H), model.dtype))
        y = da.concatenate(ys, axis=n_axis)
        return (y, da.concatenate(hs, axis=1)) if return_h_n else y
    if isinstance(data, (list, tuple)):
        data = db.from_sequence(data, partition_size=check_positive_int(partition_size,
                                                                   "partition_size"))
    if isinstance(data, db.Bag):
        return data.map_partitions(_predict_sequences, spec_key, bool(return_h_n))
    raise TypeError(f"data: expected a dask array, a dask bag or a list of sequences, got "
                    f"{type(data).__name__}")
