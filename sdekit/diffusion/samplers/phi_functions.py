"""The phi functions of exponential integrators (Hochbruck & Ostermann 2010, "Exponential integrators"), as used by
the multistep diffusion solvers in lambda (DPM-Solver(++)(3M), Lu et al. 2022b; UniPC, Zhao et al. 2023):

    phi_k(z) = int_0^1 e^{(1 - u) z} u^{k-1} / (k-1)! du,   phi_1(z) = (e^z - 1) / z,
    phi_{k+1}(z) = (phi_k(z) - 1 / k!) / z.

The solvers use hh phi_k(hh) with hh = -h (data prediction) or +h (noise prediction), h the step in lambda:

    hh phi_1 = expm1(hh),   hh phi_{k+1} = (hh phi_k) / hh - 1 / k!.

The recursion loses about -log10|hh| digits per level (relative error ~ 1e-16 / |hh|^(k-1)); for the solvers' steps
(|hh| >= 1e-3 and k <= 4) that is below 1e-9 relative, and it is the form diffusers and the papers' code use.
"""

from __future__ import annotations

import math

__all__ = ["h_phis"]


def h_phis(hh: float, k: int) -> list[float]:
    """[hh phi_1(hh), ..., hh phi_k(hh)] by the recursion of the module docstring (hh != 0, finite)."""
    out = [math.expm1(hh)]
    factorial = 1.0
    for j in range(1, k):
        out.append(out[-1] / hh - 1.0 / factorial)
        factorial *= j + 1
    return out
