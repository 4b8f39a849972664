"""Platen's explicit weak order-2 scheme in NumPy: the oracle of `sdekit.backends.numba.steps_platen_weak2`.

Kloeden & Platen (1992), Numerical Solution of SDEs, §15.1, eq. (15.1.1), Itô, component by component:

    Y~ = x + f h + g dW,  Y+- = x + f h +- g sqrt|h|,
    x' = x + [(f(Y~) + f) h / 2] + [(g(Y+) + g(Y-) + 2 g) dW / 4] + [(g(Y+) - g(Y-)) (dW^2 - |h|) / (4 sqrt|h|)],

f, g at (x, t), f(Y~), g(Y+-) at t + h; the three brackets are `platen_weak2_terms`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def _batch(a: Any, like: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, dtype=float), like.shape)


def platen_weak2_terms(f: Callable, g: Callable, x: np.ndarray, t: float, h: float, dwi: np.ndarray,
                       p: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(drift, noise, second-order correction) of one step of Kloeden & Platen (1992) eq. (15.1.1); dwi is each
    component's increment, (n, dim) for diagonal noise or (n, 1) for scalar noise. Their sum is x' - x."""
    sq = math.sqrt(abs(h))
    fx, gx = _batch(f(x, t, p), x), _batch(g(x, t, p), x)
    f1 = _batch(f(x + fx * h + gx * dwi, t + h, p), x)
    gp = _batch(g(x + fx * h + gx * sq, t + h, p), x)
    gm = _batch(g(x + fx * h - gx * sq, t + h, p), x)
    return (0.5 * (f1 + fx) * h, 0.25 * (gp + gm + 2.0 * gx) * dwi, 0.25 * (gp - gm) * (dwi * dwi - abs(h)) / sq)


def platen_weak2_step(f: Callable, g: Callable, x: np.ndarray, t: float, h: float, dwi: np.ndarray,
                      p: Any) -> np.ndarray:
    """x' of Platen's weak order-2 scheme (Kloeden & Platen 1992, eq. (15.1.1)); see `platen_weak2_terms`."""
    drift, noise, correction = platen_weak2_terms(f, g, x, t, h, dwi, p)
    return x + (drift + noise + correction)
