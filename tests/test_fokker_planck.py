"""Fokker–Planck references (sdekit.validate.fokker_planck): the 1-D solver, the histogram test, the identity.

Statistical tests are gated at alpha = 1e-6 (false-alarm rate per test at fixed seeds; thresholds are
chi2.isf(alpha, J - 1), not tuned). The planted bugs are a diffusion scaled by sqrt(2) and a flipped drift
sign; they must fail with p far below 1e-6. Deterministic checks compare with closed forms at tolerances
taken from VALIDATION.md §2 (ii) or from the finite-difference error estimate of the identity check.
"""

import math
import re

import numba as nb
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import chi2, multivariate_normal, norm

import sdekit
from sdekit.errors import SDEKitError
from sdekit.processes import OrnsteinUhlenbeck
from sdekit.targets import GaussianMixture
from sdekit.validate.fokker_planck import (
    FokkerPlanck1D,
    PointMass,
    bernoulli,
    check_fokker_planck_identity,
    check_sde_fokker_planck_identity,
    chi2_histogram_test,
    fokker_planck_chi2_test,
    fokker_planck_reference,
    fokker_planck_residual,
    solve_fokker_planck_1d,
)

ALPHA = 1e-6
SQRT2 = math.sqrt(2.0)

# --------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------

# OU dX = -X dt + dW from N(1, 0.1^2), observed at t = 0.5.
OU_M0, OU_S0, OU_T = 1.0, 0.1, 0.5


def ou_exact_masses(edges, a=1.0, b=1.0):
    ou = OrnsteinUhlenbeck(a, b)
    mean, cov = ou.transition(np.array([OU_M0]), OU_T)
    sd = math.sqrt(cov[0, 0] + math.exp(-2 * a * OU_T) * OU_S0**2)
    return np.diff(norm.cdf(edges, mean[0], sd))


def ou_solve(cells, steps, a=1.0, b=1.0):
    ou = OrnsteinUhlenbeck(a, b)
    return fokker_planck_reference(ou.sde, lambda x: norm.pdf(x, OU_M0, OU_S0), (0.0, OU_T), -4.0, 5.0, cells, steps)


# Double well U = (x^2 - 1)^2 / eps with D(x) = 1 + cos(2x)/2: the Itô drift b = -D U'/2 + D'/2 makes the
# stationary density (1/D) exp(int 2b/D) = e^{-U} / Z exactly; the Stratonovich drift is b - D'/4.
WELL_EPS, WELL_LO, WELL_HI = 0.5, -2.5, 2.5


def well_u(x):
    return (x**2 - 1.0) ** 2 / WELL_EPS


def well_d(x):
    return 1.0 + 0.5 * np.cos(2.0 * x)


def well_drift(x, t, p):
    return -0.5 * well_d(x) * 4.0 * x * (x**2 - 1.0) / WELL_EPS - 0.5 * np.sin(2.0 * x)


def well_drift_strat(x, t, p):
    return well_drift(x, t, p) + 0.25 * np.sin(2.0 * x)


def well_diffusion(x, t, p):
    return np.sqrt(well_d(x))


def well_exact_masses(edges):
    z = quad(lambda x: np.exp(-well_u(x)), WELL_LO, WELL_HI)[0]
    return np.array([quad(lambda x: np.exp(-well_u(x)), a, b)[0] for a, b in zip(edges[:-1], edges[1:])]) / z


# The sampled SDE: dX = p0 (1/2 + sin(3t)/2 - X) dt + p1 sqrt(1 + X^2/2) dW, X_0 = 0, on [0, 1]. Planted bugs
# are new params for the same compiled kernel.
@nb.njit
def pearson_drift(x, t, p):
    return p[0] * (0.5 + 0.5 * math.sin(3.0 * t) - x)


@nb.njit
def pearson_diffusion(x, t, p):
    return p[1] * np.sqrt(1.0 + 0.5 * x * x)


