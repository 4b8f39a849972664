"""Weak orders, the bias-or-bug classifier and work–precision data (VALIDATION.md §4, §1a/§1c, §5 item 3).

Every statistical assertion is gated at false-alarm rate alpha = 1e-6 (Bonferroni inside each battery),
and every seed is fixed, so the numbers quoted in the docstrings are deterministic. Kernels come from
module-level built-ins (OU, GBM, Gaussian-target Langevin), so each compiles once (and is disk-cached).

Planted bugs, each shown to fail:
* a weak-error recursion whose noise term is h Q / 2 (order ~ 0, fails the gate);
* a correct weak order-1 fit scored against order 2 or 0.5 (fails the gate);
* Euler–Maruyama's coupled Monte Carlo weak errors (refused: unresolved levels);
* ULA with noise scaled by sqrt(2) or by 1.1, or with its drift sign flipped ("inconsistent: likely bug"
  on the scheme-law path and on the Richardson path).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

import sdekit
from sdekit.processes import OrnsteinUhlenbeck, overdamped_langevin, ula_gaussian_variance
from sdekit.targets import Gaussian
from sdekit.validate import fit_order_deterministic, gbm_problem
from sdekit.validate.bias import BUG, CONSISTENT, BiasReport, biased_verdict, classify_bias, gaussian_features
from sdekit.validate.weak import (
    UnresolvedWeakError,
    WeakErrors,
    em_weak_errors_linear,
    fit_weak_order,
    weak_errors,
)
from sdekit.validate.work_precision import WorkPrecision, work_precision

SEED = 20240611
ALPHA = 1e-6
T = 1.0

# ------------------------------------------------------------------------------------------ weak order: exact EM

OU_A = np.array([[1.0, 0.4], [-0.3, 1.5]])
OU_B = np.array([[1.0, 0.0, 0.4], [0.3, 0.8, 0.0]])
OU_X0 = np.array([1.0, -0.5])


def test_em_weak_order_one_from_exact_recursion() -> None:
    """EM on a 2-D OU with a (2, 3) noise matrix, errors of mean and covariance from the exact moment
    recursion (no Monte Carlo), h = 1/8 .. 1/256: order 1.019, pairwise 1.05 -> 1.00; gate passes."""
    hs, errors = em_weak_errors_linear(OU_A, OU_B, OU_X0, T, 8, 6)
    fit = fit_order_deterministic(hs, errors)
    assert fit.passes(1.0, max_pairwise_dev=0.1), fit.summary()
    assert abs(fit.order - 1.0) < 0.05, fit.summary()
    for moments in ("mean", "cov"):  # each moment on its own is order 1 too
        assert fit_order_deterministic(*em_weak_errors_linear(OU_A, OU_B, OU_X0, T, 8, 6, moments=moments)).passes(1.0)


def test_em_weak_order_from_stationary_start() -> None:
    """Started in N(0, Sigma_inf) the exact law stays put; EM drifts to its own law at rate O(h): order 1."""
    ou = OrnsteinUhlenbeck(OU_A, OU_B)
    hs, errors = em_weak_errors_linear(OU_A, OU_B, np.zeros(2), 2.0, 16, 6, cov0=ou.stationary_cov(), moments="cov")
    fit = fit_order_deterministic(hs, errors)
    assert fit.passes(1.0, max_pairwise_dev=0.1), fit.summary()


def test_planted_bug_in_em_recursion_fails_gate() -> None:
    """A recursion that adds h Q / 2 per step (a lost factor 2) converges to the wrong covariance: the
    errors plateau at 0.28 (order 0.003) and the order-1 gate fails."""
    ou = OrnsteinUhlenbeck(OU_A, OU_B)

    def buggy(mean0: np.ndarray, cov0: np.ndarray, h: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
        mmat = np.eye(2) - h * ou.A
        mean, cov = mean0.copy(), cov0.copy()
        for _ in range(steps):
            mean, cov = mmat @ mean, mmat @ cov @ mmat.T + 0.5 * h * ou.Q
        return mean, cov

    fit = fit_order_deterministic(*em_weak_errors_linear(OU_A, OU_B, OU_X0, T, 8, 6, recursion=buggy))
    assert not fit.passes(1.0), fit.summary()
    assert fit.order < 0.3, fit.summary()


def test_wrong_expected_order_fails_gate() -> None:
    """The correct EM fit (order 1.02) fails the gate for expected orders 2 and 0.5."""
    fit = fit_order_deterministic(*em_weak_errors_linear(OU_A, OU_B, OU_X0, T, 8, 6))
    assert fit.passes(1.0)
    assert not fit.passes(2.0) and not fit.passes(0.5) and not fit.passes(1.5), fit.summary()


# ------------------------------------------------------------------------------------------ weak order: Monte Carlo

GBM = gbm_problem(0.5, 1.0)  # noise-dominated (sigma^2 >= mu), as for the strong orders


def _x(x: np.ndarray) -> np.ndarray:
    return x[:, 0]


def test_milstein_weak_order_coupled_gbm() -> None:
    """Milstein on GBM (mu = 0.5, sigma = 1, T = 1), phi(x) = x, coupled differences phi(X_h) - phi(X(W))
    on the same Brownian path, 20000 paths, h = 1/4 .. 1/128: every level resolved (|z| 11.1-15.4 >
    5.23), order 0.994, 99% bootstrap CI [0.954, 1.038] (half-width 0.042); gate passes. The same
    paths scored against the exact expectation without coupling have se 4-100x larger, every level
    unresolved (|z| <= 3.4), and the fit is refused."""
    weak = weak_errors(GBM, "milstein", 1.0, T, _x, base_steps=4, levels=6, n_paths=20000, seed=SEED + 3)
    assert np.all(weak.resolved(ALPHA)), weak.summary()
    fit = fit_weak_order(weak, alpha=ALPHA)
    assert fit.passes(1.0), fit.summary() + "\n" + weak.summary()
    # E X_h of Milstein on GBM is X0 (1 + mu h)^n exactly: the coupled means are unbiased for it
    exact_bias = (1 + 0.5 * weak.hs) ** (T / weak.hs) - np.exp(0.5 * T)
    assert np.all(np.abs(weak.means - exact_bias) < 5.3 * weak.stderr), weak.summary()
    plain = weak_errors(GBM, "milstein", 1.0, T, _x, exact_expectation=float(np.exp(0.5 * T)), coupled=False,
                        base_steps=4, levels=6, n_paths=20000, seed=SEED + 3)
    assert np.all(plain.stderr > 3 * weak.stderr) and plain.stderr[-1] > 50 * weak.stderr[-1], (
        plain.summary(), weak.summary())
    with pytest.raises(UnresolvedWeakError, match="not significantly nonzero"):
        fit_weak_order(plain, alpha=ALPHA)


def test_em_weak_order_coupled_is_refused() -> None:
    """EM's coupled differences have sd O(sqrt h) against a mean O(h): at 20000 paths the fine levels
    are unresolved (|z| falls from 6.2 at h = 1/4 to 0.9 at h = 1/128; need > 5.23) and the fit is
    refused rather than reported (VALIDATION.md §4: "EM weak with Monte Carlo is too noisy to gate";
    use em_weak_errors_linear)."""
    weak = weak_errors(GBM, "euler_maruyama", 1.0, T, _x, base_steps=4, levels=6, n_paths=20000, seed=SEED + 3)
    assert not np.all(weak.resolved(ALPHA)), weak.summary()
    with pytest.raises(UnresolvedWeakError, match="level 5"):
        fit_weak_order(weak, alpha=ALPHA)


def test_fit_weak_order_synthetic() -> None:
    """d[l, p] = c h_l^q + noise: the fit recovers q inside its CI; the gate rejects the wrong order."""
    rng = np.random.default_rng(3)
    hs = 0.5 ** np.arange(2, 8)
    for q in (1.0, 2.0):
        diffs = 0.3 * hs[:, None] ** q * (1.0 + 0.5 * rng.standard_normal((hs.size, 4000)))
        fit = fit_weak_order((hs, diffs), alpha=ALPHA)
        assert fit.ci_low <= q <= fit.ci_high and fit.passes(q), fit.summary()
        assert not fit.passes(q + 0.5) and not fit.passes(q - 0.5)
    # the seeded bootstrap makes the interval reproducible
    assert fit_weak_order((hs, diffs)).ci_low == fit_weak_order((hs, diffs)).ci_low


# ------------------------------------------------------------------------------------------ bias or bug

SIGMA = np.array([[1.0, 0.3], [0.3, 0.8]])
PREC = np.linalg.inv(SIGMA)
TARGET = Gaussian(np.zeros(2), SIGMA)
PI = (np.zeros(2), SIGMA)
N = 20000
T_MIX = 10.0  # ULA from pi: the transient M^K Sigma M^K of the finite-K law is < 1e-8 at h <= 0.2

# ULA on pi = N(0, Sigma), x' = x + h grad log pi(x) + sqrt(2h) xi, is Euler–Maruyama on the OU process
# dX = -Sigma^{-1} X dt + sqrt(2) dW (test_ula_is_em_on_ou checks this bit for bit against
# overdamped_langevin), so the sampler and its planted bugs (wrong noise or drift) share one built-in kernel:
ULA = OrnsteinUhlenbeck(PREC, np.sqrt(2.0) * np.eye(2)).sde
BUGS = {
    "noise x sqrt(2)": OrnsteinUhlenbeck(PREC, 2.0 * np.eye(2)).sde,
    "noise x 1.1": OrnsteinUhlenbeck(PREC, 1.1 * np.sqrt(2.0) * np.eye(2)).sde,
    "drift sign flipped": OrnsteinUhlenbeck(-PREC, np.sqrt(2.0) * np.eye(2)).sde,
}


def ula_runner(sde: sdekit.SDE, h_coarse: float, t1: float = T_MIX):
    """run(h, seed): N chains from exact draws of pi, t1 / h EM steps; the coarse run (h_coarse) uses
    noise_substeps = 2 so both runs see the same Brownian path (paired Richardson values)."""

    def run(h: float, seed: int) -> np.ndarray:
        x0 = TARGET.sample(N, seed=seed + 1)
        steps = int(round(t1 / h))
        sub = int(round(2 * h / h_coarse))
        return sdekit.simulate(sde, x0, (0.0, t1), steps=steps, seed=seed, noise_substeps=sub).final

    return run


def ula_scheme_law(h: float) -> tuple[np.ndarray, np.ndarray]:
    """ULA's own stationary law N(0, V_h), V_h = Sigma (I - h Sigma^{-1} / 2)^{-1} (VALIDATION.md §1c)."""
    return np.zeros(2), ula_gaussian_variance(SIGMA, h)


