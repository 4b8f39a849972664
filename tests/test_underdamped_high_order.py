"""UBU and ShOULD (`sdekit.mcmc.underdamped_high_order`): coefficients, exact laws, measured orders, the
compiled kernel and the stationarity battery.

Orders (README): strong order on U(x) = x^4/4 + x^2/2 (gamma = 1, T = 1, x0 = 1, p0 = 0) with every step size
driven by ONE Brownian path per sample, the integrals each scheme needs (W, the OU-weighted increment E, the
Levy areas H, K) merged exactly from 1024 finest cells (`sdekit.mcmc.underdamped_paths`); reference = the same
scheme at h = 1/512; fitted by `fit_order` (bootstrap CI over 400 paths). Expected: BAOAB, OBABO 1; UBU 2
(Sanz-Serna & Zygalakis 2021); ShOULD 3 (Foster, Lyons & Oberhauser 2021). Planted: ShOULD with the sign of K
flipped drops below 2.5. Stationary bias on a Gaussian, closed form (discrete Lyapunov of the exact linear
recursion): |Var_h x - 1/omega^2| ~ h^2 for UBU, ~ h^4 for ShOULD.

Statistical checks as in test_underdamped: N = 20,000 chains from x ~ pi, K = 20 steps at h = 0.8 of BAOAB's
stability limit, end states through `compare_with_law` (overall false-alarm rate 1e-6) against the scheme's
exact law (`splitting_gaussian_law`); every planted defect (`HIGH_ORDER_DEFECTS`) must fail (p < 1e-12).
"""

import math

import numba
import numpy as np
import pytest

from sdekit.errors import ChainNonFiniteError, SDEKitError
from sdekit.mcmc.underdamped import (
    STREAM_UNDERDAMPED,
    run_underdamped_kernel,
    splitting_gaussian_law,
    splitting_stationary_law,
    underdamped_langevin,
    underdamped_langevin_with,
)
from sdekit.mcmc.underdamped_high_order import (
    HIGH_ORDER_DEFECTS,
    HIGH_ORDER_SCHEMES,
    N_COEF,
    exp_poly_ratio,
    ou_position_variance_ratio,
    run_high_order_kernel,
    should_coefficients,
    ubu_coefficients,
)
from sdekit.mcmc.underdamped_high_order_laws import exact_ou_flow, high_order_factors
from sdekit.mcmc.underdamped_paths import (
    brownian_levels,
    cell_covariance,
    merge_cells,
    should_update,
    solve_on_path,
    strong_sq_errors,
)
from sdekit.noise.streams import path_normals
from sdekit.targets import Gaussian
from sdekit.validate.compare import compare_with_law
from sdekit.validate.order import fit_order, fit_order_deterministic

ALPHA, N, K, GAMMA, SEED = 1e-6, 20_000, 20, 1.0, 2026
GATING = ("ks", "cvm", "moments", "stein")
TARGET = Gaussian([0.5, -1.0], [[1.0, 0.5], [0.5, 2.0]])
H = 0.8 * 2.0 / math.sqrt(np.linalg.eigvalsh(TARGET.params[1]).max())
DRAWS_PER_STEP = {"ubu": 4, "should": 3}


# ---------------------------------------------------------------------------------------------
# coefficients: series branch against the closed forms, UBU against the matrix exponential
# ---------------------------------------------------------------------------------------------

