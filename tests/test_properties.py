"""Property-based suite over the built-ins (hypothesis, derandomized, no shrinking).

Random but bounded problems (d <= 4, weights >= 0.1, covariance eigenvalues in [0.2, 2], step
sizes a fraction of the stability limit) and the seed drawn as data. Each example runs
batteries at alpha = 1e-6; with ~10 examples per property the whole file spends < 1e-4 of
false-alarm budget (printed at the end of the run). Planted bugs (noise off by sqrt(2), drift
sign flipped) fail the same properties: see test_properties_catch_planted_bugs.
"""

import math

import numba as nb
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import sdekit
from sdekit.processes import OrnsteinUhlenbeck, overdamped_langevin
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.testing import (
    STATISTICAL,
    StatisticalAssertionError,
    assert_law,
    assert_moment_evolution,
    assert_order,
    assert_stationary,
    gaussian_mixtures,
    gaussian_targets,
    ou_parameters,
    seeds,
    stable_step,
    step_fractions,
)
from sdekit.validate.fokker_planck import fokker_planck_chi2_test
from sdekit.validate.order import fit_order, gbm_problem, strong_errors
from sdekit.validate.power import gaussian_score_flipped, langevin_noise, langevin_noise_half
from sdekit.validate.stationarity import ula_law

N = 5000


@STATISTICAL
@given(target=gaussian_targets(max_dim=3), frac=step_fractions(), seed=seeds())
def test_ula_on_random_gaussians_ends_in_its_exact_law(target, frac, seed):
    """K = 20 ULA steps from pi at h = frac * 2 lambda_min: X_K ~ N(mu, S_K) exactly (bias-aware)."""
    h = stable_step(target, frac)
    report = assert_stationary(overdamped_langevin(target.dim, target=target), target, h=h, steps=20, n_paths=N,
                               seed=seed, scheme_law=ula_law(target, h, 20), allow_bias=True)
    assert report.against_scheme.passed


@STATISTICAL
@given(target=gaussian_mixtures(max_dim=3), seed=seeds())
def test_langevin_on_random_mixtures_is_stationary_at_small_steps(target, seed):
    """SRA1 (weak order 2), h = 2e-3 x 2 lambda_min, 25 steps from pi: bias far below resolution at N = 5000,
    so the full battery (marginals, projections, moments, Stein) must pass."""
    h = stable_step(target, 2e-3)
    assert_stationary(overdamped_langevin(target.dim, target=target), target, h=h, steps=25, n_paths=N, seed=seed,
                      solver="sra1")


@STATISTICAL
@given(ab=ou_parameters(max_dim=3), seed=seeds())
def test_euler_maruyama_on_random_ou_has_its_exact_law(ab, seed):
    """EM on dX = -A X dt + B dW from a fixed x0: the law after K steps is N(M^K x0, sum M^j hQ M^jT), exactly."""
    a, b = ab
    ou = OrnsteinUhlenbeck(a, b)
    d = ou.dim
    h = 0.5 / float(np.abs(np.linalg.eigvals(a)).max())
    x0 = np.linspace(1.0, -1.0, d)
    mean, cov = ou.euler_maruyama_law(x0, np.zeros((d, d)), h, 30)
    sol = sdekit.simulate(ou.sde, x0, (0.0, 30 * h), steps=30, n_paths=N, seed=seed)
    assert_law(sol.final, Gaussian(mean, cov), tests=("ks", "cvm", "moments"), name="EM on OU")


@STATISTICAL
@given(ab=ou_parameters(max_dim=2), seed=seeds())
def test_ou_transition_law_is_reached_by_sra1(ab, seed):
    """SRA1 at h = 0.01 / |lambda|_max over t = 1 vs the exact Van Loan transition law (weak error O(h^2),
    far below resolution)."""
    a, b = ab
    ou = OrnsteinUhlenbeck(a, b)
    x0 = np.full(ou.dim, 1.5)
    steps = int(math.ceil(100 * float(np.abs(np.linalg.eigvals(a)).max())))
    mean, cov = ou.transition(x0, 1.0)
    sol = sdekit.simulate(ou.sde, x0, (0.0, 1.0), steps=steps, n_paths=N, seed=seed, solver="sra1")
    assert_law(sol.final, Gaussian(mean, cov), tests=("ks", "cvm", "moments"), name="SRA1 on OU")


@pytest.mark.parametrize("bug", ["noise/sqrt2", "sign"])
@settings(STATISTICAL, max_examples=4)
@given(target=gaussian_targets(min_dim=1, max_dim=3), frac=step_fractions(0.1, 0.5), seed=seeds())
@example(target=Gaussian([0.0], [[1.0]]), frac=0.1, seed=0)
def test_properties_catch_planted_bugs(bug, target, frac, seed):
    """The ULA stationarity property rejects a sampler with noise off by sqrt(2) or a flipped drift sign,
    on every drawn target (p far below 1e-6: the bug moves the law by many standard errors)."""
    h = stable_step(target, frac)
    # the power table's planted bugs (sdekit.validate.power; the same functions, so their kernels compile once per
    # test run): Langevin noise sqrt(h) instead of sqrt(2h), or the drift +Sigma^{-1}(x - mu) with sqrt(2) noise
    if bug == "noise/sqrt2":
        buggy = sdekit.SDE(target.score_fn, langevin_noise_half, dim=target.dim, noise="additive", params=target.params)
    else:
        buggy = sdekit.SDE(gaussian_score_flipped, langevin_noise, dim=target.dim, noise="additive",
                           params=target.params)
    with pytest.raises(StatisticalAssertionError):
        assert_stationary(buggy, target, h=h, steps=20, n_paths=N, seed=seed, scheme_law=ula_law(target, h, 20),
                          allow_bias=True)


