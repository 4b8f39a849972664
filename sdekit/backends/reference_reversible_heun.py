"""Reversible Heun in NumPy: the oracle of `sdekit.backends.numba.steps_reversible_heun`, and its exact inverse.

Kidger, Foster, Li & Lyons (2021), "Efficient and accurate gradients for neural SDEs", NeurIPS 34, §3: with the
state (y, z) and f, g evaluated at z only,

    forward:  z1 = 2 y0 - z0 + f(z0, t) h + g(z0, t) dW,
              y1 = y0 + (f(z0, t) + f(z1, t + h)) h / 2 + (g(z0, t) + g(z1, t + h)) dW / 2;
    reverse:  z0 = 2 y1 - z1 - f(z1, t + h) h - g(z1, t + h) dW,
              y0 = y1 - (f(z0, t) + f(z1, t + h)) h / 2 - (g(z0, t) + g(z1, t + h)) dW / 2,

so (y0, z0) is recovered from (y1, z1) and the same dW to rounding, without storing the path.
``gdw(g_value, dw) -> (n, dim)`` applies a value of g to increments (the SDE's noise type).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

GdwFn = Callable[[Any, np.ndarray], np.ndarray]


def _batch(a: Any, like: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, dtype=float), like.shape)


def forward_step(f: Callable, g: Callable, gdw: GdwFn, y0: np.ndarray, z0: np.ndarray, f0: np.ndarray, g0: Any,
                 t: float, h: float, dw: np.ndarray, p: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """One reversible Heun step (y0, z0, f(z0), g(z0)) -> (y1, z1, f(z1), g(z1)) (Kidger et al. 2021, §3)."""
    z1 = 2.0 * y0 - z0 + f0 * h + gdw(g0, dw)
    f1 = _batch(f(z1, t + h, p), z1)
    g1 = g(z1, t + h, p)
    y1 = y0 + (f0 + f1) * (0.5 * h) + 0.5 * (gdw(g0, dw) + gdw(g1, dw))
    return y1, z1, f1, g1


def reverse_step(f: Callable, g: Callable, gdw: GdwFn, y1: np.ndarray, z1: np.ndarray, f1: np.ndarray, g1: Any,
                 t1: float, h: float, dw: np.ndarray, p: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """The exact inverse of `forward_step` from t1 - h to t1: (y1, z1, f(z1), g(z1)) -> (y0, z0, f(z0), g(z0))."""
    z0 = 2.0 * y1 - z1 - f1 * h - gdw(g1, dw)
    f0 = _batch(f(z0, t1 - h, p), z0)
    g0 = g(z0, t1 - h, p)
    y0 = y1 - (f0 + f1) * (0.5 * h) - 0.5 * (gdw(g0, dw) + gdw(g1, dw))
    return y0, z0, f0, g0


class ReversibleHeunStep:
    """The reference backend's reversible Heun: a step function (the reference signature) that keeps (z, f(z),
    g(z)) between calls; one instance per solve, started with z = y on its first call."""

    def __init__(self) -> None:
        self.state: tuple[np.ndarray, np.ndarray, Any] | None = None

    def __call__(self, f: Callable, g: Callable, noise: Any, x: np.ndarray, t: float, h: float, dw: np.ndarray,
                 dz: np.ndarray, p: Any, solver: Any, calculus: str) -> np.ndarray:
        n, d = x.shape

        def gdw(gv: Any, w: np.ndarray) -> np.ndarray:
            return noise.apply(gv, w, n, d)

        if self.state is None:
            z = x.copy()
            self.state = (z, _batch(f(z, t, p), z), g(z, t, p))
        y1, z1, f1, g1 = forward_step(f, g, gdw, x, *self.state, t, h, dw, p)
        self.state = (z1.astype(x.dtype), f1, g1)
        return y1