def test_series_coefficients_match_the_closed_forms():
    for a in (0.2, 0.3, 0.45, 0.499):  # series branch, where the closed forms still hold ~9 digits or more
        z = -a
        assert exp_poly_ratio(z, 1, 0, 0, -1, 0, 0, 1) == pytest.approx(-math.expm1(z) / a, rel=1e-13)
        assert exp_poly_ratio(z, 1, 0, 0, -1, -1, 0, 2) == pytest.approx((math.exp(z) - 1 - z) / z**2, rel=1e-11)
        chh_num = math.exp(-a) * (a + 2) + a - 2  # 6 num / (a^2 gamma) = c_H
        assert exp_poly_ratio(z, 2, -1, 0, -2, -1, 0, 3) == pytest.approx(chh_num / z**3, rel=1e-10)
        ckk_num = math.exp(-a) * (a * (a + 6) + 12) - a * (a - 6) - 12
        assert exp_poly_ratio(z, 12, -6, 1, -12, -6, -1, 5) == pytest.approx(ckk_num / z**5, rel=1e-8)
        g = a - 2 * (1 - math.exp(-a)) + (1 - math.exp(-2 * a)) / 2
        assert ou_position_variance_ratio(a) == pytest.approx(g / a**3, rel=1e-10)
    # both sides of the switch agree; tiny arguments give the leading Taylor terms
    for ratio in (lambda z: exp_poly_ratio(z, 12, -6, 1, -12, -6, -1, 5), lambda z: ou_position_variance_ratio(-z)):
        assert ratio(-0.5 + 1e-12) == pytest.approx(ratio(-0.5), rel=1e-9)
    assert exp_poly_ratio(-1e-9, 12, -6, 1, -12, -6, -1, 5) == pytest.approx(1 / 60, rel=1e-8)
    assert ou_position_variance_ratio(1e-9) == pytest.approx(1 / 3, rel=1e-8)


@pytest.mark.parametrize("gamma, h", [(1.0, 1e-6), (1.0, 0.01), (0.7, 0.9), (2.0, 1.3), (4.0, 1.5)])
def test_ubu_half_step_is_the_exact_ou_flow(gamma, h):
    """Kernel coefficients (power series / closed forms) against Van Loan's matrix exponential, mass m, beta."""
    m, beta = 2.5, 0.5
    coef = np.zeros((N_COEF, 1))
    ubu_coefficients(gamma, h, np.array([m]), beta, coef)
    c, ax, sp, k1, k2 = coef[:5, 0]
    # (x, p) with mass m, beta: x^ = sqrt(beta m) x, p^ = sqrt(beta / m) p follow the M = beta = 1 flow
    phi, q = exact_ou_flow(gamma, 0.5 * h)
    scale = np.diag([1 / math.sqrt(beta * m), math.sqrt(m / beta)])
    q = scale @ q @ scale
    assert c == pytest.approx(phi[1, 1], rel=1e-13)
    assert ax == pytest.approx(phi[0, 1] / m, rel=1e-12)
    np.testing.assert_allclose([[k1**2 + k2**2, k1 * sp], [k1 * sp, sp**2]], q, rtol=1e-9, atol=1e-30)


