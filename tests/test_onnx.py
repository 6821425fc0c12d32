"""rnncore.onnx.export: the graph onnxruntime runs gives rnncore's results (and, with lengths,
torch's packed-sequence results) to float32 rounding, for every layout the exporter handles."""

import inspect
import itertools
import subprocess
import sys

import numpy as np
import pytest

import rnncore
import rnncore.onnx
from helpers import TOLERANCES

I, H, O, T, B = 3, 5, 2, 7, 4
LENGTHS = np.array([7, 2, 5, 1], dtype=np.int32)  # unsorted, with the full T and a length of 1
# Two float32 computations of the same function (onnxruntime's and rnncore's), each within tol.
TOL = {k: 2 * v for k, v in TOLERANCES[np.dtype(np.float32)].items()}

RNN_OPTIONS = [dict(num_layers=L, bidirectional=bi, batch_first=bf, nonlinearity=act, bias=bias)
               for L, bi, bf, act, bias in itertools.product(
                   (1, 2), (False, True), (False, True), ("tanh", "relu"), (True, False))]
HEADS = [dict(head=()), dict(head=(7,), head_activation="relu"),
         dict(head=(6, 4), head_activation="tanh"), dict(head=(6,), head_activation="sigmoid")]
MODEL_OPTIONS = [dict(num_layers=L, bidirectional=bi, batch_first=bf,
                      nonlinearity=("tanh", "relu")[i % 2], **head)
                 for i, (L, bi, bf, head) in enumerate(itertools.product(
                     (1, 2), (False, True), (False, True), HEADS))]


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _ids(opts):
    return ",".join(f"{k}={v}" for k, v in opts.items())


def _make(opts, dtype=np.float32, seed=0):
    if "head" in opts:
        return rnncore.RNNModel(I, H, O, **opts, dtype=dtype, seed=seed).eval()
    return rnncore.RNN(I, H, **opts, dtype=dtype, seed=seed).eval()


def _inputs(model, seed=1, batch=B, steps=T):
    rng = np.random.default_rng(seed)
    shape = (batch, steps, I) if model.batch_first else (steps, batch, I)
    x = rng.uniform(-1, 1, shape).astype(model.dtype)
    h0 = rng.uniform(-0.5, 0.5, (model.num_layers * model.num_directions, batch, H))
    return x, h0.astype(model.dtype)


def _rnncore_run(model, x, h0=None):
    """(output or y, h_n) as rnncore computes them."""
    if isinstance(model, rnncore.RNNModel):
        return model(x, h0), model.h_n
    return model(x, h0)


def _session(ort, model, tmp_path, **options):
    path = tmp_path / "model.onnx"
    rnncore.onnx.export(model, path, **options)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_close(got, want):
    for name, g, w in zip(("output", "h_n"), got, want):
        assert g.shape == w.shape, f"{name}: shape {g.shape}, expected {w.shape}"
        np.testing.assert_allclose(g, w, **TOL, err_msg=name)


@pytest.mark.parametrize("opts", RNN_OPTIONS + MODEL_OPTIONS, ids=_ids)
def test_export_matches_rnncore(ort, tmp_path, opts):
    model = _make(opts)
    x, h0 = _inputs(model)
    zero_state = _session(ort, model, tmp_path)
    _assert_close(zero_state.run(None, {"x": x}), _rnncore_run(model, x))
    given_state = _session(ort, model, tmp_path, with_h0=True)
    _assert_close(given_state.run(None, {"x": x, "h0": h0}), _rnncore_run(model, x, h0))


def test_time_and_batch_axes_are_dynamic(ort, tmp_path):
    model = _make(dict(num_layers=2, bidirectional=True, batch_first=True, head=(4,)))
    session = _session(ort, model, tmp_path, with_h0=True)
    for steps, batch in ((1, 1), (3, 9), (20, 2)):
        x, h0 = _inputs(model, batch=batch, steps=steps)
        _assert_close(session.run(None, {"x": x, "h0": h0}), _rnncore_run(model, x, h0))


def test_graph_computes_evaluation_mode(ort, tmp_path):
    model = rnncore.RNNModel(I, H, O, num_layers=3, dropout=0.5, head=(4,), seed=0)
    assert model.training
    session = _session(ort, model, tmp_path)  # exported in training mode: no dropout in the graph
    x, _ = _inputs(model)
    _assert_close(session.run(None, {"x": x}), _rnncore_run(model.eval(), x))


