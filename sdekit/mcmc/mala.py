"""Metropolis-adjusted Langevin algorithm (MALA; Roberts & Tweedie 1996, "Exponential convergence of
Langevin distributions and their discrete approximations", Bernoulli 2(4)).

Proposal (sdekit's full-drift convention, the ULA move): y = x - h grad U(x) + sqrt(2 h) xi, so
q(y | x) = N(y; x - h grad U(x), 2 h I). Accept with probability min(1, r),

    log r = U(x) - U(y) + [ ||y - x + h grad U(x)||^2 - ||x - y + h grad U(y)||^2 ] / (4 h),

which makes the chain exactly pi-invariant (reversible) for every h > 0. A proposal with a
non-finite energy is rejected. Step size: dual averaging to ``target_accept`` (default 0.574, the
optimal-scaling value of Roberts & Rosenthal 1998) during warm-up.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.mcmc.chains import metropolis_accept, run_chains
from sdekit.mcmc.result import MCMCResult
from sdekit.noise.streams import next_double_row, next_normal_row

DEFECTS = {
    0: "none",
    1: "missing proposal correction: log r = U(x) - U(y) (the Langevin proposal treated as symmetric)",
    2: "wrong acceptance ratio: the proposal correction with its sign reversed, q(y|x)/q(x|y)",
}


@nb.njit
def mala_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab, defect):
    """One MALA transition of (x, grad U(x), U(x)) in place; returns (U, acceptance probability, 0)."""
    d = x.shape[0]
    y = work[0]
    gy = work[1]
    noise = math.sqrt(2.0 * h)
    for i in range(d):
        y[i] = x[i] - h * grad[i] + noise * next_normal_row(rng, 0, k_tab, w_tab, f_tab)
    uy = energy(y, p, gy)
    log_u = math.log(next_double_row(rng, 0) + 1e-300)
    finite = math.isfinite(uy)
    for i in range(d):
        finite = finite and math.isfinite(gy[i])
    if not finite:
        return u, 0.0, 0
    fwd = 0.0
    back = 0.0
    for i in range(d):
        a = y[i] - x[i] + h * grad[i]
        b = x[i] - y[i] + h * gy[i]
        fwd += a * a
        back += b * b
    if defect == 1:
        log_r = u - uy
    elif defect == 2:
        log_r = u - uy + (back - fwd) / (4.0 * h)
    else:
        log_r = u - uy + (fwd - back) / (4.0 * h)
    u_new, accept_prob = metropolis_accept(log_u, log_r, x, grad, u, y, gy, uy)
    return u_new, accept_prob, 0


def mala(target: Any, *, step_size: Any = 0.1, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000,
         thin: int = 1, adapt: bool = True, target_accept: float = 0.574, seed: int = 0, x0: Any = None,
         defect: int = 0) -> MCMCResult:
    """Run MALA chains on an energy target (see the module docstring for the kernel).

    step_size: the initial step h (scalar or per chain); with adapt=True (default) each chain tunes h during
    the n_warmup steps by dual averaging to target_accept and samples with the averaged h.
    x0: None (N(0, I) draws), "target" (exact draws, for stationarity checks) or an array.
    """
    return run_chains(mala_step, target, sampler="mala", step_size=step_size, kernel_params=np.zeros(1),
                      n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup, thin=thin, adapt=adapt,
                      target_accept=target_accept, seed=seed, x0=x0, defect=defect)
