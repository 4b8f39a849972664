"""NumPy reference of Rößler's SRI step (the oracle `sdekit.backends.numba.steps_sri` is tested against).

x' = x + h sum_i alpha_i f(H0_i) + sum_i (beta1_i dW + beta2_i I_(1,1) / sqrt(h) + beta3_i I_(1,0) / h
     + beta4_i I_(1,1,1) / h) g(H1_i), stages as in `sdekit.solvers.tableaus.SRITableau`;
Rößler (2010), SIAM J. Numer. Anal. 48(3), 922–952.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def sri_step(f: Any, g: Any, noise: Any, x: np.ndarray, t: float, h: float, dw: np.ndarray, dz: np.ndarray,
             p: Any, solver: Any, calculus: str) -> np.ndarray:
    """One SRI step of all paths; ``noise`` is the reference backend's g-dW helper (scalar or diagonal noise)."""
    tab = solver.tableau
    n, d = x.shape
    habs = abs(h)
    sq = math.sqrt(habs)
    dwi = dw[:, :1] if noise.scalar else dw
    dzi = dz[:, :1] if noise.scalar else dz
    chi1 = (dwi**2 - habs) / (2 * sq)
    chi2 = dzi / habs
    chi3 = (dwi**3 - 3 * habs * dwi) / (6 * habs)
    fs: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    for s in range(tab.stages):
        h0 = x + sum(h * tab.a0[s, j] * fs[j] + chi2 * tab.b0[s, j] * gs[j] for j in range(s))
        h1 = x + sum(h * tab.a1[s, j] * fs[j] + sq * tab.b1[s, j] * gs[j] for j in range(s))
        fs.append(np.broadcast_to(np.asarray(f(h0, t + tab.c0[s] * h, p), dtype=float), (n, d)))
        gs.append(np.broadcast_to(np.asarray(g(h1, t + tab.c1[s] * h, p), dtype=float), (n, d)))
    return x + sum(h * tab.alpha[s] * fs[s]
                   + (tab.beta1[s] * dwi + tab.beta2[s] * chi1 + tab.beta3[s] * chi2 + tab.beta4[s] * chi3) * gs[s]
                   for s in range(tab.stages))
