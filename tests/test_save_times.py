"""Save times never move the Brownian path (issue 15, item 1).

A save strictly inside a step is a partial step of the solver from the step's start with the Brownian increment
bridged from the step's own draws (`sdekit.backends.save_bridge`); the step grid, every step's increments and X at
every grid time are those of the solve without the save. `simulate(..., save_brownian=True)` returns W at the saves.
"""

import numba as nb
import numpy as np
import pytest
from scipy.stats import norm

import sdekit
from sdekit.backends import save_bridge
from sdekit.errors import SDEKitError
from sdekit.grid import fixed_grid
from sdekit.noise.streams import STREAM_BROWNIAN, path_normals
from sdekit.validate.budget import BUDGET
from tests.problems import ADDITIVE, DIAGONAL, DIAGONAL_STRAT, GENERAL, coupled_drift
from tests.save_times_pinned import PINNED

ODE3 = sdekit.ODE(coupled_drift, dim=3, params=[1.0, 0.5, 0.4])
PROBLEMS = {"DIAGONAL": DIAGONAL, "ADDITIVE": ADDITIVE, "DIAGONAL_STRAT": DIAGONAL_STRAT, "ODE3": ODE3}
X0 = np.array([[0.3, -0.2, 0.5], [1.0, 0.1, -0.7]])
# one solver per kind of step: plain, Milstein, auxiliary noise (I_(1,0)), carried state, implicit, ODE Runge–Kutta
SOLVERS = [("euler_maruyama", "DIAGONAL"), ("milstein", "DIAGONAL"), ("sriw1", "DIAGONAL"), ("sra1", "ADDITIVE"),
           ("reversible_heun", "DIAGONAL_STRAT"), ("implicit_euler_maruyama", "DIAGONAL"), ("rk4", "ODE3")]
OFF_GRID = [0.04, 0.25, 0.26, 0.5, 0.97]  # inside steps 0, 2 (twice), on the grid, inside the last step


@nb.njit
def zero_drift(x, t, p):
    return 0.0 * x


@nb.njit
def unit_noise(x, t, p):
    return 1.0 + 0.0 * x


BM = sdekit.SDE(zero_drift, unit_noise, dim=1, noise="diagonal", name="dX = dW")


def _cumulative_increments(seed: int, n: int, steps: int) -> np.ndarray:
    """W at the grid times of (0, 1) in `steps` steps, (n, steps + 1): the sums of sqrt(h_k) z_k, in step order."""
    hs = np.diff(fixed_grid((0.0, 1.0), steps).ts)
    dw = np.sqrt(np.abs(hs)) * path_normals(seed, n, steps, stream=STREAM_BROWNIAN)
    return np.concatenate([np.zeros((n, 1)), np.cumsum(dw, axis=1)], axis=1)


def test_the_step_grid_does_not_depend_on_the_saves():
    plain = fixed_grid((0.0, 1.0), 10)
    for save_at in (None, "steps", [0.2, 0.5, 1.0], OFF_GRID, [0.0, 0.05]):
        grid = fixed_grid((0.0, 1.0), 10, save_at=save_at)
        assert np.array_equal(grid.ts, plain.ts)
    grid = fixed_grid((0.0, 1.0), 10, save_at=OFF_GRID)
    assert grid.save_steps.tolist() == [0, 2, 2, 5, 9]
    np.testing.assert_allclose(grid.save_offsets, [0.04, 0.05, 0.06, 0.0, 0.07], atol=1e-15)
    np.testing.assert_allclose(grid.save_ts, OFF_GRID, rtol=0, atol=1e-15)
    back = fixed_grid((1.0, 0.0), 10, save_at=[0.75, 0.3, 0.25])
    assert back.save_steps.tolist() == [2, 7, 7] and back.save_offsets[0] == pytest.approx(-0.05)
    assert back.save_offsets[1] == 0.0 and back.off_grid


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("key", list(PINNED))
def test_on_grid_saves_give_the_numbers_of_before(key, backend):
    solver, prob, substeps, save_at = key
    sol = sdekit.simulate(PROBLEMS[prob], X0, (0.0, 1.0), steps=10, seed=7, solver=solver, noise_substeps=substeps,
                          save_at=list(save_at) if isinstance(save_at, tuple) else save_at, backend=backend)
    ys = sol.ys[[1, 4, 10]] if save_at == "steps" else sol.ys
    # numba: the same arithmetic as when pinned (1e-13 leaves room only for another libm); numpy: equal to rounding
    np.testing.assert_allclose(ys.ravel(), PINNED[key], rtol=1e-13 if backend == "numba" else 1e-11, atol=1e-14)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("solver,prob", SOLVERS)