PEARSON = sdekit.SDE(pearson_drift, pearson_diffusion, dim=1, params=[1.0, 0.8], name="pearson")
BUGS = {"correct": [1.0, 0.8], "diffusion*sqrt2": [1.0, 0.8 * SQRT2], "drift sign": [-1.0, 0.8]}
N_SAMPLES, EM_STEPS, T1 = 20_000, 400, 1.0


@pytest.fixture(scope="module")
def pearson_samples():
    """Final states of Euler–Maruyama (h = 1/400) for each parameter set, one compiled kernel."""
    return {k: sdekit.simulate(PEARSON.with_params(p), 0.0, (0.0, T1), steps=EM_STEPS, n_paths=N_SAMPLES,
                               seed=7).final for k, p in BUGS.items()}


# --------------------------------------------------------------------------------------------
# the Bernoulli function and the 1-D solver
# --------------------------------------------------------------------------------------------


def test_bernoulli_is_stable_and_exact():
    w = np.array([-800.0, -40.0, -1.0, -1e-7, 0.0, 1e-7, 1e-3, 1.0, 40.0, 800.0])
    b = bernoulli(w)
    assert np.all(np.isfinite(b)) and np.all(b >= 0)
    assert b[4] == 1.0
    np.testing.assert_allclose(bernoulli(-w) - b, w, rtol=1e-13, atol=1e-15)  # B(-w) = B(w) + w
    mid = np.abs(w) < 50
    np.testing.assert_allclose(b[mid & (w != 0)], w[mid & (w != 0)] / np.expm1(w[mid & (w != 0)]), rtol=1e-12)
    assert b[-1] == 0.0 and b[0] == 800.0


def test_ou_reference_converges_to_the_exact_law():
    """Max cell-mass error vs the exact OU law: at most the VALIDATION.md table (2.4e-4, 4.9e-5), shrinking ~4x."""
    errors = {}
    for m in (200, 400):
        sol = ou_solve(m, m)
        errors[m] = np.abs(sol.masses - ou_exact_masses(sol.edges)).max()
        assert abs(sol.masses.sum() - 1.0) < 1e-12
        assert sol.masses.min() >= 0.0
        np.testing.assert_allclose(sol.bin_masses(sol.edges), sol.masses, atol=1e-15)
    assert errors[200] < 2.4e-4 and errors[400] < 4.9e-5, errors
    assert errors[200] / errors[400] > 3.0, errors
    # a wrong equation is far outside that error
    wrong = ou_solve(200, 200, b=SQRT2)
    assert np.abs(wrong.masses - ou_exact_masses(wrong.edges)).max() > 100 * errors[200]


def test_mass_conservation_positivity_and_exact_discrete_equilibrium():
    solver = FokkerPlanck1D(well_drift, well_diffusion, WELL_LO, WELL_HI, 120)
    eq = solver.stationary_masses()
    stay = solver.solve(eq, 0.0, 5.0, 50)
    assert np.abs(stay.masses - eq).max() < 1e-14  # zero flux: implicit Euler leaves it in place
    # a lopsided start with empty cells: mass to rounding, never negative
    p0 = np.zeros(120)
    p0[100:110] = 1.0
    sol = solver.solve(p0, 0.0, 3.0, 30, save_at=[0.5, 1.0])
    assert np.all(np.abs(sol.history.sum(axis=1) - 1.0) < 1e-12)
    assert sol.history.min() >= 0.0
    np.testing.assert_allclose(sol.ts, [0.5, 1.0, 3.0])


def test_save_times_are_hit_exactly():
    full = ou_solve(100, 200)
    ou = OrnsteinUhlenbeck(1.0, 1.0)
    with_saves = fokker_planck_reference(ou.sde, lambda x: norm.pdf(x, OU_M0, OU_S0), (0.0, OU_T), -4.0, 5.0,
                                         100, 200, save_at=[0.25])
    half = fokker_planck_reference(ou.sde, lambda x: norm.pdf(x, OU_M0, OU_S0), (0.0, 0.25), -4.0, 5.0, 100, 100)
    np.testing.assert_allclose(with_saves.history[0], half.masses, atol=1e-15)
    np.testing.assert_allclose(with_saves.masses, full.masses, atol=1e-15)