def test_strategies_respect_their_bounds():
    """Drawn mixtures have weights >= 0.1 and eigenvalues in [0.2, 2]; OU matrices have Re lambda(A) > 0."""
    from hypothesis import find

    mix = find(gaussian_mixtures(max_dim=4), lambda m: m.dim == 4 and m.n_components == 3,
               settings=settings(database=None, max_examples=200))
    assert isinstance(mix, GaussianMixture) and np.all(mix.weights >= 0.1 - 1e-12)
    eig = np.concatenate([np.linalg.eigvalsh(c) for c in mix.covs])
    assert eig.min() >= 0.2 - 1e-9 and eig.max() <= 2.0 + 1e-9
    a, b = find(ou_parameters(max_dim=3), lambda ab: ab[0].shape[0] == 3, settings=settings(database=None))
    assert np.linalg.eigvals(a).real.min() >= 0.3 - 1e-9 and np.linalg.matrix_rank(b @ b.T) == 3


@STATISTICAL
@given(ab=ou_parameters(max_dim=2), seed=seeds())
def test_fokker_planck_moment_evolution_on_random_ou(ab, seed):
    """Dynkin's formula E[phi(X_T) - phi(X_0) - int L phi(X_s) ds] = 0 along EM paths (200 steps to t = 1),
    for x_i, x_i x_j, cos and sin, on random OU parameters (`assert_moment_evolution`)."""
    a, b = ab
    ou = OrnsteinUhlenbeck(a, b)
    steps = int(math.ceil(200 * max(1.0, float(np.abs(np.linalg.eigvals(a)).max()))))
    assert_moment_evolution(ou.sde, np.full(ou.dim, 0.8), (0.0, 1.0), steps=steps, n_paths=N, seed=seed)


@nb.njit
def _well_drift(x, t, p):
    """b(x) = a (x - x^3)."""
    return p[0] * (x - x * x * x)


@nb.njit
def _well_diffusion(x, t, p):
    """sigma(x) = sqrt(c + x^2 / 4)."""
    return np.sqrt(p[1] + 0.25 * x * x)


WELL = sdekit.SDE(_well_drift, _well_diffusion, dim=1, params=[1.0, 0.5], name="double_well")


@settings(STATISTICAL, max_examples=5)
@given(a=st.floats(0.5, 2.0), c=st.floats(0.2, 1.0), x0=st.floats(-1.5, 1.5), seed=seeds())
def test_double_well_matches_the_fokker_planck_reference(a, c, x0, seed):
    """Random double wells dX = a (X - X^3) dt + sqrt(c + X^2/4) dW from x0: EM (h = 1/500) at t = 1
    against the Chang–Cooper reference law (histogram chi-square, grid error non-centrality <= 0.5)."""
    sde = WELL.with_params([a, c])
    x = sdekit.simulate(sde, x0, (0.0, 1.0), steps=500, n_paths=10_000, seed=seed).final[:, 0]
    res = fokker_planck_chi2_test(x, sde, x0, (0.0, 1.0), -4.0, 4.0, cells=300, time_steps=200)
    assert res.passed, res


def test_double_well_property_catches_a_sqrt2_noise_bug():
    """The same property with sigma scaled by sqrt(2) in the sampler only (reference unchanged) fails."""
    x = sdekit.simulate(WELL.with_params([1.0, 1.0]), 0.5, (0.0, 1.0), steps=500, n_paths=10_000, seed=3).final[:, 0]
    buggy = sdekit.simulate(
        sdekit.SDE(_well_drift, lambda x, t, p: 2**0.5 * np.sqrt(p[1] + 0.25 * x * x), dim=1, params=[1.0, 1.0]),
        0.5, (0.0, 1.0), steps=500, n_paths=10_000, seed=3, backend="numpy").final[:, 0]
    ref = WELL.with_params([1.0, 1.0])
    assert fokker_planck_chi2_test(x, ref, 0.5, (0.0, 1.0), -4.0, 4.0, cells=300, time_steps=200).passed
    assert not fokker_planck_chi2_test(buggy, ref, 0.5, (0.0, 1.0), -4.0, 4.0, cells=300, time_steps=200).passed


def test_assert_order_gate():
    """assert_order passes EM's fitted strong order 0.5 on GBM and rejects a claimed order 1."""
    gbm = gbm_problem(0.5, 1.0, "ito")
    hs, sq = strong_errors(gbm.sde, "euler_maruyama", 1.0, 1.0, gbm.exact_at(1.0), 8, 6, 4000, 11)
    fit = fit_order(hs, sq)
    assert_order(fit, 0.5)
    with pytest.raises(StatisticalAssertionError, match="outside"):
        assert_order(fit, 1.0)
