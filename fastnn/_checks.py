"""Input validation for the public API: every check raises ``ValueError`` saying what
was wrong and what was expected, before any work starts."""

import numbers

import numpy as np


def check_X(X, n_features, dtype, name="X"):
    """``X`` as a C-contiguous ``(n_samples, n_features)`` array of ``dtype``."""
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array ({exc}); expected a 2-D "
                         "array of numbers (n_samples, n_features)") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {arr.dtype}; expected numbers "
                         "(a 2-D array of floats or integers)")
    if arr.ndim != 2:
        hint = "; use X.reshape(-1, 1) for a single feature" if arr.ndim == 1 else ""
        raise ValueError(f"{name} has {arr.ndim} dimension(s), shape {arr.shape}; expected "
                         f"2-D (n_samples, n_features){hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples); expected at least one sample")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the first layer expects "
                         f"{n_features}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or inf value(s); expected finite numbers "
                         f"(impute or drop them first)")
    return arr


def check_y_length(y, n_samples, name="y", x_name="X"):
    """``y`` as an array with one row per sample of ``X``."""
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array ({exc})") from exc
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} has shape {arr.shape}; expected (n_samples,) or "
                         "(n_samples, n_outputs)")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{x_name} has {n_samples} samples but {name} has {arr.shape[0]}; "
                         "expected one target per sample")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {arr.dtype}; expected numbers (class labels "
                         "0..k-1 or target values)")
    return arr


def check_positive_int(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer"
                         + (" or None" if allow_none else ""))
    return int(value)