@pytest.mark.parametrize("calculus, drift", [("ito", well_drift), ("stratonovich", well_drift_strat)])
def test_double_well_with_state_dependent_diffusion_reaches_exp_minus_u(calculus, drift):
    """Long time (t = 50): L1 distance to e^{-U}/Z, second order in dx (5.4e-5 at 600 cells)."""
    l1 = {}
    for m, n in ((150, 100), (300, 200)):
        sol = solve_fokker_planck_1d(drift, well_diffusion, lambda x: norm.pdf(x, 1.0, 0.2), WELL_LO, WELL_HI,
                                     0.0, 50.0, m, n, calculus=calculus)
        l1[m] = np.abs(sol.masses - well_exact_masses(sol.edges)).sum()
    assert l1[300] < 3e-4 and l1[150] / l1[300] > 3.0, l1
    # the other calculus's drift is a different equation, far from e^{-U}
    other = "ito" if calculus == "stratonovich" else "stratonovich"
    sol = solve_fokker_planck_1d(drift, well_diffusion, lambda x: norm.pdf(x, 1.0, 0.2), WELL_LO, WELL_HI,
                                 0.0, 50.0, 300, 200, calculus=other)
    assert np.abs(sol.masses - well_exact_masses(sol.edges)).sum() > 30 * l1[300]


def s3_drift(x, t, p):
    return 1.0 / np.sqrt(1.0 + t) - x / (2.0 * (1.0 + t))


def s3_diffusion(x, t, p):
    return 0.5 / np.sqrt(1.0 + t)


def test_point_mass_start_with_time_dependent_coefficients():
    """S3 (VALIDATION.md §1a, beta = 1, alpha = 0.5) from X_0 = 0.3: X_1 ~ N((0.3 + 1)/sqrt 2, 0.25/2)."""
    errors = []
    for m in (150, 300):
        sol = solve_fokker_planck_1d(s3_drift, s3_diffusion, PointMass(0.3), -1.0, 3.0, 0.0, 1.0, m, m)
        exact = np.diff(norm.cdf(sol.edges, 1.3 / SQRT2, math.sqrt(0.125)))
        errors.append(np.abs(sol.masses - exact).max())
        assert sol.t_start > 0.0 and abs(sol.masses.sum() - 1.0) < 1e-12
    assert errors[1] < 2e-4 and errors[0] / errors[1] > 3.0, errors


# --------------------------------------------------------------------------------------------
# the histogram chi-square test on Euler–Maruyama samples
# --------------------------------------------------------------------------------------------


def pearson_test(sample, **kw):
    return fokker_planck_chi2_test(sample, PEARSON, 0.0, (0.0, T1), -6.0, 6.0, cells=300, time_steps=200, **kw)


def test_chi2_histogram_passes_for_euler_maruyama(pearson_samples):
    """EM with h = 1/400 at N = 2e4: its O(h) bias is below resolution (N delta^2 << 1); false-alarm rate 1e-6."""
    res = pearson_test(pearson_samples["correct"])
    assert res.passed, res
    bins = int(re.search(r"J=(\d+)", res.test).group(1))
    assert res.threshold == pytest.approx(chi2.isf(ALPHA, bins - 1)) and len(res.bias) == bins
    assert "lambda" in res.note and res.alpha == ALPHA
    assert res.pvalue > 1e-3, res  # a typical p-value, not a marginal one


@pytest.mark.parametrize("bug", ["diffusion*sqrt2", "drift sign"])
def test_chi2_histogram_catches_planted_bugs(pearson_samples, bug):
    res = pearson_test(pearson_samples[bug])
    assert not res.passed, res
    assert res.pvalue < 1e-12 and res.statistic > 10 * res.threshold, res


