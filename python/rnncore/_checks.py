"""Argument checks shared by the public classes: clear TypeError/ValueError messages that name
what was expected and what was got."""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
