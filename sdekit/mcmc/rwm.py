"""Random-walk Metropolis (Metropolis et al. 1953; the algorithm of the Gibbs-distribution tutorial):
a symmetric proposal y = x + h L z, accepted with probability min(1, exp(-(U(y) - U(x)))): moves that
lower the energy are always accepted, others with probability exp(-Delta E).

Proposals: "gaussian" (z ~ N(0, I), so y - x ~ N(0, h^2 L L^T)) or "uniform" (z uniform on [-1, 1]^d).
Both are symmetric, q(y | x) = q(x | y), so no proposal correction enters. L is the Cholesky factor of
``proposal_cov`` (identity by default). Step size: dual averaging to ``target_accept`` (default
0.234, the optimal-scaling value of Roberts, Gelman & Gilks 1997) during warm-up.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError
from sdekit.mcmc.chains import run_chains
from sdekit.mcmc.kernel import metropolis_accept
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import next_double_row, next_normal_row
from sdekit.targets.energy import check_energy_target
from sdekit.targets.gaussian import float_array, spd_factors

PROPOSALS = {"gaussian": 0, "uniform": 1}


@nb.njit
def rwm_log_ratio(u, uy):
    """log r = -(U(y) - U(x)): the symmetric proposal needs no correction."""
    return u - uy


@nb.njit
def rwm_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab):
    """One random-walk Metropolis transition in place; returns (U, acceptance probability, 0, non-finite)."""
    d = x.shape[0]
    z = work[0]
    y = work[1]
    gy = work[2]
    uniform = kp[0] == 1.0
    for i in range(d):
        if uniform:
            z[i] = 2.0 * next_double_row(rng, 0) - 1.0
        else:
            z[i] = next_normal_row(rng, 0, k_tab, w_tab, f_tab)
    chol = mats[0]
    for i in range(d):
        s = 0.0
        for j in range(i + 1):
            s += chol[i, j] * z[j]
        y[i] = x[i] + h * s
    uy = energy(y, p, gy)
    log_u = math.log(next_double_row(rng, 0) + 1e-300)
    if not math.isfinite(uy):
        return u, 0.0, 0, 1
    u_new, accept_prob = metropolis_accept(log_u, rwm_log_ratio(u, uy), x, grad, u, y, gy, uy)
    return u_new, accept_prob, 0, 0


# ---------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)

@nb.njit
def half_temperature_log_ratio(u, uy):
    """Acceptance with exp(-Delta E / 2): the chain samples pi^(1/2), the energy at temperature 2."""
    return 0.5 * (u - uy)


DEFECTS = {
    "acceptance_at_temperature_2": Defect("wrong acceptance ratio: exp(-Delta E / 2) (the energy at temperature 2)",
                                          with_helpers(rwm_step, rwm_log_ratio=half_temperature_log_ratio)),
}


def rwm(target: Any, *, step_size: Any = 0.5, proposal: str = "gaussian", proposal_cov: Any = None,
        n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000, thin: int = 1, adapt: bool = True,
        target_accept: float = 0.234, seed: int = 0, x0: Any = None, on_nonfinite: str = "warn",
        chain_offset: int = 0) -> MCMCResult:
    """Run random-walk Metropolis chains, y = x + h L z, accepted with probability min(1, exp(U(x) - U(y)))
    (Metropolis et al. 1953; see the module docstring).

    proposal: "gaussian" or "uniform"; proposal_cov: SPD (d, d) shape of the step (L L^T), identity by default.
    on_nonfinite: proposals with a non-finite energy are rejected and counted; "warn" (default), "reject" or
    "raise", as for `sdekit.mcmc.mala`. The end-of-run checks are in ``result.diagnostics``.
    chain_offset: the global index of the first chain (its random stream; errors name it), see `run_chains`.
    """
    return rwm_with(rwm_step, target, step_size=step_size, proposal=proposal, proposal_cov=proposal_cov,
                    n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup, thin=thin, adapt=adapt,
                    target_accept=target_accept, seed=seed, x0=x0, on_nonfinite=on_nonfinite, chain_offset=chain_offset)


def rwm_with(step: Any, target: Any, *, proposal: str, proposal_cov: Any, **options: Any) -> MCMCResult:
    """Random-walk Metropolis's driver with ``step`` as its transition: `rwm_step` or a planted variant."""
    if not isinstance(proposal, str) or proposal not in PROPOSALS:
        raise SDEKitError(f"proposal must be one of {tuple(PROPOSALS)}; got {proposal!r}")
    check_energy_target(target)
    d = target.dim
    mats = np.broadcast_to(np.eye(d), (2, d, d)).copy()
    if proposal_cov is not None:
        c = float_array(proposal_cov, "proposal_cov")
        if c.ndim == 0 and d == 1:
            c = c.reshape(1, 1)
        if c.shape != (d, d):
            raise SDEKitError(f"proposal_cov must have shape ({d}, {d}); got {c.shape}")
        mats[0] = spd_factors(c, "proposal_cov")[1]
    return run_chains(step, target, sampler=f"rwm[{proposal}]", kernel_params=np.array([float(PROPOSALS[proposal])]),
                      mats=mats, **options)
