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

import sdekit
from sdekit.processes import OrnsteinUhlenbeck, overdamped_langevin
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.targets.gaussian import gaussian_score
from sdekit.testing import (
    STATISTICAL,
    StatisticalAssertionError,
    assert_law,
    assert_stationary,
    gaussian_mixtures,
    gaussian_targets,
    ou_parameters,
    seeds,
    stable_step,
    step_fractions,
)
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


@nb.njit
def _noise_sqrt1(x, t, p):
    """Planted bug: Langevin noise sqrt(h) instead of sqrt(2h)."""
    return 1.0


@nb.njit
def _flipped_gaussian_score(x, t, p):
    """Planted bug: drift +Sigma^{-1}(x - mu) (sign flipped)."""
    return -1.0 * gaussian_score(x, t, p)


@pytest.mark.parametrize("bug", ["noise/sqrt2", "sign"])
@settings(STATISTICAL, max_examples=4)
@given(target=gaussian_targets(min_dim=1, max_dim=3), frac=step_fractions(0.1, 0.5), seed=seeds())
@example(target=Gaussian([0.0], [[1.0]]), frac=0.1, seed=0)
def test_properties_catch_planted_bugs(bug, target, frac, seed):
    """The ULA stationarity property rejects a sampler with noise off by sqrt(2) or a flipped drift sign,
    on every drawn target (p far below 1e-6: the bug moves the law by many standard errors)."""
    h = stable_step(target, frac)
    sde = overdamped_langevin(target.dim, target=target)
    if bug == "noise/sqrt2":
        buggy = sdekit.SDE(target.score_fn, _noise_sqrt1, dim=target.dim, noise="additive", params=target.params)
    else:
        buggy = sdekit.SDE(_flipped_gaussian_score, sde.diffusion, dim=target.dim, noise="additive",
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
