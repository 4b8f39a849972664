"""Tests of sdekit.targets: densities against SciPy, scores against finite differences, njit use
inside other kernels and as an SDE drift, statistical checks of sample(), and input validation.

Statistical tests: the file runs N_STAT_TESTS hypothesis tests on fixed-seed samples; each uses
level ALPHA = 1e-6 / N_STAT_TESTS, so by Bonferroni the chance that a correct sampler fails any of
them (over the seed) is at most 1e-6. Each is shown able to fail on a planted bug (sample * 1.414).
"""

from __future__ import annotations

import re

import numba as nb
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats as st

import sdekit
from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.gaussian import gaussian_log_prob, gaussian_score
from sdekit.targets.mixture import mixture_log_prob, mixture_score

DIMS = (1, 2, 4)
COMPONENTS = (1, 3)


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    """A well-conditioned random SPD matrix."""
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


def make_gaussian(d: int, seed: int = 0) -> Gaussian:
    rng = np.random.default_rng(seed)
    return Gaussian(rng.normal(scale=2.0, size=d), random_spd(rng, d))


def make_mixture(d: int, n_comp: int, seed: int = 0) -> GaussianMixture:
    rng = np.random.default_rng(100 + seed)
    weights = rng.dirichlet(np.full(n_comp, 3.0))
    means = rng.normal(scale=2.0, size=(n_comp, d))
    covs = np.stack([random_spd(rng, d) for _ in range(n_comp)])
    return GaussianMixture(weights, means, covs)