def test_graph_interface(ort, tmp_path):
    import onnx

    model = _make(dict(num_layers=2, bidirectional=True, head=(4,)))
    path = tmp_path / "model.onnx"
    proto = rnncore.onnx.export(model, path, with_h0=True, with_lengths=True)
    assert onnx.load(str(path)) == proto
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", rnncore.onnx.OPSET)]

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    graph = proto.graph
    assert [(v.name, dims(v)) for v in graph.input] == [
        ("x", ["time", "batch", I]), ("h0", [4, "batch", H]), ("lengths", ["batch"])]
    assert graph.input[2].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert [(v.name, dims(v)) for v in graph.output] == [
        ("y", ["time", "batch", O]), ("h_n", [4, "batch", H])]
    rnn_nodes = [n for n in graph.node if n.op_type == "RNN"]
    assert len(rnn_nodes) == 2
    for node in rnn_nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["direction"] == b"bidirectional" and attrs["hidden_size"] == H
        assert attrs["activations"] == [b"Tanh", b"Tanh"]
        assert node.input[4] == "lengths"


# ---- lengths ------------------------------------------------------------------------------------

def _torch_packed_run(model, x, h0):
    """torch on the same weights through pack_padded_sequence(enforce_sorted=False) and
    pad_packed_sequence(total_length=T): (output or y, h_n)."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    module = model.to_torch().eval()
    rnn = module.rnn if isinstance(model, rnncore.RNNModel) else module
    packed = pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(LENGTHS.astype(np.int64)),
                                  batch_first=model.batch_first, enforce_sorted=False)
    with torch.no_grad():
        out, h_n = rnn(packed, torch.from_numpy(h0))
        out, _ = pad_packed_sequence(out, batch_first=model.batch_first, total_length=T)
        if isinstance(model, rnncore.RNNModel):
            out = module.head(out)  # on every step: padded ones see the zero RNN output
    return out.numpy(), h_n.numpy()


@pytest.mark.parametrize("opts", RNN_OPTIONS + MODEL_OPTIONS, ids=_ids)
def test_lengths_match_torch_packed(ort, tmp_path, opts):
    model = _make(opts)
    x, h0 = _inputs(model)
    session = _session(ort, model, tmp_path, with_h0=True, with_lengths=True)
    got = session.run(None, {"x": x, "h0": h0, "lengths": LENGTHS})
    _assert_close(got, _torch_packed_run(model, x, h0))
    if not isinstance(model, rnncore.RNNModel):  # padded steps of the RNN output are exact zeros
        time_major = got[0].swapaxes(0, 1) if model.batch_first else got[0]
        padded = np.arange(T)[:, None] >= LENGTHS[None, :]
        assert np.all(time_major[padded] == 0)


def _takes_lengths(model):
    return "lengths" in inspect.signature(type(model).__call__).parameters


@pytest.mark.parametrize("opts", RNN_OPTIONS + MODEL_OPTIONS, ids=_ids)
def test_lengths_match_rnncore(ort, tmp_path, opts):
    model = _make(opts)
    if not _takes_lengths(model):
        pytest.skip(f"{type(model).__name__}.__call__ does not take lengths yet")
    x, h0 = _inputs(model)
    session = _session(ort, model, tmp_path, with_h0=True, with_lengths=True)
    if isinstance(model, rnncore.RNNModel):
        want = model(x, h0, lengths=LENGTHS), model.h_n
    else:
        want = model(x, h0, lengths=LENGTHS)
    _assert_close(session.run(None, {"x": x, "h0": h0, "lengths": LENGTHS}), want)


# ---- float64, errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("opts", [dict(num_layers=2, bidirectional=True),
                                  dict(batch_first=True, head=(6,), head_activation="tanh")],
                         ids=_ids)
def test_float64_models_export_as_float32_when_asked(ort, tmp_path, opts):
    model = _make(opts, dtype=np.float64)
    with pytest.raises(ValueError, match="float64.*cast_to_float32=True"):
        rnncore.onnx.export(model, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
    session = _session(ort, model, tmp_path, with_h0=True, cast_to_float32=True)
    x, h0 = _inputs(model)
    got = session.run(None, {"x": x.astype(np.float32), "h0": h0.astype(np.float32)})
    # float32 weights and a float32 computation against rnncore's float64 one
    for g, w in zip(got, _rnncore_run(model, x, h0)):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_export_rejects_other_objects(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(TypeError, match="expected an rnncore.RNN or rnncore.RNNModel, got dict"):
        rnncore.onnx.export({}, tmp_path / "model.onnx")


def test_missing_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'rnncore\[onnx\]'"):
        rnncore.onnx.export(rnncore.RNN(I, H), tmp_path / "model.onnx")


def test_onnx_is_not_imported_by_rnncore():
    code = ("import sys, rnncore; assert callable(rnncore.onnx.export); "
            "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
