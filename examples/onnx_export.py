"""Export an RNNModel to ONNX and run it in onnxruntime, on a batch of sequences of different
lengths (the graph's `lengths` input, as torch's pack_padded_sequence).

Needs onnx and onnxruntime (pip install 'rnncore[onnx]'); without them, prints a message and
exits 0.
"""

import os
import sys
import tempfile

import numpy as np

import rnncore

try:
    import onnxruntime
except ImportError:
    print("skipped: onnxruntime is not installed (pip install 'rnncore[onnx]')")
    sys.exit(0)

model = rnncore.RNNModel(3, 16, 2, num_layers=2, bidirectional=True, batch_first=True,
                         head=(8,), seed=0).eval()
rng = np.random.default_rng(0)
lengths = np.array([9, 4, 6], dtype=np.int32)  # B sequences, padded to T = 9 steps
x = rng.standard_normal((3, 9, 3)).astype(np.float32)  # (B, T, I): batch_first

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "model.onnx")
    graph = rnncore.onnx.export(model, path, with_lengths=True)
    print(f"{model} -> {os.path.getsize(path)} bytes of ONNX (opset {rnncore.onnx.OPSET}), "
          f"{len(graph.graph.node)} nodes; inputs {[i.name for i in graph.graph.input]}, "
          f"outputs {[o.name for o in graph.graph.output]}")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    y, h_n = session.run(None, {"x": x, "lengths": lengths})

# rnncore on the same padded batch and lengths: the same y and final states.
difference = max(np.abs(y - model(x, lengths=lengths)).max(), np.abs(h_n - model.h_n).max())
print(f"onnxruntime vs rnncore on {len(lengths)} sequences of lengths {lengths.tolist()}: "
      f"max abs difference {difference:.2e}")
