"""Hamiltonian Monte Carlo with the leapfrog integrator (Duane et al. 1987; Neal 2011, "MCMC using
Hamiltonian dynamics", Handbook of MCMC ch. 5).

H(x, p) = U(x) + 1/2 p^T M^{-1} p. Each transition draws p ~ N(0, M) (p = L z, M = L L^T), runs L
leapfrog steps of size h,

    p <- p - (h/2) grad U(x);  x <- x + h M^{-1} p;  p <- p - (h/2) grad U(x)   (half kicks merged),

and accepts (x', p') with probability min(1, exp(H(x, p) - H(x', p'))). The transition is exactly
pi-invariant for every h and L. A trajectory is divergent when H(x', p') - H(x, p) exceeds
``divergence_threshold`` (default 1000, as in Stan and blackjax) or turns non-finite; it is rejected
and counted in ``MCMCResult.divergent``. Mass matrix: None (identity), a (d,) diagonal, or a dense
(d, d) SPD matrix, or adapted per chain in Stan's windowed warm-up (``adapt_mass`` "diag" or "dense").
Step size: dual averaging to ``target_accept`` (default 0.8) during warm-up.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError
from sdekit.mcmc.chains import ADAPT_MASS, check_adapt_mass, run_chains
from sdekit.mcmc.result import MCMCResult
from sdekit.mcmc.variants import Defect, with_helpers
from sdekit.noise.streams import next_double_row, next_normal_row
from sdekit.targets.energy import check_energy_target
from sdekit.targets.gaussian import float_array, spd_factors


@nb.njit
def _kinetic(pm, minv, dense):
    k = 0.0
    d = pm.shape[0]
    for i in range(d):
        if dense:
            s = 0.0
            for j in range(d):
                s += minv[i, j] * pm[j]
            k += pm[i] * s
        else:
            k += pm[i] * minv[i, i] * pm[i]
    return 0.5 * k


@nb.njit
def refresh_momentum(pm, z, chol, dense, rng, k_tab, w_tab, f_tab):
    """p <- L z with z ~ N(0, I) (so p ~ N(0, M), M = L L^T)."""
    d = pm.shape[0]
    for i in range(d):
        z[i] = next_normal_row(rng, 0, k_tab, w_tab, f_tab)
    for i in range(d):
        if dense:
            s = 0.0
            for j in range(i + 1):
                s += chol[i, j] * z[j]
            pm[i] = s
        else:
            pm[i] = chol[i, i] * z[i]


@nb.njit
def hmc_log_ratio(delta, u, u_new):
    """log r = H(x, p) - H(x', p') = -delta."""
    return -delta


@nb.njit
def hmc_step(energy, p, x, grad, u, work, h, kp, mats, rng, k_tab, w_tab, f_tab):
    """One HMC transition (leapfrog, kp = (n_leapfrog, divergence_threshold, dense)) in place; returns
    (U, acceptance probability, divergent, non-finite energy or gradient met on the trajectory)."""
    d = x.shape[0]
    n_leapfrog = int(kp[0])
    threshold = kp[1]
    dense = kp[2] == 1.0
    chol = mats[0]
    minv = mats[1]
    pm = work[0]  # the momentum (it keeps the last trajectory's final momentum between calls)
    x_old = work[1]
    g_old = work[2]
    refresh_momentum(pm, work[3], chol, dense, rng, k_tab, w_tab, f_tab)
    k0 = _kinetic(pm, minv, dense)
    for i in range(d):
        x_old[i] = x[i]
        g_old[i] = grad[i]
    u_new = u
    finite = True
    for i in range(d):
        pm[i] -= 0.5 * h * grad[i]
    for step in range(n_leapfrog):
        for i in range(d):
            if dense:
                s = 0.0
                for j in range(d):
                    s += minv[i, j] * pm[j]
                x[i] += h * s
            else:
                x[i] += h * minv[i, i] * pm[i]
        u_new = energy(x, p, grad)
        finite = math.isfinite(u_new)
        for i in range(d):
            finite = finite and math.isfinite(grad[i])
        if not finite:
            break
        kick = h if step < n_leapfrog - 1 else 0.5 * h
        for i in range(d):
            pm[i] -= kick * grad[i]
    nonfinite = 0 if finite else 1
    log_u = math.log(next_double_row(rng, 0) + 1e-300)
    if finite:
        k1 = _kinetic(pm, minv, dense)
        delta = (u_new + k1) - (u + k0)
        finite = math.isfinite(delta)
    divergent = (not finite) or delta > threshold
    if divergent:
        accept_prob = 0.0
        log_r = -math.inf
    else:
        log_r = hmc_log_ratio(delta, u, u_new)
        accept_prob = 1.0 if log_r >= 0.0 else math.exp(log_r)
    if log_u < log_r:
        return u_new, accept_prob, 0, nonfinite
    for i in range(d):
        x[i] = x_old[i]
        grad[i] = g_old[i]
    return u, accept_prob, 1 if divergent else 0, nonfinite


# ---------------------------------------------------------------------------------------------
# planted bugs (power studies and tests; run through sdekit.mcmc.defects.planted)

@nb.njit
def potential_only_log_ratio(delta, u, u_new):
    """The kinetic energy missing from the acceptance ratio: log r = U(x) - U(x')."""
    return u - u_new


@nb.njit
def kept_momentum(pm, z, chol, dense, rng, k_tab, w_tab, f_tab):
    """No refresh: the trajectory starts from the previous one's final momentum (zero at the start, and after a
    trajectory whose momentum turned non-finite)."""
    for i in range(pm.shape[0]):
        if not math.isfinite(pm[i]):
            for j in range(pm.shape[0]):
                pm[j] = 0.0
            return


DEFECTS = {
    "no_kinetic_energy": Defect("missing kinetic energy in the acceptance ratio: exp(U(x) - U(x'))",
                                with_helpers(hmc_step, hmc_log_ratio=potential_only_log_ratio)),
    "momentum_not_refreshed": Defect(
        "momentum not refreshed: each trajectory starts from the previous trajectory's final momentum",
        with_helpers(hmc_step, refresh_momentum=kept_momentum)),
}


def mass_factors(mass: Any, dim: int) -> tuple[np.ndarray, bool]:
    """(mats, dense): mats[0] = L with M = L L^T, mats[1] = M^{-1}, from None (I), a (d,) diagonal or (d, d) SPD."""
    mats = np.broadcast_to(np.eye(dim), (2, dim, dim)).copy()
    if mass is None:
        return mats, False
    if isinstance(mass, bool | str) or np.iscomplexobj(mass):
        raise SDEKitError(f"mass must be None, a positive ({dim},) diagonal or a ({dim}, {dim}) SPD matrix of reals; "
                          f"got {mass!r}")
    m = float_array(mass, "mass")
    if m.ndim == 0 and dim == 1:
        m = m.reshape(1)
    if m.shape == (dim,):
        if not np.all(m > 0):
            raise SDEKitError(f"mass (diagonal) must be positive; got {m}")
        mats[0] = np.diag(np.sqrt(m))
        mats[1] = np.diag(1.0 / m)
        return mats, False
    if m.shape == (dim, dim):
        _, chol, prec, _ = spd_factors(m, "mass")
        mats[0], mats[1] = chol, prec
        return mats, True
    raise SDEKitError(f"mass must be None, a ({dim},) diagonal or a ({dim}, {dim}) matrix; got shape {m.shape}")


def hmc(target: Any, *, step_size: Any = 0.1, n_leapfrog: int = 10, mass: Any = None, adapt_mass: str | None = None,
        divergence_threshold: float = 1000.0, n_chains: int = 4, n_draws: int = 1000, n_warmup: int = 1000,
        thin: int = 1, adapt: bool = True, target_accept: float = 0.8, seed: int = 0, x0: Any = None,
        on_nonfinite: str = "warn", chain_offset: int = 0) -> MCMCResult:
    """Run HMC chains with ``n_leapfrog`` leapfrog steps per transition, accepted with probability
    min(1, exp(H(x, p) - H(x', p'))) (Duane et al. 1987; Neal 2011; see the module docstring).

    A trajectory whose energy error exceeds ``divergence_threshold`` or turns non-finite is divergent and
    rejected; divergences above the share in `sdekit.mcmc.diagnostics.THRESHOLDS` are warned about at the end
    of the run. on_nonfinite: trajectories that meet a non-finite energy or gradient are counted
    (``n_nonfinite``); "warn" (default), "reject" or "raise", as for `sdekit.mcmc.mala`.
    chain_offset: the global index of the first chain (its random stream; errors name it), see `run_chains`.
    adapt_mass: None (``mass`` as given), "diag" or "dense": each chain adapts M^{-1} to the covariance of its
    warm-up positions in Stan's windows (`sdekit.mcmc.adaptation.stan_windows`, starting from ``mass``), the
    step size re-adapting after each window; the adapted M^{-1} are ``result.extras["inverse_mass"]``.
    """
    return hmc_with(hmc_step, target, step_size=step_size, n_leapfrog=n_leapfrog, mass=mass, adapt_mass=adapt_mass,
                    divergence_threshold=divergence_threshold, n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup,
                    thin=thin, adapt=adapt, target_accept=target_accept, seed=seed, x0=x0, on_nonfinite=on_nonfinite,
                    chain_offset=chain_offset)


def hmc_with(step: Any, target: Any, *, n_leapfrog: int, mass: Any, divergence_threshold: float,
             adapt_mass: str | None = None, **options: Any) -> MCMCResult:
    """HMC's driver with ``step`` as its transition: `hmc_step` or a planted variant from DEFECTS."""
    if isinstance(n_leapfrog, bool) or not isinstance(n_leapfrog, int | np.integer) or n_leapfrog < 1:
        raise SDEKitError(f"n_leapfrog must be an integer >= 1; got {n_leapfrog!r}")
    threshold = check_real(divergence_threshold, "divergence_threshold", lo=0.0, strict=True)
    check_energy_target(target)
    mats, dense = mass_factors(mass, target.dim)
    dense = dense or check_adapt_mass(adapt_mass) == ADAPT_MASS["dense"]
    kp = np.array([float(n_leapfrog), threshold, 1.0 if dense else 0.0])
    return run_chains(step, target, sampler="hmc", kernel_params=kp, mats=mats, adapt_mass=adapt_mass, **options)
