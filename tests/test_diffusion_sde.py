"""Forward SDEs (VE, VP, sub-VP, cosine, custom), and the reverse-time SDE / probability-flow ODE
compositions, against exact laws.

Data are Gaussian N(0, diag(c)) so that every marginal is N(0, diag(alpha_t^2 c + sigma_t^2)) and
the exact score is -x / (alpha_t^2 c + sigma_t^2). Samplers start from the exact p_T, so only the
integrator's error is measured; batteries gate at overall false-alarm rate 1e-6. Planted bugs (the
score term's sign flipped in the reverse drift, the PF-ODE's 1/2 dropped, the forward noise off by
sqrt(2)) fail with p far below the threshold.
"""

import math

import numba as nb
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sdekit
from sdekit.diffusion.forward import ForwardSDE, schedule_kernel, schedule_residuals
from sdekit.diffusion.reverse import probability_flow_ode, reverse_sde
from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian
from sdekit.testing import STATISTICAL
from sdekit.validate import compare_with_law

C = np.array([0.5, 2.0])  # data covariance diag(C)
N = 20_000


@nb.njit(cache=True)
def gaussian_data_score(x, t, p):
    """Exact score of p_t for data N(0, diag(c)): -x / (alpha_t^2 c + sigma_t^2), times p[2][0]
    (1 when correct; planted bugs: -1 flips the score term's sign, 2 drops the PF-ODE's 1/2);
    p = (sp, c, [scale]). Bugs as parameters share the compiled kernels."""
    a, s = schedule_kernel(t, p[0])
    return -p[2][0] * x / (a * a * p[1] + s * s)


OK, FLIPPED, DOUBLED = np.array([1.0]), np.array([-1.0]), np.array([2.0])


def marginal(fw: ForwardSDE, t: float) -> Gaussian:
    a, s = fw.kernel(t)
    return Gaussian(np.zeros(2), np.diag(a * a * C + s * s))


FORWARDS = {"vp": ForwardSDE.vp(), "subvp": ForwardSDE.subvp(), "ve": ForwardSDE.ve(0.01, 10.0),
            "cosine": ForwardSDE.cosine()}


@STATISTICAL
@given(kind=st.sampled_from(["ve", "ve_score_sde", "vp", "subvp", "cosine"]), a=st.floats(0.01, 1.0),
       b=st.floats(2.0, 30.0), t=st.floats(0.02, 0.95))
def test_schedules_satisfy_their_odes(kind, a, b, t):
    """d log alpha / dt = f and d sigma^2 / dt = 2 f sigma^2 + g^2 (relative residual < 1e-6)."""
    fw = {"ve": lambda: ForwardSDE.ve(a, a * b),
          "ve_score_sde": lambda: ForwardSDE.ve(a, a * b, convention="score_sde"),
          "vp": lambda: ForwardSDE.vp(a, b), "subvp": lambda: ForwardSDE.subvp(a, b),
          "cosine": lambda: ForwardSDE.cosine(a / 100)}[kind]()
    r1, r2 = schedule_residuals(fw, [t], dt=1e-6 * max(1.0, t))
    scale = abs(fw.f(t)) + fw.g(t) ** 2 + 2 * abs(fw.f(t)) * fw.sigma(t) ** 2
    assert abs(r1[0]) <= 1e-6 * max(abs(fw.f(t)), 1.0) and abs(r2[0]) <= 1e-6 * scale, (r1, r2)


def test_kernels_match_their_closed_forms():
    vp, sub, ve = ForwardSDE.vp(0.1, 20.0), ForwardSDE.subvp(0.1, 20.0), ForwardSDE.ve(0.01, 50.0)
    for t in (1e-4, 0.3, 1.0):
        big_b = 0.1 * t + 9.95 * t * t
        assert vp.kernel(t) == pytest.approx((math.exp(-big_b / 2), math.sqrt(1 - math.exp(-big_b))), rel=1e-12)
        assert sub.kernel(t) == pytest.approx((math.exp(-big_b / 2), 1 - math.exp(-big_b)), rel=1e-12)
        s = 0.01 * 5000**t
        assert ve.kernel(t) == pytest.approx((1.0, math.sqrt(s * s - 1e-4)), rel=1e-12)
        # score_sde's convention: sigma_t = sigma(t), i.e. the exact variance plus sigma_min^2
        assert ForwardSDE.ve(0.01, 50.0, convention="score_sde").sigma(t) ** 2 == pytest.approx(
            ve.sigma(t) ** 2 + 1e-4, rel=1e-12)


