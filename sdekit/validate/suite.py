"""The battery `sdekit validate` runs: every closed-form check plus stationarity, generator,
Fokker–Planck, convergence-order and bias-or-bug checks over the processes and solvers sdekit ships.

Each entry is a `Check` (`sdekit.validate.registry`: name, solver, run(n_paths, seed, alpha) -> Report,
quick); ``SUITE`` joins the closed-form checks, this module's, the samplers' (`sampler_checks`, a table) and the
MCMC checks, in the order they run.
Checks marked quick make up `sdekit validate --quick`. A check's report carries its name.
"""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from sdekit.processes import OrnsteinUhlenbeck, overdamped_langevin
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.solvers import SDE_SOLVERS
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.bias import classify_bias
from sdekit.validate.closed_form import CHECKS, LANGEVIN_GAUSSIAN, MIXTURE_2D, OU_2D
from sdekit.validate.compare import compare_with_law
from sdekit.validate.fokker_planck import fokker_planck_chi2_test
from sdekit.validate.generator import dynkin_test, generator_scan
from sdekit.validate.mcmc_checks import MCMC_CHECKS
from sdekit.validate.order import fit_order, fit_order_deterministic, gbm_problem, s3_sine_problem, strong_errors
from sdekit.validate.registry import Check, join_tables, registrar
from sdekit.validate.report import Report
from sdekit.validate.sampler_checks import SAMPLER_CHECKS
from sdekit.validate.stationarity import stationarity_check, ula_law, verdict_report
from sdekit.validate.stats import CheckResult
from sdekit.validate.weak import em_weak_errors_linear, fit_weak_order, weak_errors

BATTERY_CHECKS: dict[str, Check] = {}
register = registrar(BATTERY_CHECKS)


@register("stationarity_ula_gaussian_biased", "euler_maruyama")
def check_ula_biased(n_paths: int, seed: int, alpha: float) -> Report:
    """ULA on N(mu, Sigma) from pi at h = 0.2 (40% of the stability limit), K = 40: fails against pi,
    passes against its own law N(mu, S_K): verdict "biased as expected at this step"."""
    name = "stationarity_ula_gaussian_biased"
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h, steps = 0.2, 40
    st = stationarity_check(overdamped_langevin(2, target=target), target, h=h, steps=steps, n_paths=n_paths,
                            seed=seed, scheme_law=ula_law(target, h, steps), alpha=alpha / 2, name=name)
    return verdict_report(name, st, "biased as expected at this step")


@register("stationarity_ula_gaussian_small_step", "euler_maruyama")
def check_ula_small(n_paths: int, seed: int, alpha: float) -> Report:
    """ULA on N(mu, Sigma) from pi at h = 1e-3, K = 100: the bias is below resolution: "stationary"."""
    name = "stationarity_ula_gaussian_small_step"
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    h, steps = 1e-3, 100
    st = stationarity_check(overdamped_langevin(2, target=target), target, h=h, steps=steps, n_paths=n_paths,
                            seed=seed, scheme_law=ula_law(target, h, steps), alpha=alpha / 2, name=name)
    return verdict_report(name, st, "stationary")


@register("stationarity_langevin_mixture", "sra1", quick=False)
def check_langevin_mixture_stationary(n_paths: int, seed: int, alpha: float) -> Report:
    """Langevin on a 2-D two-mode mixture from pi, SRA1 (weak order 2) at h = 0.01, K = 50: "stationary"."""
    target = GaussianMixture(**MIXTURE_2D)
    st = stationarity_check(overdamped_langevin(2, target=target), target, h=0.01, steps=50, n_paths=n_paths,
                            seed=seed, solver="sra1", alpha=alpha, name="stationarity_langevin_mixture")
    return verdict_report("stationarity_langevin_mixture", st, "stationary")


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
    return order_report("strong_order_em_gbm", "euler_maruyama", gbm.sde, 1.0, gbm.exact_at(1.0), 8, 6,
                        min(n_paths, 4000), seed, SDE_SOLVERS["euler_maruyama"].strong_order)


