"""The battery `sdekit validate` runs: every closed-form check plus stationarity, generator,
Fokker–Planck, convergence-order and bias-or-bug checks over the processes and solvers sdekit ships.

Each entry is a `Check` (name, solver, run(n_paths, seed, alpha) -> Report, quick); ``SUITE``
maps names to checks in the order they run. Checks marked quick make up `sdekit validate --quick`.
"""

from __future__ import annotations

import dataclasses

from sdekit.processes import overdamped_langevin
from sdekit.solvers import SDE_SOLVERS
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.closed_form import CHECKS, MIXTURE_2D, Check
from sdekit.validate.order import fit_order, gbm_problem, s3_sine_problem, strong_errors
from sdekit.validate.report import Report
from sdekit.validate.stationarity import StationarityReport, stationarity_check, ula_law
from sdekit.validate.stats import CheckResult

SUITE: dict[str, Check] = dict(CHECKS)


def register(name: str, solver: str, quick: bool = True):
    """Decorator adding run(n_paths, seed, alpha) -> Report to SUITE under ``name``."""
    def deco(fn):
        if name in SUITE:
            raise ValueError(f"check {name!r} is already registered")
        SUITE[name] = Check(name, solver, fn, quick)
        return fn
    return deco


def verdict_report(name: str, st: StationarityReport, expected: str) -> Report:
    """A Report that passes when the stationarity verdict is ``expected``: the scheme-law battery gates,
    the battery against pi is shown as diagnostics, and one row states the verdict."""
    results: list[CheckResult] = []
    if st.against_scheme is not None:
        results += st.against_scheme.results
    if expected == "stationary":
        results += st.against_target.results
    else:
        results += [dataclasses.replace(r, gating=False, name=r.name) for r in st.against_target.results]
    ok = st.verdict == expected
    results.append(CheckResult(name, f"verdict: {st.verdict}", float(ok), 1.0, float("nan"), ok,
                               note=f"expected: {expected}"))
    return Report(name, st.against_target.alpha, results, st.against_target.panels, st.against_target.n)


LANGEVIN_GAUSSIAN = dict(mean=[1.0, -1.0], cov=[[1.0, 0.3], [0.3, 0.5]])


@register("stationarity_ula_gaussian_biased", "euler_maruyama")
def check_ula_biased(n_paths: int, seed: int, alpha: float) -> Report:
    """ULA on N(mu, Sigma) from pi at h = 0.2 (40% of the stability limit), K = 40: fails against pi,
    passes against its own law N(mu, S_K): verdict "biased as expected at this step"."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h, steps = 0.2, 40
    st = stationarity_check(overdamped_langevin(2, target=target), target, h=h, steps=steps, n_paths=n_paths,
                            seed=seed, scheme_law=ula_law(target, h, steps), alpha=alpha)
    return verdict_report("stationarity/ULA Gaussian h=0.2", st, "biased as expected at this step")


@register("stationarity_ula_gaussian_small_step", "euler_maruyama")
def check_ula_small(n_paths: int, seed: int, alpha: float) -> Report:
    """ULA on N(mu, Sigma) from pi at h = 1e-3, K = 100: the bias is below resolution: "stationary"."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h, steps = 1e-3, 100
    st = stationarity_check(overdamped_langevin(2, target=target), target, h=h, steps=steps, n_paths=n_paths,
                            seed=seed, scheme_law=ula_law(target, h, steps), alpha=alpha)
    return verdict_report("stationarity/ULA Gaussian h=1e-3", st, "stationary")


@register("stationarity_langevin_mixture", "euler_maruyama")
def check_langevin_mixture_stationary(n_paths: int, seed: int, alpha: float) -> Report:
    """Langevin on a 2-D two-mode mixture from pi, SRA1 (weak order 2) at h = 0.01, K = 50: "stationary"."""
    target = GaussianMixture(**MIXTURE_2D)
    st = stationarity_check(overdamped_langevin(2, target=target), target, h=0.01, steps=50, n_paths=n_paths,
                            seed=seed, solver="sra1", alpha=alpha)
    return verdict_report("stationarity/Langevin mixture SRA1 h=0.01", st, "stationary")


def order_report(name: str, solver: str, problem, x0: float, exact_fn, base_steps: int, levels: int, n_paths: int,
                 seed: int, expected: float) -> Report:
    """Strong order on nested grids sharing one Brownian path, OLS fit with a 99% bootstrap CI, gated at
    [p - 0.2, p + 0.25] with half-width < 0.15 (VALIDATION.md §4)."""
    hs, sq = strong_errors(problem, solver, x0, 1.0, exact_fn, base_steps, levels, n_paths, seed)
    fit = fit_order(hs, sq, seed=seed)
    in_window = expected - 0.2 <= fit.order <= expected + 0.25
    res = [CheckResult(name, f"strong order in [{expected - 0.2:g}, {expected + 0.25:g}]", fit.order,
                       expected + 0.25, float("nan"), in_window, note=fit.summary()),
           CheckResult(name, "CI half-width", fit.halfwidth, 0.15, float("nan"), fit.halfwidth < 0.15)]
    return Report(name, float("nan"), res, n=n_paths)


@register("strong_order_em_gbm", "euler_maruyama", quick=False)
def check_order_em(n_paths: int, seed: int, alpha: float) -> Report:
    """Euler–Maruyama on Itô GBM (mu = 0.5, sigma = 1): strong order 0.5."""
    gbm = gbm_problem(0.5, 1.0, "ito")
    return order_report("order/EM GBM", "euler_maruyama", gbm.sde, 1.0, gbm.exact_at(1.0), 8, 6,
                        min(n_paths, 4000), seed, SDE_SOLVERS["euler_maruyama"].strong_order)


@register("strong_order_milstein_gbm", "milstein", quick=False)
def check_order_milstein(n_paths: int, seed: int, alpha: float) -> Report:
    """Milstein on Itô GBM: strong order 1."""
    gbm = gbm_problem(0.5, 1.0, "ito")
    return order_report("order/Milstein GBM", "milstein", gbm.sde, 1.0, gbm.exact_at(1.0), 8, 6,
                        min(n_paths, 4000), seed, SDE_SOLVERS["milstein"].strong_order)


@register("strong_order_sra1", "sra1", quick=False)
def check_order_sra1(n_paths: int, seed: int, alpha: float) -> Report:
    """SRA1 on S3 + 2 sin X (additive noise, nonlinear drift): strong order 1.5 against a reference solve."""
    return order_report("order/SRA1 S3+sin", "sra1", s3_sine_problem(1.0, 2.0, 2.0), 1.0, None, 4, 6,
                        min(n_paths, 4000), seed, SDE_SOLVERS["sra1"].strong_order)


