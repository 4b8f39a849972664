"""Underdamped Langevin by BAOAB and OBABO (`sdekit.mcmc.underdamped`): closed forms, exact laws, and
the compiled kernel against them.

Closed forms (VALIDATION.md §1d; Leimkuhler & Matthews 2013): on U = omega^2 x^2 / 2 (M = beta = 1)
BAOAB's invariant law has exactly Var x = 1/omega^2 and Var p = 1 - h^2 omega^2 / 4 for every gamma
and h < 2/omega; OBABO's has Var x = 1 / (omega^2 (1 - h^2 omega^2 / 4)).

Statistical checks: N = 20,000 chains start exactly in pi (``x0="target"``), run K = 20 steps at a large
step, h = 0.8 of the stability limit 2/sqrt(lambda_max(P)), and the end states (i.i.d. across chains)
go through `compare_with_law`: one battery at overall false-alarm rate alpha = 1e-6 each. BAOAB must
pass against pi; OBABO must fail against pi and pass against its own exact law
(`splitting_gaussian_law`); every planted defect (`DEFECTS`, run through `sdekit.mcmc.defects.planted`)
must fail against the scheme's exact law. All tests use one target function (the Gaussian energy) so the
parallel kernel compiles once (and once per planted variant); the scheme is a runtime switch of that kernel.
"""

import math

import numba
import numpy as np
import pytest

from sdekit.errors import ChainNonFiniteError, SDEKitError
from sdekit.mcmc.defects import planted
from sdekit.mcmc.underdamped import (
    DEFECTS,
    SCHEMES,
    STREAM_UNDERDAMPED,
    splitting_factors,
    splitting_gaussian_law,
    splitting_stationary_law,
    splitting_step_matrix,
    underdamped_langevin,
)
from sdekit.noise.streams import path_normals
from sdekit.targets import Gaussian, GaussianMixture
from sdekit.validate.compare import compare_with_law

ALPHA, N, K, GAMMA, SEED = 1e-6, 20_000, 20, 1.0, 2026
GATING = ("ks", "cvm", "moments", "stein")  # compare_with_law's gating tests (its MMD is a diagnostic only)
TARGET = Gaussian([0.5, -1.0], [[1.0, 0.5], [0.5, 2.0]])
H_LIMIT = 2.0 / math.sqrt(np.linalg.eigvalsh(TARGET.params[1]).max())
H = 0.8 * H_LIMIT
CLOSED_FORM_CASES = [(1.0, 1.0, 1.5), (2.0, 0.3, 0.9), (0.5, 5.0, 3.9), (3.0, 0.01, 0.6), (1.0, 20.0, 1.99)]


def sampler(defect=None):
    """underdamped_langevin, or it with the planted bug ``defect`` (a key of DEFECTS)."""
    return underdamped_langevin if defect is None else planted("underdamped_langevin", defect)


def run_from_pi(scheme, defect=None, **kwargs):
    """N chains from x ~ pi, p ~ N(0, I), K steps of size H; returns the end states (N, 2)."""
    res = sampler(defect)(TARGET, step_size=H, friction=GAMMA, scheme=scheme, n_chains=N, n_draws=K, seed=SEED,
                          x0="target", **kwargs)
    return res.final


# ---------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("omega, gamma, h", CLOSED_FORM_CASES)
def test_baoab_stationary_law_is_exact_in_x(omega, gamma, h):
    s = splitting_stationary_law("baoab", omega**2, gamma, h)
    assert s[0, 0] == pytest.approx(1.0 / omega**2, rel=1e-12, abs=0)
    assert s[1, 1] == pytest.approx(1.0 - h**2 * omega**2 / 4.0, rel=1e-10, abs=1e-14)
    assert abs(s[0, 1]) < 1e-12