def test_saves_inside_steps_leave_every_grid_value_unchanged(solver, prob, backend):
    grid_ts = np.linspace(0.0, 1.0, 11)
    kw = dict(steps=10, n_paths=5, seed=11, solver=solver, backend=backend)
    plain = sdekit.simulate(PROBLEMS[prob], X0[0], (0.0, 1.0), save_at="steps", **kw)
    times = np.sort(np.concatenate([grid_ts, [0.04, 0.25, 0.26, 0.97]]))
    mixed = sdekit.simulate(PROBLEMS[prob], X0[0], (0.0, 1.0), save_at=times, **kw)
    on = np.isin(np.round(times, 12), np.round(grid_ts, 12))
    assert on.sum() == 11
    assert np.array_equal(mixed.ys[on], plain.ys)  # bit-identical, X_T included
    final_only = sdekit.simulate(PROBLEMS[prob], X0[0], (0.0, 1.0), save_at=[0.25, 1.0], **kw)
    assert np.array_equal(final_only.final, plain.final)
    assert not np.array_equal(mixed.ys[~on], plain.ys[[0, 2, 2, 9]])  # the saves are new values, not copies


@pytest.mark.parametrize("solver,prob", SOLVERS)
def test_numpy_and_numba_agree_at_saves_inside_steps(solver, prob):
    kw = dict(steps=10, n_paths=5, seed=5, solver=solver, save_at=OFF_GRID)
    a = sdekit.simulate(PROBLEMS[prob], X0[1], (0.0, 1.0), backend="numba", **kw)
    b = sdekit.simulate(PROBLEMS[prob], X0[1], (0.0, 1.0), backend="numpy", **kw)
    np.testing.assert_allclose(a.ys, b.ys, rtol=1e-12, atol=1e-13)


def test_a_save_inside_a_step_is_the_partial_step():
    """EM from X_k over u with the bridged increment: X_s = X_k + f(X_k) u + g(X_k) dW_u, dW_u from sol.ws."""
    kw = dict(steps=10, n_paths=6, seed=2, solver="euler_maruyama", save_brownian=True)
    sol = sdekit.simulate(DIAGONAL, X0[0], (0.0, 1.0), save_at=[0.2, 0.25], **kw)
    x_k, dw_u = sol.ys[0], sol.ws[1] - sol.ws[0]
    p = np.asarray(DIAGONAL.params)
    expected = x_k + coupled_drift(x_k, 0.2, p) * 0.05 + DIAGONAL.diffusion(x_k, 0.2, p) * dw_u
    np.testing.assert_allclose(sol.ys[1], expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_brownian_motion_ends_where_its_increments_say(backend):
    """dX = dW, 10 steps on [0, 1], save_at = [0.25, 1.0]: X_T = sqrt(h) sum of the path's normals (it moved by up
    to 0.31 when the save was inserted into the grid)."""
    n = 50
    sol = sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=10, n_paths=n, seed=9, save_at=[0.25, 1.0], backend=backend)
    assert np.array_equal(sol.final[:, 0], _cumulative_increments(9, n, 10)[:, -1])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_save_brownian_returns_w_at_the_saves(backend):
    n = 40
    kw = dict(steps=10, n_paths=n, seed=4, backend=backend, save_brownian=True)
    steps = sdekit.simulate(BM, 0.0, (0.0, 1.0), save_at="steps", **kw)
    assert steps.ws.shape == (11, n, 1) and np.array_equal(steps.ws[:, :, 0], _cumulative_increments(4, n, 10).T)
    off = sdekit.simulate(BM, 0.0, (0.0, 1.0), save_at=OFF_GRID, **kw)
    assert np.array_equal(off.ys, off.ws)  # dX = dW from 0: X(t) = W(t) - W(0), also at the partial steps
    general = sdekit.simulate(GENERAL, X0[0], (0.0, 1.0), save_at=OFF_GRID, **kw)
    assert general.ws.shape == (5, n, 2)
    plain = sdekit.simulate(GENERAL, X0[0], (0.0, 1.0), save_at=OFF_GRID, steps=10, n_paths=n, seed=4,
                            backend=backend)
    assert plain.ws is None and np.array_equal(plain.ys, general.ys)


def test_segmented_solves_write_every_save():
    """progress=True runs the grid in segments; saves at a segment's first grid time were skipped before."""
    kw = dict(steps=100, n_paths=3, seed=1, save_brownian=True)
    for save_at in ("steps", [0.013, 0.5, 0.505, 1.0]):
        a = sdekit.simulate(DIAGONAL, X0[0], (0.0, 1.0), save_at=save_at, progress=False, **kw)
        b = sdekit.simulate(DIAGONAL, X0[0], (0.0, 1.0), save_at=save_at, progress=True, **kw)
        assert np.array_equal(a.ys, b.ys) and np.array_equal(a.ws, b.ws)


