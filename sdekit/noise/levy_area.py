"""The space-space Lévy area of an m-dimensional Brownian motion over one step, and how steps are joined.

A_jk(s, t) = 1/2 (int_s^t (W_j - W_j(s)) dW_k - int_s^t (W_k - W_k(s)) dW_j)  (antisymmetric; Itô = Stratonovich),
with I_(j,k) = dW_j dW_k / 2 + A_jk for j != k, and E A_jk = 0, Var A_jk = h^2 / 4 over a step of length h.

Splitting W on [0, h] into its chord (t/h) dW and the Brownian bridge B, with the space-time Lévy area
H_j = (1/h) int_0^h B_j dt ~ N(0, h/12) independent of dW, the area is exactly

    A_jk = H_j dW_k - dW_j H_k + A^B_jk,   A^B_jk = 1/2 int (B_j dB_k - B_k dB_j),   Var(A^B_jk) = h^2 / 12,

with A^B independent of (dW, H) in mean (uncorrelated with every polynomial of degree <= 2 in them). With the Fourier
series of the bridge (Kloeden, Platen & Wright 1992, "The approximation of multiple stochastic integrals", Stoch.
Anal. Appl. 10(4); Kloeden & Platen 1992, §5.8), B_j(t) = a_j0/2 + sum_r a_jr cos(2 pi r t/h) + b_jr sin(2 pi r t/h),
a_jr = sqrt(h/2) U_jr / (pi r), b_jr = sqrt(h/2) V_jr / (pi r), U, V iid N(0, 1):

    H_j  = -sqrt(h/2) / pi sum_{r>=1} U_jr / r,     A^B_jk = h / (2 pi) sum_{r>=1} (U_jr V_kr - V_jr U_kr) / r.

The approximations below all keep the exact (dW, H) part and differ in A^B:

* `fourier_area` (KPW truncation, the one the solvers use): the series truncated after p terms, the tail of H
  replaced by sqrt(h rho_p) mu_j, rho_p = 1/12 - sum_{r<=p} 1/(2 pi^2 r^2), so (dW, H) have their exact law. Pathwise
  mean-square error E|A - A_p|^2 = h^2 / (2 pi^2) sum_{r>p} 1/r^2 <= h^2 / (2 pi^2 p). Summed over T/h independent
  steps the area's contribution to a Milstein solve's L2 error is O(sqrt(T h / p)), so STRONG order 1 needs
  p >= c / h terms: `fourier_terms` takes p = ceil(AREA_TIME_SCALE / h_fine). 2p + 1 normals per component and step.
* `davie_area` (Davie 2014, "KMT theory applied to approximations of SDE", Springer Proc. Math. Stat. 100, in the
  (dW, H) form of Foster, Lyons & Oberhauser 2020, "An optimal polynomial approximation of Brownian motion", SIAM J.
  Numer. Anal. 58(3)): A^B_jk replaced by an independent N(0, h^2/12), so E A = 0 and Var A = h^2/4 exactly.
* `foster_area` (the same paper's refinement): A^B_jk replaced by N(0, h^2/20 + h (H_j^2 + H_k^2) / 5), which is
  the exact conditional variance of A^B given H (derived from the Fourier form: a_jr given H_j is Gaussian with mean
  -v_r H_j / (h/12), v_r = h / (2 pi^2 r^2), and sum v_r^2 = h^2 / 360; tested against the series).
  Neither is pathwise convergent: their A^B part is independent of the true one, a mean-square error of
  h^2/6 per step whatever h, so a Milstein step on them keeps strong order 0.5. What they give is order 1 in the
  2-Wasserstein distance between laws (Davie 2014, for Milstein-type schemes under his non-degeneracy
  conditions), at the cost of m(m-1)/2 normals.
  No solver here uses them; they are for weak or Wasserstein work and for a Brownian path queried by interval.

Areas of consecutive steps join by Chen's relation, A(0, h1 + h2) = A1 + A2 + 1/2 (dW1 dW2^T - dW2 dW1^T)
(`chen_join`): that is how the kernels assemble a coarse step's area from the finest draws (noise_substeps), so
nested grids integrate one Brownian path, area included.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.noise.streams import next_normal_row

# `use_aux` modes of the fixed-step kernels: 0 = dW only, 1 = dW and I_(1,0), 2 = dW and the Lévy area matrix
AUX_NONE, AUX_I10, AUX_LEVY_AREA = 0, 1, 2
# p = ceil(AREA_TIME_SCALE / h) Fourier terms per fine step of length h (strong order 1 needs p ~ c / h)
AREA_TIME_SCALE = 0.25

__all__ = ["AREA_TIME_SCALE", "AUX_I10", "AUX_LEVY_AREA", "AUX_NONE", "aux_mode", "chen_join", "davie_area",
           "draw_area_increments", "fourier_area", "fourier_terms", "foster_area", "rho", "spacetime_part"]


def aux_mode(solver: object) -> int:
    """The kernels' noise mode for a solver: Lévy area (`levy_area`), I_(1,0) (`aux_noise`) or plain dW."""
    if getattr(solver, "levy_area", False):
        return AUX_LEVY_AREA
    return AUX_I10 if getattr(solver, "aux_noise", False) else AUX_NONE


