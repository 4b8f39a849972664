"""Generator checks (sdekit.validate.generator): L phi, the local generator test, Dynkin, linear moments.

Every statistical battery runs at an overall false-alarm rate alpha = 1e-6 (Bonferroni inside) with fixed
seeds. The planted bugs are the ones a sampler author makes -- the noise scaled by sqrt(2) and the drift's sign
flipped. They are planted in the *sampler* (the SDE that is integrated) while the reference SDE stays correct;
the toy SDE carries a drift scale p[0] and a noise scale p[1], so a bug is `with_params` on the sampler, which is
numerically the same as editing f -> -f or g -> sqrt(2) g in its code and costs no new Numba kernel.
"""

import numba as nb
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import sdekit
from sdekit.errors import SDEKitError
from sdekit.processes import GeometricBrownianMotion, OrnsteinUhlenbeck
from sdekit.validate.generator import (
    TestFunction,
    coordinate,
    cosine,
    default_test_functions,
    derivative_errors,
    dynkin_test,
    generator,
    generator_estimates,
    generator_scan,
    generator_test,
    ito_coefficients,
    linear_moment_test,
    linear_moments,
    product,
    sine,
)

ALPHA = 1e-6
SQRT2 = float(np.sqrt(2.0))


@nb.njit(cache=True)
def toy_drift(x, t, p):
    """b = p0 (-x0 + 0.5 x1, -x1 + sin x0)."""
    n = x.shape[0]
    out = np.empty((n, 2))
    for r in range(n):
        out[r, 0] = p[0] * (-x[r, 0] + 0.5 * x[r, 1])
        out[r, 1] = p[0] * (-x[r, 1] + np.sin(x[r, 0]))
    return out


@nb.njit(cache=True)
def toy_diffusion(x, t, p):
    """g_i = p1 sqrt(1 + x_i^2 / 2): diagonal, state-dependent."""
    return p[1] * np.sqrt(1.0 + 0.5 * x * x)


C = 0.8
TOY = sdekit.SDE(toy_drift, toy_diffusion, dim=2, params=[1.0, C], name="toy")
TOY_STRAT = sdekit.SDE(toy_drift, toy_diffusion, dim=2, params=[1.0, C], calculus="stratonovich", name="toy_strat")
BUGS = {"noise*sqrt2": [1.0, C * SQRT2], "drift sign": [-1.0, C]}
STATES = np.array([[0.5, -0.3], [1.2, 0.8], [-1.0, 1.5]])

A_OU = np.array([[1.0, 0.3], [-0.2, 0.7]])
B_OU = np.array([[0.8, 0.0, 0.3], [0.2, 0.5, 0.0]])
OU = OrnsteinUhlenbeck(A_OU, B_OU)
X0_OU = np.array([1.0, -0.5])
OU_BUGS = {"noise*sqrt2": (A_OU, SQRT2 * B_OU), "drift sign": (-A_OU, B_OU)}


def toy_b(x):
    return np.stack([-x[:, 0] + 0.5 * x[:, 1], -x[:, 1] + np.sin(x[:, 0])], axis=1)


# ------------------------------------------------------------------------------------------ the formula


def test_builtin_test_functions_have_exact_derivatives():
    x = np.random.default_rng(0).normal(size=(5, 3))
    for phi in [coordinate(1), product(0, 2), product(1, 1), cosine([1.0, -0.5, 0.3]), sine([0.7, 0.2, -1.1])]:
        g_err, h_err = derivative_errors(phi, x)
        assert g_err < 1e-8 and h_err < 1e-8, phi.name
    wrong = TestFunction("x0^2 with grad x0", lambda x: x[:, 0] ** 2, lambda x: x * np.array([1.0, 0, 0]),
                         product(0, 0).hess)
    assert derivative_errors(wrong, x)[0] > 0.1
    assert len(default_test_functions(2)) == 2 + 3 + 2


def test_generator_matches_hand_computed_ou():
    x = np.array([[0.4, -1.3], [2.0, 0.5]])
    q = B_OU @ B_OU.T
    ax = x @ A_OU.T
    u = np.array([1.0, -0.5])
    expected = {
        "x0": -ax[:, 0],
        "x0*x1": -ax[:, 0] * x[:, 1] - ax[:, 1] * x[:, 0] + q[0, 1],
        "x1*x1": -2 * ax[:, 1] * x[:, 1] + q[1, 1],
        "cos": np.sin(x @ u) * (ax @ u) - 0.5 * np.cos(x @ u) * (u @ q @ u),
    }
    got = {"x0": generator(OU.sde, coordinate(0), x), "x0*x1": generator(OU.sde, product(0, 1), x),
           "x1*x1": generator(OU.sde, product(1, 1), x), "cos": generator(OU.sde, cosine(u), x)}
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-13, atol=1e-13, err_msg=key)