@register("strong_order_milstein_gbm", "milstein", quick=False)
def check_order_milstein(n_paths: int, seed: int, alpha: float) -> Report:
    """Milstein on Itô GBM: strong order 1."""
    gbm = gbm_problem(0.5, 1.0, "ito")
    return order_report("strong_order_milstein_gbm", "milstein", gbm.sde, 1.0, gbm.exact_at(1.0), 8, 6,
                        min(n_paths, 4000), seed, SDE_SOLVERS["milstein"].strong_order)


@register("strong_order_sra1", "sra1", quick=False)
def check_order_sra1(n_paths: int, seed: int, alpha: float) -> Report:
    """SRA1 on S3 + 2 sin X (additive noise, nonlinear drift): strong order 1.5 against a reference solve."""
    return order_report("strong_order_sra1", "sra1", s3_sine_problem(1.0, 2.0, 2.0), 1.0, None, 4, 6,
                        min(n_paths, 4000), seed, SDE_SOLVERS["sra1"].strong_order)




# ---------------------------------------------------------------------------------------------
# Fokker–Planck reference, weak order, bias or bug


@nb.njit(cache=True)
def double_well_drift(x, t, p):
    """b(x) = x - x^3: a double well with minima at +-1."""
    return x - x * x * x


@nb.njit(cache=True)
def double_well_diffusion(x, t, p):
    """sigma(x) = sqrt(0.5 + 0.25 x^2): state-dependent noise."""
    return np.sqrt(0.5 + 0.25 * x * x)


DOUBLE_WELL = SDE(double_well_drift, double_well_diffusion, dim=1, name="double_well")


@register("fokker_planck_double_well", "euler_maruyama")
def check_fokker_planck(n_paths: int, seed: int, alpha: float) -> Report:
    """dX = (X - X^3) dt + sqrt(0.5 + X^2 / 4) dW from X_0 = 0.5, EM with h = 2.5e-3 to t = 1, against the
    Chang–Cooper finite-volume reference law (histogram chi-square, reference error non-centrality <= 0.5)."""
    sol = simulate(DOUBLE_WELL, 0.5, (0.0, 1.0), steps=400, n_paths=n_paths, seed=seed)
    res = fokker_planck_chi2_test(sol.final[:, 0], DOUBLE_WELL, 0.5, (0.0, 1.0), -3.5, 3.5, cells=300,
                                  time_steps=200, alpha=alpha, name="fokker_planck_double_well")
    return Report("fokker_planck_double_well", alpha, [res], n=n_paths)


@register("weak_order_em_ou_exact", "euler_maruyama")
def check_weak_em(n_paths: int, seed: int, alpha: float) -> Report:
    """EM weak order 1 on a 2-D OU with a (2, 3) noise matrix, from the exact EM moment recursion (no Monte
    Carlo), h = 1/8 .. 1/256."""
    a, b = (np.asarray(m) for m in OU_2D)
    hs, errors = em_weak_errors_linear(a, b, np.array([1.0, -0.5]), 1.0, 8, 6)
    fit = fit_order_deterministic(hs, errors)
    ok = fit.passes(1.0)
    res = [CheckResult("weak_order_em_ou_exact", "weak order in [0.8, 1.25]", fit.order, 1.25, float("nan"), ok,
                       note=fit.summary())]
    return Report("weak_order_em_ou_exact", float("nan"), res, n=0)


@register("weak_order_milstein_gbm", "milstein", quick=False)
def check_weak_milstein(n_paths: int, seed: int, alpha: float) -> Report:
    """Milstein weak order 1 on GBM, phi(x) = x, coupled differences on shared Brownian paths, 6 levels."""
    gbm = gbm_problem(0.5, 1.0, "ito")
    weak = weak_errors(gbm, "milstein", 1.0, 1.0, _identity, base_steps=4, levels=6, n_paths=max(n_paths, 20_000),
                       seed=seed)
    fit = fit_weak_order(weak, alpha=alpha)
    res = [CheckResult("weak_order_milstein_gbm", "weak order in [0.8, 1.25]", fit.order, 1.25, float("nan"),
                       0.8 <= fit.order <= 1.25, note=fit.summary()),
           CheckResult("weak_order_milstein_gbm", "CI half-width", fit.halfwidth, 0.15, float("nan"),
                       fit.halfwidth < 0.15)]
    return Report("weak_order_milstein_gbm", alpha, res, n=weak.diffs.shape[1])


