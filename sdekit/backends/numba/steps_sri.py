"""Rößler's SRI step (strong order 1.5, Itô, scalar or diagonal noise) on a chunk of paths x of shape (n, dim).

Signature and conventions as in `steps`: step(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf), dw = dW and
dz = I_(1,0) per path and Brownian component; drift terms use h, noise terms |h| (time may run backwards). The iterated
integrals of one component are functions of dW and |h|: I_(1,1) = (dW^2 - |h|) / 2, I_(1,1,1) = (dW^3 - 3 |h| dW) / 6.
For diagonal noise the stage H1 is formed for all components at once, which is Rößler's per-component stage
H^(k) wherever it is read (g_k depends on x_k only; see `sdekit.solvers.tableaus.SRITableau`).
"""

from __future__ import annotations

import math

import numba as nb

from sdekit.backends.numba.access import at2, check_rows
from sdekit.backends.numba.evaluate import evaluate


@nb.njit
def _sri_stage(x, work, a0, a1, b0, b1, s, n_st, h, sq, chi2, r, i):
    """Stage states H0_s, H1_s of element (r, i) from the stored f(H0_j) (work[2 + j]) and g(H1_j) (work[2 + S + j])."""
    h0 = x[r, i]
    h1 = x[r, i]
    for j in range(s):
        fj = work[2 + j, r, i]
        gj = work[2 + n_st + j, r, i]
        h0 += h * a0[s, j] * fj + chi2 * b0[s, j] * gj
        h1 += h * a1[s, j] * fj + sq * b1[s, j] * gj
    work[0, r, i] = h0
    work[1, r, i] = h1


@nb.njit
def _sri_update(x, work, alpha, beta1, beta2, beta3, beta4, n_st, h, habs, sq, dwi, dzi, r, i):
    """x' = x + h sum alpha_s f_s + sum (beta1_s dW + beta2_s chi1 + beta3_s chi2 + beta4_s chi3) g_s."""
    chi1 = (dwi * dwi - habs) / (2.0 * sq)
    chi2 = dzi / habs
    chi3 = (dwi * dwi * dwi - 3.0 * habs * dwi) / (6.0 * habs)
    acc = 0.0
    for s in range(n_st):
        acc += (h * alpha[s] * work[2 + s, r, i]
                + (beta1[s] * dwi + beta2[s] * chi1 + beta3[s] * chi2 + beta4[s] * chi3) * work[2 + n_st + s, r, i])
    x[r, i] += acc


@nb.njit
def step_sri(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Rößler SRI (see `SRITableau`); tab = (c0, c1, A0, A1, B0, B1, alpha, beta1, beta2, beta3, beta4).

    work[0], work[1]: the stage states H0, H1; work[2 + s]: f(H0_s); work[2 + S + s]: g(H1_s).
    dW_i and I_(1,0)_i are read through the noise term with g = 1 (component i, or 0 for scalar noise).
    """
    c0, c1, a0, a1, b0, b1, alpha, beta1, beta2, beta3, beta4 = tab
    n_st = alpha.shape[0]
    habs = abs(h)
    sq = math.sqrt(habs)
    n, d = x.shape
    for s in range(n_st):
        for r in range(n):
            for i in range(d):
                _sri_stage(x, work, a0, a1, b0, b1, s, n_st, h, sq, gdw(1.0, dz, r, i) / habs, r, i)
        fs = evaluate(f, 0, work[0], t + c0[s] * h, p, fbuf)
        check_rows(fs, n)
        gs = evaluate(g, 0, work[1], t + c1[s] * h, p, gbuf)
        for r in range(n):
            for i in range(d):
                work[2 + s, r, i] = at2(fs, r, i)
                work[2 + n_st + s, r, i] = at2(gs, r, i)
    for r in range(n):
        for i in range(d):
            _sri_update(x, work, alpha, beta1, beta2, beta3, beta4, n_st, h, habs, sq, gdw(1.0, dw, r, i),
                        gdw(1.0, dz, r, i), r, i)
