"""Step-size adaptation by Nesterov dual averaging (Hoffman & Gelman 2014, "The No-U-Turn Sampler",
JMLR 15, Algorithm 5), run per chain during warm-up.

With a_m the acceptance probability of warm-up step m = 1, 2, ... and delta the target:
    Hbar_m = (1 - 1/(m + t0)) Hbar_{m-1} + (delta - a_m) / (m + t0),
    log h_m = mu - sqrt(m) / gamma * Hbar_m,
    log hbar_m = m^{-kappa} log h_m + (1 - m^{-kappa}) log hbar_{m-1},
mu = log(10 h_0), gamma = 0.05, t0 = 10, kappa = 0.75. Sampling then uses hbar (the averaged step).
The state is a float64[5] array (mu, Hbar, log h, log hbar, m) so the kernels keep it in registers.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError

DA_GAMMA = 0.05
DA_T0 = 10.0
DA_KAPPA = 0.75
LOG_STEP_MAX = 10.0  # keep a runaway adaptation (a_m == 1 always) finite: h <= e^10


@nb.njit(cache=True)
def dual_averaging_init(state, step_size):
    """state <- (mu = log(10 h0), Hbar = 0, log h = log h0, log hbar = log h0, m = 0)."""
    state[0] = math.log(10.0 * step_size)
    state[1] = 0.0
    state[2] = math.log(step_size)
    state[3] = math.log(step_size)
    state[4] = 0.0


@nb.njit(cache=True)
def dual_averaging_update(state, accept_prob, target):
    """One dual-averaging update with acceptance probability a = accept_prob; returns the next step size h_m."""
    m = state[4] + 1.0
    state[4] = m
    a = accept_prob if accept_prob == accept_prob else 0.0  # NaN counts as a rejection
    w = 1.0 / (m + DA_T0)
    state[1] = (1.0 - w) * state[1] + w * (target - a)
    log_h = state[0] - math.sqrt(m) / DA_GAMMA * state[1]
    log_h = min(log_h, LOG_STEP_MAX)
    state[2] = log_h
    eta = m ** (-DA_KAPPA)
    state[3] = eta * log_h + (1.0 - eta) * state[3]
    return math.exp(log_h)


def dual_averaging_reference(accept_probs: np.ndarray, step_size: float, target: float) -> tuple[float, float]:
    """Pure-Python transcription of the recursion above (for tests): (last h_m, averaged hbar_m)."""
    mu, hbar, log_bar = math.log(10 * step_size), 0.0, math.log(step_size)
    log_h = math.log(step_size)
    for m, a in enumerate(accept_probs, start=1):
        hbar = (1 - 1 / (m + DA_T0)) * hbar + (target - a) / (m + DA_T0)
        log_h = min(mu - math.sqrt(m) / DA_GAMMA * hbar, LOG_STEP_MAX)
        log_bar = m ** -DA_KAPPA * log_h + (1 - m ** -DA_KAPPA) * log_bar
    return math.exp(log_h), math.exp(log_bar)


# ---------------------------------------------------------------------------------------------
# Mass-matrix adaptation: Stan's windowed warm-up (Stan Reference Manual, "HMC algorithm parameters";
# Carpenter et al. 2017, "Stan: a probabilistic programming language", J. Stat. Softw. 76)

STAN_INIT_BUFFER = 75
STAN_TERM_BUFFER = 50
STAN_BASE_WINDOW = 25
MASS_SHRINK_PRIOR = 5.0  # Sigma_reg = n/(n+5) Sigma + 1e-3 * 5/(n+5) I
MASS_JITTER = 1e-3
MIN_ADAPT_WARMUP = 20


def stan_windows(n_warmup: int, init_buffer: int = STAN_INIT_BUFFER, term_buffer: int = STAN_TERM_BUFFER,
                 base_window: int = STAN_BASE_WINDOW) -> np.ndarray:
    """The slow adaptation windows of Stan's warm-up, an int64 array of rows [start, end) of warm-up step indices.

    The first ``init_buffer`` steps adapt only the step size (the chain finds the typical set); then windows of
    ``base_window``, 2 ``base_window``, 4 ``base_window``, ... steps estimate the covariance of the positions,
    the last one stretched to end ``term_buffer`` steps before the end of warm-up (whenever the window after it
    would not fit); the final buffer adapts the step size to the last mass matrix. When the three parts do not
    fit into ``n_warmup``, Stan's fallback takes 15 % / 75 % / 10 % of ``n_warmup``. Stan's default warm-up of
    1000 gives the windows 25, 50, 100, 200 and 500 steps long, starting at step 75.
    """
    if n_warmup < MIN_ADAPT_WARMUP:
        raise SDEKitError(f"adapt_mass needs n_warmup >= {MIN_ADAPT_WARMUP} (Stan's windowed warm-up); "
                          f"got n_warmup={n_warmup}")
    if init_buffer + base_window + term_buffer > n_warmup:
        init_buffer = int(0.15 * n_warmup)
        term_buffer = int(0.1 * n_warmup)
        base_window = n_warmup - init_buffer - term_buffer
    last = n_warmup - term_buffer
    rows = []
    start, size = init_buffer, base_window
    while True:
        end = start + size
        if end + 2 * size > last:
            end = last
        rows.append((start, end))
        if end >= last:
            break
        start, size = end, 2 * size
    return np.array(rows, dtype=np.int64)


@nb.njit(cache=True)
def welford_update(mean, m2, n, x, delta):
    """Add the n-th point x to the running mean and sum of squared deviations (Welford 1962): delta = x - mean,
    mean += delta / n, m2 += delta (x - mean)^T (dense m2, (d, d)) or its diagonal (m2 of shape (1, d))."""
    d = x.shape[0]
    for i in range(d):
        delta[i] = x[i] - mean[i]
        mean[i] += delta[i] / n
    if m2.shape[0] == 1:
        for i in range(d):
            m2[0, i] += delta[i] * (x[i] - mean[i])
    else:
        for i in range(d):
            for j in range(d):
                m2[i, j] += delta[i] * (x[j] - mean[j])


@nb.njit(cache=True)
def set_mass_matrix(mats, m2, n):
    """mats <- (L, M^{-1}) with M^{-1} = n/(n+5) S + 1e-3 * 5/(n+5) I, S = m2 / (n - 1) the window's sample
    covariance (diagonal when m2 has one row, dense otherwise) and M = L L^T (Stan's regularised estimate)."""
    d = mats.shape[1]
    shrink = n / (n + MASS_SHRINK_PRIOR)
    jitter = MASS_JITTER * MASS_SHRINK_PRIOR / (n + MASS_SHRINK_PRIOR)
    inv_mass = np.zeros((d, d))
    if m2.shape[0] == 1:
        for i in range(d):
            inv_mass[i, i] = shrink * m2[0, i] / (n - 1) + jitter
        mats[0][:] = 0.0
        for i in range(d):
            mats[0, i, i] = 1.0 / math.sqrt(inv_mass[i, i])
    else:
        for i in range(d):
            for j in range(i + 1):  # symmetric by construction (m2 may differ from its transpose by rounding)
                inv_mass[i, j] = shrink * 0.5 * (m2[i, j] + m2[j, i]) / (n - 1) + (jitter if i == j else 0.0)
                inv_mass[j, i] = inv_mass[i, j]
        mats[0][:] = np.linalg.cholesky(np.linalg.inv(inv_mass))
    mats[1][:] = inv_mass
