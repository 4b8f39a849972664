"""Conversions of user input shared by the diffusion modules: real float64 arrays and times, or an SDEKitError naming
the argument (a complex value is refused rather than losing its imaginary part with a NumPy warning)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError

__all__ = ["real_array", "time_value"]


def real_array(v: Any, name: str) -> np.ndarray:
    """v as a float64 NumPy array (a new one only when a conversion is needed); complex, ragged or non-numeric
    input is an SDEKitError naming ``name``."""
    try:
        raw = np.asarray(v)
        if np.iscomplexobj(raw):
            raise SDEKitError(f"{name} must be real; got complex values (dtype {raw.dtype})")
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SDEKitError):
            raise
        raise SDEKitError(f"{name} must be a numeric array; got {type(v).__name__}") from exc


def time_value(t: Any, name: str = "t") -> float:
    """t as a finite float >= 0 (a time of a forward SDE, which starts at t = 0)."""
    if isinstance(t, bool | np.bool_ | str) or np.ndim(t) != 0 or np.iscomplexobj(t):
        raise SDEKitError(f"{name} must be a real number >= 0; got {t!r}")
    try:
        out = float(t)
    except (TypeError, ValueError):
        raise SDEKitError(f"{name} must be a real number >= 0; got {t!r}") from None
    if not (math.isfinite(out) and out >= 0):
        raise SDEKitError(f"{name} must be a finite number >= 0; got {out}")
    return out
