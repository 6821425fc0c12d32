"""Memory: repeated forward + backward does not grow the resident set (no leak per call), and one
forward + backward of a large layer adds little more than it must keep (the states) and return
(grad_x). Linux only (/proc/self/statm, /proc/self/status, /proc/self/clear_refs)."""

import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rnncore

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
MB = 1024 * 1024


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def growth_after_warm_up(step, warm_up=500, total=3000):
    """Resident bytes gained between call `warm_up` and call `total` of step()."""
    for i in range(total):
        if i == warm_up:
            gc.collect()
            start = resident_bytes()
        step()
    gc.collect()
    return resident_bytes() - start


@pytest.mark.parametrize("kind", ["RNN float32", "RNN float64", "RNNModel"])
def test_repeated_training_steps_do_not_grow_memory(kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4, 16))
    if kind == "RNNModel":
        net = rnncore.RNNModel(16, 16, 3, num_layers=2, head=(8,), bidirectional=True, seed=0)
    else:
        net = rnncore.RNN(16, 16, num_layers=2, bidirectional=True, seed=0,
                          dtype=np.float32 if kind == "RNN float32" else np.float64)
    grad = np.ones(net(x)[0].shape if kind != "RNNModel" else net(x).shape)

    def step():
        net.zero_grad()
        net(x)
        net.backward(grad)

    assert growth_after_warm_up(step) < 2 * MB


# One forward + backward in a fresh process, inputs and output gradient allocated and touched
# first, a tiny step before to warm up the libraries and thread pools. The peak is VmHWM after
# resetting it to VmRSS (clear_refs), not ru_maxrss: a process started by fork (or vfork) and exec
# inherits the high-water mark of its parent, here pytest's.
PEAK_SCRIPT = """
import json, sys
import numpy as np
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
impl, T, B, I, H = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I), dtype=np.float32)
grad = rng.standard_normal((T, B, H), dtype=np.float32)
if impl == "rnncore":
    import rnncore
    rnn = rnncore.RNN(I, H, seed=0)
    def step(x, grad):
        rnn(x)
        return rnn.backward(grad)
    rnn.zero_grad()  # touches the parameter gradients, which exist before any step
else:
    import torch
    rnn = torch.nn.RNN(I, H)
    def step(x, grad):
        x = torch.from_numpy(x).requires_grad_()
        rnn(x)[0].backward(torch.from_numpy(grad))
        return x.grad
    for p in rnn.parameters():
        p.grad = torch.zeros_like(p)
step(x[:2, :2].copy(), grad[:2, :2].copy())
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
before = status("VmRSS")
result = step(x, grad)
print(json.dumps({"extra_bytes": status("VmHWM") - before}))
"""


def peak_extra_bytes(impl, T, B, I, H):
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, impl, str(T), str(B), str(I), str(H)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])["extra_bytes"]


def minimum_extra_bytes(T, B, I, H):
    """What one float32 forward + backward must add: the states it stores for the backward (the
    output), grad_x, and h_n, grad_h0."""
    return 4 * (T * B * H + T * B * I + 2 * B * H)


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs a writable /proc/self/clear_refs")
def test_peak_memory_of_a_training_step_is_near_the_minimum():
    T, B, I, H = 512, 64, 512, 512
    extra, minimum = peak_extra_bytes("rnncore", T, B, I, H), minimum_extra_bytes(T, B, I, H)
    # The lower bound checks the measurement: the output and grad_x are kept, so they show.
    assert 0.95 * minimum <= extra <= 1.25 * minimum, \
        f"{extra / MB:.1f} MB, minimum {minimum / MB:.1f} MB"