def test_generator_matches_hand_computed_gbm_ito_and_stratonovich():
    mu, sig = 0.3, 0.9
    x = np.array([[0.5], [2.0], [-1.5]])
    ito = GeometricBrownianMotion(mu, sig).sde
    strat = GeometricBrownianMotion(mu, sig, calculus="stratonovich").sde
    np.testing.assert_allclose(generator(ito, coordinate(0), x), mu * x[:, 0], rtol=1e-14)
    np.testing.assert_allclose(generator(ito, product(0, 0), x), (2 * mu + sig**2) * x[:, 0] ** 2, rtol=1e-14)
    # Stratonovich GBM = Itô GBM with drift mu + sigma^2 / 2 (finite-difference correction)
    np.testing.assert_allclose(generator(strat, coordinate(0), x), (mu + sig**2 / 2) * x[:, 0], rtol=1e-8)
    np.testing.assert_allclose(generator(strat, product(0, 0), x), (2 * mu + 2 * sig**2) * x[:, 0] ** 2, rtol=1e-8)


def test_generator_matches_hand_computed_state_dependent_noise():
    x = np.array([[0.5, -0.3], [1.2, 0.8]])
    g = C * np.sqrt(1 + 0.5 * x**2)
    b = toy_b(x)
    u = np.array([1.0, -0.5])
    np.testing.assert_allclose(generator(TOY, product(0, 0), x), 2 * x[:, 0] * b[:, 0] + g[:, 0] ** 2, rtol=1e-13)
    np.testing.assert_allclose(generator(TOY, product(0, 1), x), b[:, 0] * x[:, 1] + b[:, 1] * x[:, 0], rtol=1e-13)
    expected = -np.sin(x @ u) * (b @ u) - 0.5 * np.cos(x @ u) * (g**2 @ u**2)
    np.testing.assert_allclose(generator(TOY, cosine(u), x), expected, rtol=1e-13)
    # Stratonovich: g g' = C^2 x / 2, so the Itô drift is b + C^2 x / 4
    np.testing.assert_allclose(ito_coefficients(TOY_STRAT, x)[0], b + C**2 * x / 4, rtol=1e-9)


@nb.njit(cache=True)
def mixed_drift(x, t, p):
    """b_i = -x_i + 0.5 sin(x_{i+1}) + 0.1 t (cyclic)."""
    n, d = x.shape
    out = np.empty((n, d))
    for r in range(n):
        for i in range(d):
            out[r, i] = -x[r, i] + 0.5 * np.sin(x[r, (i + 1) % d]) + 0.1 * t
    return out


@nb.njit(cache=True)
def general_diffusion(x, t, p):
    """sigma_ij = p0 (delta_ij + 0.3 sin(x_i + j)), shape (n, d, 2)."""
    n, d = x.shape
    out = np.empty((n, d, 2))
    for r in range(n):
        for i in range(d):
            for j in range(2):
                out[r, i, j] = p[0] * ((1.0 if i == j else 0.0) + 0.3 * np.sin(x[r, i] + j))
    return out


@nb.njit(cache=True)
def cos_diffusion(x, t, p):
    """g_i = p0 (1 + 0.5 cos x_i)."""
    return p[0] * (1.0 + 0.5 * np.cos(x))