@nb.njit(cache=True)
def fourier_terms(h: float) -> int:
    """p = ceil(AREA_TIME_SCALE / h) (at least 1); the 1e-6 guard keeps p the same on nested grids whose fine step
    lengths differ by rounding."""
    return max(1, int(math.ceil(AREA_TIME_SCALE / h - 1e-6)))


@nb.njit(cache=True)
def rho(p: int) -> float:
    """rho_p = 1/12 - 1/(2 pi^2) sum_{r=1}^p 1/r^2: the variance of H/sqrt(h) the first p Fourier terms miss."""
    s = 0.0
    for r in range(1, p + 1):
        s += 1.0 / (r * r)
    return max(0.0, 1.0 / 12.0 - s / (2.0 * math.pi * math.pi))


def fourier_area(dw: np.ndarray, u: np.ndarray, v: np.ndarray, mu: np.ndarray, h: float) -> np.ndarray:
    """KPW Fourier approximation of the Lévy area, vectorised over paths (the NumPy form of `draw_area_increments`).

    dw: (n, m) increments; u, v: (n, m, p) standard normals (the bridge's cosine and sine coefficients); mu: (n, m)
    standard normals (the tail of H). Returns A of shape (n, m, m),
        H_j = -sqrt(h/2)/pi sum_r U_jr / r + sqrt(h rho_p) mu_j,
        A_jk = H_j dW_k - dW_j H_k + h/(2 pi) sum_r (U_jr V_kr - V_jr U_kr) / r
    (Kloeden, Platen & Wright 1992; Kloeden & Platen 1992, §5.8 and eq. 10.3.7).
    """
    p = u.shape[2]
    inv_r = 1.0 / np.arange(1, p + 1)
    hh = -math.sqrt(h / 2.0) / math.pi * (u @ inv_r) + math.sqrt(h * rho(p)) * mu
    ab = h / (2.0 * math.pi) * np.einsum("njr,nkr,r->njk", u, v, inv_r)
    return hh[:, :, None] * dw[:, None, :] - dw[:, :, None] * hh[:, None, :] + ab - ab.transpose(0, 2, 1)


def davie_area(dw: np.ndarray, hh: np.ndarray, lam: np.ndarray, h: float) -> np.ndarray:
    """Davie's approximation (Davie 2014; Foster, Lyons & Oberhauser 2020), shape (n, m, m):
    A_jk = H_j dW_k - dW_j H_k + sqrt(h^2/12) lam_jk, lam_jk (j < k) iid N(0, 1), antisymmetric.

    hh: (n, m) space-time areas H ~ N(0, h/12); lam: (n, m, m), its upper triangle is read. Exact mean and variance;
    order 1 in 2-Wasserstein for Milstein, strong order 0.5 only (mean-square error h^2/6 per step)."""
    return _with_bridge(dw, hh, np.triu(lam, 1) * math.sqrt(h * h / 12.0))


