"""Tests of the exact Gaussian-mixture diffusion fixtures (sdekit.diffusion.mixture_marginals) and of the
parametrization conversions (sdekit.diffusion.parametrization).

Deterministic checks: score / Hessian / Laplacian against 5-point central finite differences (h = 1e-3 x the
smallest marginal standard deviation; relative errors measured <= 2.5e-11, gated at 1e-9), log p_t and score against
the Cholesky route of ``GaussianMixture``, the Fokker-Planck identity in t for VE / VP / sub-VP (measured <= 2.6e-11,
gated at 1e-9), Tweedie's formula, round trips of every conversion, njit against NumPy.

Statistical checks (fixed seeds, N = 20000): ``compare_with_law`` batteries gated at 1e-6 each, and z-tests of the
orthogonality E[(x_0 - D(x_t)) h(x_t)] = 0 at overall 1e-6 (Bonferroni over the features). Each is shown able to fail
on a planted bug (sigma^2 replaced by sigma in S_k).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as st

from sdekit.diffusion import parametrization as pz
from sdekit.diffusion.mixture_marginals import (
    MixtureMarginals,
    mixture_marginal_laplacian,
    mixture_marginal_log_prob,
    mixture_marginal_score,
)
from sdekit.errors import SDEKitError
from sdekit.targets import GaussianMixture
from sdekit.validate import compare_with_law

N_MC = 20_000
ALPHA_TEST = 1e-6

# (alpha, sigma): VE small and large noise, VP, VP late (alpha -> 0), alpha -> small with small sigma
# (sharp, nearly isotropic, overlapping components), well-separated tiny components, and sigma = 0.
SCHEDULES = [(1.0, 0.01), (1.0, 2.5), (0.8, 0.6), (0.05, math.sqrt(1 - 0.05**2)), (1e-3, 0.01), (0.02, 0.01),
             (0.7, 0.0)]
DIMS = (1, 2, 4)


def rot2(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def make_data(d: int) -> GaussianMixture:
    """Data mixtures with anisotropic, rotated covariances (condition numbers up to 150)."""
    if d == 1:
        return GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[[0.3]], [[1.2]]])
    if d == 2:
        specs = [((0.05, 1.0), 0.3), ((0.6, 0.2), 1.1), ((1.5, 0.4), -0.7)]
        covs = [rot2(th) @ np.diag(ev) @ rot2(th).T for ev, th in specs]
        return GaussianMixture([0.2, 0.5, 0.3], [[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]], covs)
    rng = np.random.default_rng(4)
    eigs = [(0.02, 0.3, 1.0, 3.0), (0.5, 0.5, 0.1, 2.0), (1.5, 0.05, 0.7, 0.2)]
    covs = []
    for ev in eigs:
        q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
        covs.append(q @ np.diag(ev) @ q.T)
    return GaussianMixture([0.25, 0.45, 0.3], rng.normal(scale=1.5, size=(3, 4)), covs)


FIXTURES = {d: MixtureMarginals(make_data(d)) for d in DIMS}


def exact_score(mm: MixtureMarginals):
    """The exact score(x, alpha, sigma) of mm's marginals (the njit form of MixtureMarginals.score), shared by the
    sampler tests."""
    return lambda x, a, s: mixture_marginal_score(np.ascontiguousarray(x, dtype=np.float64), a, s, mm.params)


def assert_law(x, target: GaussianMixture, what: str) -> float:
    """The full battery (`compare_with_law` at ALPHA_TEST) passes on x against target; returns its min p."""
    rep = compare_with_law(np.asarray(x), target, alpha=ALPHA_TEST, name=what)
    assert rep.passed, rep.to_text()
    return rep.min_pvalue


def assert_law_fails(x, target: GaussianMixture, what: str) -> None:
    """The full battery rejects x (a planted bug is caught)."""
    rep = compare_with_law(np.asarray(x), target, alpha=ALPHA_TEST, name=what)
    assert not rep.passed, f"planted bug not caught: {what}, min p = {rep.min_pvalue:.3g}"


# Gaussian data N(0, diag(GAUSS_VARS)): the exact probability-flow map is linear, for the order fits of the samplers
GAUSS_VARS = np.array([0.05, 0.3, 2.0])
GAUSS = MixtureMarginals(GaussianMixture([1.0], [np.zeros(3)], [np.diag(GAUSS_VARS)]))


def flow_map(x: np.ndarray, ab_from: tuple[float, float], ab_to: tuple[float, float]) -> np.ndarray:
    """x_to = sqrt(v_to / v_from) x_from per eigendirection, v = alpha^2 lam + sigma^2."""
    (a0, s0), (a1, s1) = ab_from, ab_to
    return x * np.sqrt((a1 * a1 * GAUSS_VARS + s1 * s1) / (a0 * a0 * GAUSS_VARS + s0 * s0))


def slope(nfes, errs) -> float:
    """The fitted order: minus the OLS slope of log error against log NFE."""
    return float(-np.polyfit(np.log(nfes), np.log(errs), 1)[0])


def min_std(mm: MixtureMarginals, alpha: float, sigma: float) -> float:
    """Smallest standard deviation of any S_k along any direction."""
    return math.sqrt(alpha * alpha * float(mm.eigvals.min()) + sigma * sigma)


def probe_points(mm: MixtureMarginals, alpha: float, sigma: float, seed: int = 3) -> np.ndarray:
    """Draws of x_t, midpoints between component means (where gamma switches), and tail points."""
    x = mm.sample(10, alpha, sigma, seed)
    mids = [alpha * 0.5 * (mm.data.means[j] + mm.data.means[k])
            for j, k in itertools.combinations(range(mm.n_components), 2)]
    tails = alpha * mm.data.mean + 3.0 * (x[:3] - alpha * mm.data.mean)
    return np.concatenate([x, np.array(mids), tails])


def fd5(f, x: np.ndarray, i: int, h: float) -> np.ndarray:
    """5-point central difference of f (batch function of points) along coordinate i, error O(h^4)."""
    e = np.zeros_like(x)
    e[:, i] = h
    return (f(x - 2 * e) - 8 * f(x - e) + 8 * f(x + e) - f(x + 2 * e)) / (12 * h)


CASES = [(d, a, s) for d in DIMS for a, s in SCHEDULES]
CASE_IDS = [f"d{d}-a{a:g}-s{s:g}" for d, a, s in CASES]


# --------------------------------------------------------------------------------------------
# derivatives against finite differences
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "alpha", "sigma"), CASES, ids=CASE_IDS)
def test_score_hessian_laplacian_match_finite_differences(d, alpha, sigma):
    mm = FIXTURES[d]
    x = probe_points(mm, alpha, sigma)
    std = min_std(mm, alpha, sigma)
    h = 1e-3 * std
    s = mm.score(x, alpha, sigma)
    hess = mm.hessian_log_prob(x, alpha, sigma)
    lap = mm.laplacian_log_prob(x, alpha, sigma)

    def logp(z):
        return mm.log_prob(z, alpha, sigma)

    def score(z):
        return mm.score(z, alpha, sigma)

    fd_s = np.stack([fd5(logp, x, i, h) for i in range(d)], axis=1)
    fd_jac = np.stack([fd5(score, x, i, h) for i in range(d)], axis=2)  # [:, j, i] = d s_j / d x_i
    # score: error relative to |s| + 1/std (the natural scale of the score near a mode)
    s_scale = np.linalg.norm(s, axis=1) + 1.0 / std
    s_err = np.max(np.abs(fd_s - s), axis=1) / s_scale
    assert s_err.max() < 1e-9, f"score vs FD: max relative error {s_err.max():.3g}"
    # Hessian and Laplacian: relative to |H| + 1/std^2
    h_scale = np.linalg.norm(hess, axis=(1, 2)) + 1.0 / std**2
    h_err = np.max(np.abs(fd_jac - hess), axis=(1, 2)) / h_scale
    assert h_err.max() < 1e-9, f"Hessian vs FD: max relative error {h_err.max():.3g}"
    fd_lap = np.trace(fd_jac, axis1=1, axis2=2)
    l_err = np.abs(fd_lap - lap) / (np.abs(lap) + d / std**2)
    assert l_err.max() < 1e-9, f"Laplacian vs FD: max relative error {l_err.max():.3g}"
    np.testing.assert_allclose(np.trace(hess, axis1=1, axis2=2), lap, rtol=1e-12, atol=1e-12 * d / std**2)
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), rtol=0, atol=0)


@pytest.mark.parametrize(("d", "alpha", "sigma"), CASES, ids=CASE_IDS)
def test_log_prob_and_score_match_the_marginal_gaussian_mixture(d, alpha, sigma):
    """The eigenbasis route agrees with GaussianMixture(weights, alpha mu, alpha^2 C + sigma^2 I) (Cholesky route)."""
    mm = FIXTURES[d]
    x = probe_points(mm, alpha, sigma)
    law = mm.marginal(alpha, sigma)
    std = min_std(mm, alpha, sigma)
    lp = mm.log_prob(x, alpha, sigma)
    np.testing.assert_allclose(lp, law.log_prob(x), rtol=1e-11, atol=1e-11)
    s = mm.score(x, alpha, sigma)
    np.testing.assert_allclose(s, law.score(x), rtol=1e-10, atol=1e-10 / std)
    # a single point gives a scalar / (d,) back
    assert isinstance(mm.log_prob(x[0], alpha, sigma), float)
    assert mm.score(x[0], alpha, sigma).shape == (d,)
    assert mm.hessian_log_prob(x[0], alpha, sigma).shape == (d, d)
    gamma = mm.responsibilities(x, alpha, sigma)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-14)


def test_data_law_at_alpha_one_sigma_zero():
    mm = FIXTURES[2]
    x = probe_points(mm, 1.0, 0.0)
    np.testing.assert_allclose(mm.log_prob(x, 1.0, 0.0), mm.data.log_prob(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mm.score(x, 1.0, 0.0), mm.data.score(x), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("kind", ["ve", "vp", "subvp"])
def test_fokker_planck_identity_in_t(kind):
    """d/dt log p_t = -d f - f x.s + g^2 (Delta log p_t + ||s||^2) / 2 (VALIDATION.md 1b), FD in t vs fixture."""
    mm = FIXTURES[2]
    d = mm.dim
    b = 1.3  # constant beta

    def sched(t):  # (alpha, sigma, f, g^2)
        if kind == "ve":  # sigma^2 = t, f = 0, g = 1
            return 1.0, math.sqrt(t), 0.0, 1.0
        a = math.exp(-0.5 * b * t)
        if kind == "vp":
            return a, math.sqrt(1 - a * a), -0.5 * b, b
        return a, 1 - a * a, -0.5 * b, b * (1 - math.exp(-2 * b * t))

    for t in (0.05, 0.5, 2.0):
        a, s, f, g2 = sched(t)
        x = probe_points(mm, a, s)
        h = 1e-3 * t

        def lp(tt):
            aa, ss, _, _ = sched(tt)
            return mm.log_prob(x, aa, ss)

        dt = (lp(t - 2 * h) - 8 * lp(t - h) + 8 * lp(t + h) - lp(t + 2 * h)) / (12 * h)
        sc = mm.score(x, a, s)
        lap = mm.laplacian_log_prob(x, a, s)
        ss2 = np.sum(sc * sc, axis=1)
        rhs = -d * f - f * np.sum(x * sc, axis=1) + 0.5 * g2 * (lap + ss2)
        scale = abs(d * f) + abs(f) * np.abs(np.sum(x * sc, axis=1)) + 0.5 * g2 * (np.abs(lap) + ss2)
        err = np.abs(dt - rhs) / scale
        assert err.max() < 1e-9, f"{kind} t={t}: FP identity relative error {err.max():.3g}"


# --------------------------------------------------------------------------------------------
# the marginal law: exact moments and Monte Carlo
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "alpha", "sigma"), CASES, ids=CASE_IDS)
def test_marginal_moments_exact(d, alpha, sigma):
    mm = FIXTURES[d]
    law = mm.marginal(alpha, sigma)
    np.testing.assert_allclose(law.mean, alpha * mm.data.mean, rtol=1e-13, atol=1e-15)
    cov = alpha**2 * mm.data.cov + sigma**2 * np.eye(d)
    np.testing.assert_allclose(law.cov, cov, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(law.means, alpha * mm.data.means, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(law.covs, alpha**2 * mm.data.covs + sigma**2 * np.eye(d), rtol=1e-13, atol=1e-15)


def buggy_marginal(mm: MixtureMarginals, alpha: float, sigma: float) -> GaussianMixture:
    """Planted bug: S_k = alpha^2 C_k + sigma I (sigma where sigma^2 belongs)."""
    return GaussianMixture(mm.data.weights, alpha * mm.data.means,
                           alpha**2 * mm.data.covs + sigma * np.eye(mm.dim))


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize(("alpha", "sigma"), [(0.8, 0.6), (1.0, 0.5)])
def test_forward_noising_has_the_marginal_law(d, alpha, sigma):
    """x_t = alpha x_0 + sigma eps, x_0 ~ p_0, passes compare_with_law(marginal) and fails the planted bug."""
    mm = FIXTURES[d]
    rng = np.random.default_rng(1000 + d)
    x0 = mm.data.sample(N_MC, rng)
    xt = alpha * x0 + sigma * rng.standard_normal((N_MC, d))
    tests = ("ks", "cvm", "moments", "stein")
    good = compare_with_law(xt, mm.marginal(alpha, sigma), alpha=ALPHA_TEST, tests=tests)
    assert good.passed, good.to_text()
    bad = compare_with_law(xt, buggy_marginal(mm, alpha, sigma), alpha=ALPHA_TEST, tests=tests)
    assert not bad.passed, "planted bug (sigma for sigma^2) not detected:\n" + bad.to_text()


def test_fixture_sample_has_the_marginal_law():
    mm = FIXTURES[4]
    xt, x0, eps = mm.sample(N_MC, 0.6, 0.8, seed=11, return_pairs=True)
    np.testing.assert_allclose(xt, 0.6 * x0 + 0.8 * eps, rtol=0, atol=0)
    rep = compare_with_law(xt, mm.marginal(0.6, 0.8), alpha=ALPHA_TEST, tests=("ks", "cvm", "moments", "stein"))
    assert rep.passed, rep.to_text()
    np.testing.assert_array_equal(mm.sample(5, 0.6, 0.8, seed=11), mm.sample(5, 0.6, 0.8, 11))  # reproducible


# --------------------------------------------------------------------------------------------
# Tweedie: exact identities and a Monte Carlo regression check
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "alpha", "sigma"), CASES, ids=CASE_IDS)
def test_tweedie_identities_exact(d, alpha, sigma):
    mm = FIXTURES[d]
    x = probe_points(mm, alpha, sigma)
    s = mm.score(x, alpha, sigma)
    den = mm.denoiser(x, alpha, sigma)
    eps = mm.eps_target(x, alpha, sigma)
    scale = np.max(np.abs(x)) / alpha + np.max(np.abs(den))
    np.testing.assert_allclose(den, (x + sigma**2 * s) / alpha, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(eps, -sigma * s, rtol=1e-12, atol=1e-14)
    if sigma >= 0.5:  # the definition (x - alpha E[x_0|x]) / sigma, where it has no cancellation
        np.testing.assert_allclose(eps, (x - alpha * den) / sigma, rtol=0, atol=1e-12 * scale / sigma)
    if sigma == 0.0:
        np.testing.assert_allclose(den, x / alpha, rtol=1e-13)
        assert np.all(eps == 0.0)
    v = mm.v_target(x, alpha, sigma)
    np.testing.assert_allclose(v, alpha * eps - sigma * den, rtol=1e-13, atol=1e-13 * scale)


def orthogonality_pvalues(x0: np.ndarray, xt: np.ndarray, den: np.ndarray, mean0: np.ndarray) -> np.ndarray:
    """Two-sided z-test p-values of E[(x_0 - D)_i h_j(x_t)] = 0 for h in (1, D, x_t, x_t^2), and of E[D] = E[x_0]."""
    n = xt.shape[0]
    res = x0 - den
    feats = np.concatenate([np.ones((n, 1)), den, xt, xt**2], axis=1)
    stats = (res[:, :, None] * feats[:, None, :]).reshape(n, -1)
    stats = np.concatenate([stats, den - mean0], axis=1)
    z = stats.mean(axis=0) / (stats.std(axis=0, ddof=1) / math.sqrt(n))
    return 2 * st.norm.sf(np.abs(z))


@pytest.mark.parametrize("d", [2, 4])
def test_denoiser_is_the_regression_function(d):
    """E[x_0 - D(x_t) | x_t] = 0: residuals orthogonal to functions of x_t, z-tests at overall 1e-6 (Bonferroni)."""
    mm = FIXTURES[d]
    alpha, sigma = 0.8, 0.6
    xt, x0, _ = mm.sample(N_MC, alpha, sigma, seed=20 + d, return_pairs=True)
    p = orthogonality_pvalues(x0, xt, mm.denoiser(xt, alpha, sigma), mm.data.mean)
    level = ALPHA_TEST / p.size
    assert p.min() > level, f"min p = {p.min():.3g} <= {level:.3g}"
    # planted bug: the denoiser of S_k = alpha^2 C_k + sigma I (= the exact one at sqrt(sigma))
    p_bad = orthogonality_pvalues(x0, xt, mm.denoiser(xt, alpha, math.sqrt(sigma)), mm.data.mean)
    assert p_bad.min() < level, f"planted bug not detected: min p = {p_bad.min():.3g}"


# --------------------------------------------------------------------------------------------
# parametrization conversions
# --------------------------------------------------------------------------------------------


def test_conversions_round_trip_scalar_and_per_row_coefficients():
    rng = np.random.default_rng(5)
    n, d = 50, 3
    x, p1, p2 = (rng.standard_normal((n, d)) for _ in range(3))
    coefs = [(0.8, 0.6), (1.0, 2.5), (0.3, 0.2),
             (rng.uniform(0.05, 1.0, n), rng.uniform(0.05, 2.0, n)),
             (rng.uniform(0.05, 1.0, (n, 1)), rng.uniform(0.05, 2.0, (n, 1)))]
    for a, s in coefs:
        tol = 1e-12 * 50  # inputs O(1); coefficients >= 0.05 make errors at most ~20x rounding
        # direct pairs
        assert np.max(np.abs(pz.score_from_eps(pz.eps_from_score(p1, s), s) - p1)) < tol
        assert np.max(np.abs(pz.score_from_x0(x, pz.x0_from_score(x, p1, a, s), a, s) - p1)) < tol
        assert np.max(np.abs(pz.x0_from_eps(x, pz.eps_from_x0(x, p1, a, s), a, s) - p1)) < tol
        assert np.max(np.abs(pz.eps_from_x0(x, pz.x0_from_eps(x, p1, a, s), a, s) - p1)) < tol
        assert np.max(np.abs(pz.x0_from_v(x, pz.v_from_x0(x, p1, a, s), a, s) - p1)) < tol
        assert np.max(np.abs(pz.eps_from_v(x, pz.v_from_eps(x, p1, a, s), a, s) - p1)) < tol
        assert np.max(np.abs(pz.score_from_v(x, pz.v_from_score(x, p1, a, s), a, s) - p1)) < tol
        assert np.max(np.abs(pz.score_from_edm_denoiser(x, pz.edm_denoiser_from_score(x, p1, s), s) - p1)) < tol
        # v from the pair (eps, x0) consistent with x = alpha x0 + sigma eps
        eps = p2
        a_col, s_col = (np.reshape(c, (-1, 1)) if np.ndim(c) else c for c in (a, s))
        x_pair = a_col * p1 + s_col * eps
        v = pz.v_from_eps_x0(eps, p1, a, s)
        assert np.max(np.abs(pz.x0_from_v(x_pair, v, a, s) - p1)) < tol
        assert np.max(np.abs(pz.eps_from_v(x_pair, v, a, s) - eps)) < tol
        assert np.max(np.abs(pz.v_from_eps(x_pair, eps, a, s) - v)) < tol
        assert np.max(np.abs(pz.v_from_x0(x_pair, p1, a, s) - v)) < tol
        # the dispatcher: every pair of parametrizations round-trips
        for src, tgt in itertools.product(pz.PARAMETRIZATIONS, repeat=2):
            back = pz.convert(pz.convert(p1, src, tgt, x, a, s), tgt, src, x, a, s)
            assert np.max(np.abs(back - p1)) < tol, (src, tgt)
    # single points (d,)
    assert pz.x0_from_score(x[0], p1[0], 0.8, 0.6).shape == (d,)


@pytest.mark.parametrize(("d", "alpha", "sigma"), [(2, 0.8, 0.6), (4, 1.0, 2.5), (2, 0.3, 0.2), (1, 0.05, 0.9)])
def test_conversions_agree_with_fixture_targets(d, alpha, sigma):
    mm = FIXTURES[d]
    x = probe_points(mm, alpha, sigma)
    preds = {"score": mm.score(x, alpha, sigma), "eps": mm.eps_target(x, alpha, sigma),
             "x0": mm.denoiser(x, alpha, sigma), "v": mm.v_target(x, alpha, sigma)}
    scale = max(1.0, float(np.max(np.abs(x))), *(float(np.max(np.abs(p))) for p in preds.values()))
    tol = 1e-12 * scale / min(alpha, sigma)
    for src, tgt in itertools.product(pz.PARAMETRIZATIONS, repeat=2):
        got = pz.convert(preds[src], src, tgt, x, alpha, sigma)
        assert np.max(np.abs(got - preds[tgt])) < tol, (src, tgt, float(np.max(np.abs(got - preds[tgt]))))
    # off VP the general v inverse is needed: the VP shortcut alpha x - sigma v is wrong there
    if abs(alpha**2 + sigma**2 - 1) > 0.1:
        assert np.max(np.abs(alpha * x - sigma * preds["v"] - preds["x0"])) > 0.1


@pytest.mark.parametrize(("alpha", "sigma"), [(0.8, 0.6), (0.05, 0.9987), (1.0, 0.3)])
def test_edm_denoiser_convention(alpha, sigma):
    """E[x_0 | x_t = x] = D(x / alpha; sigma / alpha) with D the alpha = 1 (VE) denoiser (Karras et al. 2022)."""
    mm = FIXTURES[2]
    x = probe_points(mm, alpha, sigma)
    s_edm, sig_edm = pz.edm_scaling(alpha, sigma)
    assert s_edm == alpha and sig_edm == pytest.approx(sigma / alpha, rel=1e-15)
    den = mm.denoiser(x, alpha, sigma)
    d_edm = pz.edm_denoiser_from_score(x / s_edm, mm.score(x / s_edm, 1.0, sig_edm), sig_edm)
    np.testing.assert_allclose(d_edm, den, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(mm.denoiser(x / s_edm, 1.0, sig_edm), den, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(mm.score(x / alpha, 1.0, sig_edm) / alpha, mm.score(x, alpha, sigma), rtol=1e-11,
                               atol=1e-11 / min_std(mm, alpha, sigma))


# --------------------------------------------------------------------------------------------
# njit against NumPy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "alpha", "sigma"), CASES, ids=CASE_IDS)
def test_njit_functions_agree_with_numpy(d, alpha, sigma):
    mm = FIXTURES[d]
    x = probe_points(mm, alpha, sigma)
    std = min_std(mm, alpha, sigma)
    p = mm.params
    s = mm.score(x, alpha, sigma)
    np.testing.assert_allclose(mixture_marginal_score(x, alpha, sigma, p), s, rtol=1e-12,
                               atol=1e-12 * (np.max(np.abs(s)) + 1 / std))
    lp = mm.log_prob(x, alpha, sigma)
    np.testing.assert_allclose(mixture_marginal_log_prob(x, alpha, sigma, p), lp, rtol=1e-12,
                               atol=1e-12 * np.max(np.abs(lp)))
    lap = mm.laplacian_log_prob(x, alpha, sigma)
    np.testing.assert_allclose(mixture_marginal_laplacian(x, alpha, sigma, p), lap, rtol=1e-12,
                               atol=1e-12 * (np.max(np.abs(lap)) + d / std**2))
    assert mm.score_fn is mixture_marginal_score and mm.log_prob_fn is mixture_marginal_log_prob
    assert mm.laplacian_fn is mixture_marginal_laplacian


def test_njit_far_from_the_modes_stays_finite():
    """Responsibilities by log-sum-exp: points 1e3 standard deviations out give finite, matching results."""
    mm = FIXTURES[2]
    x = np.array([[1e3, -2e3], [-5e2, 0.0], [0.0, 7e2]])
    for alpha, sigma in [(1.0, 0.01), (0.8, 0.6)]:
        s = mixture_marginal_score(x, alpha, sigma, mm.params)
        lap = mixture_marginal_laplacian(x, alpha, sigma, mm.params)
        lp = mixture_marginal_log_prob(x, alpha, sigma, mm.params)
        assert np.all(np.isfinite(s)) and np.all(np.isfinite(lap)) and np.all(np.isfinite(lp))
        np.testing.assert_allclose(s, mm.score(x, alpha, sigma), rtol=1e-12)
        np.testing.assert_allclose(lp, mm.log_prob(x, alpha, sigma), rtol=1e-12)
        np.testing.assert_allclose(lap, mm.laplacian_log_prob(x, alpha, sigma), rtol=1e-10)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["log_prob", "score", "laplacian_log_prob", "hessian_log_prob", "denoiser",
                                    "eps_target", "v_target", "responsibilities"])
def test_fixture_bad_input_names_the_argument(method):
    mm = FIXTURES[2]
    f = getattr(mm, method)
    x = np.zeros((3, 2))
    with pytest.raises(SDEKitError, match=r"^sigma must be >= 0"):
        f(x, 0.8, -0.1)
    for bad_alpha in (0.0, -1.0):
        with pytest.raises(SDEKitError, match=r"^alpha must be > 0"):
            f(x, bad_alpha, 0.5)
    with pytest.raises(SDEKitError, match=r"^alpha must be finite"):
        f(x, float("nan"), 0.5)
    with pytest.raises(SDEKitError, match=r"^sigma must be a real number"):
        f(x, 0.8, np.ones(3))
    for bad_x in (np.zeros((3, 3)), np.zeros(3), np.zeros((2, 3, 2))):
        with pytest.raises(SDEKitError, match=r"^x must have shape \(2,\) or \(n, 2\)"):
            f(bad_x, 0.8, 0.5)


def test_constructor_and_sampler_bad_input():
    with pytest.raises(SDEKitError, match=r"^covs is required"):
        MixtureMarginals([0.5, 0.5], [[0.0], [1.0]])
    with pytest.raises(SDEKitError, match=r"^means and covs must be omitted"):
        MixtureMarginals(FIXTURES[1].data, means=[[0.0]])
    with pytest.raises(SDEKitError, match=r"covs\[1\]"):
        MixtureMarginals([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[-1.0]]])
    with pytest.raises(SDEKitError, match=r"^sigma"):
        FIXTURES[1].sample(10, 1.0, -1.0)
    with pytest.raises(SDEKitError, match=r"^alpha"):
        FIXTURES[1].marginal(0.0, 1.0)
    with pytest.raises(SDEKitError, match=r"^n must be"):
        FIXTURES[1].sample(-1, 1.0, 1.0)
    with pytest.raises(SDEKitError, match=r"singular"):
        FIXTURES[1].log_prob(0.0, 1e-200, 0.0)
    m = MixtureMarginals([0.5, 0.5], [0.0, 1.0], [1.0, 2.0])  # 1-D shorthand
    assert m.dim == 1 and isinstance(m.log_prob(0.3, 1.0, 0.5), float)


def test_conversion_bad_input_names_the_argument():
    x = np.zeros((4, 2))
    y = np.ones((4, 2))
    with pytest.raises(SDEKitError, match=r"^sigma must be > 0"):
        pz.score_from_eps(y, 0.0)
    with pytest.raises(SDEKitError, match=r"^sigma must be >= 0"):
        pz.eps_from_score(y, -0.5)
    with pytest.raises(SDEKitError, match=r"^alpha must be > 0"):
        pz.x0_from_score(x, y, 0.0, 0.5)
    with pytest.raises(SDEKitError, match=r"^alpha must be > 0"):
        pz.x0_from_v(x, y, -1.0, 0.5)
    with pytest.raises(SDEKitError, match=r"^score must have the shape of x"):
        pz.x0_from_score(x, np.ones((4, 3)), 1.0, 0.5)
    with pytest.raises(SDEKitError, match=r"^v must have shape"):
        pz.x0_from_v(x, np.ones((4, 2, 1)), 1.0, 0.5)
    with pytest.raises(SDEKitError, match=r"^alpha must be a scalar or shape \(4,\)"):
        pz.x0_from_eps(x, y, np.ones(3), 0.5)
    with pytest.raises(SDEKitError, match=r"^sigma must be finite"):
        pz.eps_from_x0(x, y, 1.0, np.array([0.5, np.inf, 0.5, 0.5]))
    with pytest.raises(SDEKitError, match=r"^target must be one of"):
        pz.convert(y, "score", "noise", x, 1.0, 0.5)
    with pytest.raises(SDEKitError, match=r"^alpha must be finite and > 0"):
        pz.edm_scaling(0.0, 1.0)
