"""`sdekit validate` checks for the MCMC samplers of `sdekit.mcmc`: chains started exactly in pi, K
transitions, the end states (i.i.d. across chains) tested against pi. Metropolis-adjusted kernels
must keep pi exactly at any step; ULA must be biased exactly as its Gaussian law says.
"""

from __future__ import annotations

import numpy as np

from sdekit.mcmc import hmc, mala, replica_exchange, rwm, splitting_gaussian_law, ula, underdamped_langevin
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.closed_form import LANGEVIN_GAUSSIAN, MIXTURE_2D
from sdekit.validate.compare import compare_with_law
from sdekit.validate.registry import Check, registrar
from sdekit.validate.report import Report
from sdekit.validate.stationarity import StationarityReport, classify_stationarity, ula_law, verdict_report

MCMC_CHECKS: dict[str, Check] = {}
register = registrar(MCMC_CHECKS)


def _from_pi(sampler, target, steps: int, n_paths: int, seed: int, **kw):
    return sampler(target, n_chains=n_paths, n_draws=1, n_warmup=0, thin=steps, seed=seed, x0="target", **kw)


@register("mcmc_mala_mixture", "mala")
def check_mala_mixture(n_paths: int, seed: int, alpha: float) -> Report:
    """MALA on a 2-D two-mode mixture from pi, h = 0.3 (no adaptation), K = 20: exactly invariant, full battery
    incl. Stein."""
    target = GaussianMixture(**MIXTURE_2D)
    res = _from_pi(mala, target, 20, n_paths, seed, step_size=0.3, adapt=False)
    return compare_with_law(res.final, target, alpha=alpha, name="mcmc_mala_mixture")


@register("mcmc_hmc_gaussian_dense_mass", "hmc")
def check_hmc_gaussian(n_paths: int, seed: int, alpha: float) -> Report:
    """HMC (5 leapfrog steps of h = 0.5, dense mass matrix) on a correlated 2-D Gaussian from pi, K = 10."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    res = _from_pi(hmc, target, 10, n_paths, seed, step_size=0.5, n_leapfrog=5, mass=[[2.0, 0.5], [0.5, 1.0]],
                   adapt=False)
    return compare_with_law(res.final, target, alpha=alpha, name="mcmc_hmc_gaussian_dense_mass")


@register("mcmc_rwm_mixture_uniform", "random-walk metropolis")
def check_rwm_mixture(n_paths: int, seed: int, alpha: float) -> Report:
    """Random-walk Metropolis with uniform proposals of half-width 1.5 on the 2-D mixture from pi, K = 20."""
    target = GaussianMixture(**MIXTURE_2D)
    res = _from_pi(rwm, target, 20, n_paths, seed, step_size=1.5, proposal="uniform", adapt=False)
    return compare_with_law(res.final, target, alpha=alpha, name="mcmc_rwm_mixture_uniform")


@register("mcmc_ula_gaussian_bias", "ula")
def check_ula_bias(n_paths: int, seed: int, alpha: float) -> Report:
    """sdekit.mcmc.ula on N(mu, Sigma) from pi at h = 0.2, K = 40: biased against pi, exact against its own
    law (`ula_law`): verdict "biased as expected at this step"."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h, steps = 0.2, 40
    res = _from_pi(ula, target, steps, n_paths, seed, step_size=h)
    vs_pi = compare_with_law(res.final, target, alpha=alpha / 2, name="mcmc_ula_gaussian_bias vs pi")
    vs_law = compare_with_law(res.final, ula_law(target, h, steps), alpha=alpha / 2,
                              name="mcmc_ula_gaussian_bias vs scheme law")
    st = StationarityReport(classify_stationarity(vs_pi, vs_law), vs_pi, vs_law, steps, h)
    return verdict_report("mcmc_ula_gaussian_bias", st, "biased as expected at this step")


@register("mcmc_baoab_gaussian_large_step", "underdamped baoab")
def check_baoab(n_paths: int, seed: int, alpha: float) -> Report:
    """Underdamped Langevin, BAOAB at 80% of its stability limit 2 / sqrt(lambda_max(P)), friction 1, K = 20
    from (pi, N(0, I)): the position law is exactly pi at any stable step (Leimkuhler & Matthews 2013)."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h = 0.8 * 2.0 / float(np.sqrt(np.linalg.eigvalsh(np.linalg.inv(target.cov)).max()))
    res = _from_pi(underdamped_langevin, target, 20, n_paths, seed, step_size=h, friction=1.0, scheme="baoab")
    return compare_with_law(res.final, target, alpha=alpha, name="mcmc_baoab_gaussian_large_step")


@register("mcmc_obabo_gaussian_law", "underdamped obabo", quick=False)
def check_obabo(n_paths: int, seed: int, alpha: float) -> Report:
    """OBABO at the same large step: biased against pi, exact against its own law (`splitting_gaussian_law`):
    verdict "biased as expected at this step"."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h, steps = 0.8 * 2.0 / float(np.sqrt(np.linalg.eigvalsh(np.linalg.inv(target.cov)).max())), 20
    res = _from_pi(underdamped_langevin, target, steps, n_paths, seed, step_size=h, friction=1.0, scheme="obabo")
    vs_pi = compare_with_law(res.final, target, alpha=alpha / 2, name="mcmc_obabo_gaussian_law vs pi")
    law = splitting_gaussian_law(target, "obabo", 1.0, h, steps)
    vs_law = compare_with_law(res.final, law, alpha=alpha / 2, name="mcmc_obabo_gaussian_law vs scheme law")
    st = StationarityReport(classify_stationarity(vs_pi, vs_law), vs_pi, vs_law, steps, h)
    return verdict_report("mcmc_obabo_gaussian_law", st, "biased as expected at this step")


@register("mcmc_replica_exchange_gaussian", "replica exchange (mala)")
def check_replica_exchange(n_paths: int, seed: int, alpha: float) -> Report:
    """Replica exchange on a 2-D Gaussian with a Gaussian reference, betas (0, 0.2, 0.5, 1): every replica of
    n_paths independent runs starts exactly in its tempered law (a product of Gaussians), 4 rounds of a MALA
    step plus even/odd swaps; the beta = 1 replica must still follow pi."""
    from sdekit.mcmc.tempering import tempered_gaussian_law

    target = Gaussian(**LANGEVIN_GAUSSIAN)
    as_mixture = GaussianMixture([1.0], [target.mean], [target.cov])
    betas, reference = np.array([0.0, 0.2, 0.5, 1.0]), (np.array([-2.0, 1.5]), 2.5)
    x0 = np.stack([tempered_gaussian_law(target, b, reference).sample(n_paths, seed=seed + k)
                   for k, b in enumerate(betas)], axis=1)
    res = replica_exchange(as_mixture, betas=betas, reference=reference, n_rounds=4, n_warmup=0, n_runs=n_paths,
                           adapt=False, x0=x0, seed=seed)
    return compare_with_law(res.final, target, alpha=alpha, name="mcmc_replica_exchange_gaussian")
