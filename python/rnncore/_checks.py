"""Argument checks shared by the public classes: clear TypeError/ValueError messages that name
what was expected and what was got. And the layouts the kernels read fastest: `c_aligned` for
arguments, `cache_aligned` for the parameters.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
CACHE_LINE = 64  # bytes


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    return bool(value)


def check_positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than zero, got {value}")
    return int(value)


def check_float_dtype(dtype) -> np.dtype:
    """float32 or float64 as a numpy dtype; None means float32, the default (as torch's)."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):  # no dtype at all: 'x', [1], ',', ...
        dt = None
    if dt is None or dt not in FLOAT_DTYPES:  # (dtype('float64') == None holds in numpy)
        raise TypeError(f"dtype should be float32 or float64, got: {dtype!r}")
    return dt


def to_numpy(value, name: str, expected: str) -> np.ndarray:
    """np.asarray(value), CPU torch tensors included (without importing torch). Ragged nested
    sequences raise ValueError: "{name}: expected {expected} (numpy's reason)"."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except ValueError as err:
        raise ValueError(f"{name}: expected {expected} ({err})") from None


def as_real_array(value, dtype: np.dtype, name: str) -> np.ndarray:
    """`value` as a numpy array of `dtype`, converting any real-valued input (ints, other float
    widths, lists, CPU torch tensors); complex, boolean, object and string data raise TypeError."""
    if type(value) is np.ndarray and value.dtype == dtype:  # the common case, kept cheap
        return value
    arr = to_numpy(value, name, "a rectangular array of real numbers")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def c_aligned(arr: np.ndarray) -> np.ndarray:
    """`arr` itself if C-contiguous and aligned (what the kernels take), else such a copy."""
    flags = arr.flags
    return arr if flags.c_contiguous and flags.aligned else np.require(arr, requirements=["C", "A"])


def cache_aligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of `a` whose data starts at a multiple of CACHE_LINE bytes (a view of
    a slightly larger byte buffer, which it keeps alive as its base).

    numpy aligns new arrays to 16 bytes only, so a 32-byte AVX2 load from a float32 row of a
    parameter array crossed a cache line at every other vector when the array happened to start
    16 or 48 bytes past a line. The one-step streaming kernel reads every weight once per step: at
    B=1, H=64 a step took 0.93 us with such weights and 0.79 us with weights on a line (the
    fastest of 400 interleaved blocks of 500 steps each, in one process).
    """
    buffer = np.empty(a.nbytes + CACHE_LINE, np.uint8)
    start = -buffer.ctypes.data % CACHE_LINE
    out = buffer[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out
