"""Peak extra memory of one training step (forward + backward), per implementation and shape.

Each measurement runs in a fresh Python process (`child_main`), so that no other implementation's
buffers or allocator state are in it. The child runs one training step on a
throwaway instance as warm-up (libraries, thread pools), then, for each measured step, builds a
fresh instance (model, inputs, output gradient), resets the peak resident set size
(`echo 5 > /proc/self/clear_refs`), reads VmRSS, runs one training step and reads VmHWM. The result
is the median of VmHWM - VmRSS over the measured steps: what a step adds to a process holding the
model and the data, gradients included. (A fresh instance, so that no implementation starts with
states kept from a previous step: rnncore and the numpy loop keep them until the next forward,
torch frees them in its backward.)

glibc malloc is told to map every block of 64 KiB or more on its own and to give freed memory back
at once, and numpy not to ask for transparent huge pages: otherwise a block freed by the warm-up
could be reused from the heap without showing in VmHWM, or a huge page could round a small array
up to 2 MiB.
"""

from __future__ import annotations

import gc
import json
import os
import re
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .cases import Case, make_problem
from .peers import IMPLS
from .timing import limited_threads

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536",
             "NUMPY_MADVISE_HUGEPAGE": "0"}
MB = 1024 * 1024


def supported() -> bool:
    return os.access("/proc/self/clear_refs", os.W_OK) and os.path.exists("/proc/self/status")


def train_step_extra_mb(case, impl: str, threads: int, dtype, steps: int = 3) -> float | None:
    """Median over `steps` of the peak resident memory one training step of `impl` adds, in MB."""
    if not supported():
        return None
    spec = dict(case=asdict(case), impl=impl, threads=threads, dtype=str(dtype), steps=steps)
    # The child must import this same rnncore, wherever it was imported from.
    path = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, **CHILD_ENV, PYTHONPATH=os.pathsep.join(p for p in path if p))
    code = "import sys; from rnncore.bench.memory import child_main; child_main(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {impl} on {case.label()} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[-1])["extra_mb"]


def minimum_extra_mb(case, dtype) -> dict:
    """The least a training step of rnncore's layer must add to memory, by part, in MB: the hidden
    states the forward stores for the backward (T*B*D*H per layer) and the gradients the backward
    returns (grad_x T*B*I, grad_h0 L*D*B*H, and one per parameter)."""
    size = np.dtype(dtype).itemsize / MB
    widths = [case.I] + [case.D * case.H] * (case.layers - 1)
    params = sum(case.D * (case.H * (w + case.H) + 2 * case.H) for w in widths)
    parts = {"states": case.layers * case.T * case.B * case.D * case.H * size,
             "grad_x": case.T * case.B * case.I * size,
             "grad_h0": case.layers * case.D * case.B * case.H * size,
             "param_grads": params * size}
    return {"total": sum(parts.values()), **parts}


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field} line")
    return int(match.group(1)) * 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS


def _child(spec: dict) -> dict:
    case, dtype = Case(**spec["case"]), np.dtype(spec["dtype"])

    def fresh():
        return IMPLS[spec["impl"]](*make_problem(case, dtype))

    extra, warm_up = [], fresh()  # built first: limits the threads of torch only once imported
    with limited_threads(spec["threads"]):
        warm_up.train()
        del warm_up
        for _ in range(spec["steps"]):
            impl = fresh()
            gc.collect()
            _reset_peak()
            before = _status_bytes("VmRSS")
            impl.train()
            extra.append(_status_bytes("VmHWM") - before)
            del impl
    return {"extra_mb": statistics.median(extra) / MB}


def child_main(spec: str) -> None:
    """The measuring process: prints {"extra_mb": ...} as JSON for the spec `train_step_extra_mb`
    passes as JSON."""
    print(json.dumps(_child(json.loads(spec))))