def points_for(target, n: int = 20, seed: int = 7) -> np.ndarray:
    """Points from the target, half of them pushed out to the tails."""
    x = target.sample(n, seed)
    x[n // 2:] = target.mean + 3.0 * (x[n // 2:] - target.mean)
    return x




def scipy_mixture_log_prob(m: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """log sum_k pi_k N(x; mu_k, S_k) with SciPy's densities and log-sum-exp."""
    comps = np.stack([np.log(w) + st.multivariate_normal(mu, c).logpdf(x).reshape(-1)
                      for w, mu, c in zip(m.weights, m.means, m.covs, strict=True)])
    return scipy.special.logsumexp(comps, axis=0)


ALL_TARGETS = [pytest.param(("g", d, 0), id=f"gauss-d{d}") for d in DIMS] + [
    pytest.param(("m", d, k), id=f"mix-d{d}-K{k}") for d in DIMS for k in COMPONENTS]


def build(spec) -> Gaussian | GaussianMixture:
    kind, d, k = spec
    return make_gaussian(d) if kind == "g" else make_mixture(d, k)


# ------------------------------------------------------------------------------------------
# densities and scores
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("d", DIMS)
def test_gaussian_log_prob_matches_scipy(d):
    g = make_gaussian(d)
    x = points_for(g)
    ref = st.multivariate_normal(g.mean, g.cov).logpdf(x)
    np.testing.assert_allclose(g.log_prob(x), ref, rtol=1e-12, atol=0)
    assert g.log_prob(x[0]) == pytest.approx(ref[0], rel=1e-12)


@pytest.mark.parametrize("k", COMPONENTS)
@pytest.mark.parametrize("d", DIMS)
def test_mixture_log_prob_matches_scipy(d, k):
    m = make_mixture(d, k)
    x = points_for(m)
    np.testing.assert_allclose(m.log_prob(x), scipy_mixture_log_prob(m, x), rtol=1e-12, atol=0)


def test_mixture_log_prob_far_from_modes_is_stable():
    """Far out every component density underflows; the log-sum-exp must not."""
    m = make_mixture(2, 3)
    x = np.array([[60.0, -80.0], [-300.0, 200.0]])
    lp, s = m.log_prob(x), m.score(x)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(s))
    np.testing.assert_allclose(lp, scipy_mixture_log_prob(m, x), rtol=1e-12)


@pytest.mark.parametrize("spec", ALL_TARGETS)
def test_score_matches_finite_differences(spec):
    target = build(spec)
    x = points_for(target, n=8, seed=3)
    h = 1e-5
    fd = np.empty_like(x)
    for i in range(target.dim):
        e = np.zeros(target.dim)
        e[i] = h
        fd[:, i] = (target.log_prob(x + e) - target.log_prob(x - e)) / (2 * h)
    np.testing.assert_allclose(target.score(x), fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("spec", ALL_TARGETS)
def test_float32_input_and_single_points(spec):
    target = build(spec)
    x32 = points_for(target).astype(np.float32)
    x64 = x32.astype(np.float64)
    np.testing.assert_allclose(target.log_prob(x32), target.log_prob(x64), rtol=1e-14)
    np.testing.assert_allclose(target.score(x32), target.score(x64), rtol=1e-14)
    assert target.score(x32).dtype == np.float64
    assert target.score(x64[0]).shape == (target.dim,)
    assert isinstance(target.log_prob(x64[0]), float)


def test_gaussian_score_is_linear():
    g = make_gaussian(3)
    x = points_for(g)
    np.testing.assert_allclose(g.score(x), -(x - g.mean) @ np.linalg.inv(g.cov).T, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# njit functions inside other njit code
# ------------------------------------------------------------------------------------------

@nb.njit
def chunked_call(fn, x, t, p, chunk):
    """What a kernel does: call fn on chunks of rows and copy each result out."""
    n, d = x.shape
    out = np.empty((n, d))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        r = fn(x[start:stop], t, p)
        for b in range(stop - start):
            for i in range(d):
                out[start + b, i] = r[b, i]
    return out


@nb.njit
def summed_log_prob(fn, x, t, p):
    return np.sum(fn(x, t, p))


@pytest.mark.parametrize("spec", [("g", 2, 0), ("m", 2, 3), ("m", 1, 3)], ids=["gauss", "mix", "mix-1d"])
def test_njit_functions_inside_njit(spec):
    target = build(spec)
    x = points_for(target, n=23)
    got = chunked_call(target.score_fn, x, 0.25, target.params, 5)
    np.testing.assert_allclose(got, target.score(x), rtol=1e-15, atol=0)
    total = summed_log_prob(target.log_prob_fn, x.astype(np.float32), 0.0, target.params)
    assert total == pytest.approx(np.sum(target.log_prob(x.astype(np.float32))), rel=1e-14)
    # float32 parameters (what a float32 solve passes) also work
    p32 = tuple(a.astype(np.float32) for a in target.params)
    got32 = chunked_call(target.score_fn, x.astype(np.float32), 0.0, p32, 7)
    np.testing.assert_allclose(got32, target.score(x), rtol=1e-3, atol=1e-3)


def test_njit_functions_are_module_level_dispatchers():
    g, m = make_gaussian(2), make_mixture(2, 3)
    assert g.score_fn is gaussian_score and g.log_prob_fn is gaussian_log_prob
    assert m.score_fn is mixture_score and m.log_prob_fn is mixture_log_prob
    assert isinstance(m.score_fn, nb.core.registry.CPUDispatcher)
    # new parameter values reuse the compiled code
    m.score(np.zeros((2, 2)))
    n_sigs = len(mixture_score.signatures)
    make_mixture(2, 3, seed=5).score(np.ones((3, 2)))
    assert len(mixture_score.signatures) == n_sigs


# ------------------------------------------------------------------------------------------
# moments, projections, 1-D CDFs
# ------------------------------------------------------------------------------------------

def test_mixture_moments_match_the_formula():
    m = make_mixture(3, 3)
    mu = np.einsum("k,ki->i", m.weights, m.means)
    second = sum(w * (c + np.outer(mk, mk)) for w, mk, c in zip(m.weights, m.means, m.covs, strict=True))
    np.testing.assert_allclose(m.mean, mu, rtol=1e-14)
    np.testing.assert_allclose(m.cov, second - np.outer(mu, mu), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", [("g", 3, 0), ("m", 3, 3)], ids=["gauss", "mix"])
def test_project_gives_the_law_of_u_dot_x(spec):
    target = build(spec)
    u = np.array([0.3, -1.2, 0.5])
    proj = target.project(u)
    assert type(proj) is type(target) and proj.dim == 1
    assert proj.mean[0] == pytest.approx(u @ target.mean, rel=1e-13)
    assert proj.cov[0, 0] == pytest.approx(u @ target.cov @ u, rel=1e-12)
    # its density is the derivative of its CDF
    z = np.linspace(-4, 4, 9) * np.sqrt(proj.cov[0, 0]) + proj.mean[0]
    h = 1e-5
    fd = (proj.cdf_1d(z + h) - proj.cdf_1d(z - h)) / (2 * h)
    np.testing.assert_allclose(fd, np.exp(proj.log_prob(z[:, None])), rtol=1e-6, atol=1e-10)


def test_cdf_1d_values():
    g = Gaussian(1.5, 4.0)
    z = np.array([-3.0, 0.0, 1.5, 7.0])
    np.testing.assert_allclose(g.cdf_1d(z), st.norm(1.5, 2.0).cdf(z), rtol=1e-14)
    m = GaussianMixture([0.25, 0.75], [-1.0, 2.0], [0.5, 2.0])
    for zi in (-2.0, 0.3, 4.0):
        integral, _ = scipy.integrate.quad(lambda s: np.exp(m.log_prob(s)), -np.inf, zi, epsabs=1e-13)
        assert m.cdf_1d(zi) == pytest.approx(integral, abs=1e-9)
    with pytest.raises(SDEKitError, match="cdf_1d"):
        make_mixture(2, 3).cdf_1d(0.0)


# ------------------------------------------------------------------------------------------
# sample(): statistical tests with a stated false-alarm rate
# ------------------------------------------------------------------------------------------

N_SAMPLE = 20_000
STAT_TARGETS = {
    "gauss-d3": lambda: Gaussian([1.0, -2.0, 0.5], [[2.0, 0.3, 0.0], [0.3, 1.0, -0.4], [0.0, -0.4, 1.5]]),
    "mix-d2-K3": lambda: GaussianMixture(
        [0.2, 0.5, 0.3], [[-2.0, 0.0], [1.0, 2.0], [3.0, -1.0]],
        [[[1.0, 0.2], [0.2, 0.5]], [[0.6, -0.1], [-0.1, 0.8]], np.eye(2) * 0.3]),
    "mix-d1-K2": lambda: GaussianMixture([0.4, 0.6], [-1.0, 2.5], [0.3, 1.2]),
}
N_STAT_TESTS = 2 * len(STAT_TARGETS)  # a mean chi-square test and a KS test per target
ALPHA = 1e-6 / N_STAT_TESTS  # Bonferroni: family-wise false-alarm rate <= 1e-6
PLANTED_SCALE = 1.414  # the planted bug: samples scaled by ~sqrt(2)


def mean_chi2(x: np.ndarray, target) -> float:
    """T = N (xbar - mu)^T Sigma^{-1} (xbar - mu) ~ chi2_d (exact for a Gaussian, by the CLT for a mixture)."""
    r = x.mean(axis=0) - target.mean
    return float(x.shape[0] * r @ np.linalg.solve(target.cov, r))


def ks_pvalue(x: np.ndarray, target, u: np.ndarray) -> float:
    """KS p-value of u^T x against the exact law of u^T X."""
    return float(st.kstest(x @ u, target.project(u).cdf_1d).pvalue)


@pytest.mark.parametrize("name", sorted(STAT_TARGETS))
def test_sample_mean_chi2(name):
    target = STAT_TARGETS[name]()
    x = target.sample(N_SAMPLE, seed=12345)
    assert x.shape == (N_SAMPLE, target.dim) and x.dtype == np.float64
    threshold = st.chi2.isf(ALPHA, target.dim)
    assert mean_chi2(x, target) < threshold
    assert mean_chi2(PLANTED_SCALE * x, target) > threshold  # the test can fail


@pytest.mark.parametrize("name", sorted(STAT_TARGETS))
def test_sample_projection_ks(name):
    target = STAT_TARGETS[name]()
    x = target.sample(N_SAMPLE, seed=54321)
    u = np.random.default_rng(9).standard_normal(target.dim)
    assert ks_pvalue(x, target, u) > ALPHA
    assert ks_pvalue(PLANTED_SCALE * x, target, u) < ALPHA  # the test can fail


def test_sample_is_reproducible_and_shuffled():
    m = STAT_TARGETS["mix-d1-K2"]()
    a, b = m.sample(1000, seed=3), m.sample(1000, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, m.sample(1000, seed=4))
    # rows are not grouped by component: the first rows hold both modes
    assert np.any(a[:50, 0] < 0.5) and np.any(a[:50, 0] > 0.5)
    assert m.sample(0, seed=1).shape == (0, 1)


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------

def raises_naming(arg: str):
    return pytest.raises(SDEKitError, match=rf"(^|\W){re.escape(arg)}($|\W)")


def test_gaussian_bad_inputs():
    with raises_naming("cov"):
        Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])  # indefinite
    with raises_naming("cov"):
        Gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])  # not symmetric
    with raises_naming("cov"):
        Gaussian([0.0, 0.0], np.eye(3))  # shape mismatch
    with raises_naming("cov"):
        Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 0.0]])  # singular
    with raises_naming("mean"):
        Gaussian([0.0, np.nan], np.eye(2))
    with raises_naming("mean"):
        Gaussian(np.nan, 1.0)  # a 0-d NaN too
    with raises_naming("mean"):
        Gaussian(np.zeros((2, 2)), np.eye(2))
    g = Gaussian([0.0, 0.0], np.eye(2))
    with raises_naming("x"):
        g.log_prob(np.zeros((4, 3)))
    with raises_naming("u"):
        g.project([1.0, 0.0, 0.0])
    with raises_naming("u"):
        g.project([0.0, 0.0])
    with raises_naming("n"):
        g.sample(-1)


