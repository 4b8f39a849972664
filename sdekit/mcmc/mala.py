"""Metropolis-adjusted Langevin algorithm (MALA; Roberts & Tweedie 1996, "Exponential convergence of
Langevin distributions and their discrete approximations", Bernoulli 2(4)).

Proposal (sdekit's full-drift convention, the ULA move): y = x - h grad U(x) + sqrt(2 h) xi, so
q(y | x) = N(y; x - h grad U(x), 2 h I). Accept with probability min(1, r),

    log r = U(x) - U(y) + [ ||y - x + h grad U(x)||^2 - ||x - y + h grad U(y)||^2 ] / (4 h),

which makes the chain exactly pi-invariant (reversible) for every h > 0. A proposal with a
non-finite energy or gradient is rejected (and counted). Step size: dual averaging to
``target_accept`` (default 0.574, the optimal-scaling value of Roberts & Rosenthal 1998) during warm-up.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.mcmc.chains import run_chains
from sdekit.mcmc.kernel import metropolis_accept
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import next_double_row, next_normal_row


@nb.njit
def mala_log_ratio(u, uy, fwd, back, h):
    """log r = U(x) - U(y) + (||y - x + h grad U(x)||^2 - ||x - y + h grad U(y)||^2) / (4 h), with fwd and back
    the two squared norms."""
    return u - uy + (fwd - back) / (4.0 * h)


@nb.njit
def mala_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab):
    """One MALA transition of (x, grad U(x), U(x)) in place; returns (U, acceptance probability, 0, non-finite)."""
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
        return u, 0.0, 0, 1
    fwd = 0.0
    back = 0.0
    for i in range(d):
        a = y[i] - x[i] + h * grad[i]
        b = x[i] - y[i] + h * gy[i]
        fwd += a * a
        back += b * b
    u_new, accept_prob = metropolis_accept(log_u, mala_log_ratio(u, uy, fwd, back, h), x, grad, u, y, gy, uy)
    return u_new, accept_prob, 0, 0


# ---------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)

@nb.njit
def symmetric_log_ratio(u, uy, fwd, back, h):
    """The Langevin proposal treated as symmetric: log r = U(x) - U(y)."""
    return u - uy


@nb.njit
def reversed_log_ratio(u, uy, fwd, back, h):
    """The proposal correction with its sign reversed: q(y | x) / q(x | y) instead of q(x | y) / q(y | x)."""
    return u - uy + (back - fwd) / (4.0 * h)


DEFECTS = {
    "no_proposal_correction": Defect(
        "missing proposal correction: log r = U(x) - U(y) (the Langevin proposal treated as symmetric)",
        with_helpers(mala_step, mala_log_ratio=symmetric_log_ratio)),
    "reversed_proposal_correction": Defect(
        "wrong acceptance ratio: the proposal correction with its sign reversed, q(y|x)/q(x|y)",
        with_helpers(mala_step, mala_log_ratio=reversed_log_ratio)),
}


def mala(target: Any, *, step_size: Any = 0.1, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000,
         thin: int = 1, adapt: bool = True, target_accept: float = 0.574, seed: int = 0, x0: Any = None,
         on_nonfinite: str = "warn", chain_offset: int = 0) -> MCMCResult:
    """Run MALA chains on an energy target (see the module docstring for the kernel; Roberts & Tweedie 1996):
    y = x - h grad U(x) + sqrt(2 h) xi, accepted with probability min(1, r) (log r in the module docstring).

    step_size: the initial step h (scalar or per chain); with adapt=True (default) each chain tunes h during
    the n_warmup steps by dual averaging to target_accept and samples with the averaged h.
    x0: None (N(0, I) draws), "target" (exact draws, for stationarity checks) or an array.
    on_nonfinite: proposals with a non-finite energy or gradient are rejected and counted
    (``n_nonfinite``); "warn" (default) warns when they exceed the share in
    `sdekit.mcmc.diagnostics.THRESHOLDS`, "reject" only counts, "raise" stops at the first.
    The end-of-run checks (`sdekit.mcmc.diagnostics`) are in ``result.diagnostics``.
    chain_offset: the global index of the first chain (its random stream; errors name it), see `run_chains`.
    """
    return mala_with(mala_step, target, step_size=step_size, n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup,
                     thin=thin, adapt=adapt, target_accept=target_accept, seed=seed, x0=x0, on_nonfinite=on_nonfinite,
                     chain_offset=chain_offset)


def mala_with(step: Any, target: Any, **options: Any) -> MCMCResult:
    """MALA's driver with ``step`` as its transition: `mala_step`, or a planted variant from DEFECTS."""
    return run_chains(step, target, sampler="mala", kernel_params=np.zeros(1), **options)