@nb.njit(cache=True)
def linear_beta_f(t, p):
    return -0.5 * (p[0] + t * (p[1] - p[0]))


@nb.njit(cache=True)
def linear_beta_g(t, p):
    return math.sqrt(p[0] + t * (p[1] - p[0]))


def test_custom_schedule_integrates_to_the_builtin_vp():
    custom = ForwardSDE.custom(linear_beta_f, linear_beta_g, [0.1, 20.0])
    vp = ForwardSDE.vp()
    for t in (0.05, 0.5, 1.0):
        assert custom.kernel(t) == pytest.approx(vp.kernel(t), rel=1e-8, abs=1e-10)


def test_forward_sde_reaches_its_kernel_law_and_catches_a_noise_bug():
    """EM on the forward VP SDE from x0 = (1, -2) to t = 0.5 vs N(alpha x0, sigma^2 I); noise x sqrt(2) fails."""
    fw = ForwardSDE.vp()
    x0 = np.array([1.0, -2.0])
    a, s = fw.kernel(0.5)
    law = Gaussian(a * x0, s * s * np.eye(2))
    sol = sdekit.simulate(fw.sde(2), x0, (0.0, 0.5), steps=1000, n_paths=N, seed=3)
    assert compare_with_law(sol.final, law).passed
    bad = sdekit.SDE(fw.sde(2).drift, lambda x, t, p: math.sqrt(2.0) * fw.g(t), dim=2, noise="additive",
                     params=fw.sp)
    sol = sdekit.simulate(bad, x0, (0.0, 0.5), steps=100, n_paths=N, seed=3, backend="numpy")
    assert not compare_with_law(sol.final, law).passed


@pytest.mark.parametrize("kind", sorted(FORWARDS))
def test_reverse_sde_em_from_exact_prior_reaches_p_eps(kind):
    """Reverse SDE, Euler–Maruyama, 1000 steps from the exact p_T to p_eps: passes the battery."""
    fw = FORWARDS[kind]
    rs = reverse_sde(fw, gaussian_data_score, 2, (fw.sp, C, OK))
    x_t = marginal(fw, fw.T).sample(N, seed=5)
    sol = sdekit.simulate(rs, x_t, (fw.T, fw.eps), steps=1000, seed=6)
    report = compare_with_law(sol.final, marginal(fw, fw.eps), name=f"{kind} reverse EM")
    assert report.passed, report.to_text()


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_interpolated_family_keeps_the_marginals(lam):
    """lambda in {0, 0.5}: f x - (1 + lam^2)/2 g^2 s, noise lam g, has the same marginals (EM, 1000 steps)."""
    fw = FORWARDS["vp"]
    rs = reverse_sde(fw, gaussian_data_score, 2, (fw.sp, C, OK), lam=lam)
    sol = sdekit.simulate(rs, marginal(fw, fw.T).sample(N, seed=7), (fw.T, fw.eps), steps=1000, seed=8)
    assert compare_with_law(sol.final, marginal(fw, fw.eps)).passed


@pytest.mark.parametrize("solver, kwargs", [("rk4", {"steps": 100}), ("dopri5", {"rtol": 1e-8, "atol": 1e-10})])
def test_probability_flow_ode_from_exact_prior_reaches_p_eps(solver, kwargs):
    fw = FORWARDS["vp"]
    ode = probability_flow_ode(fw, gaussian_data_score, 2, (fw.sp, C, OK))
    x_t = marginal(fw, fw.T).sample(N, seed=9)
    sol = sdekit.simulate(ode, x_t, (fw.T, fw.eps), solver=solver, **kwargs)
    assert compare_with_law(sol.final, marginal(fw, fw.eps)).passed
    # the exact flow map of Gaussian data is linear: x_eps = sqrt(v_eps / v_T) x_T per coordinate
    v_t, v_eps = np.diag(marginal(fw, fw.T).cov), np.diag(marginal(fw, fw.eps).cov)
    assert np.max(np.abs(sol.final - x_t * np.sqrt(v_eps / v_t))) < 1e-5