def test_mixture_bad_inputs():
    means, covs = np.zeros((2, 2)), np.stack([np.eye(2)] * 2)
    with raises_naming("weights"):
        GaussianMixture([0.5, 0.4], means, covs)  # sum 0.9
    with raises_naming("weights"):
        GaussianMixture([1.5, -0.5], means, covs)  # negative
    with raises_naming("weights"):
        GaussianMixture([1.0, 0.0], means, covs)  # zero
    with raises_naming("means"):
        GaussianMixture([0.5, 0.5], np.zeros((3, 2)), covs)  # K mismatch
    with raises_naming("covs"):
        GaussianMixture([0.5, 0.5], means, np.stack([np.eye(3)] * 2))  # d mismatch
    bad = covs.copy()
    bad[1] = [[1.0, 2.0], [2.0, 1.0]]
    with raises_naming("covs[1]"):
        GaussianMixture([0.5, 0.5], means, bad)  # not positive definite
    with raises_naming("covs"):
        GaussianMixture([0.5, 0.5], means, np.full((2, 2, 2), np.inf))


def test_mixture_weights_are_renormalised():
    m = GaussianMixture([0.5, 0.5 + 5e-10], [0.0, 1.0], [1.0, 1.0])
    assert abs(m.weights.sum() - 1.0) <= 1e-15
    assert m.weights[1] > m.weights[0]
    np.testing.assert_allclose(np.exp(m.params[0]), m.weights, rtol=1e-15)


# ------------------------------------------------------------------------------------------
# score as a drift inside sdekit's kernels
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_langevin_on_mixture_runs_through_sdekit(dtype):
    target = STAT_TARGETS["mix-d2-K3"]()
    n = 2000
    sde = sdekit.SDE(drift=target.score_fn, diffusion=lambda x, t, p: 2**0.5, noise="additive",
                     dim=target.dim, params=target.params)
    x0 = target.sample(n, seed=11)
    sol = sdekit.simulate(sde, x0=x0, t=(0, 0.5), steps=50, n_paths=n, seed=1, dtype=dtype)
    y = np.asarray(sol.ys[-1], dtype=np.float64)
    assert y.shape == (n, target.dim) and np.all(np.isfinite(y))
    assert not np.allclose(y, x0)
    # Langevin started at the target stays near it (loose: Euler bias O(dt) and sampling error O(1/sqrt(n)))
    assert np.all(np.abs(y.mean(axis=0) - target.mean) < 0.25)
    np.testing.assert_allclose(y.std(axis=0), np.sqrt(np.diag(target.cov)), rtol=0.1)
