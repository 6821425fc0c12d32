"""rnncore: the Elman RNN of torch.nn.RNN for numpy, with a fused C++ forward and BPTT kernel.

    >>> import numpy as np, rnncore
    >>> rnn = rnncore.RNN(8, 16, num_layers=2, seed=0)
    >>> output, h_n = rnn(np.zeros((5, 3, 8), np.float32))   # (T, B, I) -> (T, B, H), (L, B, H)
    >>> grad_x, grad_h0 = rnn.backward(np.ones_like(output))

A trainable sequence model (RNN + per-step MLP head), its losses, optimizers and training loop:

    >>> model = rnncore.RNNModel(1, 32, 1, head=(16,), seed=0)    # RNN + MLP on every step
    >>> series = np.random.default_rng(0).standard_normal((100, 8, 1))   # (T, N, I)
    >>> history = rnncore.fit(model, series[:-1], series[1:], loss="mse", epochs=2, tbptt=20,
    ...                       progress=False)   # next-value prediction; mean loss per epoch
"""

from importlib.metadata import PackageNotFoundError, version

# Loads libscipy_openblas.so (RTLD_GLOBAL) so that _core finds its BLAS whatever the rpath says.
import scipy_openblas32  # noqa: F401

from . import _core, losses, optim
from . import io  # registers the code of RNN.from_torch, RNNModel.save, ... (_registry.py)
from . import onnx  # rnncore.onnx.export; kept out of __all__, where it would shadow onnx
from .embedding import Embedding
from .isa import available_isas, get_isa, set_isa
from .lengths import length_mask
from .model import RNNModel
from .rnn import RNN
from .sampling import one_hot, sample
from .seq2seq import Seq2Seq
from .seq2seq_fit import fit_seq2seq
from .threads import get_num_threads, set_num_threads
from .training import clip_grad_norm, fit

from .isa import _apply_environment

_apply_environment()  # RNNCORE_ISA
del _apply_environment

try:
    __version__ = version("rnncore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["RNN", "RNNModel", "Embedding", "Seq2Seq", "fit_seq2seq", "losses", "optim", "fit", "clip_grad_norm", "sample", "one_hot",
           "get_num_threads", "set_num_threads", "length_mask", "set_isa", "get_isa",
           "available_isas", "__version__"]
