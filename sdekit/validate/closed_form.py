"""Every built-in process and solver against its closed form: the checks behind `sdekit validate`.

Each check simulates N independent paths and compares the end states with an exact law
(`compare_with_law`: KS and Cramér–von Mises on marginals and projections, the exact moment
chi-square and the Stein test), at an overall false-alarm rate alpha per check, and returns a
`Report`. Where the scheme's own law is known (Euler–Maruyama on
linear SDEs) the check is bias-aware: it tests against that law, exactly, at any step size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg as sla

from sdekit.processes import BrownianMotion, GeometricBrownianMotion, OrnsteinUhlenbeck, overdamped_langevin
from sdekit.processes.ou import ou_drift
from sdekit.sde import ODE, SDE
from sdekit.simulate import simulate
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.compare import compare_with_law
from sdekit.validate.registry import Check, registrar
from sdekit.validate.report import Report
from sdekit.validate.stats import deterministic_check

CHECKS: dict[str, Check] = {}
_register = registrar(CHECKS)


def law_check(name: str, sde: SDE, solver: str, x0: np.ndarray, t: tuple, steps: int, mean: np.ndarray,
              cov: np.ndarray, n_paths: int, seed: int, alpha: float,
              transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Report:
    """Simulate and test the (optionally transformed) end states against N(mean, cov) (`compare_with_law`)."""
    sol = simulate(sde, x0, t, steps=steps, n_paths=n_paths, seed=seed, solver=solver)
    end = sol.final if transform is None else transform(sol.final)
    return compare_with_law(end, Gaussian(np.ravel(mean), np.atleast_2d(cov)), alpha=alpha, name=name)


OU_1D = ([[1.0]], [[2.0**0.5]])
OU_2D = ([[1.0, 0.4], [-0.3, 1.5]], [[1.0, 0.0, 0.4], [0.3, 0.8, 0.0]])
LANGEVIN_GAUSSIAN = dict(mean=[1.0, -1.0], cov=[[1.0, 0.3], [0.3, 0.5]])


def _brownian_check(name: str, solver: str, n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    bm = BrownianMotion(dim=2)
    x0 = np.array([0.5, -1.0])
    mean, cov = bm.transition(x0, 1.5)
    return law_check(name, sde or bm.sde, solver, x0, (0.0, 1.5), 30, mean, cov, n_paths, seed, alpha)


@_register("brownian_motion_2d", "euler_maruyama")
def check_brownian(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """W_t ~ N(x0, t I) after 30 Euler–Maruyama steps: exact for any solver of additive noise."""
    return _brownian_check("brownian_motion_2d", "euler_maruyama", n_paths, seed, alpha, sde)


@_register("brownian_motion_2d_sra1", "sra1", quick=False)
def check_brownian_sra(n_paths: int, seed: int, alpha: float) -> Report:
    """SRA1 on Brownian motion is exact."""
    return _brownian_check("brownian_motion_2d_sra1", "sra1", n_paths, seed, alpha)


@_register("ou_2d_em_law", "euler_maruyama")
def check_ou_em(n_paths: int, seed: int, alpha: float, sde: SDE | None = None,
                h: float = 0.05) -> Report:
    """2-D OU with a (2, 3) noise matrix: Euler–Maruyama's exact law m' = M m, S' = M S M^T + h Q (bias-aware)."""
    ou = OrnsteinUhlenbeck(*OU_2D)
    x0 = np.array([1.0, -0.5])
    steps = 40
    mean, cov = ou.euler_maruyama_law(x0, np.zeros((2, 2)), h, steps)
    return law_check("ou_2d_em_law", sde or ou.sde, "euler_maruyama", x0,
                     (0.0, h * steps), steps, mean, cov, n_paths, seed, alpha)


