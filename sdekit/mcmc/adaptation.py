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
