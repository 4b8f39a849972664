"""Argument checks shared by the samplers: every bad input is an SDEKitError naming the argument.

States and model outputs may be float64 NumPy arrays or torch tensors (`sdekit.diffusion.samplers.arrays`); the
checks answer in kind and never import torch for NumPy input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.arrays import State, to_state
from sdekit.errors import SDEKitError

ScoreFn = Callable[[State, float, float], State]

__all__ = ["ScoreFn", "check_callable", "check_count", "check_path_offset", "check_positive", "check_real",
           "check_score", "check_seed", "check_state"]


def check_state(x: Any, name: str) -> State:
    """x as a fresh (n, d) state with n >= 1, d >= 1, all finite: a C-contiguous float64 NumPy copy, or for a torch
    tensor a copy on its device in its floating dtype (`arrays.to_state`)."""
    return to_state(x, name)


def check_seed(seed: Any) -> int:
    """seed as an int in [0, 2**64) (the noise streams' seed is a uint64)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**64:
        raise SDEKitError(f"seed must be a non-negative integer below 2**64; got {seed!r}")
    return int(seed)


def check_path_offset(path_offset: Any) -> int:
    """path_offset (the index of the batch's first path in its noise streams) as an int in [0, 2**63)."""
    if isinstance(path_offset, bool) or not isinstance(path_offset, int | np.integer) \
            or not 0 <= int(path_offset) < 2**63:
        raise SDEKitError(f"path_offset must be a non-negative integer below 2**63; got {path_offset!r}")
    return int(path_offset)


def check_count(v: Any, name: str, minimum: int = 1) -> int:
    """v as an int >= minimum."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < minimum:
        raise SDEKitError(f"{name} must be an integer >= {minimum}; got {v!r}")
    return int(v)


def check_real(v: Any, name: str, *, lo: float | None = None, strict: bool = False, allow_inf: bool = False) -> float:
    """v as a float, finite unless allow_inf, and >= lo (> lo when strict) when lo is given."""
    if isinstance(v, bool | np.bool_ | str) or np.iscomplexobj(v):
        raise SDEKitError(f"{name} must be a real number; got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be a real number; got {v!r}") from exc
    if math.isnan(f) or (math.isinf(f) and not allow_inf):
        raise SDEKitError(f"{name} must be finite; got {f}")
    if lo is not None and (f <= lo if strict else f < lo):
        raise SDEKitError(f"{name} must be {'>' if strict else '>='} {lo}; got {f}")
    return f


def check_positive(v: Any, name: str) -> float:
    """v as a positive finite float."""
    return check_real(v, name, lo=0.0, strict=True)


def check_callable(fn: Any, name: str) -> Callable:
    """fn if callable as fn(x, alpha, sigma)."""
    if not callable(fn):
        raise SDEKitError(f"{name} must be callable as {name}(x, alpha, sigma); got {type(fn).__name__}")
    return fn


def check_score(score: Any) -> ScoreFn:
    """score if callable as score(x, alpha, sigma) -> (n, d)."""
    return check_callable(score, "score")
