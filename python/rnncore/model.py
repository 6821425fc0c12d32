"""rnncore.RNNModel: an RNN followed by an MLP applied to every time step, y_t = MLP(h_t).

Shape letters: T steps, B batch, I input, H hidden, D directions, O outputs. The head sees the
RNN's time-major output (T, B, D*H) as T*B rows, so batch_first costs no extra copy.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._checks import as_real_array, check_positive_int
from ._registry import implementation
from .buffers import ArrayPool, FlatParameters
from .embedding import Embedding
from .head import ACTIVATIONS, MLPHead
from .lengths import check_lengths
from .readout import check_readout, pool, unpool
from .rnn import RNN, LoadResult, load_parameters


class RNNModel:
    """An :class:`rnncore.RNN` whose every output step goes through an MLP head.

    ``y = model(x, h0=None)`` returns the per-step outputs: (T, B, O) for x (T, B, I), (B, T, O)
    with ``batch_first``, (T, O) for unbatched x (T, I); the final RNN state is kept as
    ``model.h_n`` (shaped as RNN's h_n), ready to be passed as h0 for the next chunk of a stream.
    ``grad_x = model.backward(grad_y)`` backpropagates the latest forward, accumulates every
    parameter gradient in ``model.grads`` and leaves the gradient w.r.t. h0 in ``model.grad_h0``.

    ``head`` lists the hidden widths of the MLP (``()``: one Linear from D*H to O), with
    `head_activation` ("relu", "tanh" or "sigmoid") between its layers. Parameter names are those
    of a torch module with ``rnn = nn.RNN(...)`` and ``head = nn.Sequential(Linear, act, ...)``:
    ``rnn.weight_ih_l0``, ..., ``head.0.weight``, ``head.0.bias``, ``head.2.weight``, ... so state
    dicts move between the two unchanged. All weights come from one ``np.random.default_rng(seed)``:
    the RNN's first (torch's init), then the head's (torch.nn.Linear's init).

    ``vocab_size=V`` puts an :class:`rnncore.Embedding` (V, input_size) in front of the RNN: x is
    then integer ids (T, B), (B, T) with batch_first, or (T,), each looked up as an input_size
    vector (parameter ``embedding.weight``, torch's ``nn.Embedding`` init; ``padding_idx`` as
    torch's); backward returns the gradient w.r.t. the looked-up vectors and adds the rows'
    gradients into ``grads["embedding.weight"]``.

    ``init``: the RNN's weight initialisers (see `RNN`: "keras", "irnn" or a dict); the head's
    Linear layers keep torch's init.

    ``readout`` says what the head sees. ``"all"`` (default): every step, as above (many-to-many).
    ``"last"``: one row per sequence, the last layer's final states (h_n, both directions
    concatenated: the forward one at each sequence's last valid step, the reverse one at step 0),
    so y is (B, O), or (O,) unbatched (many-to-one; torch: ``head(torch.cat(list(h_n[-D:]),
    -1))``). ``"mean"``: the mean of the top layer's outputs over each sequence's valid steps.
    backward then takes grad_y (B, O) and sends it into h_n or into the steps.

        >>> model = RNNModel(1, 32, 1, head=(16,), seed=0)
        >>> y = model(np.zeros((50, 8, 1)))            # (T, B, I) -> (T, B, O)
        >>> grad_x = model.backward(np.ones_like(y))   # gradients now in model.grads
    """

    def __init__(self, input_size, hidden_size, output_size, num_layers=1, head=(),
                 head_activation="relu", nonlinearity="tanh", bidirectional=False,
                 batch_first=False, dropout=0.0, dtype=np.float32, seed=None, readout="all",
                 vocab_size=None, padding_idx=None, init=None):
        self.readout = check_readout(readout)
        self.output_size = check_positive_int(output_size, "output_size")
        if isinstance(head, (numbers.Integral, str)) or not hasattr(head, "__iter__"):
            raise TypeError(f"head should be a sequence of hidden widths, got: {head!r}")
        self.head_sizes = tuple(check_positive_int(w, "head width") for w in head)
        if head_activation not in ACTIVATIONS:
            raise ValueError(f"Unknown head_activation '{head_activation}'. Select from "
                             f"{', '.join(repr(a) for a in ACTIVATIONS)}.")
        self.head_activation = head_activation
        rng = np.random.default_rng(seed)  # passing a Generator on hands over that very generator
        self.embedding: Embedding | None = None
        if vocab_size is not None:  # token ids in, each looked up as an input_size vector
            self.embedding = Embedding(vocab_size, input_size, padding_idx, dtype, rng)
        elif padding_idx is not None:
            raise ValueError("padding_idx: expected None without vocab_size (it names a row of "
                             f"the embedding), got {padding_idx!r}")
        self.rnn = RNN(input_size, hidden_size, num_layers, nonlinearity, batch_first=batch_first,
                       dropout=dropout, bidirectional=bidirectional, dtype=dtype, seed=rng,
                       init=init)
        width = self.rnn.num_directions * self.rnn.hidden_size
        self.head = MLPHead((width, *self.head_sizes, self.output_size), head_activation,
                            self.rnn.dtype, rng)
        self.h_n: np.ndarray | None = None
        self.grad_h0: np.ndarray | None = None
        self._y_shape: tuple | None = None
        self._lengths: np.ndarray | None = None  # the latest forward's, checked (readouts)
        self._steps = 0  # the latest forward's T (readouts)
        self._y_pool, self._dy_pool = ArrayPool(), ArrayPool()
        # Every parameter in one flat buffer and every gradient in another, the parts' arrays
        # being views into them (rnncore/buffers.py): one pass zeroes, clips or updates them all.
        self._flat = FlatParameters.gather(self._parts(), self.rnn.dtype)

    def __setstate__(self, state: dict) -> None:
        """After copy.deepcopy / pickle, which copy each view on its own: one buffer again."""
        self.__dict__.update(state)
        self._y_pool, self._dy_pool = ArrayPool(), ArrayPool()
        grads = {f"{prefix}.{k}": g.copy() for prefix, part in self._parts().items()
                 for k, g in part.grads.items()}
        self._flat = FlatParameters.gather(self._parts(), self.rnn.dtype)
        for name, g in grads.items():
            np.copyto(self._flat.grad_views[name], g)

    def _parts(self) -> dict:
        """The parts that hold parameters, by the prefix of their names, in order."""
        parts = {} if self.embedding is None else {"embedding": self.embedding}
        return {**parts, "rnn": self.rnn, "head": self.head}

    # ---- the RNN's settings, read-only ---------------------------------------------------------

    input_size = property(lambda self: self.rnn.input_size)
    hidden_size = property(lambda self: self.rnn.hidden_size)
    num_layers = property(lambda self: self.rnn.num_layers)
    nonlinearity = property(lambda self: self.rnn.nonlinearity)
    bidirectional = property(lambda self: self.rnn.bidirectional)
    num_directions = property(lambda self: self.rnn.num_directions)
    batch_first = property(lambda self: self.rnn.batch_first)
    dropout = property(lambda self: self.rnn.dropout)
    dtype = property(lambda self: self.rnn.dtype)
    training = property(lambda self: self.rnn.training)

    def config(self) -> dict:
        """The constructor arguments (without seed) as JSON-friendly values: what `save` records."""
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, num_layers=self.num_layers,
                    head=list(self.head_sizes), head_activation=self.head_activation,
                    nonlinearity=self.nonlinearity, bidirectional=self.bidirectional,
                    batch_first=self.batch_first, dropout=self.dropout, dtype=self.dtype.name,
                    readout=self.readout, **self._embedding_config(),
                    **({} if self.rnn.init is None else {"init": self.rnn.init}))

    def _embedding_config(self) -> dict:
        if self.embedding is None:
            return {}
        return dict(vocab_size=self.embedding.num_embeddings,
                    padding_idx=self.embedding.padding_idx)

    # ---- parameters ---------------------------------------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by torch name (``embedding.weight`` with vocab_size, then
        ``rnn.*`` and ``head.*``); an optimizer updates them in place."""
        return {**self._embedding_part(None if self.embedding is None else
                                     self.embedding.parameters()),
                **{f"rnn.{k}": v for k, v in self.rnn.parameters().items()},
                **{f"head.{k}": v for k, v in self.head.params.items()}}

    @staticmethod
    def _embedding_part(arrays: dict | None) -> dict:
        return {} if not arrays else {f"embedding.{k}": v for k, v in arrays.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Parameter gradients by name (the live arrays), accumulated by every `backward` until
        `zero_grad`."""
        return {**self._embedding_part(None if self.embedding is None else self.embedding.grads),
                **{f"rnn.{k}": v for k, v in self.rnn.grads.items()},
                **{f"head.{k}": v for k, v in self.head.grads.items()}}

    def zero_grad(self) -> None:
        self._flat.grads.fill(0)  # one pass over the flat buffer

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters by name; torch's ``load_state_dict`` takes it after
        ``torch.from_numpy`` on each value."""
        return {name: p.copy() for name, p in self.parameters().items()}

    def load_state_dict(self, state_dict, strict: bool = True) -> LoadResult:
        """Copy parameters in from numpy arrays or anything ``np.asarray`` takes (torch tensors
        too). All-or-nothing: if any entry is refused (ValueError), no parameter changes."""
        return load_parameters(self.parameters(), state_dict, self.dtype, type(self).__name__,
                               strict)

    def train(self, mode: bool = True) -> RNNModel:
        """Training mode (dropout between RNN layers on) or, with mode=False, evaluation mode."""
        self.rnn.train(mode)
        return self

    def eval(self) -> RNNModel:
        return self.train(False)

    # ---- forward and backward -----------------------------------------------------------------

    def __call__(self, x, h0=None, lengths=None) -> np.ndarray:
        return self.forward(x, h0, lengths)

    def forward(self, x, h0=None, lengths=None) -> np.ndarray:
        """Per-step outputs y for x (see the class docstring); sets ``model.h_n``.

        lengths: (B,) steps of each sequence of a padded batch, as `RNN.forward` takes them. The
        RNN's states are zero at padded steps, so y there is the head applied to a zero state
        (as an ``nn.Linear`` after ``pad_packed_sequence`` gives); mask those steps out of the
        loss (``rnncore.length_mask``)."""
        self.head._inputs = None  # drops the previous forward's arrays, so they can be reused
        if self.embedding is not None:
            x = self.embedding(x)  # ids (T, B) / (B, T) / (T,) -> vectors (..., I)
        output, self.h_n = self.rnn(x, h0, lengths)
        if self.batch_first and output.ndim == 3:
            output = output.swapaxes(0, 1)  # back to the RNN's contiguous (T, B, D*H)
        if self.readout != "all":
            return self._forward_pooled(output, self.h_n, lengths)
        a = output.reshape(-1, output.shape[-1])
        # y in an array the caller may keep: reused only once dropped (rnncore/buffers.py)
        rows = self.head.forward(a, out=self._y_pool.get((len(a), self.output_size), self.dtype))
        y = rows.reshape(*output.shape[:-1], self.output_size)
        if self.batch_first and y.ndim == 3:
            y = y.swapaxes(0, 1)
        self._y_shape = y.shape
        return y

    def backward(self, grad_y, grad_h_n=None, *, input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate the latest forward: grad_y shaped like its y, grad_h_n (optional) like
        ``h_n``. Adds to ``grads``, sets ``grad_h0`` (shaped like h0) and returns grad_x (shaped
        like x). ``input_grad=False``: grad_x is not computed (a training step that does not read
        it, as ``fit``'s) and None is returned; with an embedding its rows' gradients are made
        either way."""
        if self._y_shape is None:
            raise RuntimeError("backward() called before forward(): there is no sequence to "
                               "backpropagate through")
        dy = as_real_array(grad_y, self.dtype, "grad_y")
        if dy.shape != self._y_shape:
            raise ValueError(f"grad_y: expected shape {self._y_shape} (the latest output's), "
                             f"got {dy.shape}")
        # the RNN's input gradient: returned, or needed by the embedding
        rnn_input_grad = input_grad or self.embedding is not None
        if self.readout != "all":
            return self._embedding_backward(self._backward_pooled(dy, grad_h_n, rnn_input_grad),
                                            input_grad)
        if self.batch_first and dy.ndim == 3:
            dy = dy.swapaxes(0, 1)
        if not dy.flags.c_contiguous:  # time-major rows, copied into a reused buffer
            buf = self._dy_pool.get(dy.shape, dy.dtype)
            np.copyto(buf, dy)
            dy = buf
        d_rows = self.head.backward(dy.reshape(-1, self.output_size))  # (T*B, D*H)
        d_output = d_rows.reshape(*dy.shape[:-1], d_rows.shape[-1])
        if self.batch_first and d_output.ndim == 3:
            d_output = d_output.swapaxes(0, 1)
        grad_x, self.grad_h0 = self.rnn.backward(d_output, grad_h_n, input_grad=rnn_input_grad)
        return self._embedding_backward(grad_x, input_grad)

    def _embedding_backward(self, grad_x: np.ndarray | None, input_grad: bool) -> np.ndarray | None:
        """grad_x w.r.t. the RNN's input (None unless input_grad); with an embedding, also into
        its rows."""
        if self.embedding is not None:
            assert grad_x is not None  # backward asks the RNN for it when there is an embedding
            self.embedding.backward(grad_x)
        return grad_x if input_grad else None

    def _forward_pooled(self, output: np.ndarray, h_n: np.ndarray, lengths) -> np.ndarray:
        """The head on one feature row per sequence: output (T, B, D*H) or unbatched (T, D*H)."""
        batched = output.ndim == 3
        if not batched:
            output, h_n = output[:, None], h_n[:, None]
        self._steps = output.shape[0]
        self._lengths = None if lengths is None else check_lengths(lengths, *output.shape[:2])
        feature = pool(self.readout, output, h_n, self._lengths, self.num_directions)
        y = self.head.forward(feature)  # (B, O)
        y = y if batched else y[0]
        self._y_shape = y.shape
        return y

    def _backward_pooled(self, dy: np.ndarray, grad_h_n, input_grad: bool) -> np.ndarray | None:
        """backward for readout "last" / "mean": dy (B, O), or (O,) unbatched."""
        batched = dy.ndim == 2
        d_feature = self.head.backward(dy if batched else dy[None])  # (B, D*H)
        T = self._steps
        d_output, d_h_n = unpool(self.readout, d_feature, T, self.num_layers,
                                 self.num_directions, self._lengths)
        if not batched:
            d_output, d_h_n = d_output[:, 0], None if d_h_n is None else d_h_n[:, 0]
        elif self.batch_first:
            d_output = d_output.swapaxes(0, 1)
        if grad_h_n is not None:  # a gradient on h_n of its own, added to the readout's
            extra = as_real_array(grad_h_n, self.dtype, "grad_h_n")
            if d_h_n is not None and extra.shape != d_h_n.shape:
                raise ValueError(f"grad_h_n: expected shape {d_h_n.shape} (h_n's), got "
                                 f"{extra.shape}")
            d_h_n = extra if d_h_n is None else d_h_n + extra
        grad_x, self.grad_h0 = self.rnn.backward(d_output, d_h_n, input_grad=input_grad)
        return grad_x

    # ---- saving: the code is in rnncore/io/serialization.py (_registry) -----------------------

    def save(self, path) -> None:
        """Write the model to one .npz file at exactly `path`: format version, constructor
        arguments and parameters, no pickle. Read it back with `RNNModel.load`."""
        implementation("RNNModel.save")(self, path)

    @classmethod
    def load(cls, path) -> RNNModel:
        """A model read from a file written by `save` (in training mode, as a new model is).
        Raises FileNotFoundError if there is no such file and ValueError if it is not a valid
        rnncore model file (corrupt, truncated, foreign or of an unknown format version)."""
        return implementation("RNNModel.load")(path)

    # ---- torch: the code is in rnncore/io/torch.py (_registry) --------------------------------

    @classmethod
    def from_torch(cls, rnn_module: Any, head_sequential: Any, readout: str = "all",
                   embedding: Any = None) -> RNNModel:
        """A model from a ``torch.nn.RNN`` (with bias) and a head ``nn.Sequential(Linear, act,
        Linear, ..., Linear)`` (act one of nn.ReLU, nn.Tanh, nn.Sigmoid, the same throughout):
        the same options, dtype and exact weights. TypeError for other module types, ValueError
        for a layout RNNModel cannot hold. `readout` as the constructor's: how the torch code
        feeds its head (see `to_torch`); `embedding`: an ``nn.Embedding`` in front of the RNN
        (token input, ``vocab_size``)."""
        return implementation("RNNModel.from_torch")(cls, rnn_module, head_sequential, readout,
                                                     embedding)

    def to_torch(self) -> Any:
        """A ``torch.nn.Module`` with ``.rnn`` (nn.RNN) and ``.head`` (nn.Sequential) holding
        copies of this model's weights, so the state dicts match; ``y, h_n = module(x, h0)``
        (its head reads the readout's rows: h_n's last layer for "last")."""
        return implementation("RNNModel.to_torch")(self)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}", f"{self.hidden_size}", f"{self.output_size}"]
        cfg = {"vocab_size": None, "padding_idx": None, "init": None, **self.config(),
               "head": self.head_sizes}
        defaults = dict(num_layers=1, head=(), head_activation="relu", nonlinearity="tanh",
                        bidirectional=False, batch_first=False, dropout=0.0, dtype="float32",
                        readout="all", vocab_size=None, padding_idx=None, init=None)
        opts += [f"{k}={cfg[k]!r}" for k, v in defaults.items() if cfg[k] != v]
        return f"RNNModel({', '.join(opts)})"
