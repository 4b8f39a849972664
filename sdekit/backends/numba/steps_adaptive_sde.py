"""Embedded pairs of the adaptive SDE solvers: one step of the higher-order method, in place, and its error estimate.

Signature: pair(f, g, gdw, x, t, h, dw, dz, p, work, tab, err), the fixed steps' arguments (`steps`) plus err, an
array of x's shape that receives x_high - x_low, the difference of the step taken (x, updated in place) and the
embedded lower-order step on the same increments dW, I_(1,0) (no extra evaluation: the low step reuses the stages).
Time runs forwards (h > 0).

- Milstein / Euler–Maruyama (Itô, diagonal or scalar noise; Kloeden & Platen 1992, eq. 11.1.5, derivative-free):
  x' = x + f h + g dW + (g(x_bar) - g) (dW^2 - h) / (2 sqrt h), x_bar = x + f h + g sqrt h; the error is the Milstein
  correction (the EM step's local error, O(h)) in conditional RMS given the state, E[(dW^2 - h)^2] = 2 h^2:
  err = (g(x_bar) - g) sqrt(h / 2), a function of the step's start only. The realised correction (its dW^2 - h in
  place of sqrt(2) h) makes the step sequence depend on the increment being tested, which costs the convergence
  order: on GBM (mu = 0.5, sigma = 1) its error fell as steps^-0.6 (tol 1e-2..1e-4, 500 paths) against steps^-1.07
  with the conditional RMS (Gaines & Lyons 1997, SIAM J. Appl. Math. 57(5), discuss such step choices).
- SRA (additive noise, Rößler 2010): x' = x + h sum alpha_s f_s + sum (beta1_s dW + beta2_s I_(1,0) / h) g_s; the
  embedded step x + h f_0 + sum beta1_s g_s dW is Euler–Maruyama (strong order 1 on additive noise), so
  err = h (sum alpha_s f_s - f_0) + sum beta2_s g_s I_(1,0) / h, O(h^1.5), as it stands (realised; its noise part
  vanishes for a g that does not depend on t, since sum beta2_s = 0).
- SRI (Itô, diagonal or scalar noise, Rößler 2010): the embedded step keeps the drift's first stage and the noise
  terms beta1 dW + beta2 chi1 (the order-1 conditions of Rößler's tableau make it a Milstein-type step): the
  natural embedding of Rackauckas & Nie (2017), "Adaptive methods for SDEs via natural embeddings and rejection
  sampling with memory", DCDS-B 22(7), section 3. The difference is h (sum alpha_s f_s - f_0) + G3 chi2 + G4 chi3
  with G3 = sum beta3_s g_s, G4 = sum beta4_s g_s (g_s at the stages H1, which read the increments only through
  h A1 f(H0)); the noise part enters in conditional RMS (E chi2^2 = h / 3, E chi3^2 = h / 6, E chi2 chi3 = 0), added
  to the drift part in quadrature: err = sqrt((h (sum alpha_s f_s - f_0))^2 + h (G3^2 / 3 + G4^2 / 6)), for the
  reason given for Milstein: with the realised chi2, chi3 the error of adaptive SOSRI on
  GBM fell as steps^-1.23 (CI [1.04, 1.44]), with the conditional RMS as steps^-1.72 (CI [1.47, 1.94]).
"""

from __future__ import annotations

import math

import numba as nb

from sdekit.backends.numba.access import at2, check_rows
from sdekit.backends.numba.steps_sri import _sri_stage

_SQRT_HALF = math.sqrt(0.5)


@nb.njit
def pair_milstein(f, g, gdw, x, t, h, dw, dz, p, work, tab, err):
    """Derivative-free Itô Milstein step; error: the conditional RMS of the Milstein correction (module docstring)."""
    n, d = x.shape
    sq = math.sqrt(h)
    fx = f(x, t, p)
    check_rows(fx, n)
    gx = g(x, t, p)
    xa = work[0]
    for r in range(n):
        for i in range(d):
            xa[r, i] = x[r, i] + at2(fx, r, i) * h + at2(gx, r, i) * sq
    ga = g(xa, t, p)
    for r in range(n):
        for i in range(d):
            dwi = gdw(1.0, dw, r, i)
            gi = at2(gx, r, i)
            corr = (at2(ga, r, i) - gi) * (dwi * dwi - h) / (2.0 * sq)
            x[r, i] += at2(fx, r, i) * h + gi * dwi + corr
            err[r, i] = (at2(ga, r, i) - gi) * _SQRT_HALF * sq  # the correction's conditional RMS