@pytest.mark.parametrize("omega, gamma, h", CLOSED_FORM_CASES)
def test_obabo_stationary_law_is_biased_in_x(omega, gamma, h):
    s = splitting_stationary_law("obabo", omega**2, gamma, h)
    a = h**2 * omega**2 / 4.0
    assert s[0, 0] == pytest.approx(1.0 / (omega**2 * (1.0 - a)), rel=1e-10)
    assert s[1, 1] == pytest.approx(1.0, rel=1e-10)
    assert a > 0.5 and s[0, 0] > 2.0 / omega**2  # every case is a large step: the bias at least doubles Var x


def test_step_matrix_is_the_product_of_the_pieces():
    omega2, gamma, h = 1.7, 0.6, 0.9
    b = np.array([[1.0, 0.0], [-0.5 * h * omega2, 1.0]])

    def drift(s):
        return np.array([[1.0, s], [0.0, 1.0]])

    def ou(c):
        return np.diag([1.0, c])

    a, q = splitting_step_matrix("baoab", omega2, gamma, h)
    c1 = math.exp(-gamma * h)
    np.testing.assert_allclose(a, b @ drift(h / 2) @ ou(c1) @ drift(h / 2) @ b, rtol=1e-14)
    t = b @ drift(h / 2)
    np.testing.assert_allclose(q, (1 - c1**2) * np.outer(t[:, 1], t[:, 1]), rtol=1e-14)
    a, q = splitting_step_matrix("obabo", omega2, gamma, h)
    c2 = math.exp(-gamma * h / 2)
    verlet = b @ drift(h) @ b
    np.testing.assert_allclose(a, ou(c2) @ verlet @ ou(c2), rtol=1e-14)
    t = ou(c2) @ verlet
    np.testing.assert_allclose(q, (1 - c2**2) * (np.outer(t[:, 1], t[:, 1]) + np.diag([0.0, 1.0])), rtol=1e-14)
    # gamma = 0: both schemes are velocity Verlet, without noise
    for scheme in SCHEMES:
        a, q = splitting_step_matrix(scheme, omega2, 0.0, h)
        np.testing.assert_allclose(a, verlet, rtol=1e-14)
        assert not np.any(q)


def test_unstable_step_has_no_stationary_law():
    with pytest.raises(SDEKitError, match="spectral radius"):
        splitting_stationary_law("baoab", 4.0, 1.0, 1.0)  # h = 2 / omega
    with pytest.raises(SDEKitError, match="spectral radius"):
        splitting_stationary_law("obabo", 1.0, 0.0, 0.5)  # no friction


