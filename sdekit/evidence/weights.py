"""Importance weights along a tempering path: log-mean-exp with its standard error, ESS, conditional ESS, the
adaptive next inverse temperature and systematic resampling.

Path pi_beta ∝ gamma_beta = exp(-beta U) q^(1 - beta) with V = U + log q = U - U_q. Moving a particle's target from
beta to beta' multiplies its weight by the incremental weight

    w(x) = gamma_beta'(x) / gamma_beta(x) = exp(-(beta' - beta) V(x))                              (1)

(Neal 2001, "Annealed importance sampling", Stat. Comput. 11, eq. 3 with f_j = gamma_beta_j).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["conditional_ess", "ess_fraction", "incremental_log_weight", "log_mean_exp", "next_beta",
           "normalise_log_weights", "systematic_resample"]

BISECTION_STEPS = 60


def incremental_log_weight(beta_from: np.ndarray | float, beta_to: np.ndarray | float, u: np.ndarray,
                           uq: np.ndarray) -> np.ndarray:
    """log w = -(beta' - beta) (U(x) - U_q(x)), eq. (1) of the module docstring (U_q = -log q); -inf where U is
    +inf or NaN (the particle gets weight 0)."""
    v = u - uq
    out = -(np.asarray(beta_to) - np.asarray(beta_from)) * v
    return np.where(np.isnan(out), -np.inf, out)


def log_mean_exp(log_w: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(log of the mean of w = exp(log_w), its delta-method standard error) along ``axis``.

    With w_max = max log_w and r_i = exp(log_w_i - w_max): log mean = w_max + log mean(r), and
    se = sd(r) / (sqrt(n) mean(r)) (Var log Z_hat ≈ Var Z_hat / Z^2, sd with n - 1 degrees of freedom).
    The estimate of log Z is biased low by about se^2 / 2 (Jensen).
    """
    lw = np.asarray(log_w, dtype=np.float64)
    top = np.max(lw, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    r = np.exp(lw - top)
    n = lw.shape[axis]
    mean = np.mean(r, axis=axis)
    sd = np.std(r, axis=axis, ddof=1) if n > 1 else np.full(mean.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.squeeze(top, axis=axis) + np.log(mean)
        se = sd / (math.sqrt(n) * mean)
    return log_mean, se


def normalise_log_weights(log_w: np.ndarray) -> np.ndarray:
    """log W_i = log w_i - log sum_j w_j along the last axis."""
    top = np.max(log_w, axis=-1, keepdims=True)
    return log_w - (top + np.log(np.sum(np.exp(log_w - top), axis=-1, keepdims=True)))


def ess_fraction(log_w: np.ndarray) -> np.ndarray:
    """ESS / n = (sum w)^2 / (n sum w^2) along the last axis (Kong, Liu & Wong 1994)."""
    lw = normalise_log_weights(log_w)
    return 1.0 / (lw.shape[-1] * np.sum(np.exp(2.0 * lw), axis=-1))


def conditional_ess(log_W: np.ndarray, log_inc: np.ndarray) -> np.ndarray:
    """The conditional ESS fraction (Zhou, Johansen & Aston 2016, "Toward automatic model comparison: an adaptive
    sequential Monte Carlo approach", JCGS 25, eq. 3.16 / N):

        CESS / N = (sum_i W_i w_i)^2 / (sum_i W_i w_i^2),    W normalised weights, w incremental weights,

    in (0, 1], along the last axis (log_W, log_inc of equal shape)."""
    top = np.max(log_inc, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp(log_inc - top)
    weights = np.exp(log_W)
    num = np.sum(weights * w, axis=-1) ** 2
    den = np.sum(weights * w * w, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def next_beta(beta: np.ndarray, log_W: np.ndarray, u: np.ndarray, uq: np.ndarray, target: float) -> np.ndarray:
    """The next inverse temperature of each run (rows): the largest beta' in (beta, 1] whose conditional ESS fraction
    is >= ``target`` (1 when beta' = 1 already is), by bisection (Jasra et al. 2011; Zhou, Johansen & Aston 2016).

    beta (m,), log_W, u, uq (m, n): the normalised log weights, U and U_q of run j's particles in row j. CESS is
    continuous and decreasing in beta' for a fixed particle set, so the bisection keeps beta' with CESS >= target
    at the low end; 60 halvings (|interval| < 2^-60) give beta' within rounding of the root.
    """
    lo = beta.copy()
    hi = np.ones_like(beta)
    done = conditional_ess(log_W, incremental_log_weight(beta[:, None], 1.0, u, uq)) >= target
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        ok = conditional_ess(log_W, incremental_log_weight(beta[:, None], mid[:, None], u, uq)) >= target
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    out = np.where(done, 1.0, lo)
    # a step too small to move (CESS already below target for any step): take the bisection's upper end
    return np.where(out > beta, out, hi)


def systematic_resample(log_W: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Systematic resampling (Kitagawa 1996; Carpenter, Clifford & Fearnhead 1999) of each row: ancestor indices
    a (m, n) with a_k = min{i : C_i > (k + u) / n}, C the cumulative normalised weights, u ~ U(0, 1) per row."""
    m, n = log_W.shape
    cum = np.cumsum(np.exp(log_W), axis=1)
    cum /= cum[:, -1:]
    pos = (np.arange(n)[None, :] + uniforms[:, None]) / n
    idx = np.empty((m, n), dtype=np.int64)
    for j in range(m):
        idx[j] = np.searchsorted(cum[j], pos[j], side="right")
    return np.minimum(idx, n - 1)
