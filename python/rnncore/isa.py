"""Which kernel set runs: the C++ kernels are compiled for several instruction sets ("baseline",
"avx2", "avx512") and the best one this CPU runs is chosen at import. ``RNNCORE_ISA=<name>`` in
the environment, read at import, or :func:`set_isa` chooses another, e.g. to compare two sets or
to test them all. Results agree across sets to float rounding, not bit for bit."""

import os

from . import _core

ENVIRONMENT_VARIABLE = "RNNCORE_ISA"


def available_isas() -> list[str]:
    """The kernel sets this build has and this CPU runs, slowest first."""
    return _core.available_isas()


def get_isa() -> str:
    """The kernel set in use."""
    return _core.get_isa()


def set_isa(name: str) -> None:
    """Run every later call on the kernel set ``name`` (one of :func:`available_isas`). Raises
    ValueError for a set this CPU or build lacks. Not while other threads run rnncore."""
    if not isinstance(name, str):
        raise TypeError(f"set_isa: expected the name of a kernel set (str), got {type(name).__name__}")
    _core.set_isa(name)


def _apply_environment() -> None:
    name = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not name:
        return
    try:
        set_isa(name)
    except ValueError as e:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={name}: {e}") from None