def test_chi2_refuses_an_inaccurate_reference(pearson_samples):
    """lambda = N sum delta^2 / q above max_lambda on a crude grid with no refinement left: a clear error."""
    with pytest.raises(SDEKitError, match="lambda"):
        fokker_planck_chi2_test(pearson_samples["correct"], PEARSON, 0.0, (0.0, T1), -6.0, 6.0, cells=12,
                                time_steps=3, max_refinements=0)


def test_chi2_histogram_on_exact_ou_samples():
    """Exact draws from the OU law against the generic chi2_histogram_test (N = 1e5): pass; a shifted law fails."""
    rng = np.random.default_rng(3)
    ou = OrnsteinUhlenbeck(1.0, 1.0)
    mean, cov = ou.transition(np.array([OU_M0]), OU_T)
    sd = math.sqrt(cov[0, 0] + math.exp(-2 * OU_T) * OU_S0**2)
    x = rng.normal(mean[0], sd, 100_000)
    good = chi2_histogram_test(x, ou_solve, 200, 200)
    assert good.passed, good
    bad = chi2_histogram_test(x + 0.03 * sd, ou_solve, 200, 200)
    assert not bad.passed and bad.pvalue < 1e-6, bad


# --------------------------------------------------------------------------------------------
# the pointwise identity
# --------------------------------------------------------------------------------------------

OU2_A = np.array([[1.0, 0.5], [-0.3, 0.8]])
OU2_B = np.array([[1.0, 0.0], [0.4, 0.7]])
OU_X0 = {1: np.array([0.7]), 2: np.array([1.0, -0.5])}


def ou_process(d, a_scale=1.0, b_scale=1.0):
    a, b = (np.array([[1.3]]), np.array([[0.9]])) if d == 1 else (OU2_A, OU2_B)
    return OrnsteinUhlenbeck(a_scale * a, b_scale * b)


def ou_log_prob(d):
    ou = ou_process(d)

    def log_prob(x, t):
        mean, cov = ou.transition(OU_X0[d], t)
        return np.atleast_1d(multivariate_normal(mean, cov).logpdf(x))

    return log_prob


def ou_points(d, t, n=12):
    mean, cov = ou_process(d).transition(OU_X0[d], t)
    return np.random.default_rng(d).multivariate_normal(mean, cov, n) * 1.2  # some points in the tails


@pytest.mark.parametrize("d", [1, 2])
def test_identity_holds_for_the_ou_transition_density(d):
    x = ou_points(d, 0.6)
    residual, res = check_sde_fokker_planck_identity(ou_process(d).sde, ou_log_prob(d), x, [0.2, 0.6, 1.5])
    assert res.passed, res
    assert residual.shape == (3, x.shape[0]) and res.statistic < 1e-5, res


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("a_scale, b_scale", [(1.0, SQRT2), (-1.0, 1.0)])
def test_identity_fails_for_a_wrong_ou(d, a_scale, b_scale):
    x = ou_points(d, 0.6)
    _, res = check_sde_fokker_planck_identity(ou_process(d, a_scale, b_scale).sde, ou_log_prob(d), x, 0.6)
    assert not res.passed and res.statistic > 0.05, res


# VP forward SDE dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW; GMM data. Constant beta, and the linear schedule
# beta(t) = 0.1 + 19.9 t of VALIDATION.md §1b (alpha_t = e^{-B(t)/2}, B(t) = 0.1 t + 9.95 t^2).
GMM_W = np.array([0.3, 0.7])
GMM_MU = np.array([[-1.0, 0.5], [1.5, -1.0]])
GMM_C = np.array([[[0.10, 0.05], [0.05, 0.20]], [[0.30, -0.1], [-0.1, 0.15]]])
SCHEDULES = {"constant": (lambda t: 2.0, lambda t: 2.0 * t), "linear": (lambda t: 0.1 + 19.9 * t,
                                                                          lambda t: 0.1 * t + 9.95 * t * t)}


