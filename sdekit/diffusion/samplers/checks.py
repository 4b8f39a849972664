"""Argument checks shared by the samplers: every bad input is an SDEKitError naming the argument.

States and model outputs may be float64 NumPy arrays or torch tensors (`sdekit.diffusion.samplers.arrays`); the
checks answer in kind and never import torch for NumPy input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.arrays import State, all_finite, as_like, to_state
from sdekit.errors import SDEKitError

ScoreFn = Callable[[State, float, float], State]

__all__ = ["ScoreFn", "check_callable", "check_count", "check_positive", "check_real", "check_score", "check_seed",
           "check_state", "eval_score"]


def check_state(x: Any, name: str) -> State:
    """x as a fresh (n, d) state with n >= 1, d >= 1, all finite: a C-contiguous float64 NumPy copy, or for a torch
    tensor a copy on its device in its floating dtype (`arrays.to_state`)."""
    return to_state(x, name)


def check_seed(seed: Any) -> int:
    """seed as a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise SDEKitError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def check_count(v: Any, name: str, minimum: int = 1) -> int:
    """v as an int >= minimum."""
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or int(v) < minimum:
        raise SDEKitError(f"{name} must be an integer >= {minimum}; got {v!r}")
    return int(v)


def check_real(v: Any, name: str, *, lo: float | None = None, strict: bool = False, allow_inf: bool = False) -> float:
    """v as a float, finite unless allow_inf, and >= lo (> lo when strict) when lo is given."""
    if isinstance(v, bool):
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


def eval_score(score: ScoreFn, x: State, alpha: float, sigma: float) -> State:
    """score(x, alpha, sigma) as an array of x's kind (float64 NumPy, or a tensor in x's dtype and on its device),
    checked for shape (that of x) and finiteness (for a tensor the finiteness check is one host sync)."""
    s = as_like(score(x, alpha, sigma), x, "score")
    if tuple(s.shape) != tuple(x.shape):
        raise SDEKitError(f"score(x, alpha, sigma) must return shape {tuple(x.shape)} (that of x); "
                          f"got {tuple(s.shape)}")
    if not all_finite(s):
        raise SDEKitError(f"score returned non-finite values at alpha = {alpha:.6g}, sigma = {sigma:.6g}")
    return s
