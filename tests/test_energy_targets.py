"""Tests of the energy targets (sdekit.targets: DoubleWell, Rosenbrock, NealFunnel; and the energy
protocol of Gaussian / GaussianMixture): gradients against central differences, normalisers
against independent quadrature, exact samplers against the exact marginal laws (each battery at
false-alarm rate 1e-6, fixed seeds), marginal CDFs against their densities and against quadrature
of independent formulas, moments against sample moments (z-tests, |z| < 4.89 <=> rate 1e-6), planted
bugs caught, and bad input rejected with the argument named.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st
from scipy.special import ndtr

from sdekit.errors import SDEKitError
from sdekit.targets import DoubleWell, EnergyTarget, Gaussian, GaussianMixture, NealFunnel, Rosenbrock
from sdekit.targets.double_well import well_1d
from sdekit.targets.energy import check_energy_target
from sdekit.validate import compare_with_law

N = 20_000
ALPHA = 1e-6
Z_CRIT = st.norm.isf(ALPHA / 2)  # 4.89: two-sided z-test at false-alarm rate 1e-6


def mixture_2d() -> GaussianMixture:
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]],
                           [[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.15], [-0.15, 0.6]]])


TARGETS = {
    "well1": lambda: DoubleWell(1, eps=0.5),
    "well2": lambda: DoubleWell(2, eps=[0.5, 0.2], tilt=[0.0, 0.4]),
    "rosen2": lambda: Rosenbrock(2),
    "rosen4": lambda: Rosenbrock(4, mu=0.5, a=2.0, b=3.0),
    "funnel2": lambda: NealFunnel(2, scale=3.0),
    "funnel10": lambda: NealFunnel(10),
    "gauss1": lambda: Gaussian([0.5], [[2.0]]),
    "gauss2": lambda: Gaussian([1.0, -2.0], [[1.0, 0.6], [0.6, 2.0]]),
    "mix1": lambda: GaussianMixture([0.4, 0.6], [-2.0, 1.0], [0.5, 1.5]),
    "mix2": mixture_2d,
}
NEW = ("well1", "well2", "rosen2", "rosen4", "funnel2", "funnel10")


def integrand(target):
    """x -> exp(-U(x) - log Z) through the raw njit energy_fn (fast enough for nested quad)."""
    x = np.empty(target.dim)
    g = np.empty(target.dim)

    def f(*args):
        x[:] = args
        return math.exp(-target.energy_fn(x, target.params, g) - target.log_normalizer)

    return f


# ------------------------------------------------------------------------------------ energy protocol

@pytest.mark.parametrize("name", sorted(TARGETS))
def test_gradient_matches_central_differences(name):
    t = TARGETS[name]()
    check_energy_target(t)
    x = t.sample(6, seed=1)
    x = x[np.all(np.abs(x) < 1e3, axis=1)]  # Rosenbrock's high coordinates can be huge
    assert x.shape[0] >= 3
    worst = EnergyTarget(t.energy_fn, t.dim, t.params).check_gradient(x, rtol=1e-5)
    assert worst < 1e-5
    if name in NEW:
        assert isinstance(t, EnergyTarget)
        assert t.check_gradient(x, rtol=1e-5) == worst
        np.testing.assert_array_equal(t.grad_energy(x[0]), t.grad_energy(x)[0])


def test_check_gradient_catches_a_wrong_gradient():
    @nb.njit
    def bad_energy(x, p, grad):
        r = x[0] * x[0] - 1.0
        grad[0] = 2.0 * x[0] * r / p[0][0]  # should be 4 x (x^2 - 1) / eps
        return r * r / p[0][0]

    with pytest.raises(SDEKitError, match="gradient disagrees"):
        EnergyTarget(bad_energy, 1, (np.array([0.5]),)).check_gradient(np.array([[0.3], [1.7]]))


@pytest.mark.parametrize("name", sorted(set(TARGETS) - {"rosen4", "funnel10"}))
def test_normaliser_integrates_to_one(name):
    """int exp(-U - log Z) = 1 by scipy quad / dblquad over a box holding all the mass (dim <= 2)."""
    t = TARGETS[name]()
    assert t.dim <= 2
    f = integrand(t)
    opts = dict(epsabs=1e-11, epsrel=1e-10)
    if isinstance(t, Rosenbrock):
        s, sig = math.sqrt(1 / (2 * t.a)), math.sqrt(1 / (2 * t.b))
        total, _ = si.dblquad(lambda x2, x1: f(x1, x2), t.mu - 12 * s, t.mu + 12 * s,
                              lambda x1: x1 * x1 - 12 * sig, lambda x1: x1 * x1 + 12 * sig, **opts)
    elif isinstance(t, NealFunnel):
        total, _ = si.dblquad(lambda x1, v: f(v, x1), -12 * t.scale, 12 * t.scale,
                              lambda v: -12 * math.exp(v / 2), lambda v: 12 * math.exp(v / 2), **opts)
    else:
        lo, hi = (-4.0, 4.0) if isinstance(t, DoubleWell) else (-12.0, 12.0)
        if t.dim == 1:
            total, _ = si.quad(f, lo, hi, points=[-1.0, 1.0], limit=200, **opts)
        else:
            total, _ = si.dblquad(lambda y, x: f(x, y), lo, hi, lo, hi, **opts)
    assert abs(total - 1.0) < 1e-8


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_log_prob_is_minus_energy_minus_log_normalizer(name):
    t = TARGETS[name]()
    x = t.sample(50, seed=2)
    x = x[np.all(np.abs(x) < 1e3, axis=1)]
    u = np.array([t.energy_fn(row.copy(), t.params, np.empty(t.dim)) for row in x])
    np.testing.assert_allclose(t.log_prob(x), -u - t.log_normalizer, rtol=1e-12, atol=1e-10)
    if name in NEW:
        np.testing.assert_allclose(t.energy(x), u, rtol=1e-14)
        assert isinstance(t.energy(x[0]), float) and isinstance(t.log_prob(x[0]), float)
        assert t.grad_energy(x[0]).shape == (t.dim,)
        np.testing.assert_array_equal(t.score(x), -t.grad_energy(x))


def test_log_prob_matches_the_factorised_densities():
    """Independent formulas: products of 1-D normal densities (scipy) and 1-D well normalisers by quad."""
    rng = np.random.default_rng(3)
    r = Rosenbrock(4, mu=0.5, a=2.0, b=3.0)
    x = r.sample(20, seed=3)
    ref = st.norm.logpdf(x[:, 0], 0.5, math.sqrt(1 / 4)) + st.norm.logpdf(
        x[:, 1:], x[:, :-1] ** 2, math.sqrt(1 / 6)).sum(axis=1)
    np.testing.assert_allclose(r.log_prob(x), ref, rtol=1e-11)
    f = NealFunnel(5, scale=2.0)
    x = f.sample(20, seed=3)
    ref = st.norm.logpdf(x[:, 0], 0, 2.0) + st.norm.logpdf(x[:, 1:], 0, np.exp(x[:, :1] / 2)).sum(axis=1)
    np.testing.assert_allclose(f.log_prob(x), ref, rtol=1e-11)
    w = DoubleWell(2, eps=[0.5, 0.2], tilt=[0.0, 0.4])
    x = rng.uniform(-1.8, 1.8, size=(20, 2))
    ref = np.zeros(20)
    for i, (eps, tilt) in enumerate([(0.5, 0.0), (0.2, 0.4)]):
        def u(z, eps=eps, tilt=tilt):
            return (z * z - 1) ** 2 / eps + tilt * z
        z_i = si.quad(lambda z: math.exp(-u(z)), -np.inf, np.inf, points=None, epsrel=1e-12)[0]
        ref += -u(x[:, i]) - math.log(z_i)
    np.testing.assert_allclose(w.log_prob(x), ref, rtol=1e-10)


def test_energy_fn_runs_inside_njit():
    @nb.njit
    def total_energy(fn, xs, p):
        g = np.empty(xs.shape[1])
        s = 0.0
        for i in range(xs.shape[0]):
            s += fn(xs[i], p, g)
        return s

    for t in (DoubleWell(3), Rosenbrock(3), NealFunnel(4)):
        x = t.sample(10, seed=4)
        assert total_energy(t.energy_fn, x, t.params) == pytest.approx(float(np.sum(t.energy(x))), rel=1e-12)


# ------------------------------------------------------------------------------------ exact sampling

SAMPLE_CASES = [
    ("well2", lambda: DoubleWell(2, eps=[0.5, 0.2], tilt=[0.0, 0.4]), (0, 1)),
    ("well_deep", lambda: DoubleWell(1, eps=0.05, tilt=0.1), (0,)),
    ("rosen2", lambda: Rosenbrock(2), (0, 1)),
    ("rosen_mid", lambda: Rosenbrock(3, mu=1.0, a=1.0, b=1.0), (0, 1)),
    ("funnel10", lambda: NealFunnel(10), (0, 1, 9)),
]


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[c[0] for c in SAMPLE_CASES])
def test_sample_matches_the_marginal_laws(case):
    _, make, coords = case
    t = make()
    x = t.sample(N, seed=11)
    assert x.shape == (N, t.dim) and np.all(np.isfinite(x))
    for i in coords:
        report = compare_with_law(x[:, i], t.marginal_law(i).cdf, alpha=ALPHA, name=f"x[{i}]")
        assert report.passed, report


def test_rosenbrock_conditional_residuals_are_exactly_normal():
    """x_i - x_{i-1}^2 ~ N(0, 1 / (2b)) for every i >= 2 (the conditional law, checked per coordinate)."""
    r = Rosenbrock(3)
    x = r.sample(N, seed=12)
    for i in (1, 2):
        report = compare_with_law(x[:, i] - x[:, i - 1] ** 2, st.norm(0.0, math.sqrt(1 / (2 * r.b))), alpha=ALPHA)
        assert report.passed, report


def test_sample_is_reproducible_and_sized():
    for t in (DoubleWell(2), Rosenbrock(3), NealFunnel(3)):
        np.testing.assert_array_equal(t.sample(100, seed=5), t.sample(100, seed=5))
        assert not np.array_equal(t.sample(100, seed=5), t.sample(100, seed=6))
        assert t.sample(0, seed=1).shape == (0, t.dim)


PLANTED = [
    ("well eps x2", DoubleWell(1, eps=0.5), DoubleWell(1, eps=1.0), 0),
    ("funnel scale 3.3", NealFunnel(3, scale=3.0), NealFunnel(3, scale=3.3), 0),
    ("rosenbrock b / 2", Rosenbrock(2, a=1.0, b=1.0), Rosenbrock(2, a=1.0, b=0.5), 1),
]


@pytest.mark.parametrize("case", PLANTED, ids=[c[0] for c in PLANTED])
def test_a_planted_parameter_bug_fails_the_marginal_test(case):
    _, right, wrong, i = case
    report = compare_with_law(wrong.sample(N, seed=13)[:, i], right.marginal_law(i).cdf, alpha=ALPHA)
    assert not report.passed


def test_funnel_wrong_conditional_scale_fails_the_x1_test():
    """Planted bug: x_i | v ~ N(0, e^{v/2}) (sd e^{v/4}) instead of N(0, e^v)."""
    z = np.random.default_rng(15).standard_normal((N, 2))
    x1 = np.exp(3.0 * z[:, 0] / 4) * z[:, 1]
    report = compare_with_law(x1, NealFunnel(2, scale=3.0).marginal_law(1).cdf, alpha=ALPHA)
    assert not report.passed


def test_rosenbrock_b_halved_fails_the_residual_test():
    x = Rosenbrock(2, b=2.5).sample(N, seed=14)
    report = compare_with_law(x[:, 1] - x[:, 0] ** 2, st.norm(0.0, math.sqrt(1 / (2 * 5.0))), alpha=ALPHA)
    assert not report.passed


# ------------------------------------------------------------------------------------ marginal laws

def reference_cdf(target, i, z):
    """F_i(z) by scipy quad of an independent formula."""
    if isinstance(target, DoubleWell):
        eps, tilt = target.eps[i], target.tilt[i]

        def dens(y):
            return math.exp(-(y * y - 1) ** 2 / eps - tilt * y)

        total = si.quad(dens, -np.inf, np.inf, epsabs=0, epsrel=1e-13)[0]
        return si.quad(dens, -np.inf, z, epsabs=0, epsrel=1e-13, limit=200)[0] / total
    if isinstance(target, Rosenbrock):  # E_{x1}[Phi((z - x1^2) sqrt(2b))]
        s, sig = math.sqrt(1 / (2 * target.a)), math.sqrt(1 / (2 * target.b))
        pts = [target.mu] + ([-math.sqrt(z), math.sqrt(z)] if z > 0 else [])
        lo, hi = target.mu - 12 * s, target.mu + 12 * s
        return si.quad(lambda y: st.norm.pdf(y, target.mu, s) * ndtr((z - y * y) / sig), lo, hi,
                       points=sorted(p for p in pts if lo < p < hi), limit=500, epsabs=1e-14, epsrel=1e-12)[0]
    # funnel, i >= 1: E_v[Phi(z e^{-v/2})], split at v = 2 log|z| where Phi changes
    sc = target.scale
    vc = 2 * math.log(abs(z)) if z != 0 else 0.0
    pts = sorted(p for p in (0.0, vc - 4, vc, vc + 4) if -14 * sc < p < 14 * sc)
    tail = si.quad(lambda v: st.norm.pdf(v, 0, sc) * ndtr(-abs(z) * math.exp(-v / 2)), -14 * sc, 14 * sc,
                   points=pts, limit=500, epsabs=1e-15, epsrel=1e-12)[0]
    return tail if z < 0 else 1.0 - tail


LAW_CASES = [
    ("well", DoubleWell(2, eps=[0.5, 0.05], tilt=[0.3, -0.2]), 0, np.linspace(-2.5, 2.5, 11)),
    ("well_deep", DoubleWell(2, eps=[0.5, 0.05], tilt=[0.3, -0.2]), 1, np.linspace(-1.4, 1.4, 11)),
    ("rosen_x2", Rosenbrock(2), 1, np.array([-0.5, 0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 400.0])),
    ("rosen_x2_sharp", Rosenbrock(2, mu=2.0, a=0.5, b=50.0), 1, np.array([-0.1, 0.05, 0.5, 3.0, 6.0, 15.0, 40.0])),
    ("funnel_x1", NealFunnel(3, scale=3.0), 1, np.array([-1e6, -300.0, -5.0, -0.01, 0.0, 0.2, 3.0, 80.0, 1e4, 1e8])),
    ("funnel_x1_narrow", NealFunnel(3, scale=0.5), 2, np.array([-4.0, -1.0, 0.0, 0.5, 2.0, 6.0])),
]


@pytest.mark.parametrize("case", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_marginal_cdf_matches_quadrature(case):
    _, t, i, zs = case
    law = t.marginal_law(i)
    got = law.cdf(zs)
    assert got.shape == zs.shape
    ref = np.array([reference_cdf(t, i, z) for z in zs])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("case", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_marginal_pdf_is_the_derivative_of_the_cdf(case):
    _, t, i, zs = case
    law = t.marginal_law(i)
    zs = zs[np.abs(zs) < 1e3]
    h = 1e-5 * np.maximum(1.0, np.abs(zs))
    fd = (law.cdf(zs + h) - law.cdf(zs - h)) / (2 * h)
    np.testing.assert_allclose(fd, law.pdf(zs), rtol=1e-5, atol=1e-8)
    grid = np.linspace(-50, 50, 2001) if isinstance(t, NealFunnel) else np.linspace(-3, 500, 2001)
    assert np.all(np.diff(law.cdf(grid)) >= -1e-12)  # monotone, up to the stated ~1e-12 accuracy
    assert law.cdf(np.array([-1e12]))[0] == pytest.approx(0.0, abs=1e-12)
    assert law.cdf(np.array([1e12]))[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("case", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_marginal_pdf_integrates_to_one_with_the_stated_moments(case):
    _, t, i, _ = case
    law = t.marginal_law(i)
    kmax = 2 if isinstance(t, NealFunnel) and t.scale > 1 else 4  # heavy tails: quad of z^4 f is unreliable

    def f(z):
        return float(law.pdf(np.array([z]))[0])

    def moment(k):
        if isinstance(t, NealFunnel):  # split at 0 for the symmetric, heavy-tailed law
            return sum(si.quad(lambda z: z**k * f(z), a, b, limit=500, epsabs=1e-12, epsrel=1e-10)[0]
                       for a, b in ((-np.inf, 0), (0, np.inf)))
        return si.quad(lambda z: z**k * f(z), -np.inf, np.inf, limit=500, epsabs=1e-12, epsrel=1e-10)[0]

    assert moment(0) == pytest.approx(1.0, abs=1e-8)
    for k in range(1, kmax + 1):
        assert moment(k) == pytest.approx(law.moments[k - 1], rel=1e-7, abs=1e-9)


MOMENT_CASES = [
    ("well2", lambda: DoubleWell(2, eps=[0.5, 0.2], tilt=[0.0, 0.4]), {0: 4, 1: 4}),
    ("rosen_default", lambda: Rosenbrock(2), {0: 4, 1: 2}),  # x_2^3, x_2^4 are too heavy-tailed for a z-test
    ("rosen_narrow", lambda: Rosenbrock(2, mu=2.0, a=8.0, b=8.0), {1: 4}),
    ("funnel", lambda: NealFunnel(3, scale=3.0), {0: 4}),
    ("funnel_narrow", lambda: NealFunnel(3, scale=0.5), {1: 4, 2: 2}),
]


@pytest.mark.parametrize("case", MOMENT_CASES, ids=[c[0] for c in MOMENT_CASES])
def test_moments_match_sample_moments(case):
    _, make, orders = case
    t = make()
    x = t.sample(N, seed=21)
    for i, kmax in orders.items():
        m = t.marginal_law(i).moments
        assert len(m) == 4
        for k in range(1, kmax + 1):
            y = x[:, i] ** k
            z = (y.mean() - m[k - 1]) / (y.std(ddof=1) / math.sqrt(N))
            assert abs(z) < Z_CRIT, (i, k, z)


def test_moment_z_test_catches_a_wrong_second_moment():
    """The Jensen slip E x_i^2 = e^{E v} = 1 (instead of E e^v = e^{scale^2/2}) is rejected by the same z-test."""
    x = NealFunnel(3, scale=0.5).sample(N, seed=22)[:, 1] ** 2
    z = (x.mean() - 1.0) / (x.std(ddof=1) / math.sqrt(N))
    assert abs(z) > Z_CRIT


# ------------------------------------------------------------------------------------ mean and cov

def test_double_well_mean_cov_and_cache():
    w = DoubleWell(3, eps=[0.3, 0.5, 0.3], tilt=[0.2, 0.0, 0.2])
    assert w._wells[0] is w._wells[2] is well_1d(0.3, 0.2)  # one set of quadratures per distinct pair
    assert w.mean[1] == pytest.approx(0.0, abs=1e-13)  # symmetric well
    assert w.mean[0] < 0  # tilt > 0 favours the left well
    assert np.count_nonzero(w.cov - np.diag(np.diag(w.cov))) == 0
    x = w.sample(N, seed=23)
    se = np.sqrt(np.diag(w.cov) / N)
    assert np.all(np.abs(x.mean(0) - w.mean) < Z_CRIT * se)
    m = w.marginal_law(0).moments
    assert w.cov[0, 0] == pytest.approx(m[1] - m[0] ** 2, rel=1e-12)
    assert w.log_normalizer == pytest.approx(2 * well_1d(0.3, 0.2).log_normalizer + well_1d(0.5, 0.0).log_normalizer)


def test_rosenbrock_mean_and_cov_closed_forms():
    mu, a, b = 1.0, 1 / 20, 5.0
    s2, t = 1 / (2 * a), 1 / (2 * b)
    r = Rosenbrock(2, mu, a, b)
    np.testing.assert_allclose(r.mean, [mu, mu**2 + s2], rtol=1e-14)
    np.testing.assert_allclose(r.cov, [[s2, 2 * mu * s2], [2 * mu * s2, 2 * s2**2 + 4 * mu**2 * s2 + t]], rtol=1e-13)
    assert r.log_normalizer == pytest.approx(0.5 * math.log(math.pi / a) + 0.5 * math.log(math.pi / b))
    # d = 3 against hand-derived forms, with x_3 = x_2^2 + sqrt(t) e_3 and x_2's moments from marginal_law(1):
    # E x3 = E x1^4 + t = E x2^2, Var x3 = E x2^4 + t - (E x2^2)^2, Cov(x1, x3) = E x1^5 - mu E x1^4,
    # Cov(x2, x3) = E x2^3 - E x2 E x2^2
    mu, a, b = 0.5, 2.0, 3.0
    s2, t = 1 / (2 * a), 1 / (2 * b)
    r = Rosenbrock(3, mu, a, b)
    e = st.norm(mu, math.sqrt(s2)).moment
    m2 = r.marginal_law(1).moments
    ex3 = e(4) + t
    assert m2[1] == pytest.approx(ex3, rel=1e-13)
    var_x3 = m2[3] + t - m2[1] ** 2
    np.testing.assert_allclose(r.mean, [mu, mu**2 + s2, ex3], rtol=1e-12)
    np.testing.assert_allclose(r.cov[0, 2], e(5) - mu * e(4), rtol=1e-12)
    np.testing.assert_allclose(r.cov[1, 2], m2[2] - m2[0] * m2[1], rtol=1e-12)
    np.testing.assert_allclose(r.cov[2, 2], var_x3, rtol=1e-12)
    x = r.sample(N, seed=24)
    se = np.sqrt(np.diag(r.cov) / N)
    assert np.all(np.abs(x.mean(0) - r.mean) < Z_CRIT * se)


def test_funnel_mean_cov_and_normaliser():
    f = NealFunnel(4, scale=1.5)
    np.testing.assert_array_equal(f.mean, np.zeros(4))
    np.testing.assert_allclose(f.cov, np.diag([2.25] + [math.exp(1.125)] * 3), rtol=1e-15)
    assert f.log_normalizer == pytest.approx(0.5 * math.log(2 * math.pi * 2.25) + 1.5 * math.log(2 * math.pi))
    x = f.sample(N, seed=25)
    assert abs(x[:, 0].var() - 2.25) < Z_CRIT * math.sqrt(2 * 2.25**2 / N)


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("make, match", [
    (lambda: DoubleWell(2, eps=[0.5, 0.0]), r"eps must be positive; eps\[1\]"),
    (lambda: DoubleWell(1, eps=-1.0), "eps must be positive"),
    (lambda: DoubleWell(2, eps=[0.5, 0.5, 0.5]), r"eps must be a scalar or have shape \(dim,\)"),
    (lambda: DoubleWell(1, tilt=float("nan")), "tilt must be finite"),
    (lambda: DoubleWell(0), "dim must be an integer >= 1"),
    (lambda: DoubleWell(1.5), "dim must be an integer >= 1"),
    (lambda: Rosenbrock(1), "dim must be an integer >= 2"),
    (lambda: Rosenbrock(2, a=0.0), "a must be positive"),
    (lambda: Rosenbrock(2, b=-1.0), "b must be positive"),
    (lambda: Rosenbrock(2, mu=[1.0, 2.0]), "mu must be a scalar"),
    (lambda: NealFunnel(1), "dim must be an integer >= 2"),
    (lambda: NealFunnel(3, scale=0.0), "scale must be positive"),
    (lambda: DoubleWell(2).energy(np.zeros(3)), r"x must have shape \(2,\) or \(n, 2\)"),
    (lambda: Rosenbrock(3).log_prob(np.zeros((4, 2))), r"x must have shape \(3,\)"),
    (lambda: NealFunnel(3).grad_energy(np.zeros((2, 2, 3))), "x must have shape"),
    (lambda: DoubleWell(2).marginal_law(2), r"i must be a coordinate index in \[0, 1\]"),
    (lambda: NealFunnel(3).marginal_law(-1), "i must be a coordinate index"),
    (lambda: Rosenbrock(3).marginal_law(2), "only coordinates 0 and 1"),
    (lambda: Rosenbrock(11).mean, "dim <= 10"),
    (lambda: Rosenbrock(9).cov, "overflow"),
    (lambda: DoubleWell(1).sample(-1), "n must be a non-negative integer"),
])
def test_bad_inputs_name_the_argument(make, match):
    with pytest.raises(SDEKitError, match=match):
        make()