def vp_marginal_log_prob(schedule, d=2):
    big_b = SCHEDULES[schedule][1]

    def log_prob(x, t):
        a2 = math.exp(-big_b(t))
        covs = a2 * GMM_C[:, :d, :d] + (1.0 - a2) * np.eye(d)
        return GaussianMixture(GMM_W, math.sqrt(a2) * GMM_MU[:, :d], covs).log_prob(x)

    return log_prob


def vp_coefficients(schedule, drift_sign=1.0, noise_scale=1.0):
    beta = SCHEDULES[schedule][0]
    return (lambda x, t: -0.5 * drift_sign * beta(t) * x,
            lambda x, t: noise_scale * math.sqrt(beta(t)))


@pytest.mark.parametrize("schedule, times", [("constant", [0.05, 0.4, 1.5]), ("linear", [0.02, 0.1, 0.3])])
@pytest.mark.parametrize("d", [1, 2])
def test_identity_holds_for_vp_gaussian_mixture_marginals(schedule, times, d):
    x = np.random.default_rng(5).normal(size=(10, d)) * 1.5
    drift, diffusion = vp_coefficients(schedule)
    residual, res = check_fokker_planck_identity(drift, diffusion, vp_marginal_log_prob(schedule, d), x, times)
    assert res.passed and res.statistic < 1e-4, res
    # the closed form of VALIDATION.md §1b: d_t log p = -d f - f x.s + g^2 (lap log p + |s|^2) / 2, by differences
    t, h = times[1], 1e-4
    lp = vp_marginal_log_prob(schedule, d)
    beta = SCHEDULES[schedule][0](t)
    f, g2 = -0.5 * beta, beta
    score = np.stack([(lp(x + h * e, t) - lp(x - h * e, t)) / (2 * h) for e in np.eye(d)], axis=1)
    lap = sum((lp(x + h * e, t) - 2 * lp(x, t) + lp(x - h * e, t)) / h**2 for e in np.eye(d))
    rhs = -d * f - f * np.sum(x * score, axis=1) + 0.5 * g2 * (lap + np.sum(score**2, axis=1))
    lhs = (lp(x, t + 1e-6) - lp(x, t - 1e-6)) / 2e-6
    np.testing.assert_allclose(lhs - rhs, residual[1], atol=1e-3 * (1 + np.abs(lhs).max()))


@pytest.mark.parametrize("drift_sign, noise_scale", [(1.0, SQRT2), (-1.0, 1.0)])
def test_identity_fails_for_a_wrong_vp_sde(drift_sign, noise_scale):
    x = np.random.default_rng(5).normal(size=(10, 2)) * 1.5
    drift, diffusion = vp_coefficients("constant", drift_sign, noise_scale)
    _, res = check_fokker_planck_identity(drift, diffusion, vp_marginal_log_prob("constant"), x, [0.05, 0.4])
    assert not res.passed and res.statistic > 0.05, res


def gbm_log_prob(x, t, mu=0.3, sigma=0.6, x0=1.0):
    """Law of x0 exp(mu t + sigma W_t), the solution of the Stratonovich dX = mu X dt + sigma X o dW."""
    y = np.log(x[:, 0])
    return -y - (y - math.log(x0) - mu * t) ** 2 / (2 * sigma**2 * t) - 0.5 * math.log(2 * math.pi * sigma**2 * t)


def test_identity_with_state_dependent_diffusion_and_stratonovich_calculus():
    x = np.linspace(0.4, 2.5, 9)[:, None]

    def drift(x, t, p):
        return 0.3 * x

    def diffusion(x, t, p):
        return 0.6 * x

    _, res = check_fokker_planck_identity(drift, diffusion, gbm_log_prob, x, [0.3, 1.0], calculus="stratonovich")
    assert res.passed, res
    _, wrong = check_fokker_planck_identity(drift, diffusion, gbm_log_prob, x, [0.3, 1.0], calculus="ito")
    assert not wrong.passed and wrong.statistic > 0.05, wrong