def exact_ou_runner(h_unused: float = 0.0):
    """The exact OU transition kernel X' = e^{-A h} X + Sigma_h^{1/2} xi (A = Sigma^{-1}, B = sqrt(2) I),
    whose stationary law is pi: from pi it draws pi exactly at every h."""
    ou = OrnsteinUhlenbeck(PREC, np.sqrt(2.0) * np.eye(2))

    def run(h: float, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = TARGET.sample(N, seed=seed + 1)
        decay = sla.expm(-ou.A * h)
        chol = np.linalg.cholesky(ou.transition(np.zeros(2), h)[1])
        for _ in range(int(round(2.0 / h))):
            x = x @ decay.T + rng.standard_normal(x.shape) @ chol.T
        return x

    return run


def test_ula_is_em_on_ou() -> None:
    """sdekit's Langevin sampler (overdamped_langevin with the Gaussian target, numpy reference backend)
    and EM on OU(Sigma^{-1}, sqrt(2) I) (Numba) produce identical states from the same seed."""
    x0 = TARGET.sample(64, seed=1)
    kw = dict(steps=10, seed=SEED, noise_substeps=2)
    langevin = sdekit.simulate(overdamped_langevin(2, target=TARGET), x0, (0.0, 2.0), backend="numpy", **kw).final
    ou = sdekit.simulate(ULA, x0, (0.0, 2.0), **kw).final
    np.testing.assert_allclose(ou, langevin, rtol=1e-12, atol=1e-12)


def _classify(run, h: float, scheme: bool, name: str) -> BiasReport:
    return classify_bias(run, h, seed=SEED, order=1, exact_law=PI, scheme_law=ula_scheme_law if scheme else None,
                         alpha=ALPHA, name=name)


@pytest.mark.parametrize("scheme", [True, False], ids=["scheme_law", "richardson"])
def test_ula_bias_is_classified_as_bias(scheme: bool) -> None:
    """ULA at h = 0.2 on N(0, [[1, .3], [.3, .8]]) from pi, N = 20000: the second moments are inflated
    (x0^2, x1^2: d_h = +0.115, +0.114, z = 10.3, 12.4; d_{h/2} / d_h = 0.47, 0.46 ~ 1/2; exact
    V_h - Sigma = +0.111, +0.114), the samples match N(0, V_h) at h and h/2 (scheme-law path) and the
    Richardson values 2 phibar_{h/2} - phibar_h agree with pi (z = -0.60, +0.17, -1.12 for the second
    moments): "biased as expected for order 1" on both paths."""
    report = _classify(ula_runner(ULA, 0.2), 0.2, scheme, "ULA h=0.2")
    assert report.verdict == biased_verdict(1) == "biased as expected for order 1", report.summary()
    assert report.kind == "biased" and report.path == ("scheme_law" if scheme else "richardson")
    for name in ("x[0]x[0]", "x[1]x[1]"):
        f = report.feature(name)
        assert abs(f.z_h) > 5.3 and 0.3 < f.ratio < 0.7, report.summary()
        assert abs(f.d_h - (ula_gaussian_variance(SIGMA, 0.2) - SIGMA)[int(name[2]), int(name[2])]) < 5.3 * f.se_h
    assert not all(c.passed for c in report.discrepancy_checks)
    assert all(c.passed for c in report.explanation_checks), report.summary()


@pytest.mark.parametrize("scheme", [True, False], ids=["scheme_law", "richardson"])
@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_ula_bugs_are_classified_as_bugs(bug: str, scheme: bool) -> None:
    """ULA with noise x sqrt(2) (variance doubled: d_{h/2} / d_h = 0.90, Richardson z = +49), noise x 1.1
    (d_{h/2} / d_h = 0.79, Richardson z = +16.6) or drift sign flipped (divergent: z ~ 100) at h = 0.2:
    the samples fail the scheme law (KS p < 1e-9), and the discrepancy does not shrink like h:
    "inconsistent: likely bug" on both paths."""
    report = _classify(ula_runner(BUGS[bug], 0.2), 0.2, scheme, f"ULA with {bug}")
    assert report.verdict == BUG == "inconsistent: likely bug", report.summary()
    assert report.kind == "bug"
    assert not all(c.passed for c in report.explanation_checks), report.summary()


@pytest.mark.parametrize("scheme", [True, False], ids=["scheme_law", "richardson"])
def test_exact_and_fine_samplers_are_consistent(scheme: bool) -> None:
    """The exact OU transition kernel (h = 0.2, from pi) and ULA at h = 1e-3 (50 steps from pi; bias
    ~5e-4 in the variances, far below se ~ 0.01) show no discrepancy (max |z_h| 2.1 and 1.0 < 5.33):
    "consistent"."""
    for run, h in ((exact_ou_runner(), 0.2), (ula_runner(ULA, 1e-3, t1=0.05), 1e-3)):
        report = _classify(run, h, scheme, f"sampler h={h}")
        assert report.verdict == CONSISTENT, report.summary()
        assert report.path == "none" and report.explanation_checks == ()
        assert max(abs(f.z_h) for f in report.features) < 5.3, report.summary()


def test_em_on_ou_from_a_point_matches_its_recursion() -> None:
    """Transient case: 1-D OU dX = -X dt + sqrt(2) dW from x0 = 2 to T = 1, EM at h = 0.1. Against the
    exact transition law the mean is off (d_h = -0.040, z = -8.4, d_{h/2} / d_h = 0.52); the samples
    match EM's exact moment recursion at h and h/2 (KS p = 0.85, 0.82), and the Richardson mean agrees
    with the exact one (z = -0.29): biased, order 1, on both paths."""
    ou = OrnsteinUhlenbeck([[1.0]], [[np.sqrt(2.0)]])
    x0 = np.array([2.0])
    mean_t, cov_t = ou.transition(x0, 1.0)
    n = 40000

    def run(h: float, seed: int) -> np.ndarray:
        sub = int(round(2 * h / 0.1))
        return sdekit.simulate(ou.sde, x0, (0.0, 1.0), steps=int(round(1.0 / h)), n_paths=n, seed=seed,
                               noise_substeps=sub).final

    def scheme(h: float) -> tuple[np.ndarray, np.ndarray]:
        return ou.euler_maruyama_law(x0, np.zeros((1, 1)), h, int(round(1.0 / h)))

    for law in (scheme, None):
        report = classify_bias(run, 0.1, seed=SEED, exact_law=(mean_t, cov_t), scheme_law=law, alpha=ALPHA,
                               name="OU EM h=0.1")
        assert report.kind == "biased", report.summary()


def test_gaussian_features_exact_values() -> None:
    feats, exact, names = gaussian_features([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]])
    assert names == ["x[0]", "x[1]", "x[0]x[0]", "x[0]x[1]", "x[1]x[1]"]
    np.testing.assert_allclose(exact, [1.0, -2.0, 3.0, -1.5, 5.0])
    np.testing.assert_allclose(feats(np.array([[2.0, 3.0]])), [[2.0, 3.0, 4.0, 6.0, 9.0]])


