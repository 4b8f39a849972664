"""NumPy reference of `sdekit.backends.numba.steps_milstein_matrix`: Milstein for (dim, m) noise matrices."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def double_integrals(dw: np.ndarray, area: np.ndarray | None, h: float, ito: bool) -> np.ndarray:
    """I_(j,k) of shape (n, m, m): dW_j dW_k / 2 + A_jk off the diagonal, (dW_j^2 - |h| [Itô]) / 2 on it."""
    out = 0.5 * dw[:, :, None] * dw[:, None, :]
    if area is not None:
        out = out + area
    m = dw.shape[1]
    idx = np.arange(m)
    out[:, idx, idx] = 0.5 * (dw**2 - (abs(h) if ito else 0.0))
    return out


def milstein_matrix_step(f: Any, g: Any, noise: Any, x: np.ndarray, t: float, h: float, dw: np.ndarray,
                         dz: np.ndarray, p: Any, solver: Any, calculus: str) -> np.ndarray:
    """x' = x + f h + g dW + sum_{j,k} (L^j g_k) I_(j,k), L^j g_k by differences of g along column g_j (one-sided
    from x + f h + g_j sqrt|h| for Itô, central for Stratonovich); dz: the (n, m * m) area when the solver takes it."""
    n, d = x.shape
    m = dw.shape[1]
    ito = calculus == "ito"
    sq = math.sqrt(abs(h))
    fx = np.broadcast_to(np.asarray(f(x, t, p), dtype=float), (n, d))
    gx = np.broadcast_to(np.asarray(g(x, t, p), dtype=float), (n, d, m))
    area = dz.reshape(n, m, m) if (m > 1 and dz.shape[1] == m * m) else None
    ii = double_integrals(dw, area, h, ito)
    out = x + fx * h + np.einsum("nij,nj->ni", gx, dw)
    for j in range(m):
        ga = np.broadcast_to(np.asarray(g(x + (fx * h if ito else 0.0) + gx[:, :, j] * sq, t, p), dtype=float),
                             (n, d, m))
        if ito:
            lg = (ga - gx) / sq
        else:
            gb = np.broadcast_to(np.asarray(g(x - gx[:, :, j] * sq, t, p), dtype=float), (n, d, m))
            lg = (ga - gb) / (2.0 * sq)
        out = out + np.einsum("nik,nk->ni", lg, ii[:, j, :])
    return out


def area_increments(streams_w: Any, streams_z: Any, n: int, m: int, substeps: int,
                    habs: float) -> tuple[np.ndarray, np.ndarray]:
    """(dW of shape (n, m), Lévy area of shape (n, m * m)) over a step of length habs, drawn in the order of
    `sdekit.noise.levy_area.draw_area_increments` and joined over the substeps by Chen's relation."""
    from sdekit.noise.levy_area import chen_join, fourier_area, fourier_terms

    hf = habs / substeps
    p = fourier_terms(hf)
    dw = np.zeros((n, m))
    area = np.zeros((n, m, m))
    for _s in range(substeps):
        xi = math.sqrt(hf) * np.stack([streams_w.normal() for _ in range(m)], axis=1)
        uv = np.stack([streams_z.normal() for _ in range(2 * m * p)], axis=1).reshape(n, p, m, 2)
        mu = np.stack([streams_z.normal() for _ in range(m)], axis=1)
        fine = fourier_area(xi, uv[..., 0].transpose(0, 2, 1), uv[..., 1].transpose(0, 2, 1), mu, hf)
        area = chen_join(area, dw, fine, xi)
        dw = dw + xi
    return dw, area.reshape(n, m * m)
