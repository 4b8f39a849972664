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
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import next_normal_row


@nb.njit
def ula_noise(h):
    """The noise scale sqrt(2 h) of a step h."""
    return math.sqrt(2.0 * h)


@nb.njit
def ula_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab):
    """x <- x - h grad U(x) + sqrt(2 h) xi; returns (U(x'), 1, 0, 0). A non-finite U, grad U or x returns
    U = NaN, which stops the run (`ChainNonFiniteError`): ULA has no proposal to reject."""
    noise = ula_noise(h)
    for i in range(x.shape[0]):
        x[i] = x[i] - h * grad[i] + noise * next_normal_row(rng, 0, k_tab, w_tab, f_tab)
    u_new = energy(x, p, grad)
    for i in range(x.shape[0]):
        if not (math.isfinite(grad[i]) and math.isfinite(x[i])):
            return math.nan, 1.0, 0, 0
    return u_new, 1.0, 0, 0


# ---------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)

@nb.njit
def half_noise(h):
    """sqrt(h) instead of sqrt(2 h): the half-drift convention's noise with the full drift."""
    return math.sqrt(h)


DEFECTS = {
    "noise_off_by_sqrt2": Defect("noise off by sqrt(2): x - h grad U + sqrt(h) xi",
                                 with_helpers(ula_step, ula_noise=half_noise)),
}


def ula(target: Any, *, step_size: float, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 0, thin: int = 1,
        seed: int = 0, x0: Any = None, chain_offset: int = 0) -> MCMCResult:
    """Run ULA chains, x' = x - h grad U(x) + sqrt(2 h) xi with h = step_size (fixed: ULA has no
    acceptance to adapt to; Roberts & Tweedie 1996). See the module docstring for the exact Gaussian bias.
    A chain whose state turns non-finite raises `ChainNonFiniteError` naming the chain and the step.
    chain_offset: the global index of the first chain (its random stream; errors name it), see `run_chains`."""
    return ula_with(ula_step, target, step_size=step_size, n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup,
                    thin=thin, seed=seed, x0=x0, chain_offset=chain_offset)


def ula_with(step: Any, target: Any, **options: Any) -> MCMCResult:
    """ULA's driver with ``step`` as its transition: `ula_step` or a planted variant from DEFECTS."""
    return run_chains(step, target, sampler="ula", kernel_params=np.zeros(1), adapt=False, proposes=False, **options)
