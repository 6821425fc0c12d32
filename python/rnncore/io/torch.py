"""Weights in and out of torch: an RNN <-> ``torch.nn.RNN``, an RNNModel <-> an ``nn.RNN`` and an
``nn.Sequential`` head. The code of ``RNN.from_torch``, ``RNN.to_torch``, ``RNNModel.from_torch``
and ``RNNModel.to_torch`` (rnncore/_registry.py says why it is here, not in the classes).

torch stays optional: it is imported inside the functions that need it, never when rnncore is
imported.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

from .._registry import implements
from ..model import RNNModel
from ..rnn import RNN
from ..seq2seq import Seq2Seq

# RNN and nn.RNN both warn when dropout > 0 with one layer; a conversion is no place to repeat it.
_DROPOUT_WARNING = "dropout option adds dropout after all but last recurrent layer"

# RNNModel's head_activation -> the name of the torch.nn module class
_TORCH_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise ImportError("this conversion needs torch, which rnncore does not install: "
                          "pip install 'rnncore[torch]'") from err
    return torch


def _numpy_dtype(torch: Any, tensors: list, what: str) -> np.dtype:
    """The one float32/float64 dtype of `tensors` as a numpy dtype."""
    kinds = {t.dtype for t in tensors}
    if len(kinds) != 1 or next(iter(kinds)) not in (torch.float32, torch.float64):
        got = ", ".join(sorted(str(k) for k in kinds)) or "no parameters"
        raise TypeError(f"{what}: expected parameters that are all torch.float32 or all "
                        f"torch.float64, got {got}")
    return np.dtype(np.float32 if next(iter(kinds)) == torch.float32 else np.float64)


def _numpy_state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return torch.float32 if dtype == np.float32 else torch.float64


def _copy_into(torch: Any, module: Any, params: dict[str, np.ndarray], prefix: str = "") -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(params[prefix + name]))


# ---- RNN <-> torch.nn.RNN ---------------------------------------------------------------------


def _check_torch_rnn(torch: Any, module: Any) -> np.dtype:
    if not isinstance(module, torch.nn.RNN):
        raise TypeError(f"from_torch: expected a torch.nn.RNN, got {type(module).__name__} "
                        "(rnncore implements the Elman RNN only, not LSTM or GRU)")
    if getattr(module, "proj_size", 0) != 0:
        raise TypeError(f"from_torch: proj_size={module.proj_size} is not supported (torch "
                        "allows projections only for LSTM); expected proj_size=0")
    return _numpy_dtype(torch, list(module.parameters()), "from_torch")


@implements("RNN.from_torch")
def rnn_from_torch(cls: type[RNN], module: Any) -> RNN:
    """An rnncore RNN with the options, dtype, training mode and exact weights of `module`."""
    torch = _import_torch()
    dtype = _check_torch_rnn(torch, module)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _DROPOUT_WARNING, UserWarning)
        rnn = cls(module.input_size, module.hidden_size, module.num_layers, module.nonlinearity,
                  bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
                  bidirectional=module.bidirectional, dtype=dtype)
    rnn.load_state_dict(_numpy_state(module))
    return rnn.train(module.training)


def _new_torch_rnn(torch: Any, rnn: RNN) -> Any:
    # fork_rng: torch's random init (overwritten right away) leaves the caller's CPU RNG untouched.
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", _DROPOUT_WARNING, UserWarning)
        return torch.nn.RNN(rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity,
                            bias=rnn.bias, batch_first=rnn.batch_first, dropout=rnn.dropout,
                            bidirectional=rnn.bidirectional, dtype=_torch_dtype(torch, rnn.dtype))


@implements("RNN.to_torch")
def rnn_to_torch(rnn: RNN) -> Any:
    """A torch.nn.RNN with the options, dtype, training mode and (copied) weights of `rnn`."""
    torch = _import_torch()
    module = _new_torch_rnn(torch, rnn)
    _copy_into(torch, module, rnn.parameters())
    return module.train(rnn.training)


# ---- RNNModel <-> (nn.RNN, nn.Sequential head) ------------------------------------------------


def _head_layout(torch: Any, head: Any, width: int, dtype: np.dtype) -> tuple[tuple, str, int]:
    """(hidden widths, activation name, output size) of a Sequential(Linear, act, ..., Linear)."""
    nn = torch.nn
    if not isinstance(head, nn.Sequential):
        raise TypeError(f"from_torch: expected the head as a torch.nn.Sequential, got "
                        f"{type(head).__name__}")
    layers = list(head)
    if len(layers) % 2 == 0:
        raise ValueError(f"from_torch: expected a head Sequential(Linear, activation, ..., "
                         f"Linear) of odd length, got {len(layers)} modules")
    by_class = {cls: name for name, cls in _TORCH_ACTIVATIONS.items()}
    activations = set()
    widths = [width]
    for i, layer in enumerate(layers):
        if i % 2 == 1:
            cls = type(layer).__name__
            if not isinstance(layer, nn.Module) or cls not in by_class:
                raise TypeError(f"from_torch: head[{i}] should be one of nn."
                                f"{', nn.'.join(by_class)}, got {cls}")
            activations.add(by_class[cls])
            continue
        if type(layer) is not nn.Linear:
            raise TypeError(f"from_torch: head[{i}] should be an nn.Linear, got "
                            f"{type(layer).__name__}")
        if layer.bias is None:
            raise ValueError(f"from_torch: head[{i}] is a Linear without bias; RNNModel's head "
                             "layers all have one")
        if layer.in_features != widths[-1]:
            raise ValueError(f"from_torch: head[{i}].in_features should be {widths[-1]} (the "
                             f"width before it), got {layer.in_features}")
        widths.append(layer.out_features)
    if len(activations) > 1:
        raise ValueError(f"from_torch: the head mixes activations {sorted(activations)}; "
                         "RNNModel uses one head_activation between all its layers")
    head_dtype = _numpy_dtype(torch, list(head.parameters()), "from_torch (head)")
    if head_dtype != dtype:
        raise TypeError(f"from_torch: the head's parameters are {head_dtype.name} but the RNN's "
                        f"are {dtype.name}; convert one of them first")
    return tuple(widths[1:-1]), (activations.pop() if activations else "relu"), widths[-1]


@implements("RNNModel.from_torch")
def model_from_torch(cls: type[RNNModel], rnn_module: Any, head: Any, readout: str = "all",
                     embedding: Any = None) -> RNNModel:
    torch = _import_torch()
    dtype = _check_torch_rnn(torch, rnn_module)
    if not rnn_module.bias:
        raise ValueError("from_torch: RNNModel's RNN always has biases; got an nn.RNN with "
                         "bias=False")
    D = 2 if rnn_module.bidirectional else 1
    hidden, activation, output_size = _head_layout(torch, head, D * rnn_module.hidden_size, dtype)
    tokens: dict = {}
    if embedding is not None:
        if not isinstance(embedding, torch.nn.Embedding):
            raise TypeError(f"from_torch: expected the embedding as a torch.nn.Embedding, got "
                            f"{type(embedding).__name__}")
        if embedding.embedding_dim != rnn_module.input_size:
            raise ValueError(f"from_torch: the embedding's embedding_dim should be the RNN's "
                             f"input_size {rnn_module.input_size}, got {embedding.embedding_dim}")
        if _numpy_dtype(torch, [embedding.weight], "from_torch (embedding)") != dtype:
            raise TypeError("from_torch: the embedding's dtype differs from the RNN's")
        tokens = dict(vocab_size=embedding.num_embeddings, padding_idx=embedding.padding_idx)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _DROPOUT_WARNING, UserWarning)
        model = cls(rnn_module.input_size, rnn_module.hidden_size, output_size,
                    num_layers=rnn_module.num_layers, head=hidden, head_activation=activation,
                    nonlinearity=rnn_module.nonlinearity, bidirectional=rnn_module.bidirectional,
                    batch_first=rnn_module.batch_first, dropout=rnn_module.dropout, dtype=dtype,
                    readout=readout, **tokens)
    state = {**{f"rnn.{k}": v for k, v in _numpy_state(rnn_module).items()},
             **{f"head.{k}": v for k, v in _numpy_state(head).items()}}
    if embedding is not None:
        state["embedding.weight"] = _numpy_state(embedding)["weight"]
    model.load_state_dict(state)
    return model.train(rnn_module.training)


@functools.cache
def _torch_model_class() -> type:
    module_base: Any = _import_torch().nn.Module

    class TorchRNNModel(module_base):
        """RNNModel in torch: ``y, h_n = module(x, h0=None)`` with ``y = head(rnn(x, h0)[0])``
        for readout "all", ``head(cat(h_n[-D:], -1))`` for "last" and ``head(output.mean(time))``
        for "mean"."""

        def __init__(self, rnn: Any, head: Any, readout: str = "all",
                     embedding: Any = None) -> None:
            super().__init__()
            if embedding is not None:  # registered first: its name leads the state dict
                self.embedding = embedding
            self.rnn = rnn
            self.head = head
            self.readout = readout

        def forward(self, x: Any, h0: Any = None) -> tuple[Any, Any]:
            if hasattr(self, "embedding"):
                x = self.embedding(x)
            output, h_n = self.rnn(x, h0)
            if self.readout == "last":
                D = 2 if self.rnn.bidirectional else 1
                return self.head(_import_torch().cat(list(h_n[-D:]), -1)), h_n
            if self.readout == "mean":
                time = 1 if self.rnn.batch_first and output.dim() == 3 else 0
                return self.head(output.mean(time)), h_n
            return self.head(output), h_n

    TorchRNNModel.__module__ = __name__
    return TorchRNNModel


@implements("RNNModel.to_torch")
def model_to_torch(model: RNNModel) -> Any:
    torch = _import_torch()
    nn = torch.nn
    rnn = _new_torch_rnn(torch, model.rnn)
    sizes = model.head.sizes
    layers: list = []
    with torch.random.fork_rng(devices=[]):
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if k > 0:
                layers.append(getattr(nn, _TORCH_ACTIVATIONS[model.head_activation])())
            layers.append(nn.Linear(fan_in, fan_out, dtype=_torch_dtype(torch, model.dtype)))
    embedding = None
    if model.embedding is not None:
        with torch.random.fork_rng(devices=[]):
            embedding = nn.Embedding(model.embedding.num_embeddings, model.input_size,
                                     padding_idx=model.embedding.padding_idx,
                                     dtype=_torch_dtype(torch, model.dtype))
    module = _torch_model_class()(rnn, nn.Sequential(*layers), model.readout, embedding)
    _copy_into(torch, module, model.parameters())
    return module.train(model.training)


# ---- Seq2Seq -> (encoder, bridge, decoder) ------------------------------------------------------


@functools.cache
def _torch_seq2seq_class() -> type:
    torch = _import_torch()
    module_base: Any = torch.nn.Module

    class TorchSeq2Seq(module_base):
        """Seq2Seq in torch: ``logits = module(src, tgt_in, src_lengths=None)``; the encoder's
        h_n (packed by src_lengths) through the bridge is the decoder's h0."""

        def __init__(self, encoder: Any, bridge: Any, decoder: Any) -> None:
            super().__init__()
            self.encoder = encoder
            if bridge is not None:  # registered between the two, as rnncore names them
                self.bridge = bridge
            self.decoder = decoder

        def encode(self, src: Any, src_lengths: Any = None) -> Any:
            enc = self.encoder
            rnn = enc if isinstance(enc, torch.nn.RNN) else enc.rnn
            x = enc.embedding(src) if hasattr(enc, "embedding") else src
            if src_lengths is not None:
                x = torch.nn.utils.rnn.pack_padded_sequence(
                    x, torch.as_tensor(src_lengths), batch_first=rnn.batch_first,
                    enforce_sorted=False)
            _, h_n = rnn(x)
            L, De = rnn.num_layers, 2 if rnn.bidirectional else 1
            parts = h_n.reshape(L, De, h_n.shape[1], h_n.shape[2])
            if not hasattr(self, "bridge"):
                return parts.sum(1)
            rows = parts.permute(0, 2, 1, 3).reshape(L, h_n.shape[1], De * h_n.shape[2])
            return self.bridge(rows)

        def forward(self, src: Any, tgt_in: Any, src_lengths: Any = None) -> Any:
            return self.decoder(tgt_in, self.encode(src, src_lengths).contiguous())[0]

    TorchSeq2Seq.__module__ = __name__
    return TorchSeq2Seq


@implements("Seq2Seq.to_torch")
def seq2seq_to_torch(model: Seq2Seq) -> Any:
    torch = _import_torch()
    enc = model.encoder
    encoder = rnn_to_torch(enc) if isinstance(enc, RNN) else model_to_torch(enc)
    bridge = None
    if model.proj is not None:
        with torch.random.fork_rng(devices=[]):
            fan_in, fan_out = model.proj.sizes
            bridge = torch.nn.Sequential(torch.nn.Linear(fan_in, fan_out,
                                                         dtype=_torch_dtype(torch, model.dtype)))
        _copy_into(torch, bridge, model.proj.params)
    module = _torch_seq2seq_class()(encoder, bridge, model_to_torch(model.decoder))
    return module.train(model.training)