def test_reverse_time_saves_inside_steps():
    kw = dict(steps=10, n_paths=4, seed=3, save_brownian=True)
    plain = sdekit.simulate(DIAGONAL, X0[0], (1.0, 0.0), save_at="steps", **kw)
    off = sdekit.simulate(DIAGONAL, X0[0], (1.0, 0.0), save_at=[0.75, 0.5, 0.0], **kw)
    assert np.array_equal(off.ys[1:], plain.ys[[5, 10]])
    off_bm = sdekit.simulate(BM, 0.0, (1.0, 0.0), save_at=[0.75, 0.0], **kw)
    assert np.array_equal(off_bm.ys, off_bm.ws)


def _bridge_violation(problem_seed: int, n: int = 20000) -> float:
    """The largest |z| of three checks that W_s - W_{t_k} - (u/h) dW_k ~ N(0, u (h - u) / h), independent of dW_k,
    for saves s = t_k + 0.1 inside steps of h = 0.25 (dX = dW, n paths): its mean, its variance (chi-square,
    normal approximation) and its correlation with dW_k, each standardised."""
    sol = sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=4, n_paths=n, seed=problem_seed, save_brownian=True,
                          save_at=[0.1, 0.25, 0.5, 0.6, 0.75])
    w = sol.ws[:, :, 0]
    worst = 0.0
    for at, k0, k1 in ((0, None, 1), (3, 2, 4)):  # W(0.1) in step [0, 0.25]; W(0.6) in step [0.5, 0.75]
        w_k = 0.0 if k0 is None else w[k0]
        dw = w[k1] - w_k
        r = w[at] - w_k - 0.4 * dw
        var = 0.1 * 0.15 / 0.25
        z_mean = r.mean() / np.sqrt(var / n)
        z_var = (np.sum(r**2) / var - n) / np.sqrt(2.0 * n)
        z_corr = np.corrcoef(r, dw)[0, 1] * np.sqrt(n)
        worst = max(worst, abs(z_mean), abs(z_var), abs(z_corr))
    return worst


# false-alarm rate 1e-6 per test: each of the 6 standardised statistics gets 1e-6 / 6 (two-sided normal tail, union
# bound; the chi-square and correlation statistics are normal to within O(n^-1/2) at n = 20000): Z_MAX = 5.23
ALPHA = 1e-6
Z_MAX = float(norm.isf(ALPHA / 6 / 2))


def test_the_saved_brownian_value_has_the_bridge_law():
    BUDGET.spend(ALPHA, "save_bridge_law")
    assert _bridge_violation(20260) < Z_MAX


@pytest.mark.parametrize("planted", ["fresh increment", "unconditioned variance"])
def test_the_bridge_law_test_fails_on_planted_bugs(planted, monkeypatch):
    def fresh(h, u, aux):  # W_u drawn afresh, ignoring the step's dW
        return np.array([0.0, 0.0, 0.0, 0.0, np.sqrt(u), 0.0, 0.0])

    def wide(h, u, aux):  # the right mean, the unconditioned variance u
        return np.array([u / h, 0.0, 0.0, 0.0, np.sqrt(u), 0.0, 0.0])

    monkeypatch.setattr(save_bridge, "bridge_coefficients", fresh if planted == "fresh increment" else wide)
    assert _bridge_violation(20260) > Z_MAX


def _brownian_covariances(h: float, u: float, n_fine: int = 4000) -> np.ndarray:
    """Cov of (W_u, J_u, W_h, J_h), J_t = int_0^t W, from a fine discretisation (J by the trapezoid rule on the
    grid of n_fine points; u a grid point): independent of the closed forms in save_bridge."""
    t = np.linspace(0.0, h, n_fine + 1)
    cov_w = np.minimum.outer(t, t)  # Cov(W_a, W_b) = min(a, b)
    iu = int(round(u / h * n_fine))
    trap = np.full(n_fine + 1, h / n_fine)
    trap[[0, -1]] *= 0.5
    trap_u = np.zeros(n_fine + 1)
    trap_u[:iu + 1] = h / n_fine
    trap_u[[0, iu]] *= 0.5
    rows = np.zeros((4, n_fine + 1))
    rows[0, iu], rows[1], rows[2, -1], rows[3] = 1.0, trap_u, 1.0, trap
    return rows @ cov_w @ rows.T