def test_identity_for_a_stationary_density_with_state_dependent_diffusion():
    """e^{-U}/Z is stationary for the double well with D(x) = 1 + cos(2x)/2 (d_t log p = 0); sqrt(2) D breaks it."""
    z = quad(lambda x: np.exp(-well_u(x)), -4, 4)[0]

    def log_prob(x, t):
        return -well_u(x[:, 0]) - math.log(z)

    x = np.linspace(-1.6, 1.6, 11)[:, None]
    residual, res = check_fokker_planck_identity(well_drift, well_diffusion, log_prob, x, 1.0)
    assert res.passed, res
    bad = fokker_planck_residual(well_drift, lambda x, t, p: SQRT2 * well_diffusion(x, t, p), log_prob, x, 1.0)
    assert np.abs(bad).max() > 0.5


def test_identity_refuses_unresolved_differences():
    """A step far too large for p's length scale: the check fails rather than pass on a loose tolerance."""
    x = np.random.default_rng(5).normal(size=(10, 2)) * 1.5
    drift, diffusion = vp_coefficients("constant")
    _, res = check_fokker_planck_identity(drift, diffusion, vp_marginal_log_prob("constant"), x, 0.05, eps=0.3)
    assert not res.passed and "resolve" in res.note, res


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def test_bad_input_names_the_argument(pearson_samples):
    good = pearson_samples["correct"]
    two_d = OrnsteinUhlenbeck(OU2_A, OU2_B).sde
    cases = [
        ("sde", lambda: fokker_planck_reference(two_d, 0.0, (0, 1), -1, 1, 10, 10)),
        ("sde", lambda: fokker_planck_chi2_test(good, two_d, 0.0, (0, 1), -1, 1)),
        ("sde", lambda: fokker_planck_reference("ou", 0.0, (0, 1), -1, 1, 10, 10)),
        ("alpha", lambda: pearson_test(good, alpha=0.0)),
        ("alpha", lambda: pearson_test(good, alpha=1.5)),
        ("samples", lambda: pearson_test(np.r_[good[:200, 0], np.nan])),
        ("samples", lambda: pearson_test(good[:60])),
        ("samples", lambda: pearson_test(np.ones((100, 2)))),
        ("x_min", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, 0.0, 1.0, -1.0, 0, 1, 10, 10)),
        ("cells", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, 0.0, -1.0, 1.0, 0, 1, 2, 10)),
        ("time_steps", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, 0.0, -1.0, 1.0, 0, 1, 10, 0)),
        ("t1 > t0", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, 0.0, -1.0, 1.0, 1, 1, 10, 10)),
        ("p0", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, np.ones(7), -1.0, 1.0, 0, 1, 10, 10)),
        ("p0", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, 3.0, -1.0, 1.0, 0, 1, 10, 10)),
        ("noise", lambda: solve_fokker_planck_1d(well_drift, well_diffusion, 0.0, -1, 1, 0, 1, 10, 10, noise="x")),
        ("calculus", lambda: fokker_planck_residual(well_drift, well_diffusion, gbm_log_prob, [[1.0]], 1.0,
                                                    calculus="x")),
        ("log_prob", lambda: fokker_planck_residual(well_drift, well_diffusion, lambda x, t: np.zeros(3), [[1.0]],
                                                    1.0)),
        ("x must be finite", lambda: fokker_planck_residual(well_drift, well_diffusion, gbm_log_prob, [[np.nan]],
                                                            1.0)),
        ("eps", lambda: fokker_planck_residual(well_drift, well_diffusion, gbm_log_prob, [[1.0]], 1.0, eps=-1.0)),
        ("drift", lambda: solve_fokker_planck_1d(lambda x, t: np.ones((2, 2)), well_diffusion, 0.0, -1, 1, 0, 1,
                                                 10, 10)),
    ]
    for word, call in cases:
        with pytest.raises(SDEKitError, match=word.replace("*", r"\*")):
            call()