def test_should_coefficients_limits():
    coef = np.zeros((N_COEF, 1))
    h = 1e-7
    should_coefficients(1.0, h, np.ones(1), 1.0, coef)
    np.testing.assert_allclose(coef[2:9, 0], [h / 2, h / 8, h, h / 2, 1.0, h, -h * h], rtol=1e-6)
    np.testing.assert_allclose(coef[9:12, 0], np.sqrt(2 * h / np.array([1, 12, 720])), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the coupled Brownian path and the measured orders
# ---------------------------------------------------------------------------------------------

def test_merged_cells_have_the_exact_covariance():
    """The merge is linear: T blockdiag(C(d), C(d)) T^T must equal C(2d) (W, I1, I2, E over the union)."""
    delta, gamma = 0.3, 1.7
    keys = ("W", "I1", "I2", "E")
    t = np.empty((4, 8))
    for j in range(8):
        unit = np.zeros(8)
        unit[j] = 1.0
        left = {k: unit[i:i + 1] for i, k in enumerate(keys)}
        right = {k: unit[4 + i:5 + i] for i, k in enumerate(keys)}
        merged = merge_cells(left, right, delta, gamma)
        t[:, j] = [merged[k][0] for k in keys]
    c = cell_covariance(delta, gamma)
    block = np.zeros((8, 8))
    block[:4, :4] = block[4:, 4:] = c
    np.testing.assert_allclose(t @ block @ t.T, cell_covariance(2 * delta, gamma), rtol=1e-12)
    # H = I1/h - W/2 and K = (h I1/2 - I2 + h^2 W/12)/h^2 are independent of W with variances h/12, h/720
    h = 2 * delta
    lin = np.array([[1, 0, 0], [-0.5, 1 / h, 0], [1 / 12, 0.5 / h, -1 / h**2]])
    np.testing.assert_allclose(lin @ cell_covariance(h, gamma)[:3, :3] @ lin.T, np.diag([h, h / 12, h / 720]),
                               rtol=1e-12, atol=1e-15)


def _quartic_grad(x):
    return x**3 + x


@pytest.fixture(scope="module")
def coupled_path():
    n_paths, n_cells = 400, 1024
    levels = brownian_levels(SEED, n_paths, n_cells, 1.0 / n_cells, GAMMA)
    return levels, np.ones(n_paths), np.zeros(n_paths)


@pytest.mark.parametrize("scheme, nominal", [("baoab", 1.0), ("obabo", 1.0), ("ubu", 2.0), ("should", 3.0)])
def test_strong_order_on_a_quartic_potential(coupled_path, scheme, nominal):
    levels, x0, p0 = coupled_path
    ref = solve_on_path(scheme, _quartic_grad, x0, p0, GAMMA, levels, 1)
    hs, sq = strong_sq_errors(scheme, _quartic_grad, x0, p0, GAMMA, levels, [7, 6, 5, 4, 3], ref)
    fit = fit_order(hs, sq, seed=SEED)
    assert fit.ci_low <= nominal + 0.05 and fit.ci_high >= nominal - 0.05, fit
    assert abs(fit.order - nominal) < 0.1, fit
    # against one common reference (ShOULD at h = 1/512, the same path): the same order
    common = solve_on_path("should", _quartic_grad, x0, p0, GAMMA, levels, 1)
    fit_common = fit_order(*strong_sq_errors(scheme, _quartic_grad, x0, p0, GAMMA, levels, [7, 6, 5, 4, 3], common),
                           seed=SEED)
    assert abs(fit_common.order - nominal) < 0.1, fit_common


def test_planted_should_with_k_sign_flipped_loses_third_order(coupled_path, monkeypatch):
    import sdekit.mcmc.underdamped_paths as paths

    def flipped(grad, x, p, h, gamma, w, hh, kk):
        return should_update(grad, x, p, h, gamma, w, hh, -kk)

    monkeypatch.setattr(paths, "should_update", flipped)
    levels, x0, p0 = coupled_path
    ref = solve_on_path("should", _quartic_grad, x0, p0, GAMMA, levels, 1)
    hs, sq = strong_sq_errors("should", _quartic_grad, x0, p0, GAMMA, levels, [7, 6, 5, 4, 3], ref)
    fit = fit_order(hs, sq, seed=SEED)
    assert fit.ci_high < 2.6, fit


@pytest.mark.parametrize("scheme, nominal", [("obabo", 2.0), ("ubu", 2.0), ("should", 4.0)])
def test_stationary_bias_order_on_a_gaussian(scheme, nominal):
    hs = np.array([0.4, 0.2, 0.1, 0.05])
    bias = [splitting_stationary_law(scheme, 1.0, GAMMA, h)[0, 0] - 1.0 for h in hs]
    fit = fit_order_deterministic(hs, bias)
    assert abs(fit.order - nominal) < 0.15, (scheme, fit)


# ---------------------------------------------------------------------------------------------
# the compiled kernel against the exact linear recursion with the chains' own normals
# ---------------------------------------------------------------------------------------------

def _defect_factors(defect, omega2, gamma, h):
    """(A, G) of the planted defect on the harmonic potential (M = beta = 1), built from the exact OU flow."""
    phi, q = exact_ou_flow(gamma, 0.5 * h)
    a, g = high_order_factors("ubu" if defect.startswith("ubu") else "should", omega2, gamma, h)
    if defect == "should_no_levy_area":
        g = g.copy()
        g[:, 1:] = 0.0
        return a, g
    g_half = g[:, 2:]  # "ubu_uncorrelated_half_step": Z_x = sqrt(k1^2 + k2^2) xi_2, Z_p = s_p xi_1
    g_half = np.array([[0.0, math.hypot(g_half[0, 0], g_half[0, 1])], [g_half[1, 0], 0.0]])
    second = phi @ np.array([[1.0, 0.0], [-h * omega2, 1.0]])
    return second @ phi, np.hstack([second @ g_half, g_half])


@pytest.mark.parametrize("scheme", HIGH_ORDER_SCHEMES)
def test_kernel_is_the_linear_recursion_with_known_noise(scheme):
    omega2, gamma, h, mu = 2.3, 0.7, 1.1, 0.4
    target = Gaussian([mu], [[1.0 / omega2]])
    n_chains, n_warmup, n_draws, thin = 3, 2, 4, 3
    steps = n_warmup + n_draws * thin
    k = DRAWS_PER_STEP[scheme]
    x0 = np.array([[1.3], [-0.2], [mu]])
    p0 = np.array([[0.5], [2.0], [-1.0]])
    xi = path_normals(SEED, n_chains, k * steps, stream=STREAM_UNDERDAMPED, parallel=False)
    defects = [d for d in sorted(HIGH_ORDER_DEFECTS) if d.startswith(scheme)]
    assert defects
    for defect in [None, *defects]:
        kernel = run_high_order_kernel if defect is None else HIGH_ORDER_DEFECTS[defect].variant
        res = underdamped_langevin_with(kernel, target, step_size=h, friction=gamma, scheme=scheme, mass=None,
                                        beta=1.0, n_chains=n_chains, n_draws=n_draws, n_warmup=n_warmup, thin=thin,
                                        seed=SEED, x0=x0, p0=p0)
        a, g = high_order_factors(scheme, omega2, gamma, h) if defect is None else _defect_factors(
            defect, omega2, gamma, h)
        for c in range(n_chains):
            z = np.array([x0[c, 0] - mu, p0[c, 0]])
            xs = []
            for m in range(steps):
                z = a @ z + g @ xi[c, k * m:k * (m + 1)]
                xs.append(z[0] + mu)
            kept = np.array(xs)[n_warmup + thin - 1::thin]
            np.testing.assert_allclose(res.samples[c, :, 0], kept, rtol=1e-11, atol=1e-11)
            np.testing.assert_allclose(res.extras["momentum"][c, 0], z[1], rtol=1e-11, atol=1e-11)
            np.testing.assert_allclose(res.potential_energy[c], 0.5 * omega2 * (kept - mu) ** 2, rtol=1e-11,
                                       atol=1e-13)
    assert res.sampler == f"underdamped_{scheme}"


# ---------------------------------------------------------------------------------------------
# stationarity battery (false-alarm rate 1e-6 each)
# ---------------------------------------------------------------------------------------------

def _end_states(scheme, kernel=run_high_order_kernel, **kwargs):
    res = underdamped_langevin_with(kernel, TARGET, step_size=H, friction=GAMMA, scheme=scheme,
                                    mass=kwargs.pop("mass", None), beta=kwargs.pop("beta", 1.0), n_chains=N,
                                    n_draws=K, n_warmup=0, thin=1, seed=SEED, x0="target", p0=None)
    return res.final


@pytest.mark.parametrize("scheme", HIGH_ORDER_SCHEMES)
def test_follows_its_exact_law_at_a_large_step(scheme):
    """Both pass against their exact K-step law; UBU's O(h^2) bias is visible against pi at this step, ShOULD's
    O(h^4) bias is not (its stationary covariance is within 0.012 of pi's)."""
    end = _end_states(scheme)
    law = splitting_gaussian_law(TARGET, scheme, GAMMA, H, K)
    vs_law = compare_with_law(end, law, alpha=ALPHA, tests=GATING, name=f"{scheme} vs its law")
    assert vs_law.passed, vs_law.to_text()
    vs_pi = compare_with_law(end, TARGET, alpha=ALPHA, tests=GATING, name=f"{scheme} vs pi")
    if scheme == "ubu":
        assert not vs_pi.passed and vs_pi.min_pvalue < 1e-12, vs_pi.to_text()
    else:
        assert np.abs(splitting_gaussian_law(TARGET, scheme, GAMMA, H).cov - TARGET.cov).max() < 0.012


@pytest.mark.parametrize("scheme", HIGH_ORDER_SCHEMES)
def test_mass_and_beta_follow_the_exact_law(scheme):
    """M = diag(4, 0.5), beta = 2: the kernel's mass and temperature handling against the exact law (which maps
    the problem to M = beta = 1 by x^ = sqrt(beta) M^{1/2} (x - mu), p^ = sqrt(beta) M^{-1/2} p)."""
    mass, beta = [4.0, 0.5], 2.0
    end = _end_states(scheme, mass=mass, beta=beta)
    law = splitting_gaussian_law(TARGET, scheme, GAMMA, H, K, mass=mass, beta=beta)
    assert np.abs(law.cov - TARGET.cov).max() > 0.4
    report = compare_with_law(end, law, alpha=ALPHA, tests=GATING, name=f"{scheme}, mass and beta")
    assert report.passed, report.to_text()


@pytest.mark.parametrize("defect", sorted(HIGH_ORDER_DEFECTS))
def test_planted_defects_fail_against_the_scheme_law(defect):
    scheme = "ubu" if defect.startswith("ubu") else "should"
    end = _end_states(scheme, kernel=HIGH_ORDER_DEFECTS[defect].variant)
    law = splitting_gaussian_law(TARGET, scheme, GAMMA, H, K)
    report = compare_with_law(end, law, alpha=ALPHA, tests=GATING, name=defect)
    assert not report.passed and report.min_pvalue < 1e-12, report.to_text()


# ---------------------------------------------------------------------------------------------
# reproducibility, refusals
# ---------------------------------------------------------------------------------------------

def test_same_numbers_for_any_thread_count_and_chain_count():
    kw = dict(step_size=H, friction=GAMMA, scheme="should", n_draws=15, n_warmup=3, seed=SEED)
    default_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = underdamped_langevin(TARGET, n_chains=64, **kw)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = underdamped_langevin(TARGET, n_chains=64, **kw)
    finally:
        numba.set_num_threads(default_threads)
    np.testing.assert_array_equal(one.samples, many.samples)
    fewer = underdamped_langevin(TARGET, n_chains=5, **kw)
    np.testing.assert_array_equal(fewer.samples, many.samples[:5])
    assert len(np.unique(many.samples[:, -1, 0])) == 64


@pytest.mark.parametrize("scheme", HIGH_ORDER_SCHEMES)
def test_blow_up_raises_chain_non_finite(scheme):
    with pytest.raises(ChainNonFiniteError) as info:
        underdamped_langevin(TARGET, step_size=50.0, scheme=scheme, n_chains=3, n_draws=2000, seed=SEED)
    assert info.value.step >= 1 and info.value.step_size == 50.0


def test_kernel_and_scheme_must_match():
    with pytest.raises(SDEKitError, match="scheme 'ubu' does not match"):
        underdamped_langevin_with(run_underdamped_kernel, TARGET, step_size=0.1, friction=1.0, scheme="ubu",
                                  mass=None, beta=1.0, n_chains=2, n_draws=2, n_warmup=0, thin=1, seed=0, x0=None,
                                  p0=None)
    with pytest.raises(SDEKitError, match="scheme 'baoab' does not match"):
        underdamped_langevin_with(run_high_order_kernel, TARGET, step_size=0.1, friction=1.0, scheme="baoab",
                                  mass=None, beta=1.0, n_chains=2, n_draws=2, n_warmup=0, thin=1, seed=0, x0=None,
                                  p0=None)



def test_unstable_ubu_step_has_no_stationary_law():
    splitting_stationary_law("ubu", 1.0, GAMMA, 1.9)  # stable below omega h = 2 (spectral radius 0.39)
    with pytest.raises(SDEKitError, match="spectral radius"):
        splitting_stationary_law("ubu", 1.0, GAMMA, 2.5)