# ------------------------------------------------------------------------------------------ work–precision


def test_work_precision_two_solvers(tmp_path) -> None:
    """EM and Milstein on GBM, strong errors at 8 .. 64 steps, 2000 paths: errors fall as the cost
    (function evaluations) grows, Milstein beats EM at every level, the plot is written and the
    markdown table has one row per (solver, level). Timings are recorded, never asserted."""
    wp = work_precision(GBM, ["euler_maruyama", "milstein"], 1.0, T, base_steps=8, levels=4, n_paths=2000,
                        seed=SEED, repeats=1)
    assert isinstance(wp, WorkPrecision) and list(wp.curves) == ["euler_maruyama", "milstein"]
    for c in wp.curves.values():
        assert np.all(np.diff(c.evals) > 0) and np.all(np.diff(c.errors) < 0), c
        assert np.all(c.seconds > 0)
        np.testing.assert_array_equal(c.evals, c.steps * sdekit.SDE_SOLVERS[c.solver].evals)
    assert np.all(wp.curves["milstein"].errors < wp.curves["euler_maruyama"].errors)
    out = wp.plot(tmp_path / "wp.png")
    assert out.exists() and out.stat().st_size > 1000
    assert wp.plot(tmp_path / "wp_evals.png", cost="evals").exists()
    table = wp.to_markdown().splitlines()
    assert len(table) == 2 + 2 * 4
    assert sum(row.startswith("| milstein |") for row in table) == 4