@nb.njit
def pair_sra(f, g, gdw, x, t, h, dw, dz, p, work, tab, err):
    """Rößler SRA step (tab as `steps.step_sra`) with the difference to the embedded Euler–Maruyama step."""
    c0, c1, a0, b0, alpha, beta1, beta2 = tab
    n_st = alpha.shape[0]
    hz = work[0]
    n, d = x.shape
    for s in range(n_st):
        gs = g(x, t + c1[s] * h, p)
        for r in range(n):
            for i in range(d):
                work[1 + n_st + s, r, i] = gdw(gs, dw, r, i)
                work[1 + 2 * n_st + s, r, i] = gdw(gs, dz, r, i) / h
    for s in range(n_st):
        for r in range(n):
            for i in range(d):
                acc = x[r, i]
                for j in range(s):
                    acc += h * a0[s, j] * work[1 + j, r, i] + b0[s, j] * work[1 + 2 * n_st + j, r, i]
                hz[r, i] = acc
        fs = f(hz, t + c0[s] * h, p)
        check_rows(fs, n)
        for r in range(n):
            for i in range(d):
                work[1 + s, r, i] = at2(fs, r, i)
    for r in range(n):
        for i in range(d):
            drift = 0.0
            noise = 0.0
            high = 0.0
            for s in range(n_st):
                drift += alpha[s] * work[1 + s, r, i]
                noise += beta1[s] * work[1 + n_st + s, r, i]
                high += beta2[s] * work[1 + 2 * n_st + s, r, i]
            x[r, i] += h * drift + noise + high
            err[r, i] = h * (drift - work[1, r, i]) + high


@nb.njit
def pair_sri(f, g, gdw, x, t, h, dw, dz, p, work, tab, err):
    """Rößler SRI step (tab as `steps_sri.step_sri`); error: the difference to its order-1 embedding, the noise part
    in conditional RMS (module docstring)."""
    c0, c1, a0, a1, b0, b1, alpha, beta1, beta2, beta3, beta4 = tab
    n_st = alpha.shape[0]
    sq = math.sqrt(h)
    n, d = x.shape
    for s in range(n_st):
        for r in range(n):
            for i in range(d):
                _sri_stage(x, work, a0, a1, b0, b1, s, n_st, h, sq, gdw(1.0, dz, r, i) / h, r, i)
        fs = f(work[0], t + c0[s] * h, p)
        check_rows(fs, n)
        gs = g(work[1], t + c1[s] * h, p)
        for r in range(n):
            for i in range(d):
                work[2 + s, r, i] = at2(fs, r, i)
                work[2 + n_st + s, r, i] = at2(gs, r, i)
    for r in range(n):
        for i in range(d):
            dwi = gdw(1.0, dw, r, i)
            chi1 = (dwi * dwi - h) / (2.0 * sq)
            chi2 = gdw(1.0, dz, r, i) / h
            chi3 = (dwi * dwi * dwi - 3.0 * h * dwi) / (6.0 * h)
            drift = 0.0
            low = 0.0
            g3 = 0.0
            g4 = 0.0
            for s in range(n_st):
                gsv = work[2 + n_st + s, r, i]
                drift += alpha[s] * work[2 + s, r, i]
                low += (beta1[s] * dwi + beta2[s] * chi1) * gsv
                g3 += beta3[s] * gsv
                g4 += beta4[s] * gsv
            x[r, i] += h * drift + low + g3 * chi2 + g4 * chi3
            e_drift = h * (drift - work[2, r, i])
            err[r, i] = math.sqrt(e_drift * e_drift + h * (g3 * g3 / 3.0 + g4 * g4 / 6.0))


PAIRS = {"adaptive_milstein": pair_milstein, "adaptive_sra": pair_sra, "adaptive_sri": pair_sri}


def pair_work_arrays(family: str, stages: int) -> int:
    """(n, dim) scratch arrays of a pair's step."""
    return {"adaptive_milstein": 1, "adaptive_sra": 1 + 3 * stages, "adaptive_sri": 2 + 2 * stages}[family]