def _identity(x: np.ndarray) -> np.ndarray:
    return x[:, 0]


@register("bias_or_bug_ula_gaussian", "euler_maruyama")
def check_bias_ula(n_paths: int, seed: int, alpha: float) -> Report:
    """ULA on N(mu, Sigma) from pi at h = 0.2 and 0.1 (same seeds, shared Brownian path): the discrepancy is
    present and is ULA's own order-1 bias (against its exact law N(mu, V_h)): "biased as expected for order 1"."""
    target = Gaussian(**LANGEVIN_GAUSSIAN)
    sde = overdamped_langevin(2, target=target)
    h, t1 = 0.2, 4.0

    def run(step: float, s: int) -> np.ndarray:
        x0 = target.sample(n_paths, seed=s + 1)
        return simulate(sde, x0, (0.0, t1), steps=int(round(t1 / step)), n_paths=n_paths, seed=s,
                        noise_substeps=int(round(2 * step / h))).final

    def scheme_law(step: float) -> tuple[np.ndarray, np.ndarray]:
        law = ula_law(target, step, int(round(t1 / step)))
        return law.mean, law.cov

    rep = classify_bias(run, h, seed=seed, order=1, exact_law=(target.mean, target.cov), scheme_law=scheme_law,
                        alpha=alpha, name="bias_or_bug_ula_gaussian")
    expected = "biased as expected for order 1"
    results = [dataclasses.replace(c, gating=False) for c in rep.discrepancy_checks] + list(rep.explanation_checks)
    ok = rep.verdict == expected
    results.append(CheckResult(rep.name, f"verdict: {rep.verdict}", float(ok), 1.0, float("nan"), ok,
                               note=f"expected: {expected}"))
    return Report(rep.name, alpha, results, n=n_paths)


# ---------------------------------------------------------------------------------------------
# generator and Dynkin


@register("generator_double_well", "euler_maruyama, milstein")
def check_generator(n_paths: int, seed: int, alpha: float) -> Report:
    """Local generator test (one step, martingale control variate) at 3 states of the double well with
    state-dependent noise, for Euler–Maruyama and Milstein: L phi for x, x^2, cos and sin."""
    results: list[CheckResult] = []
    for solver in ("euler_maruyama", "milstein"):
        scan = generator_scan(DOUBLE_WELL, np.array([[0.3], [-1.2], [2.0]]), h=1e-4, n=5 * n_paths, seed=seed,
                              solver=solver, alpha=alpha / 2, name=f"generator_double_well/{solver}")
        results += [r for state in scan.results for r in state]
    return Report("generator_double_well", alpha, results, n=5 * n_paths)


@register("dynkin_ou_2d", "euler_maruyama")
def check_dynkin(n_paths: int, seed: int, alpha: float) -> Report:
    """Dynkin's formula along EM paths of the 2-D OU (200 steps to t = 1): E[phi(X_T) - phi(X_0) - int L phi] = 0
    for x_i, x_i x_j, cos and sin."""
    ou = OrnsteinUhlenbeck(*OU_2D)
    res = dynkin_test(ou.sde, np.array([1.0, -0.5]), (0.0, 1.0), steps=200, n_paths=n_paths, seed=seed, alpha=alpha,
                      name="dynkin_ou_2d")
    return Report("dynkin_ou_2d", alpha, res, n=n_paths)


# ---------------------------------------------------------------------------------------------
# score-based diffusion samplers on exact Gaussian-mixture scores


def _diffusion_model(kind: str):
    from sdekit.diffusion import DiffusionModel, ForwardSDE

    forward = ForwardSDE.vp() if kind == "vp" else ForwardSDE.ve(0.01, 20.0)
    return DiffusionModel.exact_mixture(forward, GaussianMixture(**MIXTURE_2D))


