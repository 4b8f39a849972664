"""The drift of the exact mixture model's reverse SDE / probability-flow ODE, fused with its score in one pass.

For Gaussian-mixture data under a built-in schedule (`sdekit.diffusion.mixture_marginals`), the marginal is
p_t = sum_k pi_k N(alpha mu_k, S_k) with S_k = alpha^2 C_k + sigma^2 I = Q_k diag(e_k) Q_k^T, e_k = alpha^2 lam_k
+ sigma^2. The reverse family of Song et al. 2021 (eq. 6 and section 4.3; Zhang & Chen 2022 for lambda) has the drift

    b(x, t) = f(t) x - (1 + lambda^2) / 2 g(t)^2 s(x, t),   s(x, t) = -sum_k gamma_k(x) S_k^{-1} (x - alpha mu_k)

(lambda = 0: the probability-flow ODE). The time enters only through (alpha, sigma), the same for every row, so
each call first forms the precisions P_k = S_k^{-1} = Q_k diag(1 / e_k) Q_k^T (K matrix products of d x d, once per
call) and then needs one product per component and block of rows, U_k = R_k P_k with R_k = X - alpha mu_k, instead
of the two of the eigenbasis form (rotate, scale, rotate back). With l_k = log pi_k - 1/2 r_k . u_k - 1/2 log det
(2 pi S_k), gamma = softmax(l) (log-sum-exp with the row maximum) and s = -sum_k gamma_k u_k, the drift row
f x - c s is written in the same pass (c = (1 + lambda^2) g^2 / 2): no score array, no temporaries.

Rounding: P_k r_k sums in another order than Q_k diag(1/e_k) (Q_k^T r_k), so the drift agrees with the composition
`reverse.probability_flow_ode(forward, exact_mixture_score, ...)` to rounding (a few ulps of the row), not bit for
bit. Below ``BLAS_MIN_DIM`` the score is the eigenbasis loops of `mixture_marginals.marginal_rows` and the drift
equals the composition bit for bit. Every product has ``WIDE_BLOCK_ROWS`` rows (`sdekit.targets.row_blocks`), so a row's
numbers do not depend on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba as nb
import numpy as np

from sdekit.backends.torch.twins import register_torch
from sdekit.diffusion.forward import schedule_kernel
from sdekit.diffusion.mixture_marginals import marginal_rows, marginal_scales
from sdekit.diffusion.reverse import _torch_drift
from sdekit.targets.row_blocks import BLAS_MIN_DIM, WIDE_BLOCK_ROWS, block_product

__all__ = ["exact_mixture_drift", "marginal_precisions", "mixture_flow_rows"]


@nb.njit(cache=True)
def marginal_precisions(alpha, sigma, q, lam):
    """(P (K, d, d), log_c (K,)): P_k = Q_k diag(1 / e_k) Q_k^T = S_k^{-1} and log_c_k = -1/2 log det(2 pi S_k).

    e_k = alpha^2 lam_k + sigma^2; P_k = W_k Q_k^T with W_k = Q_k diag(1 / e_k) (one d x d product per component).
    The log weights are not included.
    """
    n_comp, d = lam.shape
    prec = np.empty((n_comp, d, d))
    w = np.empty((d, d))
    qt = np.empty((d, d))
    inv_e, log_c = marginal_scales(alpha, sigma, lam)  # 1 / e_k and log_c_k, as the eigenbasis score has them
    for k in range(n_comp):
        for i in range(d):
            for j in range(d):
                w[i, j] = q[k, i, j] * inv_e[k, j]
                qt[i, j] = q[k, j, i]
        block_product(w, qt, prec[k])
    return prec, log_c


@nb.njit(cache=True)
def mixture_flow_rows(x, alpha, sigma, p, f, c):
    """out = f x - c s(x) for every row of x (n, d), s the score of p_t; returns a new (n, d) float64 array.

    p = ``MixtureMarginals.params`` = (log pi (K,), mu (K, d), Q (K, d, d), lam (K, d)). Per block of
    WIDE_BLOCK_ROWS rows: for each k, R = X - alpha mu_k, U_k = R P_k (`block_product`), l_k = log pi_k + log_c_k
    - 1/2 rowsum(R * U_k); then per row m = max_k l_k, w_k = exp(l_k - m), s = -(sum_k w_k u_k) / sum_k w_k and
    out = f x - c s.
    """
    n, d = x.shape
    out = np.empty((n, d))
    if d < BLAS_MIN_DIM:  # the eigenbasis loops: bit for bit the composition of the score and the drift
        score = np.empty((n, d))
        marginal_rows(x, alpha, sigma, p, score, np.empty(n), np.empty(0), False)
        for b in range(n):
            for i in range(d):
                out[b, i] = f * x[b, i] - c * score[b, i]
        return out
    log_w = p[0]
    mu = p[1]
    prec, log_c = marginal_precisions(alpha, sigma, p[2], p[3])
    n_comp = log_w.shape[0]
    rows = WIDE_BLOCK_ROWS
    amu = np.empty((n_comp, d))
    for k in range(n_comp):
        log_c[k] += log_w[k]
        for i in range(d):
            amu[k, i] = alpha * mu[k, i]
    r = np.empty((rows, d))
    us = np.empty((n_comp, rows, d))
    lks = np.empty((n_comp, rows))
    tot = np.empty(rows)
    acc = np.empty((rows, d))
    for c0 in range(0, n, rows):
        nc = min(rows, n - c0)
        for k in range(n_comp):
            for b in range(rows):
                row = c0 + min(b, nc - 1)
                for i in range(d):
                    r[b, i] = x[row, i] - amu[k, i]
            uk = us[k]
            block_product(r, prec[k], uk)
            for b in range(nc):
                quad = 0.0
                for j in range(d):
                    quad += r[b, j] * uk[b, j]
                lks[k, b] = log_c[k] - 0.5 * quad
        for b in range(nc):
            top = 0
            for k in range(1, n_comp):
                if lks[k, b] > lks[top, b]:
                    top = k
            m = lks[top, b]
            t = 0.0
            for k in range(n_comp):
                # exp(0) = 1 exactly: the top component's weight needs no exp (unless every l_k is -inf: nan)
                wk = 1.0 if k == top and m > -np.inf else math.exp(lks[k, b] - m)
                lks[k, b] = wk
                t += wk
            tot[b] = t
        for b in range(nc):
            for i in range(d):
                acc[b, i] = 0.0
        for k in range(n_comp):
            for b in range(nc):
                wk = lks[k, b]
                for i in range(d):
                    acc[b, i] -= wk * us[k, b, i]
        for b in range(nc):
            row = c0 + b
            for i in range(d):
                out[row, i] = f * x[row, i] - c * (acc[b, i] / tot[b])
    return out


_DRIFTS: dict[Callable, Callable] = {}


def exact_mixture_drift(coefficients: Callable, score: Callable) -> Callable:
    """The njit drift(x, t, p) = f x - (1 + lambda^2)/2 g^2 s(x, t) of the exact mixture model, fused.

    coefficients: the forward SDE's njit ``coefficients_fn`` (t, sp) -> (f, g); score: the njit exact score
    s(x, t, p[1:]) this drift fuses (``model.exact_mixture_score``), whose torch twin gives the drift's twin (the
    composition `reverse._torch_drift`). p has the layout of `reverse.reverse_sde` with that score:
    (control = [lambda, sp...], sp, log pi, mu, Q, lam). Memoised per coefficients: one compiled kernel per family.
    """
    if coefficients in _DRIFTS:
        return _DRIFTS[coefficients]

    @nb.njit
    def drift(x, t, p):
        control = p[0]
        f, g = coefficients(t, control[1:])
        lam = control[0]
        alpha, sigma = schedule_kernel(t, p[1])
        return mixture_flow_rows(x, alpha, sigma, p[2:], f, 0.5 * (1.0 + lam * lam) * g * g)

    register_torch(drift, _torch_drift(coefficients, score, True))
    _DRIFTS[coefficients] = drift
    return drift
