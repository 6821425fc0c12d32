"""RNNModel and Seq2Seq files: one uncompressed .npz archive (``np.savez``; read with
allow_pickle=False). The code of ``RNNModel.save``, ``RNNModel.load``, ``Seq2Seq.save`` and
``Seq2Seq.load`` (rnncore/_registry.py says why it is here).

Entries:
    format          str   "rnncore.RNNModel" or "rnncore.Seq2Seq": says the file is ours
    format_version  int   FORMAT_VERSION; a reader refuses versions it does not know
    config          str   JSON of the constructor arguments (RNNModel.config()); for a Seq2Seq
                          {"encoder": {"kind", "config"}, "decoder": config, "bridge"}
    param/<name>    array one per parameter, by its torch name (param/rnn.weight_ih_l0, ...)
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from .._registry import implements
from ..model import RNNModel
from ..rnn import RNN
from ..seq2seq import Seq2Seq

FORMAT = "rnncore.RNNModel"
FORMAT_VERSION = 1
PARAM_PREFIX = "param/"


@implements("RNNModel.save")
def save_model(model: RNNModel, path) -> None:
    """Write `model` to exactly `path` (no suffix added), replacing any file there only once the
    new one is complete."""
    _write(os.fspath(path), FORMAT, model.config(), model.parameters())


def _write(path: str, form: str, config: dict, parameters: dict) -> None:
    arrays = {"format": np.array(form), "format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(config))}
    arrays.update({PARAM_PREFIX + name: p for name, p in parameters.items()})
    fd, tmp = tempfile.mkstemp(prefix=".rnncore-", suffix=".npz.tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@implements("RNNModel.load")
def load_model(path) -> RNNModel:
    """The model saved at `path`. FileNotFoundError if there is no file; ValueError naming the
    problem if it is not a complete rnncore model file of a version this code reads."""
    path = os.fspath(path)
    config, params = _read(path, FORMAT)
    want, got = _parameter_count(config), sum(p.size for p in params.values())
    if want is not None and want > got:  # refused before building: that would allocate `want`
        raise ValueError(f"{path}: damaged rnncore model file: parameters do not fit its config "
                         f"(it needs {want} parameter values, the file holds {got}: missing keys "
                         f"or a size mismatch)")
    try:
        model = RNNModel(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: damaged rnncore model file: its config {config} is not valid "
                         f"({err})") from None
    _load_into(path, model, params)
    return model


def _load_into(path: str, model, params: dict) -> None:
    try:
        model.load_state_dict(params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: damaged rnncore model file: parameters do not fit its config "
                         f"({err})") from None


def _read(path: str, form: str) -> tuple[dict, dict]:
    """The config and parameters of the model file of format `form` at `path`."""
    arrays = _read_npz(path)
    if arrays.get("format") is None or arrays["format"].shape != () or \
            str(arrays["format"]) != form:
        raise ValueError(f"{path}: not an rnncore model file (an .npz archive without the "
                         f"'format' entry {form!r}; its entries are {sorted(arrays)[:8]})")
    try:
        version = int(arrays["format_version"])
        config = json.loads(str(arrays["config"]))
        if not isinstance(config, dict):
            raise TypeError(f"config is a JSON {type(config).__name__}, not an object")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: damaged rnncore model file: bad or missing format_version or "
                         f"config ({type(err).__name__}: {err})") from None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: rnncore model format version {version} is not supported (this "
                         f"rnncore reads version {FORMAT_VERSION}); save the model again with a "
                         f"matching rnncore")
    params = {k[len(PARAM_PREFIX):]: v for k, v in arrays.items() if k.startswith(PARAM_PREFIX)}
    return config, params


# ---- Seq2Seq: one file, format "rnncore.Seq2Seq", config {encoder, decoder, bridge} ----------

SEQ2SEQ_FORMAT = "rnncore.Seq2Seq"
_RNN_OPTIONS = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
                "dropout", "bidirectional")


@implements("Seq2Seq.save")
def save_seq2seq(model: Seq2Seq, path) -> None:
    enc = model.encoder
    if isinstance(enc, RNN):
        encoder = dict(kind="RNN", config={**{k: getattr(enc, k) for k in _RNN_OPTIONS},
                                           "dtype": enc.dtype.name})
    else:
        encoder = dict(kind="RNNModel", config=enc.config())
    config = dict(encoder=encoder, decoder=model.decoder.config(), bridge=model.bridge)
    _write(os.fspath(path), SEQ2SEQ_FORMAT, config, model.parameters())


@implements("Seq2Seq.load")
def load_seq2seq(path) -> Seq2Seq:
    path = os.fspath(path)
    config, params = _read(path, SEQ2SEQ_FORMAT)
    try:
        enc = config["encoder"]
        kind = {"RNN": RNN, "RNNModel": RNNModel}[enc["kind"]]
        model = Seq2Seq(kind(**enc["config"]), RNNModel(**config["decoder"]), config["bridge"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: damaged rnncore Seq2Seq file: its config {config} is not "
                         f"valid ({type(err).__name__}: {err})") from None
    _load_into(path, model, params)
    return model


def _parameter_count(config: dict) -> int | None:
    """How many parameter values RNNModel(**config) holds, without building it (a damaged config
    can ask for terabytes); None if the sizes are not all positive ints (the constructor then
    names the problem)."""
    try:
        I, H, O = config["input_size"], config["hidden_size"], config["output_size"]
        L, head = config.get("num_layers", 1), [*config.get("head", ())]
    except (KeyError, TypeError):
        return None
    if not all(type(n) is int and n > 0 for n in (I, H, O, L, *head)):
        return None
    D = 2 if config.get("bidirectional") is True else 1
    rnn = D * (H * I + (L - 1) * H * D * H + L * (H * H + 2 * H))  # W_ih, W_hh, b_ih, b_hh
    widths = [D * H, *head, O]
    V = config.get("vocab_size")
    embedding = V * I if type(V) is int and V > 0 else 0
    return embedding + rnn + sum(a * b + b for a, b in zip(widths, widths[1:]))  # weight, bias per Linear


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Every entry of the .npz at `path`, read eagerly so that damage shows up here."""
    with open(path, "rb") as f:  # a missing or unreadable file raises its own OSError here
        try:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            with data:
                return {name: data[name] for name in data.files}
        except Exception as err:  # noqa: BLE001: whatever the parsers make of damaged bytes
            # e.g. np.load refusing a non-archive as "pickled data", BadZipFile for a truncated
            # archive, CRC or header errors for damaged entries.
            raise ValueError(f"{path}: not a readable rnncore model file (expected an .npz "
                             f"archive; {type(err).__name__}: {err})") from None