def test_planted_bugs_in_the_compositions_fail():
    fw = FORWARDS["vp"]
    x_t = marginal(fw, fw.T).sample(N, seed=11)
    law = marginal(fw, fw.eps)
    rs = reverse_sde(fw, gaussian_data_score, 2, (fw.sp, C, FLIPPED))
    sol = sdekit.simulate(rs, x_t, (fw.T, fw.eps), steps=1000, seed=12, on_nonfinite="mask")
    ok = np.isfinite(sol.final).all(axis=1)
    assert ok.sum() < 100 or not compare_with_law(sol.final[ok], law).passed
    ode = probability_flow_ode(fw, gaussian_data_score, 2, (fw.sp, C, DOUBLED))
    sol = sdekit.simulate(ode, x_t, (fw.T, fw.eps), steps=100, solver="rk4")
    assert not compare_with_law(sol.final, law).passed


def test_bad_input_is_named():
    fw = ForwardSDE.vp()
    with pytest.raises(SDEKitError, match="sigma_max"):
        ForwardSDE.ve(1.0, 0.5)
    with pytest.raises(SDEKitError, match="beta_min"):
        ForwardSDE.vp(-1.0)
    with pytest.raises(SDEKitError, match="T must be"):
        ForwardSDE.cosine(T=1.0)
    with pytest.raises(SDEKitError, match="score must be"):
        reverse_sde(fw, lambda x, t, p: x, 2)
    with pytest.raises(SDEKitError, match="dim"):
        reverse_sde(fw, gaussian_data_score, 0)
    with pytest.raises(SDEKitError, match="lam"):
        reverse_sde(fw, gaussian_data_score, 2, (fw.sp, C, OK), lam=-1.0)
    with pytest.raises(SDEKitError, match="forward"):
        probability_flow_ode("vp", gaussian_data_score, 2)


@pytest.mark.parametrize("solver", ["sra1", "heun"])
def test_reverse_sde_with_higher_order_registry_solvers(solver):
    """The reverse SDE has additive noise, so SRA1 (strong 1.5 / weak 2) applies; 200 steps suffice.
    Heun is a Stratonovich scheme, which for additive noise equals Itô: also valid here."""
    fw = FORWARDS["vp"]
    rs = reverse_sde(fw, gaussian_data_score, 2, (fw.sp, C, OK))
    if solver == "heun":
        rs = sdekit.SDE(rs.drift, rs.diffusion, dim=2, noise="additive", calculus="stratonovich", params=rs.params)
    sol = sdekit.simulate(rs, marginal(fw, fw.T).sample(N, seed=13), (fw.T, fw.eps), steps=200, seed=14,
                          solver=solver)
    assert compare_with_law(sol.final, marginal(fw, fw.eps)).passed


def test_probability_flow_rk4_converges_at_order_four_to_the_exact_flow_map():
    """For Gaussian data the PF-ODE flow map is x_eps = sqrt(v_eps / v_T) x_T per coordinate; RK4's
    error at 5, 10, 20, 40 steps fits a slope in [3.6, 4.4]."""
    fw = FORWARDS["vp"]
    ode = probability_flow_ode(fw, gaussian_data_score, 2, (fw.sp, C, OK))
    x_t = marginal(fw, fw.T).sample(50, seed=15)
    v_t, v_eps = np.diag(marginal(fw, fw.T).cov), np.diag(marginal(fw, fw.eps).cov)
    exact = x_t * np.sqrt(v_eps / v_t)
    steps = np.array([5, 10, 20, 40])
    errors = [np.max(np.abs(sdekit.simulate(ode, x_t, (fw.T, fw.eps), steps=int(k), solver="rk4").final - exact))
              for k in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 3.6 <= slope <= 4.4, (errors, slope)
