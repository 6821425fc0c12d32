"""rnncore.onnx.export: an RNN or RNNModel as a standard ONNX graph (opset 17) for onnxruntime and
other ONNX runtimes.

Shape letters: T steps, B batch, I input, H hidden, D directions, L layers, O outputs; T and B
are dynamic axes of the graph. The graph, for inference (no dropout):

    x [T, B, I]                 ([B, T, I] with batch_first: one Transpose to time-major)
    layer k: ONNX RNN node      W [D, H, in_k], R [D, H, H], B [D, 2H] = concat(b_ih, b_hh)
             Y [T, D, B, H]     -> Transpose [T, B, D, H] -> Reshape [T, B, D*H], the next input
    head (RNNModel only)        MatMul + Add per linear layer, the activation between them
                                (readout "last": on the top layer's Y_h as [B, D*H]; "mean": on
                                the top output summed over time / lengths; y is then [B, O])
    output | y                  [T, B, D*H] or [T, B, O] (back to [B, T, .] with batch_first)
    h_n [L*D, B, H]             the layers' Y_h [D, B, H] concatenated, torch's layout

With an embedding (RNNModel with vocab_size), x is int64 token ids [T, B] ([B, T]) and one Gather
from the embedding's weight makes the RNN's input [T, B, I].

Optional inputs: h0 [L*D, B, H] (``with_h0``), each layer's slice of it its RNN's initial_h; and
lengths int32 [B] (``with_lengths``), every RNN's sequence_lens: steps at and after a sequence's
length give zero RNN outputs, h_n holds each sequence's last valid state and the reverse direction
starts at that sequence's own last step, as torch's pack_padded_sequence + pad_packed_sequence.

onnx is optional: it is imported when `export` runs, never when rnncore is imported.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .head import MLPHead
from .model import RNNModel
from .rnn import RNN

OPSET = 17  # ONNX 1.12's (2022): read by every onnxruntime that the `onnx` extra allows

_RNN_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}
_HEAD_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}

__all__ = ["export", "OPSET"]


def export(model: RNN | RNNModel, path: str | os.PathLike[str], *, with_h0: bool = False,
           with_lengths: bool = False, cast_to_float32: bool = False) -> Any:
    """Write `model` to the ONNX file `path` and return the ``onnx.ModelProto``.

    Graph inputs: ``x`` (as the model takes it, batched: [T, B, I], or [B, T, I] with
    batch_first), then ``h0`` [L*D, B, H] if `with_h0` (else a zero initial state), then
    ``lengths`` int32 [B] if `with_lengths` (each 1 <= length <= T; the graph does not check).
    Outputs: ``output`` and ``h_n`` for an RNN, ``y`` and ``h_n`` for an RNNModel, as the model's
    forward returns them. The graph is float32: onnxruntime implements the RNN operator for
    float32 only, so a float64 model raises ValueError unless `cast_to_float32` rounds its weights.
    """
    onnx = _import_onnx()
    if isinstance(model, RNNModel):
        rnn, head = model.rnn, model.head
    elif isinstance(model, RNN):
        rnn, head = model, None
    else:
        raise TypeError(f"export: expected an rnncore.RNN or rnncore.RNNModel, got "
                        f"{type(model).__name__}")
    if rnn.dtype != np.float32 and not cast_to_float32:
        raise ValueError(f"export: the model is {rnn.dtype.name}, but onnxruntime runs the ONNX "
                         "RNN operator in float32 only; pass cast_to_float32=True to export its "
                         "weights rounded to float32")

    graph = _GraphBuilder(onnx)
    L, D, H = rnn.num_layers, rnn.num_directions, rnn.hidden_size

    def sequence_shape(width: int) -> list:  # x, output and y; "time" and "batch" are dynamic
        return ["batch", "time", width] if rnn.batch_first else ["time", "batch", width]

    embedding = model.embedding if isinstance(model, RNNModel) else None
    if embedding is None:
        inputs = [graph.input("x", onnx.TensorProto.FLOAT, sequence_shape(rnn.input_size))]
    else:  # token ids: int64 [T, B] ([B, T]), looked up by one Gather into [T, B, I]
        inputs = [graph.input("x", onnx.TensorProto.INT64, sequence_shape(0)[:2])]
    if with_h0:
        inputs.append(graph.input("h0", onnx.TensorProto.FLOAT, [L * D, "batch", H]))
    if with_lengths:
        inputs.append(graph.input("lengths", onnx.TensorProto.INT32, ["batch"]))

    seq = "x"
    if embedding is not None:
        seq = graph.op("Gather", [graph.const(embedding.parameters()["weight"]), seq], axis=0)
    seq = graph.op("Transpose", [seq], perm=[1, 0, 2]) if rnn.batch_first else seq
    h_n_parts = []
    for k in range(L):
        seq, h_n_k = _rnn_layer(graph, rnn, k, seq, with_h0, with_lengths)
        h_n_parts.append(h_n_k)
    h_n = graph.op("Concat", h_n_parts, out="h_n", axis=0)

    width, out_name = D * H, "output"
    if isinstance(model, RNNModel) and model.readout != "all":  # [B, D*H] -> head -> y [B, O]
        seq = _pooled(graph, model.readout, seq, h_n_parts[-1], D * H, with_lengths)
        y = _head(graph, model.head, seq)
        graph.op("Identity", [y], out="y")
        outputs = [graph.output("y", ["batch", model.output_size]),
                   graph.output(h_n, [L * D, "batch", H])]
        proto = graph.model(type(model).__name__, inputs, outputs)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, os.fspath(path))
        return proto
    if head is not None:
        seq = _head(graph, head, seq)
        width, out_name = head.sizes[-1], "y"
    if rnn.batch_first:
        graph.op("Transpose", [seq], out=out_name, perm=[1, 0, 2])
    else:
        graph.op("Identity", [seq], out=out_name)
    outputs = [graph.output(out_name, sequence_shape(width)),
               graph.output(h_n, [L * D, "batch", H])]

    proto = graph.model(type(model).__name__, inputs, outputs)
    onnx.checker.check_model(proto, full_check=True)  # also runs shape inference
    onnx.save(proto, os.fspath(path))
    return proto


def _rnn_layer(graph: _GraphBuilder, rnn: RNN, k: int, seq: str, with_h0: bool,
               with_lengths: bool) -> tuple[str, str]:
    """Layer k over seq [T, B, in_k]: returns its output [T, B, D*H] and Y_h [D, B, H]."""
    D, H = rnn.num_directions, rnn.hidden_size
    params = rnn.parameters()
    sfx = ("", "_reverse")[:D]
    # torch's (H, in_k) and (H, H) weights are ONNX's per-direction layout; ONNX stacks the
    # directions on a leading axis (forward first) and concatenates the two biases.
    w = graph.const(np.stack([params[f"weight_ih_l{k}{s}"] for s in sfx]))  # [D, H, in_k]
    r = graph.const(np.stack([params[f"weight_hh_l{k}{s}"] for s in sfx]))  # [D, H, H]
    b = ""
    if rnn.bias:
        b = graph.const(np.stack([np.concatenate([params[f"bias_ih_l{k}{s}"],
                                                  params[f"bias_hh_l{k}{s}"]]) for s in sfx]))
    h0 = ""
    if with_h0:  # rows k*D .. k*D+D-1 of h0 [L*D, B, H]
        h0 = graph.op("Slice", ["h0", graph.const(np.array([k * D])),
                                graph.const(np.array([(k + 1) * D])), graph.const(np.array([0]))])
    y, y_h = graph.op("RNN", [seq, w, r, b, "lengths" if with_lengths else "", h0], n_out=2,
                      hidden_size=H, direction="bidirectional" if D == 2 else "forward",
                      activations=[_RNN_ACTIVATIONS[rnn.nonlinearity]] * D)
    y = graph.op("Transpose", [y], perm=[0, 2, 1, 3])  # [T, D, B, H] -> [T, B, D, H]
    return graph.op("Reshape", [y, graph.const(np.array([0, 0, D * H]))]), y_h


def _pooled(graph: _GraphBuilder, readout: str, seq: str, y_h: str, width: int,
            with_lengths: bool) -> str:
    """A readout's rows [B, D*H]: "last" from the top layer's Y_h [D, B, H], "mean" from its
    output seq [T, B, D*H] (zero at padded steps) summed over time and divided by the lengths."""
    if readout == "last":
        rows = graph.op("Transpose", [y_h], perm=[1, 0, 2])  # [B, D, H]
        return graph.op("Reshape", [rows, graph.const(np.array([0, width]))])
    total = graph.op("ReduceSum", [seq, graph.const(np.array([0]))], keepdims=0)  # [B, D*H]
    if with_lengths:
        n = graph.op("Cast", ["lengths"], to=graph.onnx.TensorProto.FLOAT)
        n = graph.op("Unsqueeze", [n, graph.const(np.array([1]))])  # [B, 1]
    else:
        shape = graph.op("Shape", [seq])
        steps = graph.op("Gather", [shape, graph.const(np.array(0))])
        n = graph.op("Cast", [steps], to=graph.onnx.TensorProto.FLOAT)
    return graph.op("Div", [total, n])


def _head(graph: _GraphBuilder, head: MLPHead, seq: str) -> str:
    """The MLP on every step: seq [T, B, F_0] -> [T, B, O]."""
    n = head.num_linear
    for k in range(n):
        weight, bias = head.params[f"{2 * k}.weight"], head.params[f"{2 * k}.bias"]
        seq = graph.op("MatMul", [seq, graph.const(weight.T)])  # [T, B, F_k] @ [F_k, F_k+1]
        seq = graph.op("Add", [seq, graph.const(bias)])
        if k < n - 1:
            seq = graph.op(_HEAD_ACTIVATIONS[head.activation], [seq])
    return seq


class _GraphBuilder:
    """Nodes and float32/int64 constants of one graph, with generated names."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, array: np.ndarray) -> str:
        """An initializer: integer arrays as int64 (shapes, indices), the rest as float32."""
        array = np.asarray(array)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        name = self._name("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array),
                                                                   name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, n_out: int = 1,
           **attrs: Any) -> Any:
        """Add a node; returns its output name, or a list of `n_out` names."""
        names = [out or self._name(op_type.lower())] if n_out == 1 else \
            [self._name(f"{op_type.lower()}_out{i}") for i in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names,
                                                     name=self._name(op_type), **attrs))
        return names[0] if n_out == 1 else names

    def input(self, name: str, elem_type: int, shape: list) -> Any:
        return self.onnx.helper.make_tensor_value_info(name, elem_type, shape)

    def output(self, name: str, shape: list) -> Any:
        return self.onnx.helper.make_tensor_value_info(name, self.onnx.TensorProto.FLOAT, shape)

    def model(self, name: str, inputs: list, outputs: list) -> Any:
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, f"rnncore.{name}", inputs, outputs,
                                  initializer=self.initializers)
        opsets = [helper.make_opsetid("", OPSET)]
        # The oldest IR version that holds this opset, so that older runtimes load the file.
        return helper.make_model(graph, opset_imports=opsets, producer_name="rnncore",
                                 ir_version=helper.find_min_ir_version_for(opsets))


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (a submodule `import onnx` may not load)
    except ImportError as err:
        raise ImportError("rnncore.onnx.export needs the onnx package, which rnncore does not "
                          "install: pip install 'rnncore[onnx]'") from err
    return onnx
