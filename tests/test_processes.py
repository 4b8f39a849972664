"""Built-in processes against their closed forms, with hypothesis over OU parameters and step sizes.

Every statistical assertion is a battery at overall false-alarm rate 1e-6 (KS on whitened
coordinates + moment chi-square, Bonferroni inside) or a z-test at |z| < 5.33 (two-sided
1e-7), with fixed seeds; hypothesis draws parameters (derandomized), never noise. Each
test also runs a planted bug (noise scaled by sqrt(2), or a sign flip) and asserts failure.
"""

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given
from hypothesis import strategies as st

import sdekit
from sdekit.processes import (
    BrownianMotion,
    GeometricBrownianMotion,
    OrnsteinUhlenbeck,
    overdamped_langevin,
    ula_gaussian_variance,
)
from sdekit.processes.ou import ou_drift
from sdekit.targets import Gaussian
from sdekit.validate.power import ou_diffusion_sqrt2  # planted bug B sqrt(2), shared with the power table's kernels
from sdekit.validate.stats import gaussian_law_tests

ALPHA = 1e-6
Z_MAX = 5.33  # two-sided normal quantile at 1e-7


def passes(results) -> bool:
    return all(r.passed for r in results)


@st.composite
def ou_parameters(draw):
    """A = R diag(lam) R^T + skew part (eigenvalues with real parts in [0.2, 2]), B with entries in [-1, 1]."""
    d = draw(st.integers(1, 3))
    m = draw(st.integers(d, d + 1))  # m >= d keeps Q = B B^T non-degenerate (a Gaussian law with density)
    lam = np.array(draw(st.lists(st.floats(0.2, 2.0), min_size=d, max_size=d)))
    q, _ = np.linalg.qr(np.array(draw(st.lists(st.floats(-1, 1), min_size=d * d, max_size=d * d))).reshape(d, d)
                        + 3 * np.eye(d))
    skew = np.array(draw(st.lists(st.floats(-0.3, 0.3), min_size=d * d, max_size=d * d))).reshape(d, d)
    a = q @ np.diag(lam) @ q.T + (skew - skew.T) / 2
    b = np.array(draw(st.lists(st.floats(-1, 1), min_size=d * m, max_size=d * m))).reshape(d, m)
    b[np.arange(min(d, m)), np.arange(min(d, m))] += 1.0  # keep Q = B B^T non-degenerate
    return a, b


@given(ou_parameters(), st.floats(0.05, 0.5), st.integers(0, 2**32 - 1))
def test_ou_euler_maruyama_matches_its_exact_law(params, fraction, seed):
    """EM on OU has an exact Gaussian law (m' = M m, S' = M S M^T + h Q): test it at any stable h.

    h is a fraction of the stability limit 2 / max|eig(A)|. Planted bug: B scaled by sqrt(2).
    """
    a, b = params
    ou = OrnsteinUhlenbeck(a, b)
    h = fraction * 2.0 / np.max(np.abs(np.linalg.eigvals(a)))
    steps, n = 30, 5000
    x0 = np.ones(ou.dim)
    mean, cov = ou.euler_maruyama_law(x0, np.zeros((ou.dim, ou.dim)), h, steps)
    sol = sdekit.simulate(ou.sde, x0, (0.0, h * steps), steps=steps, n_paths=n, seed=seed % 2**31)
    assert passes(gaussian_law_tests("ou-em", sol.final, mean, cov, ALPHA))
    buggy = sdekit.SDE(ou.sde.drift, ou_diffusion_sqrt2, dim=ou.dim, noise="additive", brownian_dim=ou.m,
                       params=ou.sde.params)
    bad = sdekit.simulate(buggy, x0, (0.0, h * steps), steps=steps, n_paths=n, seed=seed % 2**31)
    assert not passes(gaussian_law_tests("ou-em-bug", bad.final, mean, cov, ALPHA))


def test_ou_transition_law_stationary_law_and_van_loan():
    ou = OrnsteinUhlenbeck([[1.0, 0.5], [-0.2, 0.7]], [[1.0, 0.2], [0.0, 0.6]])
    s_inf = ou.stationary_cov()
    assert np.allclose(ou.A @ s_inf + s_inf @ ou.A.T, ou.Q, atol=1e-12)
    mean, cov = ou.transition(np.array([1.0, 2.0]), 40.0)
    assert np.allclose(cov, s_inf, atol=1e-12) and np.allclose(mean, 0.0, atol=1e-10)
    # Van Loan against direct quadrature of int_0^t e^{-As} Q e^{-A^T s} ds
    t = 0.7
    s_grid = np.linspace(0.0, t, 2001)
    vals = np.array([sla.expm(-ou.A * s) @ ou.Q @ sla.expm(-ou.A * s).T for s in s_grid])
    quad = np.trapezoid(vals, s_grid, axis=0) if hasattr(np, "trapezoid") else np.trapz(vals, s_grid, axis=0)
    assert np.allclose(ou.transition(np.zeros(2), t)[1], quad, atol=1e-6)


