"""The check behind noise="commutative": the columns g_j of the noise matrix commute, L^j g_k = L^k g_j.

L^j g_k = sum_i g_ij d g_k / d x_i is the derivative of column k along column j. Where these agree for all pairs
(Kloeden & Platen 1992, eq. 10.3.13), the Milstein step needs only dW (its Lévy-area terms cancel). The check runs
before a solve on the probe rows of x0 and on a shifted copy of them, with central differences of g along each
column (error O(eps^2) with eps ~ 1e-5 relative, far below the tolerance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdekit.errors import SDEKitError

COMMUTATOR_RTOL = 1e-6


def column_derivatives(diffusion: Any, x: np.ndarray, t: float, params: Any, m: int) -> np.ndarray:
    """L[j, :, :, k] = L^j g_k at the rows of x, shape (m, n, dim, m), by central differences along g_j."""
    n, d = x.shape

    def g(y: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(diffusion(y, t, params), dtype=float), (n, d, m))

    gx = g(x)
    out = np.empty((m, n, d, m))
    for j in range(m):
        col = gx[:, :, j]
        size = np.linalg.norm(col, axis=1, keepdims=True)
        eps = 1e-5 * (1.0 + np.linalg.norm(x, axis=1, keepdims=True)) / np.where(size > 0, size, 1.0)
        out[j] = (g(x + eps * col) - g(x - eps * col)) / (2.0 * eps[:, :, None])
    return out


def check_commutative(problem: Any, x: np.ndarray, t0: float, params: Any) -> None:
    """Raise an SDEKitError naming the first pair (j, k) with L^j g_k != L^k g_j at x or at a shifted x (relative
    tolerance COMMUTATOR_RTOL of the largest |L^j g_k|)."""
    shifted = x + 0.1 * (1.0 + np.abs(x)) * np.cos(np.arange(x.size)).reshape(x.shape)
    for point in (x, shifted):
        lg = column_derivatives(problem.diffusion, point, t0, params, problem.m)
        scale = COMMUTATOR_RTOL * (1.0 + np.max(np.abs(lg)))
        for j in range(problem.m):
            for k in range(j + 1, problem.m):
                gap = np.max(np.abs(lg[j, :, :, k] - lg[k, :, :, j]))
                if gap > scale:
                    raise SDEKitError(
                        f"noise='commutative' but the diffusion's columns {j} and {k} do not commute: "
                        f"L^{j} g_{k} - L^{k} g_{j} reaches {gap:.3g} (L^j g_k = sum_i g_ij d g_k / d x_i) near x0; "
                        "use noise='general' (with solver 'milstein_levy' for strong order 1)")
