"""rnncore.Seq2Seq: an encoder-decoder, the RNN architecture for input and output sequences of
different lengths, trained with teacher forcing and decoded greedily with the streaming step.

Shape letters: S source steps, T target steps, B batch, L layers, De / He the encoder's
directions and hidden size, H the decoder's hidden size, V the decoder's output classes.

    h_n = encoder(src)[1]                                   (L*De, B, He)
    h0  = bridge(h_n)                                       (L, B, H)
          unidirectional encoder, bridge "sum": h0 = h_n (He == H)
          bidirectional, "sum":    h0[k] = h_n[2k] + h_n[2k+1] (He == H)
          "concat":                h0[k] = [h_n[k*De] .. h_n[k*De+De-1]] @ W.T + b  (one Linear
                                   De*He -> H shared by the layers: parameters bridge.0.weight,
                                   bridge.0.bias, as torch's nn.Sequential(nn.Linear(De*He, H)))
    y   = decoder(tgt_in, h0)                               (T, B, V) logits
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import check_positive_int
from ._registry import implementation
from .embedding import check_ids
from .head import MLPHead
from .model import RNNModel
from .rnn import RNN, LoadResult, load_parameters

BRIDGES = ("sum", "concat")


class Seq2Seq:
    """An encoder (`RNN` or `RNNModel`) whose final state starts a decoder (`RNNModel`).

    ``y = s2s(src, tgt_in, src_lengths=None, tgt_lengths=None)`` runs the encoder over src, hands
    its final state through the bridge (module docstring) to the decoder as h0 and runs the
    decoder over tgt_in (teacher forcing: tgt_in is the target shifted right, starting with a
    start token). Each part reads its own layout (its ``batch_first``) and input kind (token ids
    with ``vocab_size``). ``s2s.backward(grad_y)`` backpropagates through the decoder, the bridge
    and the state handed over into the encoder. An RNNModel encoder contributes its embedding and
    RNN; its head is not used (its gradient stays zero).
    ``s2s.generate(src, max_len, start_id, end_id)`` decodes greedily, one `RNN.step` at a time.

    Parameters are named ``encoder.*``, ``bridge.*`` (with bridge="concat") and ``decoder.*``, as
    the attributes of a torch module holding the three parts.

        >>> enc = RNNModel(16, 64, 1, vocab_size=12)
        >>> dec = RNNModel(16, 64, 12, vocab_size=12)
        >>> s2s = Seq2Seq(enc, dec)
        >>> logits = s2s(src, tgt_in)             # (T, B, 12)
    """

    def __init__(self, encoder: RNN | RNNModel, decoder: RNNModel, bridge: str = "sum",
                 seed: int | np.random.Generator | None = None) -> None:
        if not isinstance(encoder, (RNN, RNNModel)):
            raise TypeError(f"encoder: expected an rnncore.RNN or rnncore.RNNModel, got "
                            f"{type(encoder).__name__}")
        if not isinstance(decoder, RNNModel):
            raise TypeError(f"decoder: expected an rnncore.RNNModel, got "
                            f"{type(decoder).__name__}")
        if bridge not in BRIDGES:
            raise ValueError(f"bridge: expected 'sum' or 'concat', got {bridge!r}")
        if decoder.bidirectional or decoder.readout != "all":
            raise ValueError("decoder: expected a unidirectional RNNModel with readout='all' "
                             "(it generates step by step), got "
                             f"bidirectional={decoder.bidirectional}, readout={decoder.readout!r}")
        if encoder.num_layers != decoder.num_layers:
            raise ValueError(f"decoder: expected num_layers={encoder.num_layers} like the "
                             f"encoder (layer k's final state starts layer k), got "
                             f"{decoder.num_layers}")
        if encoder.dtype != decoder.dtype:
            raise TypeError(f"decoder: expected dtype {encoder.dtype.name} like the encoder, got "
                            f"{decoder.dtype.name}")
        He, H, De = encoder.hidden_size, decoder.hidden_size, encoder.num_directions
        if bridge == "sum" and He != H:
            raise ValueError(f"bridge='sum' needs the encoder's hidden_size ({He}) equal to the "
                             f"decoder's ({H}); use bridge='concat' to project")
        self.encoder, self.decoder, self.bridge = encoder, decoder, bridge
        self.proj: MLPHead | None = None
        if bridge == "concat":  # nn.Linear(De*He, H)'s init
            self.proj = MLPHead((De * He, H), "relu", encoder.dtype, np.random.default_rng(seed))
        self._src_h_n_shape: tuple | None = None
        self._enc_out: np.ndarray | None = None

    dtype = property(lambda self: self.decoder.dtype)
    training = property(lambda self: self.decoder.training)
    batch_first = property(lambda self: self.decoder.batch_first)

    # ---- parameters -------------------------------------------------------------------------

    def _parts(self) -> list[tuple[str, dict, dict]]:
        parts = [("encoder", self.encoder.parameters(), self.encoder.grads)]
        if self.proj is not None:
            parts.append(("bridge", self.proj.params, self.proj.grads))
        parts.append(("decoder", self.decoder.parameters(), self.decoder.grads))
        return parts

    def parameters(self) -> dict[str, np.ndarray]:
        return {f"{p}.{k}": v for p, params, _ in self._parts() for k, v in params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{p}.{k}": v for p, _, grads in self._parts() for k, v in grads.items()}

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: p.copy() for name, p in self.parameters().items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> LoadResult:
        return load_parameters(self.parameters(), state_dict, self.dtype, type(self).__name__,
                               strict)

    def train(self, mode: bool = True) -> Seq2Seq:
        self.encoder.train(mode)
        self.decoder.train(mode)
        return self

    def eval(self) -> Seq2Seq:
        return self.train(False)

    def config(self) -> dict:
        return dict(bridge=self.bridge)

    # ---- forward and backward ---------------------------------------------------------------

    def __call__(self, src, tgt_in, src_lengths=None, tgt_lengths=None) -> np.ndarray:
        return self.forward(src, tgt_in, src_lengths, tgt_lengths)

    def encode(self, src, src_lengths=None) -> np.ndarray:
        """The decoder's initial state (L, B, H) for src (the encoder's input layout)."""
        if isinstance(self.encoder, RNNModel):
            self._enc_out = self.encoder(src, lengths=src_lengths)
            h_n = self.encoder.h_n
        else:
            self._enc_out, h_n = self.encoder(src, lengths=src_lengths)
        if h_n is None or h_n.ndim != 3:
            raise ValueError("src: expected a batch of sequences (batched input), got an "
                             "unbatched sequence")
        self._src_h_n_shape = h_n.shape
        L, De = self.encoder.num_layers, self.encoder.num_directions
        if self.proj is not None:  # rows [h_n[k*De], ..., h_n[k*De+De-1]] for each (k, b)
            B, He = h_n.shape[1], h_n.shape[2]
            rows = h_n.reshape(L, De, B, He).transpose(0, 2, 1, 3).reshape(L * B, De * He)
            return self.proj.forward(rows).reshape(L, B, -1)
        return h_n.reshape(L, De, *h_n.shape[1:]).sum(axis=1)

    def forward(self, src, tgt_in, src_lengths=None, tgt_lengths=None) -> np.ndarray:
        """Teacher-forced logits for tgt_in: (T, B, V), or (B, T, V) with the decoder's
        batch_first. src_lengths / tgt_lengths: (B,) valid steps of each padded sequence."""
        h0 = self.encode(src, src_lengths)
        if h0.shape[1] != self._batch_of(tgt_in):
            raise ValueError(f"tgt_in: expected a batch of {h0.shape[1]} sequences like src, got "
                             f"{self._batch_of(tgt_in)}")
        return self.decoder(tgt_in, h0, lengths=tgt_lengths)

    def _batch_of(self, tgt) -> int:
        shape = np.shape(tgt)
        if len(shape) < 2:
            raise ValueError(f"tgt_in: expected a batch of sequences, got shape {shape}")
        return shape[0] if self.decoder.batch_first else shape[1]

    def backward(self, grad_y) -> None:
        """Backpropagate the latest forward: grad_y shaped like its logits. Adds to ``grads``
        of the decoder, the bridge and the encoder (through the handed-over state)."""
        if self._src_h_n_shape is None or self._enc_out is None:
            raise RuntimeError("backward() called before forward()")
        self.decoder.backward(grad_y, input_grad=False)  # its input is data (or embedded ids)
        d_h0 = self.decoder.grad_h0  # (L, B, H)
        if d_h0 is None:
            raise RuntimeError("the decoder's backward left no gradient for its initial state")
        L, De = self.encoder.num_layers, self.encoder.num_directions
        _, B, He = self._src_h_n_shape
        if self.proj is not None:
            d_rows = self.proj.backward(d_h0.reshape(L * B, -1))  # (L*B, De*He)
            d_h_n = d_rows.reshape(L, B, De, He).transpose(0, 2, 1, 3).reshape(L * De, B, He)
        else:  # h0[k] = sum of h_n[k*De + d]: each direction gets d_h0[k]
            d_h_n = np.repeat(d_h0, De, axis=0)
        zeros = np.zeros(self._enc_out.shape, self.dtype)  # only the final state is used
        self.encoder.backward(zeros, d_h_n, input_grad=False)

    # ---- greedy decoding --------------------------------------------------------------------

    def generate(self, src, max_len: int, start_id: int, end_id: int | None = None,
                 src_lengths=None) -> np.ndarray:
        """Greedy decoding: (B, max_len) int64 token ids, each step the argmax of the decoder's
        logits fed back as its next input (the decoder needs token input, vocab_size). After a
        sequence emits end_id, its remaining positions hold end_id; decoding stops early when
        every sequence has ended. Runs in eval mode and restores the mode after."""
        dec = self.decoder
        if dec.embedding is None:
            raise ValueError("generate: the decoder must take token ids (RNNModel(..., "
                             "vocab_size=V)) to feed its own outputs back")
        max_len = check_positive_int(max_len, "max_len")
        V = dec.embedding.num_embeddings
        if dec.output_size > V:
            raise ValueError(f"generate: the decoder's output_size ({dec.output_size}) must not "
                             f"exceed its vocab_size ({V}): each prediction is read back")
        start = int(check_ids(np.asarray(start_id), V, "start_id"))
        end = None if end_id is None else int(check_ids(np.asarray(end_id), dec.output_size,
                                                        "end_id"))
        was_training = self.training
        self.eval()
        try:
            h = np.ascontiguousarray(self.encode(src, src_lengths))
            B = h.shape[1]
            out = np.full((B, max_len), end if end is not None else 0, np.int64)
            tokens = np.full(B, start, np.int64)
            done = np.zeros(B, bool)
            for t in range(max_len):
                top, h = dec.rnn.step(dec.embedding(tokens), h)  # (B, H), (L, B, H)
                tokens = dec.head.forward(top).argmax(axis=-1)
                out[~done, t] = tokens[~done]
                if end is not None:
                    done |= tokens == end
                    if done.all():
                        break
        finally:
            self.train(was_training)
        return out

    # ---- files: the code is in rnncore/io/serialization.py (_registry) ----------------------

    def save(self, path) -> None:
        """Write encoder, bridge and decoder to one .npz file (see `RNNModel.save`)."""
        implementation("Seq2Seq.save")(self, path)

    @classmethod
    def load(cls, path) -> Seq2Seq:
        """A Seq2Seq read from a file written by `save`; ValueError if it is not one."""
        return implementation("Seq2Seq.load")(path)

    def to_torch(self) -> Any:
        """A ``torch.nn.Module`` with ``.encoder``, ``.bridge`` (``nn.Sequential(nn.Linear)``,
        bridge="concat" only) and ``.decoder`` holding copies of the weights (the state dicts
        match): ``logits = module(src, tgt_in, src_lengths=None)``, the encoder packed by
        src_lengths as ``pack_padded_sequence(..., enforce_sorted=False)``."""
        return implementation("Seq2Seq.to_torch")(self)

    def __repr__(self) -> str:
        return f"Seq2Seq({self.encoder!r}, {self.decoder!r}, bridge={self.bridge!r})"
