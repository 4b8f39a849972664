"""Stiff SDE solvers (sdekit.solvers.stiff): mean-square stability, SK-ROCK's stability polynomial, Newton failures.

Statistical checks compare a sample second moment with the scheme's own closed form at a 5.3-sigma threshold
(two-sided false-alarm rate 1.2e-7 under the CLT; the fourth moments are finite and known, so sigma is exact).
Strong orders are gated by the generic tests/test_orders.py; Numba = NumPy by tests/test_simulate.py.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from numpy.polynomial import chebyshev

import sdekit
from sdekit.solvers import SDE_SOLVERS, register, skrock_method, theta_method
from sdekit.solvers.stiff import chebyshev_stability_length, skrock_omegas, skrock_stages
from tests.problems import BROWNIAN_1D

Z_ALARM = 5.3
N = 20000
LAM, MU, H, STEPS = -10.0, 1.0, 0.25, 8  # 2λ + μ² = -19: the SDE is mean-square stable; EM at this h is not


def lin_drift(x, t, p):
    return p[0] * x


def lin_diffusion(x, t, p):
    return p[1] * x


def zero_diffusion(x, t, p):
    return 0.0 * x


def zero_drift(x, t, p):
    return 0.0 * x


def diag_drift(x, t, p):
    """dX_i = -λ_i X_i dt, λ_i = p[i]."""
    return -p * x


def stiff_cubic(x, t, p):
    """dX = -γ (X + X³) dt: stiff (f' = -γ(1 + 3X²)) and nonlinear."""
    return -p[0] * (x + x * x * x)


def const_noise(x, t, p):
    return p[1] + 0.0 * x


LINEAR = sdekit.SDE(lin_drift, lin_diffusion, 1, noise="scalar", params=np.array([LAM, MU]), name="linear_ms")


@contextlib.contextmanager
def registered(solver):
    """A solver variant registered for one test only (the module-level registry is what the other tests see)."""
    register(solver)
    try:
        yield solver.name
    finally:
        SDE_SOLVERS.pop(solver.name)


def theta_moments(theta: float) -> tuple[float, float]:
    """E X_T² and E X_T⁴ of the θ-method on dX = λX dt + μX dW, X_0 = 1: X' = (a + μ ΔW) X / c."""
    a, c = 1.0 + (1.0 - theta) * H * LAM, 1.0 - theta * H * LAM
    e2 = (a * a + MU * MU * H) / c**2
    e4 = (a**4 + 6 * a * a * MU * MU * H + 3 * MU**4 * H * H) / c**4
    return e2**STEPS, e4**STEPS


def ms_consistent(solver: str, theta: float) -> tuple[bool, float, float]:
    x = sdekit.simulate(LINEAR, 1.0, (0.0, H * STEPS), steps=STEPS, n_paths=N, seed=7, solver=solver).ys[-1, :, 0]
    m2, m4 = theta_moments(theta)
    sample = float(np.mean(x * x))
    return abs(sample - m2) < Z_ALARM * np.sqrt((m4 - m2 * m2) / N), sample, m2


@pytest.mark.parametrize("solver, theta", [("implicit_euler_maruyama", 1.0), ("theta_maruyama", 0.5),
                                           ("euler_maruyama", 0.0)])
def test_mean_square_stability_on_linear_test_equation(solver: str, theta: float) -> None:
    """At h = 0.25 (hλ = -2.5) EM's second moment grows 2.5x a step (Higham 2000: |1 + hλ|² + hμ² > 1); the θ-methods
    (θ >= 1/2) decay as the exact E X_t² = exp((2λ + μ²) t) does; each matches its own closed form."""
    ok, sample, m2 = ms_consistent(solver, theta)
    assert ok, f"{solver}: E X_T^2 = {sample:.4g}, closed form {m2:.4g}"
    exact = np.exp((2 * LAM + MU * MU) * H * STEPS)
    if theta >= 0.5:
        assert sample < 1e-6 and exact < 1e-6
    else:
        assert sample > 100.0


def test_planted_bug_theta_ignored_fails_ms_check() -> None:
    """A θ = 1/2 solver that runs θ = 1 (θ ignored) is caught by the closed-form check."""
    with registered(theta_method("theta_bug", theta=1.0)) as name:
        ok, sample, m2 = ms_consistent(name, 0.5)
    assert not ok and sample > 10 * m2


def test_stiff_cubic_stable_where_em_explodes() -> None:
    """dX = -100 (X + X³) dt + 0.5 dW at h = 0.1 (h |f'| >= 10): EM overflows; the implicit solvers and SK-ROCK stay
    near 0, with a variance below twice the linearised (OU) stationary 0.25/200 and above that of a frozen state."""
    sde = sdekit.SDE(stiff_cubic, const_noise, 1, noise="additive", params=np.array([100.0, 0.5]), name="cubic")
    kw = dict(x0=1.0, t=(0.0, 2.0), steps=20, n_paths=2000, seed=3)
    with pytest.raises(sdekit.NonFiniteError):
        sdekit.simulate(sde, solver="euler_maruyama", **kw)
    for solver in ("implicit_euler_maruyama", "theta_maruyama", "skrock"):
        x = sdekit.simulate(sde, solver=solver, **kw).ys[-1, :, 0]
        assert np.all(np.isfinite(x)) and np.abs(x).max() < 0.5, solver
        assert 1e-6 < x.var() < 2 * 0.25 / 200.0, (solver, x.var())


def test_skrock_stability_polynomial_and_stability_length() -> None:
    """One SK-ROCK step of dX_i = -λ_i X_i dt with s fixed by a given spectral radius equals
    R_s(z) = T_s(ω_0 + ω_1 z) / T_s(ω_0) (z = -hλ_i); |R_s| <= 1 on [-L_s, 0], L_s ≈ (2 - 4η/3) s², EM's is 2."""
    s, eta = 5, 0.05
    length = chebyshev_stability_length(s, eta)
    assert skrock_stages(length, eta) == s and skrock_stages(length * 1.0001, eta) == s + 1
    lam = np.linspace(0.0, 1.3 * length, 131)
    sde = sdekit.SDE(diag_drift, zero_diffusion, lam.size, params=lam, name="diag")
    w0, w1 = skrock_omegas(s, eta)
    t_s = np.zeros(s + 1)
    t_s[s] = 1.0
    expected = chebyshev.chebval(w0 - w1 * lam, t_s) / chebyshev.chebval(w0, t_s)
    with registered(skrock_method("skrock_rho_test", spectral_radius=length)) as name:
        for backend in ("numba", "numpy"):
            got = sdekit.simulate(sde, np.ones(lam.size), (0.0, 1.0), steps=1, n_paths=1, solver=name,
                                  backend=backend).ys[-1, 0]
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    stable = lam[np.abs(expected) <= 1.0]
    assert stable.max() >= length and abs(length / s**2 - (2 - 4 * eta / 3)) < 0.02
    assert np.abs(expected[lam > 1.05 * length]).min() > 1.0  # it does break beyond L_s


def test_planted_bug_wrong_chebyshev_coefficient_fails(monkeypatch) -> None:
    """ω_1 off by 1% in the (reference) SK-ROCK step: the stability-polynomial check fails."""
    import sdekit.backends.reference_stiff as ref

    def wrong(s, eta):
        w0, w1 = skrock_omegas(s, eta)
        return w0, 1.01 * w1

    monkeypatch.setattr(ref, "skrock_omegas", wrong)
    s, eta, lam = 5, 0.05, np.linspace(0.0, 40.0, 9)
    w0, w1 = skrock_omegas(s, eta)
    t_s = np.zeros(s + 1)
    t_s[s] = 1.0
    expected = chebyshev.chebval(w0 - w1 * lam, t_s) / chebyshev.chebval(w0, t_s)
    sde = sdekit.SDE(diag_drift, zero_diffusion, lam.size, params=lam, name="diag")
    with registered(skrock_method("skrock_bug", spectral_radius=chebyshev_stability_length(s, eta))) as name:
        got = sdekit.simulate(sde, np.ones(lam.size), (0.0, 1.0), steps=1, n_paths=1, solver=name,
                              backend="numpy").ys[-1, 0]
    assert np.abs(got - expected).max() > 1e-3


def test_skrock_noise_enters_with_weight_one() -> None:
    """With zero drift, s = 9 stages give X' = X + g ΔW exactly (the κ/ν recursion sums the noise to weight 1)."""
    sde = sdekit.SDE(zero_drift, lin_diffusion, 2, params=np.array([0.0, 0.7]), name="nodrift")
    kw = dict(x0=[1.0, -2.0], t=(0.0, 1.0), steps=4, n_paths=50, seed=5)
    em = sdekit.simulate(sde, solver="euler_maruyama", **kw).ys
    with registered(skrock_method("skrock_noise_test", spectral_radius=300.0)) as name:
        sk = sdekit.simulate(sde, solver=name, **kw).ys
    assert skrock_stages(0.25 * 300.0, 0.05) == 7
    np.testing.assert_allclose(sk, em, rtol=1e-12, atol=1e-12)


def test_skrock_estimates_spectral_radius_on_a_stiff_diagonal_system() -> None:
    """λ_i up to 1e4, h = 0.1 (h ρ = 1000): the power iteration finds ρ and SK-ROCK stays stable (|X_i| <= 1; a
    Chebyshev method damps its stiffest modes only by about 1/T_s(ω_0) a step, so they need not be small)."""
    lam = np.array([1.0, 10.0, 1e3, 1e4])
    sde = sdekit.SDE(diag_drift, zero_diffusion, 4, params=lam, name="diag4")
    x = sdekit.simulate(sde, np.ones(4), (0.0, 1.0), steps=10, n_paths=1, solver="skrock").ys[-1, 0]
    assert np.all(np.abs(x) <= 1.0) and abs(x[0] - np.exp(-1.0)) < 0.05, x


def test_newton_failure_names_path_step_and_newton() -> None:
    """A Newton that cannot converge (one iteration allowed, nonlinear drift) stops the run with a NonFiniteError
    naming path, step, time and the Newton iteration."""
    sde = sdekit.SDE(stiff_cubic, const_noise, 1, noise="additive", params=np.array([100.0, 0.5]), name="cubic")
    with registered(theta_method("theta_one_iter", theta=1.0, max_iter=1)) as name:
        for backend in ("numba", "numpy"):
            with pytest.raises(sdekit.NonFiniteError, match=r"path 0 .*Newton.* at step 1, t = 0.1") as info:
                sdekit.simulate(sde, 1.0, (0.0, 1.0), steps=10, n_paths=4, solver=name, backend=backend)
            assert info.value.step == 1


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(sdekit.SDEKitError, match="theta"):
        theta_method("bad", theta=1.5)
    with pytest.raises(sdekit.SDEKitError, match="damping"):
        skrock_method("bad", damping=0.0)
    with pytest.raises(sdekit.IncompatibleSolverError, match="implicit_euler_maruyama"):
        sdekit.simulate(sdekit.SDE(lin_drift, lin_diffusion, 1, noise="scalar", calculus="stratonovich",
                                   params=np.array([LAM, MU])), 1.0, (0.0, 1.0), steps=2, n_paths=2,
                        solver="implicit_euler_maruyama")


def _skrock_one_step_coefficients(name: str, lam: float, mu: float, h: float) -> tuple[float, float]:
    """(A, B) with X_1 = A X_0 + B μ X_0 ΔW for one step of ``name`` on dX = λX dt + μX dW (the step is affine in
    ΔW): read off two paths, their ΔW from Euler–Maruyama on dX = dW with the same seed."""
    sde = sdekit.SDE(lin_drift, lin_diffusion, 1, noise="scalar", params=np.array([lam, mu]), name="lin")
    bm = BROWNIAN_1D  # dX = dW, scalar noise
    kw = dict(x0=1.0, t=(0.0, h), steps=1, n_paths=2, seed=1)
    x1 = sdekit.simulate(sde, solver=name, **kw).ys[-1, :, 0]
    dw = sdekit.simulate(bm, solver="euler_maruyama", **kw).ys[-1, :, 0] - 1.0
    b = (x1[1] - x1[0]) / (mu * (dw[1] - dw[0]))
    return x1[0] - b * mu * dw[0], b


def test_skrock_weak_order_one_on_second_moment() -> None:
    """E X_T² of dX = -X dt + X dW (exact e^{-T}) under SK-ROCK with h ρ = 20 (s = 4 at every h) is
    (A² + B² μ² h)^{T/h} exactly; A, B read from the solver match the paper's A = T_s(ω_0+ω_1 z)/T_s(ω_0),
    B = U_{s-1}(ω_0+ω_1 z)/U_{s-1}(ω_0) (1 + ω_1 z/2); the weak error's fitted order is 1 (measured 1.01-1.06)."""
    lam, mu, hrho = -1.0, 1.0, 20.0
    s = skrock_stages(hrho, 0.05)
    w0, w1 = skrock_omegas(s, 0.05)

    def cheb_u(k: int, y: float) -> float:
        return float(np.sinh((k + 1) * np.arccosh(y)) / np.sinh(np.arccosh(y))) if y > 1 else \
            float(np.sin((k + 1) * np.arccos(y)) / np.sin(np.arccos(y)))

    hs = 2.0 ** -np.arange(3, 8)
    errors = []
    for h in hs:
        with registered(skrock_method(f"skrock_weak_{h:g}", spectral_radius=hrho / h)) as name:
            a, b = _skrock_one_step_coefficients(name, lam, mu, float(h))
        z = h * lam
        t_s = np.zeros(s + 1)
        t_s[s] = 1.0
        np.testing.assert_allclose(a, chebyshev.chebval(w0 + w1 * z, t_s) / chebyshev.chebval(w0, t_s), rtol=1e-10)
        np.testing.assert_allclose(b, cheb_u(s - 1, w0 + w1 * z) / cheb_u(s - 1, w0) * (1 + w1 * z / 2), rtol=1e-10)
        errors.append(abs((a * a + b * b * mu * mu * h) ** round(1 / h) - np.exp(2 * lam + mu * mu)))
    order = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert s == 4 and 0.9 < order < 1.15, (s, order, errors)


@pytest.mark.parametrize("solver", ["implicit_euler_maruyama", "skrock"])
def test_results_do_not_depend_on_the_chunk(solver: str) -> None:
    """Newton iterations and SK-ROCK stage counts are per path, so chunks of 7 paths give bit-identical paths to one
    chunk of all 50 (paths of a chunk share drift evaluations but never each other's iteration counts)."""
    sde = sdekit.SDE(stiff_cubic, const_noise, 1, noise="additive", params=np.array([100.0, 0.5]), name="cubic")
    kw = dict(x0=np.linspace(-2.0, 2.0, 50)[:, None], t=(0.0, 0.5), steps=5, seed=9, solver=solver, threads=1)
    a = sdekit.simulate(sde, chunk_size=7, **kw).ys
    b = sdekit.simulate(sde, chunk_size=64, **kw).ys
    np.testing.assert_array_equal(a, b)


def test_skrock_power_iteration_is_not_trapped_by_an_eigenvector_drift() -> None:
    """X_0 = (1, 1e-200) on dX_i = -λ_i X_i dt, λ = (1, 1e4): f(X_0) is (to 1e-196) the eigenvector of the small
    eigenvalue. Started from f(X) alone the power iteration returns ρ ≈ 1, s = 1, and the stiff component grows 999x
    a step until it is large enough to be seen; with the fixed start direction ρ ≈ 1e4 is found from the first step
    and the stiff component only decays, as the exact 1e-200 exp(-1e4 t) does."""
    sde = sdekit.SDE(diag_drift, zero_diffusion, 2, params=np.array([1.0, 1e4]), name="diag2")
    for backend in ("numba", "numpy"):
        ys = sdekit.simulate(sde, np.array([1.0, 1e-200]), (0.0, 10.0), steps=100, n_paths=1, solver="skrock",
                             backend=backend, save_at="steps").ys[:, 0]
        assert np.abs(ys[:, 1]).max() <= 1e-200 and abs(ys[-1, 0] - np.exp(-10.0)) < 1e-3, (backend, ys[-1])
