"""Unadjusted Langevin algorithm (ULA): Euler–Maruyama on sdekit's overdamped Langevin SDE
dX = -grad U(X) dt + sqrt(2) dW (stationary law pi = exp(-U) / Z),

    x' = x - h grad U(x) + sqrt(2 h) xi,   xi ~ N(0, I).

ULA is biased at every h > 0. For a Gaussian pi = N(mu, S) its stationary law is exactly
N(mu, V_h), V_h = S (I - h S^{-1} / 2)^{-1} (stable iff h < 2 lambda_min(S); `sdekit.validate.ula_law`
gives the law after K steps). Convention: the tutorials' half-drift form x' = x + (h/2) grad log pi
+ sqrt(h) xi is this chain with h replaced by h/2 (VALIDATION.md §1c).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.mcmc.chains import run_chains
from sdekit.mcmc.result import MCMCResult
from sdekit.noise.streams import next_normal_row

DEFECTS = {0: "none", 1: "noise off by sqrt(2): x - h grad U + sqrt(h) xi"}


@nb.njit
def ula_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab, defect):
    """x <- x - h grad U(x) + sqrt(2 h) xi; returns (U(x'), 1, 0). A non-finite U stops the chain."""
    noise = math.sqrt(h) if defect == 1 else math.sqrt(2.0 * h)
    for i in range(x.shape[0]):
        x[i] = x[i] - h * grad[i] + noise * next_normal_row(rng, 0, k_tab, w_tab, f_tab)
    u_new = energy(x, p, grad)
    for i in range(x.shape[0]):
        if not math.isfinite(grad[i]):
            return math.nan, 1.0, 0
    return u_new, 1.0, 0


def ula(target: Any, *, step_size: float, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 0, thin: int = 1,
        seed: int = 0, x0: Any = None, defect: int = 0) -> MCMCResult:
    """Run ULA chains, x' = x - h grad U(x) + sqrt(2 h) xi with h = step_size (fixed: ULA has no
    acceptance to adapt to). See the module docstring for the exact Gaussian bias."""
    return run_chains(ula_step, target, sampler="ula", step_size=step_size, kernel_params=np.zeros(1),
                      n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup, thin=thin, adapt=False, seed=seed,
                      x0=x0, defect=defect)