@pytest.mark.parametrize("solver", ["sra1", "euler_maruyama"])
def test_ou_exact_transition_with_fine_steps(solver):
    """At h = 1e-3 the discretisation bias is far below resolution at N = 20,000 (N delta^2 << 1)."""
    ou = OrnsteinUhlenbeck([[1.0, 0.5], [-0.2, 0.7]], [[1.0, 0.2], [0.0, 0.6]])
    x0 = np.array([1.0, 2.0])
    mean, cov = ou.transition(x0, 1.0)
    sol = sdekit.simulate(ou.sde, x0, (0.0, 1.0), steps=1000, n_paths=20_000, seed=5, solver=solver)
    assert passes(gaussian_law_tests("ou", sol.final, mean, cov, ALPHA))
    flipped = sdekit.SDE(lambda x, t, p: -1.0 * ou_drift(x, t, p), ou.sde.diffusion, dim=2, noise="additive",
                         brownian_dim=2, params=ou.sde.params)
    bad = sdekit.simulate(flipped, x0, (0.0, 1.0), steps=1000, n_paths=20_000, seed=5, solver=solver)
    assert not passes(gaussian_law_tests("ou-flipped", bad.final, mean, cov, ALPHA))


def test_brownian_motion_law():
    bm = BrownianMotion(dim=3, sigma=0.7)
    sol = sdekit.simulate(bm.sde, np.zeros(3), (0.0, 2.0), steps=7, n_paths=20_000, seed=8)
    mean, cov = bm.transition(np.zeros(3), 2.0)
    assert passes(gaussian_law_tests("bm", sol.final, mean, cov, ALPHA))
    assert not passes(gaussian_law_tests("bm-bug", sol.final, mean, 0.5 * cov, ALPHA))


@pytest.mark.parametrize("calculus", ["ito", "stratonovich"])
def test_gbm_euler_maruyama_moments_are_exact(calculus):
    """E X_n = x0 (1 + mu h)^n, E X_n^2 = x0^2 ((1 + mu h)^2 + sigma^2 h)^n for EM on the Itô form.

    z = (mean - exact) / (sd / sqrt(N)) with the exact sd of X_n; |z| < 5.33. Planted bug: sigma * sqrt(2).
    For Stratonovich GBM the Itô-equivalent SDE (drift mu + sigma^2/2) is what EM integrates.
    """
    gbm = GeometricBrownianMotion(0.2, 0.5, calculus)
    ito = GeometricBrownianMotion(gbm.ito_mu, 0.5, "ito")
    h, steps, n = 0.05, 20, 200_000
    m1, m2 = ito.euler_maruyama_moments(1.0, h, steps)
    sol = sdekit.simulate(ito.sde, 1.0, (0.0, h * steps), steps=steps, n_paths=n, seed=3)
    x = sol.final[:, 0]
    z = (x.mean() - m1) / np.sqrt((m2 - m1**2) / n)
    assert abs(z) < Z_MAX
    bug = GeometricBrownianMotion(gbm.ito_mu, 0.5 * 2**0.5, "ito")
    xb = sdekit.simulate(bug.sde, 1.0, (0.0, h * steps), steps=steps, n_paths=n, seed=3).final[:, 0]
    # the mean is unaffected by the noise level; the second moment is not
    m4_bound = np.sqrt(np.var(x**2) / n)
    assert abs((x**2).mean() - m2) < Z_MAX * m4_bound
    assert abs((xb**2).mean() - m2) > Z_MAX * m4_bound


def test_ula_on_a_gaussian_is_biased_exactly_as_predicted():
    """Chains started in pi = N(mu, Sigma) and run with EM at h = 0.2 end in N(mu, V_K), V_K -> V_h.

    The finite-K law is EM's exact law for the OU process dX = -Sigma^{-1}(X - mu) dt + sqrt 2 dW; the test
    passes against it and fails against pi itself (the O(h) bias is resolved at N = 20,000). Planted bug:
    noise sqrt(h) instead of sqrt(2h) (the half-drift convention mixed up) fails too.
    """
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    mu = np.array([1.0, -1.0])
    target = Gaussian(mu, cov)
    sde = overdamped_langevin(2, target=target)
    h, steps, n = 0.2, 40, 20_000
    x0 = target.sample(n, seed=1)
    sol = sdekit.simulate(sde, x0, (0.0, h * steps), steps=steps, seed=2)
    ou = OrnsteinUhlenbeck(np.linalg.inv(cov), 2**0.5 * np.eye(2))
    _, v_k = ou.euler_maruyama_law(np.zeros(2), cov, h, steps)
    assert np.allclose(ou.euler_maruyama_law(np.zeros(2), cov, h, 2000)[1], ula_gaussian_variance(cov, h))
    assert passes(gaussian_law_tests("ula", sol.final, mu, v_k, ALPHA))
    assert not passes(gaussian_law_tests("ula-vs-pi", sol.final, mu, cov, ALPHA))
    half = sdekit.SDE(target.score_fn, lambda x, t, p: 1.0, dim=2, noise="additive", params=target.params)
    bad = sdekit.simulate(half, x0, (0.0, h * steps), steps=steps, seed=2)
    assert not passes(gaussian_law_tests("ula-bug", bad.final, mu, v_k, ALPHA))


def test_langevin_from_energy_gradient_and_score_agree():
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    target = Gaussian(np.zeros(2), cov)
    prec = np.linalg.inv(cov)

    def grad_u(x, t, p):
        return x @ p[0]

    a = overdamped_langevin(2, grad_energy=grad_u, params=(prec,))
    b = overdamped_langevin(2, target=target)
    x0 = target.sample(100, seed=0)
    ya = sdekit.simulate(a, x0, (0.0, 1.0), steps=20, seed=1).final
    yb = sdekit.simulate(b, x0, (0.0, 1.0), steps=20, seed=1).final
    assert np.allclose(ya, yb, rtol=1e-10, atol=1e-12)
    with pytest.raises(sdekit.SDEKitError, match="exactly one"):
        overdamped_langevin(2, score=grad_u, grad_energy=grad_u)