def test_work_precision_weak() -> None:
    """Weak mode (coupled, phi(x) = x): Milstein's weak errors are resolved and fall with cost."""
    wp = work_precision(GBM, ["milstein"], 1.0, T, base_steps=4, levels=3, n_paths=10000, seed=SEED, error="weak",
                        phi=_x, repeats=1)
    c = wp.curves["milstein"]
    assert np.all(np.diff(c.errors) < 0) and np.all(c.errors > 5 * c.stderr), c
    table = wp.to_markdown().splitlines()
    assert len(table) == 2 + 3 and "| se |" in table[0]


# ------------------------------------------------------------------------------------------ bad input


def test_bad_input_raises_naming_the_argument() -> None:
    hs = 0.5 ** np.arange(4)
    with pytest.raises(ValueError, match="levels"):
        fit_weak_order((hs, np.ones((4, 10))))
    hs5 = 0.5 ** np.arange(5)
    with pytest.raises(ValueError, match="alpha"):
        fit_weak_order((hs5, np.ones((5, 10))), alpha=1.5)
    with pytest.raises(ValueError, match="decreasing"):
        fit_weak_order((hs5[::-1], np.ones((5, 10))))
    with pytest.raises(ValueError, match="exact_fn"):
        weak_errors(GBM.sde, "milstein", 1.0, T, _x, base_steps=4, levels=5, n_paths=10, seed=0)
    with pytest.raises(ValueError, match="exact_expectation"):
        weak_errors(GBM, "milstein", 1.0, T, _x, base_steps=4, levels=5, n_paths=10, seed=0, coupled=False)
    with pytest.raises(ValueError, match="levels"):
        em_weak_errors_linear(OU_A, OU_B, OU_X0, T, 8, 1)
    with pytest.raises(ValueError, match="moments"):
        em_weak_errors_linear(OU_A, OU_B, OU_X0, T, 8, 5, moments="skew")
    run = exact_ou_runner()
    for kw, arg in ((dict(alpha=0.0), "alpha"), (dict(alpha=1.0), "alpha"), (dict(order=0), "order"),
                    (dict(exact_law=None), "exact_law"), (dict(features=lambda x: x), "exact_values")):
        with pytest.raises(ValueError, match=arg):
            classify_bias(run, 0.2, **{"exact_law": PI, **kw})
    with pytest.raises(ValueError, match="h must be"):
        classify_bias(run, -0.1, exact_law=PI)
    with pytest.raises(ValueError, match="solvers"):
        work_precision(GBM, [], 1.0, T, base_steps=4, levels=3, n_paths=10)
    with pytest.raises(ValueError, match="error"):
        work_precision(GBM, ["milstein"], 1.0, T, base_steps=4, levels=3, n_paths=10, error="median")
    with pytest.raises(sdekit.SDEKitError, match="solver"):
        work_precision(GBM, ["no_such_solver"], 1.0, T, base_steps=4, levels=3, n_paths=10)
    assert isinstance(WeakErrors(hs5, np.ones((5, 3)), True).summary(), str)


