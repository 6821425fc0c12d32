"""rnncore: the Elman RNN of torch.nn.RNN for numpy, with a fused C++ forward and BPTT kernel.

    >>> import numpy as np, rnncore
    >>> rnn = rnncore.RNN(8, 16, num_layers=2, seed=0)
    >>> output, h_n = rnn(np.zeros((5, 3, 8), np.float32))   # (T, B, I) -> (T, B, H), (L, B, H)
    >>> grad_x, grad_h0 = rnn.backward(np.ones_like(output))
"""

from importlib.metadata import PackageNotFoundError, version

# Loads libscipy_openblas.so (RTLD_GLOBAL) so that _core finds its BLAS whatever the rpath says.
import scipy_openblas32  # noqa: F401

from . import _core
from .rnn import RNN
from .threads import get_num_threads, set_num_threads

try:
    __version__ = version("rnncore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["RNN", "get_num_threads", "set_num_threads", "__version__"]