def test_gaussian_law_baoab_is_the_target_obabo_is_not():
    for frac in (0.1, 0.5, 0.8, 0.99):
        law = splitting_gaussian_law(TARGET, "baoab", GAMMA, frac * H_LIMIT)
        np.testing.assert_allclose(law.cov, TARGET.cov, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(law.mean, TARGET.mean)
    obabo = splitting_gaussian_law(TARGET, "obabo", GAMMA, H)
    assert np.abs(obabo.cov - TARGET.cov).max() > 0.5
    # after K steps from (pi, N(0, I)) BAOAB's law has converged to pi (the stats test below relies on it) ...
    assert np.abs(splitting_gaussian_law(TARGET, "baoab", GAMMA, H, K).cov - TARGET.cov).max() < 1e-9
    # ... but not after one step (p ~ N(0, I) is not BAOAB's step-end momentum law)
    assert np.abs(splitting_gaussian_law(TARGET, "baoab", GAMMA, H, 1).cov - TARGET.cov).max() > 0.1
    # zero steps: the starting law
    np.testing.assert_allclose(splitting_gaussian_law(TARGET, "obabo", GAMMA, H, 0).cov, TARGET.cov, atol=1e-12)
    # mass and beta: BAOAB's position law is exactly N(mu, S / beta)
    law = splitting_gaussian_law(TARGET, "baoab", GAMMA, 0.5, mass=[4.0, 0.5], beta=2.0)
    np.testing.assert_allclose(law.cov, TARGET.cov / 2.0, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the compiled kernel against the exact linear recursion, with the chains' own normals
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES)
def test_kernel_is_the_linear_recursion_with_known_noise(scheme):
    """On a 1-D Gaussian N(mu, 1/omega2) the kernel is z' = A z + G xi with z = (x - mu, p), xi the chain's
    stream (`path_normals` with the kernel's stream id); the defects are G * sqrt(2) and (A_Verlet, 0)."""
    omega2, gamma, h, mu = 2.3, 0.7, 1.1, 0.4
    target = Gaussian([mu], [[1.0 / omega2]])
    n_chains, n_warmup, n_draws, thin = 3, 2, 4, 3
    steps = n_warmup + n_draws * thin
    k = 1 if scheme == "baoab" else 2
    x0 = np.array([[1.3], [-0.2], [mu]])
    p0 = np.array([[0.5], [2.0], [-1.0]])
    xi = path_normals(SEED, n_chains, k * steps, stream=STREAM_UNDERDAMPED, parallel=False)
    for defect in [None, *sorted(DEFECTS)]:
        res = sampler(defect)(target, step_size=h, friction=gamma, scheme=scheme, n_chains=n_chains,
                              n_draws=n_draws, n_warmup=n_warmup, thin=thin, seed=SEED, x0=x0, p0=p0)
        frozen = defect == "no_momentum_refresh"
        a, g = splitting_factors(scheme, omega2, 0.0 if frozen else gamma, h)
        g = g * (math.sqrt(2.0) if defect == "noise_off_by_sqrt2" else 1.0)
        for c in range(n_chains):
            z = np.array([x0[c, 0] - mu, p0[c, 0]])
            xs = []
            for m in range(steps):
                z = a @ z + (g @ xi[c, k * m:k * (m + 1)] if not frozen else 0.0)
                xs.append(z[0] + mu)
            kept = np.array(xs)[n_warmup + thin - 1::thin]
            np.testing.assert_allclose(res.samples[c, :, 0], kept, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(res.extras["momentum"][c, 0], z[1], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(res.potential_energy[c], 0.5 * omega2 * (kept - mu) ** 2, rtol=1e-12,
                                       atol=1e-14)
    assert res.sampler == f"underdamped_{scheme}"
    assert np.all(res.accept_prob == 1.0) and res.n_divergent == 0
    np.testing.assert_array_equal(res.step_size, np.full(n_chains, h))


# ---------------------------------------------------------------------------------------------
# stationarity from pi (each battery: false-alarm rate alpha = 1e-6)
# ---------------------------------------------------------------------------------------------

def test_baoab_is_stationary_at_a_large_step():
    report = compare_with_law(run_from_pi("baoab"), TARGET, alpha=ALPHA, tests=GATING, name="baoab vs pi")
    assert report.passed, report.to_text()


def test_obabo_is_biased_exactly_as_predicted():
    end = run_from_pi("obabo")
    vs_pi = compare_with_law(end, TARGET, alpha=ALPHA, tests=GATING, name="obabo vs pi")
    assert not vs_pi.passed and vs_pi.min_pvalue < 1e-12, vs_pi.to_text()
    law = splitting_gaussian_law(TARGET, "obabo", GAMMA, H, K)
    vs_law = compare_with_law(end, law, alpha=ALPHA, tests=GATING, name="obabo vs its law")
    assert vs_law.passed, vs_law.to_text()


def test_mass_and_beta_follow_the_exact_law():
    """BAOAB with M = diag(4, 0.5), beta = 2, from x ~ pi: K steps' exact law (tending to N(mu, S / 2))."""
    mass, beta = [4.0, 0.5], 2.0
    end = run_from_pi("baoab", mass=mass, beta=beta)
    law = splitting_gaussian_law(TARGET, "baoab", GAMMA, H, K, mass=mass, beta=beta)
    assert np.abs(law.cov - TARGET.cov).max() > 0.4  # far from pi: the test could not pass by ignoring beta
    report = compare_with_law(end, law, alpha=ALPHA, tests=GATING, name="baoab, mass and beta")
    assert report.passed, report.to_text()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_planted_defects_fail_against_the_scheme_law(scheme, defect):
    law = splitting_gaussian_law(TARGET, scheme, GAMMA, H, K)
    report = compare_with_law(run_from_pi(scheme, defect=defect), law, alpha=ALPHA, tests=GATING, name=defect)
    assert not report.passed and report.min_pvalue < 1e-12, report.to_text()


# ---------------------------------------------------------------------------------------------
# reproducibility
# ---------------------------------------------------------------------------------------------

def test_same_numbers_for_any_thread_count_and_chain_count():
    kw = dict(step_size=H, friction=GAMMA, scheme="obabo", n_draws=15, n_warmup=3, seed=SEED)
    default_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = underdamped_langevin(TARGET, n_chains=64, **kw)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # all cores (the test session runs on 1 by default)
        many = underdamped_langevin(TARGET, n_chains=64, **kw)
    finally:
        numba.set_num_threads(default_threads)
    np.testing.assert_array_equal(one.samples, many.samples)
    np.testing.assert_array_equal(one.extras["momentum"], many.extras["momentum"])
    np.testing.assert_array_equal(one.potential_energy, many.potential_energy)
    fewer = underdamped_langevin(TARGET, n_chains=5, **kw)
    np.testing.assert_array_equal(fewer.samples, many.samples[:5])
    np.testing.assert_array_equal(fewer.extras["momentum"], many.extras["momentum"][:5])
    other = underdamped_langevin(TARGET, n_chains=5, **{**kw, "seed": SEED + 1})
    assert not np.any(other.samples == fewer.samples)
    # chains are distinct streams
    assert len(np.unique(many.samples[:, -1, 0])) == 64


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(friction=-1.0), "friction"),
    (dict(friction=0.0), "friction"),
    (dict(scheme="leapfrog"), "scheme"),
    (dict(x0=np.zeros(3)), "x0"),
    (dict(x0=np.zeros((3, 2))), "x0"),
    (dict(p0=np.zeros((2, 3))), "p0"),
    (dict(p0=[np.nan, 0.0]), "p0"),
    (dict(mass=[1.0, 0.0]), "mass"),
    (dict(mass=-2.0), "mass"),
    (dict(mass=np.eye(2)), "mass"),
    (dict(step_size=0.0), "step_size"),
    (dict(beta=0.0), "beta"),
    (dict(n_chains=0), "n_chains"),
    (dict(thin=0), "thin"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments_are_named(kwargs, name):
    args = dict(step_size=0.5, n_chains=4, n_draws=3) | kwargs
    with pytest.raises(SDEKitError, match=name):
        underdamped_langevin(TARGET, **args)


def test_bad_law_arguments_are_named():
    with pytest.raises(SDEKitError, match="scheme"):
        splitting_step_matrix("baoba", 1.0, 1.0, 0.1)
    with pytest.raises(SDEKitError, match="omega2"):
        splitting_step_matrix("baoab", 0.0, 1.0, 0.1)
    with pytest.raises(SDEKitError, match="gamma"):
        splitting_step_matrix("baoab", 1.0, -1.0, 0.1)
    with pytest.raises(SDEKitError, match="h must"):
        splitting_stationary_law("obabo", 1.0, 1.0, -0.1)
    with pytest.raises(SDEKitError, match="target"):
        splitting_gaussian_law(GaussianMixture([1.0], [[0.0]], [[[1.0]]]), "baoab", 1.0, 0.1)
    with pytest.raises(SDEKitError, match="steps"):
        splitting_gaussian_law(TARGET, "baoab", 1.0, 0.1, steps=-1)
    with pytest.raises(SDEKitError, match="spectral radius"):
        splitting_gaussian_law(TARGET, "baoab", 1.0, 1.01 * H_LIMIT)


def test_blow_up_raises_chain_non_finite():
    with pytest.raises(ChainNonFiniteError) as info:
        underdamped_langevin(TARGET, step_size=50.0, n_chains=3, n_draws=2000, seed=SEED)
    assert info.value.step >= 1 and info.value.step_size == 50.0
    assert 0 <= info.value.chain < 3
