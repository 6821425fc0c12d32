"""How many threads rnncore's kernels use."""

from . import _core
from ._checks import check_positive_int


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) in rnncore's BLAS calls."""
    _core.set_num_threads(check_positive_int(n, "n"))


def get_num_threads() -> int:
    """The number of threads rnncore's BLAS calls use."""
    return _core.get_num_threads()