@pytest.mark.parametrize("h,u", [(0.25, 0.1), (2.0, 1.5), (1e-3, 2.5e-4)])
def test_bridge_coefficients_reproduce_the_brownian_covariances(h, u):
    """x = A y + L z with y = (W_h, J_h) ~ N(0, S_yy): Cov(x, y) = A S_yy must be S_xy and A S_yy A^T + L L^T must be
    S_xx, for x = (W_u, J_u); and without I_(1,0), the Brownian bridge of W_u given W_h."""
    s = _brownian_covariances(h, u)
    c = save_bridge.bridge_coefficients(h, u, aux=True)
    a = np.array([[c[0], c[1]], [c[2], c[3]]])
    lo = np.array([[c[4], 0.0], [c[5], c[6]]])
    s_yy, s_xy, s_xx = s[2:, 2:], s[:2, 2:], s[:2, :2]
    scale = np.array([np.sqrt(h), h**1.5])
    rel = np.outer(1 / scale, 1 / scale)
    np.testing.assert_allclose(a @ s_yy * rel, s_xy * rel, atol=1e-5)
    np.testing.assert_allclose((a @ s_yy @ a.T + lo @ lo.T) * rel, s_xx * rel, atol=1e-5)
    b = save_bridge.bridge_coefficients(h, u, aux=False)
    assert b[0] == pytest.approx(s[0, 2] / s[2, 2]) and b[4] ** 2 == pytest.approx(s[0, 0] - s[0, 2] ** 2 / s[2, 2])
    assert not np.any(b[[1, 2, 3, 5, 6]])


def test_save_brownian_and_off_grid_refusals():
    with pytest.raises(SDEKitError, match="save_brownian must be True or False"):
        sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=4, save_brownian="yes")
    with pytest.raises(SDEKitError, match="save_brownian=True .* got an ODE"):
        sdekit.simulate(ODE3, X0[0], (0.0, 1.0), steps=4, save_brownian=True)
    with pytest.raises(SDEKitError, match="save_brownian=True .* backend='torch'"):
        sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=4, save_brownian=True, backend="torch")
    pytest.importorskip("torch")
    for problem, solver in ((BM, None), (BM, "fused_euler_maruyama"), (ODE3, "rk4")):
        with pytest.raises(SDEKitError, match=r"save_at time 0\.3 lies inside the step \[0\.25, 0\.5\]; "
                                              r"backend='torch' saves only at grid times"):
            sdekit.simulate(problem, X0[0, :problem.dim], (0.0, 1.0), steps=4, save_at=[0.3, 1.0],
                            backend="torch", solver=solver)
    ok = sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=4, save_at=[0.25, 1.0], backend="torch")
    assert tuple(ok.ys.shape) == (2, 1, 1)


@pytest.mark.parametrize("solver,prob", [("euler_maruyama", "DIAGONAL"), ("sra1", "ADDITIVE")])
def test_saves_inside_steps_with_noise_substeps(solver, prob):
    """noise_substeps = 2 (the draw path that keeps each substep): grid values bit-identical with and without the
    saves, numpy equal to numba at the saves."""
    kw = dict(steps=10, n_paths=5, seed=6, solver=solver, noise_substeps=2)
    plain = sdekit.simulate(PROBLEMS[prob], X0[0], (0.0, 1.0), save_at="steps", **kw)
    times = np.sort(np.concatenate([np.linspace(0.0, 1.0, 11), [0.03, 0.25, 0.27, 0.98]]))
    on = np.isin(np.round(times, 12), np.round(np.linspace(0.0, 1.0, 11), 12))
    a = sdekit.simulate(PROBLEMS[prob], X0[0], (0.0, 1.0), save_at=times, backend="numba", **kw)
    b = sdekit.simulate(PROBLEMS[prob], X0[0], (0.0, 1.0), save_at=times, backend="numpy", **kw)
    assert np.array_equal(a.ys[on], plain.ys)
    np.testing.assert_allclose(a.ys, b.ys, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_with_noise_substeps_a_save_sees_the_fine_path(backend):
    """10 steps of 2 substeps: W at 0.25 and 0.65 (substep boundaries inside steps) is W of the 20-step solve there
    (exact coupling; conditioning on the whole step's dW would miss it by O(sqrt(h)))."""
    kw = dict(n_paths=30, seed=8, backend=backend, save_brownian=True, save_at=[0.25, 0.65, 1.0])
    coarse = sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=10, noise_substeps=2, **kw)
    fine = sdekit.simulate(BM, 0.0, (0.0, 1.0), steps=20, **kw)
    np.testing.assert_allclose(coarse.ws, fine.ws, rtol=0, atol=1e-14)
    assert np.array_equal(coarse.ys, coarse.ws)