def foster_area(dw: np.ndarray, hh: np.ndarray, lam: np.ndarray, h: float) -> np.ndarray:
    """Foster's approximation (Foster, Lyons & Oberhauser 2020), shape (n, m, m): A_jk = H_j dW_k - dW_j H_k
    + sqrt(h^2/20 + h (H_j^2 + H_k^2) / 5) lam_jk, the bridge part with its exact conditional variance given H.

    Arguments as in `davie_area`; strong order 0.5 only, like Davie's."""
    s2 = hh[:, :, None] ** 2 + hh[:, None, :] ** 2
    return _with_bridge(dw, hh, np.triu(lam, 1) * np.sqrt(h * h / 20.0 + h * s2 / 5.0))


def spacetime_part(dw: np.ndarray, hh: np.ndarray) -> np.ndarray:
    """H dW^T - dW H^T, shape (n, m, m): the conditional mean of A given (dW, H); the whole area less its bridge
    part A^B (mean-square error h^2/12 per step)."""
    return hh[:, :, None] * dw[:, None, :] - dw[:, :, None] * hh[:, None, :]


def _with_bridge(dw: np.ndarray, hh: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return spacetime_part(dw, hh) + upper - upper.transpose(0, 2, 1)


def chen_join(a1: np.ndarray, dw1: np.ndarray, a2: np.ndarray, dw2: np.ndarray) -> np.ndarray:
    """Chen's relation: the area over [0, h1 + h2] from the areas (n, m, m) and increments (n, m) of the two parts,
    A = A1 + A2 + 1/2 (dW1 dW2^T - dW2 dW1^T)."""
    cross = dw1[:, :, None] * dw2[:, None, :]
    return a1 + a2 + 0.5 * (cross - cross.transpose(0, 2, 1))


@nb.njit(cache=True)
def draw_area_increments(rng_w, rng_z, start, nc, m, substeps, habs, dw, area, k_tab, w_tab, f_tab):
    """dW (nc, m) and the Lévy area (nc, m * m, row-major A_jk) of paths start..start+nc over a step of length habs.

    Each of the `substeps` fine steps of length hf draws xi ~ N(0, hf) per component from rng_w (the same numbers,
    in the same order, as the plain increments) and, from rng_z, for r = 1..p and each component U_jr, V_jr, then
    mu_j per component (p = fourier_terms(hf)); its area is `fourier_area`'s and the fine areas are joined by
    Chen's relation, so a coarse step's area is the one its fine steps integrate.
    """
    hf = habs / substeps
    sqf = math.sqrt(hf)
    p = fourier_terms(hf)
    c_h = -math.sqrt(hf / 2.0) / math.pi
    c_tail = math.sqrt(hf * rho(p))
    c_ab = hf / (2.0 * math.pi)
    xi = np.empty(m)
    hh = np.empty(m)
    u = np.empty(m)
    v = np.empty(m)
    ab = np.empty((m, m))
    for row in range(nc):
        for j in range(m):
            dw[row, j] = 0.0
        for q in range(m * m):
            area[row, q] = 0.0
        for _s in range(substeps):
            for j in range(m):
                xi[j] = sqf * next_normal_row(rng_w, start + row, k_tab, w_tab, f_tab)
                hh[j] = 0.0
                for k in range(m):
                    ab[j, k] = 0.0
            for r in range(1, p + 1):
                for j in range(m):
                    u[j] = next_normal_row(rng_z, start + row, k_tab, w_tab, f_tab)
                    v[j] = next_normal_row(rng_z, start + row, k_tab, w_tab, f_tab)
                    hh[j] += u[j] / r
                for j in range(m):
                    for k in range(m):
                        ab[j, k] += u[j] * v[k] / r
            for j in range(m):
                hh[j] = c_h * hh[j] + c_tail * next_normal_row(rng_z, start + row, k_tab, w_tab, f_tab)
            for j in range(m):
                for k in range(m):
                    fine = hh[j] * xi[k] - xi[j] * hh[k] + c_ab * (ab[j, k] - ab[k, j])
                    # Chen: A += A_fine + 1/2 (W_j xi_k - W_k xi_j), W the increment so far
                    area[row, j * m + k] += fine + 0.5 * (dw[row, j] * xi[k] - dw[row, k] * xi[j])
            for j in range(m):
                dw[row, j] += xi[j]