@_register("ou_2d_stationary", "euler_maruyama")
def check_ou_stationary(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """Start exactly in the stationary law N(0, Sigma_inf) and test the exact EM law after 50 steps."""
    ou = OrnsteinUhlenbeck(*OU_2D)
    s_inf = ou.stationary_cov()
    h, steps = 0.02, 50
    x0 = np.random.default_rng(seed + 1).multivariate_normal(np.zeros(2), s_inf, size=n_paths)
    mean, cov = ou.euler_maruyama_law(np.zeros(2), s_inf, h, steps)
    return law_check("ou_2d_stationary", sde or ou.sde, "euler_maruyama", x0, (0.0, h * steps), steps,
                     mean, cov, n_paths, seed, alpha)


@_register("ou_1d_sra1_transition", "sra1", quick=False)
def check_ou_sra(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """SRA1 (weak order 2) at h = 0.01 against the exact OU transition law from x0 = 2."""
    ou = OrnsteinUhlenbeck(*OU_1D)
    mean, cov = ou.transition(np.array([2.0]), 1.0)
    return law_check("ou_1d_sra1_transition", sde or ou.sde, "sra1", np.array([2.0]), (0.0, 1.0), 100, mean,
                     cov, n_paths, seed, alpha)


@_register("ou_1d_reverse_time", "euler_maruyama")
def check_ou_backward(n_paths: int, seed: int, alpha: float) -> Report:
    """Integrating from t0 = 1 back to t1 = 0 (h = -0.01): drift steps use h, noise |h|.

    EM's exact law then has M = I - hA = I + 0.01 A and noise variance |h| Q per step.
    """
    ou = OrnsteinUhlenbeck(*OU_1D)
    mean, cov = ou.euler_maruyama_law(np.array([2.0]), np.zeros((1, 1)), -0.01, 100)
    return law_check("ou_1d_reverse_time", ou.sde, "euler_maruyama", np.array([2.0]), (1.0, 0.0), 100,
                     mean, cov, n_paths, seed, alpha)


def _gbm_check(name: str, calculus: str, solver: str, n_paths: int, seed: int, alpha: float,
               sde: SDE | None = None) -> Report:
    gbm = GeometricBrownianMotion(0.3, 0.8, calculus)
    m, v = gbm.log_law(1.0, 1.0)
    return law_check(name, sde or gbm.sde, solver, np.array([1.0]), (0.0, 1.0), 1000, np.array([m]),
                     np.array([[v]]), n_paths, seed, alpha, transform=np.log)


@_register("gbm_ito_em", "euler_maruyama")
def check_gbm_em(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """log X_1 ~ N(log x0 + mu - sigma^2/2, sigma^2) (Itô), EM at h = 1e-3."""
    return _gbm_check("gbm_ito_em", "ito", "euler_maruyama", n_paths, seed, alpha, sde)


@_register("gbm_ito_milstein", "milstein", quick=False)
def check_gbm_milstein(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """Milstein on Itô GBM."""
    return _gbm_check("gbm_ito_milstein", "ito", "milstein", n_paths, seed, alpha, sde)


@_register("gbm_stratonovich_heun", "heun")
def check_gbm_heun(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """log X_1 ~ N(log x0 + mu, sigma^2) (Stratonovich), stochastic Heun."""
    return _gbm_check("gbm_stratonovich_heun", "stratonovich", "heun", n_paths, seed, alpha, sde)


@_register("gbm_stratonovich_milstein", "milstein")
def check_gbm_milstein_strat(n_paths: int, seed: int, alpha: float) -> Report:
    """Stratonovich Milstein on Stratonovich GBM."""
    return _gbm_check("gbm_stratonovich_milstein", "stratonovich", "milstein", n_paths, seed, alpha)


@_register("langevin_gaussian_ula_bias", "euler_maruyama")
def check_langevin_gaussian(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """Langevin on pi = N(mu, Sigma) from exact samples, h = 0.2: EM ends in its exact law N(mu, V_K), not pi.

    V_K follows S' = M S M^T + 2h I with M = I - h Sigma^{-1} (and tends to V_h = Sigma (I - h Sigma^{-1}/2)^{-1}).
    """
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    mu = np.array([1.0, -1.0])
    target = Gaussian(mu, cov)
    h, steps = 0.2, 40
    x0 = target.sample(n_paths, seed=seed + 7)
    _, v_k = OrnsteinUhlenbeck(np.linalg.inv(cov), 2**0.5 * np.eye(2)).euler_maruyama_law(np.zeros(2), cov, h, steps)
    return law_check("langevin_gaussian_ula_bias", sde or overdamped_langevin(2, target=target),
                     "euler_maruyama", x0, (0.0, h * steps), steps, mu, v_k, n_paths, seed, alpha)


MIXTURE_2D = dict(weights=[0.3, 0.7], means=[[-2.0, 0.0], [2.0, 1.0]],
                  covs=[[[0.5, 0.0], [0.0, 0.5]], [[1.0, 0.3], [0.3, 0.4]]])


@_register("langevin_mixture_stationary", "euler_maruyama")
def check_langevin_mixture(n_paths: int, seed: int, alpha: float, sde: SDE | None = None) -> Report:
    """Langevin on a 2-D Gaussian mixture, started in pi, 100 steps of h = 1e-3 (bias below resolution).

    The full battery against the exact mixture: marginals, projections, moments and Stein.
    """
    target = GaussianMixture(**MIXTURE_2D)
    x0 = target.sample(n_paths, seed=seed + 11)
    sol = simulate(sde or overdamped_langevin(2, target=target), x0, (0.0, 0.1), steps=100, seed=seed)
    return compare_with_law(sol.final, target, alpha=alpha, name="langevin_mixture_stationary")


@_register("linear_ode_solvers", "euler, heun, midpoint, rk4, dopri5", quick=False)
def check_odes(n_paths: int, seed: int, alpha: float) -> Report:
    """x' = -A x against expm(-A t) x0: error at the solver's order (fixed steps) or tolerance (dopri5)."""
    a = np.array([[1.0, 2.0], [-2.0, 0.5]])
    ode = ODE(ou_drift, dim=2, params=(a, np.zeros((2, 1))))
    x0 = np.random.default_rng(seed).normal(size=(8, 2))
    exact = x0 @ sla.expm(-a * 2.0).T
    out = []
    for solver, steps, order in (("euler", 400, 1), ("heun", 400, 2), ("midpoint", 400, 2), ("rk4", 100, 4)):
        sol = simulate(ode, x0, (0.0, 2.0), steps=steps, solver=solver)
        err = float(np.max(np.abs(sol.final - exact)))
        # constants for this problem: errors ~ C (2 / steps)^order with C <= 5 (measured C < 1.5)
        out.append(deterministic_check(f"linear_ode_solvers/{solver}", f"max error (order {order})", err,
                                       5.0 * (2.0 / steps) ** order))
    sol = simulate(ode, x0, (0.0, 2.0), solver="dopri5", rtol=1e-9, atol=1e-12)
    err = float(np.max(np.abs(sol.final - exact)))
    out.append(deterministic_check("linear_ode_solvers/dopri5", "max error (rtol 1e-9)", err, 1e-7))
    return Report("linear_ode_solvers", float("nan"), out, n=len(x0))


def run_checks(names: list[str] | None = None, n_paths: int = 20_000, seed: int = 2026,
               alpha: float = 1e-6) -> list[Report]:
    """Run the named checks (all by default) and return their reports."""
    return [CHECKS[name].run(n_paths, seed, alpha) for name in names or list(CHECKS)]
