"""Runtime parameters: normalised once, passed to kernels as data so new values never recompile."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.errors import SDEKitError

Params = np.ndarray | tuple


def _is_scalar(v: Any) -> bool:
    return np.ndim(v) == 0


def normalize_params(params: Any, dtype: type = np.float64, name: str = "params") -> Params:
    """Turn user parameters into the runtime form the kernels take.

    A scalar, a flat list of scalars or a 1-D array becomes a 1-D array ``p`` (index it as
    ``p[0]``); a tuple holding arrays (say ``(A, B)`` for OU) becomes a tuple of arrays,
    its scalar entries floats. Every entry must be finite.
    """
    if params is None:
        return np.zeros(0, dtype=dtype)
    if isinstance(params, tuple) and not all(_is_scalar(v) for v in params):
        out = []
        for k, v in enumerate(params):
            arr = np.array(v, dtype=dtype)
            if not np.all(np.isfinite(arr)):
                raise SDEKitError(f"{name}[{k}] must be finite; got {v!r}")
            out.append(dtype(arr) if arr.ndim == 0 else np.ascontiguousarray(arr))
        return tuple(out)
    try:
        arr = np.atleast_1d(np.array(params, dtype=dtype))
    except (TypeError, ValueError) as exc:
        raise SDEKitError(
            f"{name} must be a number, a list of numbers, an array or a tuple of arrays; got {params!r}"
        ) from exc
    if arr.ndim != 1:
        raise SDEKitError(
            f"{name} as an array must be 1-D (got shape {arr.shape}); pass matrices inside a tuple, "
            "e.g. params=(A, B)")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise SDEKitError(f"{name}[{bad[0]}] must be finite; got {arr[bad[0]]}")
    return np.ascontiguousarray(arr)


def cast_params(params: Params, dtype: type) -> Params:
    """The same parameters in another floating dtype (float32 solves)."""
    if isinstance(params, tuple):
        return tuple(dtype(v) if np.ndim(v) == 0 else v.astype(dtype) for v in params)
    return params.astype(dtype)