# ------------------------------------------------------------------------------------------ unresolved tables warn


def test_weak_errors_within_their_stderr_warn() -> None:
    """Milstein on GBM against the exact expectation with 200 paths: |z| = 0.69, 0.57, 0.58 at h = 1/4 .. 1/16,
    every level within one standard error (se 0.14 against a true weak error of 0.047 at h = 1/4), so the
    table is noise: weak_errors warns once, naming the largest |z|, summary() says so and the work-precision
    table flags the solver."""
    with pytest.warns(sdekit.SDEKitWarning, match=r"unresolved.*largest \|z\| = 0\.69 at h = 0\.25") as record:
        weak = weak_errors(GBM, "milstein", 1.0, T, _x, exact_expectation=float(np.exp(0.5 * T)), coupled=False,
                           base_steps=4, levels=3, n_paths=200, seed=0)
    from sdekit.validate.weak import UnresolvedWeakWarning

    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert isinstance(record[0].message, UnresolvedWeakWarning)
    assert np.all(np.abs(weak.z) <= 1.0) and weak.all_within_stderr, weak.summary()
    assert "weak errors unresolved" in weak.summary()
    with pytest.warns(UnresolvedWeakWarning):
        wp = work_precision(GBM, ["milstein"], 1.0, T, base_steps=4, levels=3, n_paths=200, seed=0, error="weak",
                            phi=_x, coupled=False, exact_expectation=float(np.exp(0.5 * T)), repeats=1)
    assert "milstein: UNRESOLVED" in wp.to_markdown()


def test_resolved_weak_errors_do_not_warn() -> None:
    """Coupled Milstein differences on GBM with 2000 paths: z = -4.95, -3.95, -5.14, resolved: no warning, and
    neither summary() nor the work-precision table flags anything."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", sdekit.SDEKitWarning)
        weak = weak_errors(GBM, "milstein", 1.0, T, _x, base_steps=4, levels=3, n_paths=2000, seed=SEED)
    assert np.all(np.abs(weak.z) > 3.0) and not weak.all_within_stderr, weak.summary()
    assert "unresolved" not in weak.summary()


def test_unresolved_rule_on_synthetic_tables() -> None:
    """The rule itself: means exactly 0 with se > 0 is unresolved; one level beyond its se resolves the table;
    exact zeros everywhere (se = 0, an exact scheme) are a result, not noise."""
    hs = 0.5 ** np.arange(2, 5)
    noise = np.tile([1.0, -1.0], (3, 50))
    assert WeakErrors(hs, noise, True).all_within_stderr
    shifted = noise.copy()
    shifted[1] += 0.2  # mean 0.2 against se 0.1
    assert not WeakErrors(hs, shifted, True).all_within_stderr
    assert not WeakErrors(hs, np.zeros((3, 100)), True).all_within_stderr