def test_generator_general_and_scalar_noise_and_stratonovich_correction():
    rng = np.random.default_rng(1)
    x, t, p = rng.normal(size=(4, 3)), 0.7, np.array([0.4])
    general = sdekit.SDE(mixed_drift, general_diffusion, dim=3, noise="general", brownian_dim=2, params=p)
    scalar = sdekit.SDE(mixed_drift, cos_diffusion, dim=3, noise="scalar", params=p)
    b = mixed_drift(x, t, p)
    sig = general_diffusion(x, t, p)  # (n, 3, 2)
    a = np.array([s @ s.T for s in sig])
    np.testing.assert_allclose(generator(general, product(0, 2), x, t), b[:, 0] * x[:, 2] + b[:, 2] * x[:, 0]
                               + a[:, 0, 2], rtol=1e-13)
    gs = p[0] * (1 + 0.5 * np.cos(x))  # scalar noise: one Brownian motion drives every component
    np.testing.assert_allclose(generator(scalar, product(1, 2), x, t), b[:, 1] * x[:, 2] + b[:, 2] * x[:, 1]
                               + gs[:, 1] * gs[:, 2], rtol=1e-13)
    strat = sdekit.SDE(mixed_drift, general_diffusion, dim=3, noise="general", brownian_dim=2,
                       calculus="stratonovich", params=p)
    # d_k sigma_ij = delta_ki 0.3 p0 cos(x_i + j)  =>  correction_i = 1/2 sum_j sigma_ij 0.3 p0 cos(x_i + j)
    corr = 0.5 * sum(sig[:, :, j] * 0.3 * p[0] * np.cos(x + j) for j in range(2))
    np.testing.assert_allclose(ito_coefficients(strat, x, t)[0], b + corr, rtol=1e-8, atol=1e-10)
    # scalar Stratonovich: correction_i = 1/2 sum_k g_k d_k g_i = 1/2 g_i g_i'
    strat_s = sdekit.SDE(mixed_drift, cos_diffusion, dim=3, noise="scalar", calculus="stratonovich", params=p)
    corr_s = 0.5 * gs * (-0.5 * p[0] * np.sin(x))
    np.testing.assert_allclose(ito_coefficients(strat_s, x, t)[0], b + corr_s, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------------------ local generator test


@pytest.mark.parametrize("sde, solver", [(TOY, "euler_maruyama"), (TOY, "milstein"), (TOY_STRAT, "heun")],
                         ids=["em", "milstein", "heun-stratonovich"])
def test_local_generator_test_passes_for_consistent_schemes(sde, solver):
    scan = generator_scan(sde, STATES, n=200_000, seed=1, solver=solver, alpha=ALPHA)
    assert scan.passed, scan.summary()
    assert len(scan.results) == 3 and all(len(r) == 7 for r in scan.results)
    assert min(r.pvalue for res in scan.results for r in res) > 1e-4


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_local_generator_test_catches_planted_bugs_at_every_state(bug):
    scan = generator_scan(TOY, STATES, n=200_000, seed=1, sampler=TOY.with_params(BUGS[bug]), alpha=ALPHA)
    assert scan.failed_states == [0, 1, 2], scan.summary()
    assert min(r.pvalue for res in scan.results for r in res) < 1e-12
    if bug == "noise*sqrt2":  # only functions with a Hessian see the diffusion: the coordinates pass
        assert all(r.passed for res in scan.results for r in res[:2])


def test_heun_on_ito_reference_is_caught():
    """Heun converges to the Stratonovich solution: tested against the Itô generator it must fail."""
    res = generator_test(TOY, STATES[1], n=200_000, seed=1, solver="heun", sampler=TOY_STRAT, alpha=ALPHA)
    assert not any(r.passed for r in res[:2])
    assert min(r.pvalue for r in res) < 1e-12


def test_control_variate_standard_error_does_not_grow_as_h_shrinks():
    phis = [product(0, 0), cosine([1.0, -0.5])]
    coarse, fine = (generator_estimates(TOY, STATES[1], phis, h=h, n=100_000, seed=2) for h in (1e-3, 1e-5))
    for c, f in zip(coarse, fine):
        assert 0.5 < f.se / c.se < 2.0
        assert 5.0 < f.raw_se / c.raw_se < 20.0  # raw estimator: se ~ |sigma^T grad phi| / sqrt(n h)
        assert f.se < 0.05 * f.raw_se


def test_extrapolation_removes_the_step_size_bias():
    plain = generator_test(TOY, STATES[1], h=0.05, n=200_000, seed=3, alpha=ALPHA)
    rich = generator_test(TOY, STATES[1], h=0.05, n=200_000, seed=3, alpha=ALPHA, extrapolate=True)
    assert not all(r.passed for r in plain)
    assert all(r.passed for r in rich), [r.note for r in rich if not r.passed]
    allowed = generator_test(TOY, STATES[1], h=0.05, n=200_000, seed=3, alpha=ALPHA, bias_allowance=0.2)
    assert all(r.passed for r in allowed)


def test_callable_sampler():
    def em_step(x, t, h, dw):
        return x + toy_b(x) * h + C * np.sqrt(1 + 0.5 * x * x) * dw

    def em_step_sqrt2(x, t, h, dw):
        return x + toy_b(x) * h + SQRT2 * C * np.sqrt(1 + 0.5 * x * x) * dw

    ok = generator_test(TOY, STATES[0], n=100_000, seed=4, sampler=em_step, alpha=ALPHA)
    bad = generator_test(TOY, STATES[0], n=100_000, seed=4, sampler=em_step_sqrt2, alpha=ALPHA)
    assert all(r.passed for r in ok)
    assert min(r.pvalue for r in bad) < 1e-10
    # the numpy step and sdekit's kernel see the same noise: identical estimates
    kernel = generator_estimates(TOY, STATES[0], [product(0, 1)], n=100_000, seed=4)[0]
    mine = generator_estimates(TOY, STATES[0], [product(0, 1)], n=100_000, seed=4, sampler=em_step)[0]
    assert abs(kernel.estimate - mine.estimate) < 1e-8


# ------------------------------------------------------------------------------------------ Dynkin


def test_dynkin_passes_for_correct_samplers():
    toy = dynkin_test(TOY, STATES[0], (0.0, 1.0), steps=50, n_paths=20_000, seed=5, alpha=ALPHA)
    ou = dynkin_test(OU.sde, X0_OU, (0.0, 1.0), steps=50, n_paths=20_000, seed=5, alpha=ALPHA)
    # from samples: X_0 ~ the stationary law of the OU process
    starts = np.random.default_rng(5).normal(size=(20_000, 2)) @ np.linalg.cholesky(OU.stationary_cov()).T
    ou_stat = dynkin_test(OU.sde, starts, (0.0, 1.0), steps=50, seed=6, alpha=ALPHA)
    results = toy + ou + ou_stat
    assert all(r.passed for r in results), [r.note for r in results if not r.passed]
    assert min(r.pvalue for r in results) > 1e-4


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_dynkin_catches_planted_bugs(bug):
    toy = dynkin_test(TOY, STATES[0], (0.0, 1.0), steps=50, n_paths=20_000, seed=5, alpha=ALPHA,
                      sampler=TOY.with_params(BUGS[bug]))
    ou = dynkin_test(OU.sde, X0_OU, (0.0, 1.0), steps=50, n_paths=20_000, seed=5, alpha=ALPHA,
                     sampler=OU.sde.with_params(OU_BUGS[bug]))
    for res in (toy, ou):
        assert not all(r.passed for r in res)
        assert min(r.pvalue for r in res) < 1e-12


# ------------------------------------------------------------------------------------------ linear moments


def test_linear_moments_solve_the_moment_odes():
    m0, s0 = np.array([1.0, -2.0]), np.array([[0.5, 0.1], [0.1, 0.3]])
    q = B_OU @ B_OU.T

    def rhs(_t, y):
        m, s = y[:2], y[2:].reshape(2, 2)
        return np.concatenate([-A_OU @ m, (-A_OU @ s - s @ A_OU.T + q).ravel()])

    sol = solve_ivp(rhs, (0.0, 1.3), np.concatenate([m0, s0.ravel()]), rtol=1e-11, atol=1e-12)
    mean, cov = linear_moments(A_OU, B_OU, m0, s0, 1.3)
    np.testing.assert_allclose(mean, sol.y[:2, -1], rtol=1e-8)
    np.testing.assert_allclose(cov, sol.y[2:, -1].reshape(2, 2), rtol=1e-8)


def test_linear_moment_test_passes_for_ou():
    mean, cov = OU.transition(X0_OU, 1.0)
    exact = mean + np.random.default_rng(6).normal(size=(20_000, 2)) @ np.linalg.cholesky(cov).T
    em_fine = sdekit.simulate(OU.sde, X0_OU, (0.0, 1.0), steps=200, n_paths=20_000, seed=6).ys[-1]
    em_coarse = sdekit.simulate(OU.sde, X0_OU, (0.0, 1.0), steps=5, n_paths=20_000, seed=6).ys[-1]
    # Gaussian start N(m0, S0): X_t = e^{-At} X_0 + N(0, Sigma_t)
    rng = np.random.default_rng(7)
    s0 = np.array([[0.5, 0.1], [0.1, 0.3]])
    start = X0_OU + rng.normal(size=(20_000, 2)) @ np.linalg.cholesky(s0).T
    decay, sig_t = OU.transition(np.eye(2), 0.8)[0].T, OU.transition(X0_OU, 0.8)[1]
    gauss = start @ decay.T + rng.normal(size=(20_000, 2)) @ np.linalg.cholesky(sig_t).T
    wrong_s0 = linear_moment_test(gauss, A_OU, B_OU, X0_OU, 0.8, cov0=2 * s0, alpha=ALPHA)[0]
    assert not wrong_s0.passed
    results = (linear_moment_test(exact, A_OU, B_OU, X0_OU, 1.0, alpha=ALPHA)
               + linear_moment_test(gauss, A_OU, B_OU, X0_OU, 0.8, cov0=s0, alpha=ALPHA)
               + linear_moment_test(em_fine, A_OU, B_OU, X0_OU, 1.0, alpha=ALPHA)
               + linear_moment_test(em_coarse, A_OU, B_OU, X0_OU, 1.0, alpha=ALPHA, em_steps=5))
    assert all(r.passed for r in results), [r.note for r in results]
    # coarse EM against the exact moments: its O(h) bias is resolved (the reason for em_steps)
    assert not linear_moment_test(em_coarse, A_OU, B_OU, X0_OU, 1.0, alpha=ALPHA)[0].passed


@pytest.mark.parametrize("bug", sorted(OU_BUGS))
def test_linear_moment_test_catches_planted_bugs(bug):
    sample = sdekit.simulate(OU.sde.with_params(OU_BUGS[bug]), X0_OU, (0.0, 1.0), steps=200, n_paths=20_000,
                             seed=6).ys[-1]
    res = linear_moment_test(sample, A_OU, B_OU, X0_OU, 1.0, alpha=ALPHA)[0]
    assert not res.passed and res.pvalue < 1e-12, res.note


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("call, match", [
    (lambda: generator_test(TOY, [0.1, 0.2, 0.3]), "x must have shape"),
    (lambda: generator_test(TOY, [[0.1, 0.2], [0.3, 0.4]]), "x must be one state"),
    (lambda: generator_test(TOY, [np.nan, 0.2]), "x must be finite"),
    (lambda: generator_test(TOY, [0.1, 0.2], alpha=0.0), "alpha"),
    (lambda: generator_test(TOY, [0.1, 0.2], alpha=1.5), "alpha"),
    (lambda: generator_test(TOY, [0.1, 0.2], h=0.0), "h must be"),
    (lambda: generator_test(TOY, [0.1, 0.2], h=-1e-3), "h must be"),
    (lambda: generator_test(TOY, [0.1, 0.2], n=1), "n must be"),
    (lambda: generator_test(TOY, [0.1, 0.2], phis=[cosine([1.0, 2.0, 3.0])]), r"phis\[0\].*dim=3"),
    (lambda: generator_test(TOY, [0.1, 0.2], phis=["x0"]), r"phis\[0\] must be a TestFunction"),
    (lambda: generator_test(TOY, [0.1, 0.2], sampler=OU.sde), "sampler has dim"),
    (lambda: product(0, 2, dim=2), "j must be an integer index"),
    (lambda: dynkin_test(TOY, [0.1, 0.2], (0.0, 1.0), steps=10), "n_paths"),
    (lambda: dynkin_test(TOY, [0.1, 0.2], (1.0, 0.0), steps=10, n_paths=10), "t_span"),
    (lambda: dynkin_test(TOY, [0.1, 0.2], (0.0, 1.0), steps=0, n_paths=10), "steps"),
    (lambda: dynkin_test(TOY, [0.1, 0.2], (0.0, 1.0), steps=10, n_paths=10, alpha=2.0), "alpha"),
    (lambda: linear_moment_test(np.zeros((10, 3)), A_OU, B_OU, X0_OU, 1.0), r"sample must have shape \(N, 2\)"),
    (lambda: linear_moment_test(np.zeros((10, 2)), A_OU, B_OU, [1.0], 1.0), "x0"),
    (lambda: linear_moment_test(np.zeros((10, 2)), A_OU, B_OU, X0_OU, 1.0, alpha=-1), "alpha"),
    (lambda: linear_moment_test(np.zeros((10, 2)), A_OU, B_OU, X0_OU, 0.0), "singular"),
    (lambda: linear_moments(A_OU, B_OU, X0_OU, np.eye(3), 1.0), "cov0"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(SDEKitError, match=match):
        call()