@register("diffusion_reverse_sde_vp", "euler_maruyama", quick=False)
def check_reverse_sde(n_paths: int, seed: int, alpha: float) -> Report:
    """Reverse-time VP SDE with the exact mixture score, EM with 1000 steps from the exact p_T, vs p_eps."""
    model = _diffusion_model("vp")
    fw = model.forward
    x_t = model.sample_marginal(n_paths, fw.T, seed=seed + 3)
    out = simulate(model.reverse_sde(), x_t, (fw.T, fw.eps), steps=1000, seed=seed).final
    return compare_with_law(out, model.marginal(fw.eps), alpha=alpha, name="diffusion_reverse_sde_vp")


@register("diffusion_pf_ode_ve", "rk4", quick=False)
def check_pf_ode(n_paths: int, seed: int, alpha: float) -> Report:
    """Probability-flow ODE of the VE SDE with the exact mixture score, RK4 with 200 steps from the exact p_T."""
    model = _diffusion_model("ve")
    fw = model.forward
    x_t = model.sample_marginal(n_paths, fw.T, seed=seed + 4)
    out = simulate(model.probability_flow(), x_t, (fw.T, fw.eps), steps=200, solver="rk4").final
    return compare_with_law(out, model.marginal(fw.eps), alpha=alpha, name="diffusion_pf_ode_ve")


def _mixture_score():
    from sdekit.diffusion import MixtureMarginals, mixture_marginal_score

    mm = MixtureMarginals(GaussianMixture(**MIXTURE_2D))

    def score(x, a, s):
        return mixture_marginal_score(np.ascontiguousarray(x), float(a), float(s), mm.params)

    return mm, score


@register("diffusion_dpm_solver_pp_2m", "dpm-solver++(2M)")
def check_dpm_solver(n_paths: int, seed: int, alpha: float) -> Report:
    """DPM-Solver++(2M), 30 NFE on a logSNR grid, VP, exact mixture score, from the exact p_T, vs p_eps."""
    from sdekit.diffusion import ForwardSDE
    from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample

    mm, score = _mixture_score()
    vp = ForwardSDE.vp()
    x_t = mm.sample(n_paths, *vp.kernel(vp.T), seed=seed + 5)
    out = dpm_solver_sample(score, vp, x_t, order=2, steps=30, method="multistep", algorithm="dpmsolver++",
                            skip="logSNR").x
    return compare_with_law(out, mm.marginal(*vp.kernel(vp.eps)), alpha=alpha, name="diffusion_dpm_solver_pp_2m")


@register("diffusion_edm_heun", "edm heun")
def check_edm(n_paths: int, seed: int, alpha: float) -> Report:
    """EDM Heun, 32 Karras levels (63 NFE) from sigma = 80 to 0, exact mixture score, vs the data law."""
    from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas

    mm, score = _mixture_score()
    x0 = mm.sample(n_paths, 1.0, 80.0, seed=seed + 6)
    out = edm_sample(score, karras_sigmas(32, 0.002, 80.0), x0, method="heun").x
    return compare_with_law(out, mm.data, alpha=alpha, name="diffusion_edm_heun")


@register("diffusion_ddpm", "ddpm ancestral", quick=False)
def check_ddpm(n_paths: int, seed: int, alpha: float) -> Report:
    """DDPM ancestral sampling, linear beta schedule, 1000 steps, posterior variance, vs the data law."""
    from sdekit.diffusion.samplers.ddpm import ddpm_sample
    from sdekit.diffusion.samplers.discrete import DiscreteSchedule

    mm, score = _mixture_score()
    sched = DiscreteSchedule.linear()
    x_k = mm.sample(n_paths, *sched.level(sched.n_steps), seed=seed + 7)
    out = ddpm_sample(score, sched, x_k, seed=seed).x
    return compare_with_law(out, mm.data, alpha=alpha, name="diffusion_ddpm")



SUITE: dict[str, Check] = join_tables(CHECKS, BATTERY_CHECKS, SAMPLER_CHECKS, MCMC_CHECKS)
