"""Adaptive SDE solvers (`sdekit.backends.numba.adaptive_sde`): each path its own PI-controlled steps on its own
Brownian integral tree (`sdekit.noise.brownian_integral_path`).

- convergence as tol -> 0 to the exact solution on the same Brownian path (GBM from W_T, and a linear additive-noise
  SDE from W_T and J_T, both read from the tree), error against the mean number of accepted steps per path, fitted
  with a bootstrap CI over paths (`fit_order`);
- a fast transient (drift -lambda(t) (x - cos t), lambda = 50 near t = 0): the adaptive solve reaches the strong error
  of a fixed-step solve with fewer steps;
- rejections happen and do not bias the law: X_T of the linear additive-noise SDE (Gaussian, closed-form moments) at
  a tol that forces rejections passes mean and second-moment z-tests at 3.4e-7 each (false alarms <= 1e-6 per
  test); the planted kernel that draws fresh noise for a retried step instead of re-querying the path fails them;
- same numbers for any batch size and thread count; bad inputs refused.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest

import sdekit
from sdekit.backends.numba import adaptive_sde
from sdekit.errors import IncompatibleSolverError, SDEKitError
from sdekit.noise.brownian_integral_path import BrownianIntegralPath, _normal
from sdekit.validate.order import fit_order, gbm_problem

GBM = gbm_problem(0.5, 1.0)
Z_CRIT = 5.1  # two-sided normal tail 3.4e-7 per z-test; a law check is two of them: at most 6.8e-7


def _gbm_sq_errors(solver: str, tols: list[float], n_paths: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean steps per path, squared errors (levels, paths)) against X_T = exp((mu - sigma^2 / 2) T + sigma W_T)."""
    w_t = BrownianIntegralPath(seed, n_paths)(1.0)[0]
    exact = GBM.exact(np.ones((n_paths, 1)), w_t, 1.0)[:, 0]
    steps, sq = [], []
    for tol in tols:
        sol = sdekit.simulate(GBM.sde, 1.0, (0.0, 1.0), solver=solver, n_paths=n_paths, seed=seed, rtol=tol, atol=tol)
        steps.append(sol.stats.extra["accepted"].mean())
        sq.append((sol.ys[-1, :, 0] - exact) ** 2)
    return np.array(steps), np.array(sq)


# (solver, tolerances, paths, lower bound of the order's 99% CI: the declared strong order - 0.2)
CONVERGENCE = [("adaptive_milstein", [10**-1.5, 10**-2.0, 10**-2.5], 300, 0.8),
               ("adaptive_sosri", [1e-2, 10**-2.5, 1e-3, 10**-3.5], 1000, 1.3)]


@pytest.mark.parametrize(("solver", "tols", "n_paths", "lowest"), CONVERGENCE)
def test_converges_to_the_exact_solution_on_the_same_path(solver: str, tols: list[float], n_paths: int,
                                                          lowest: float) -> None:
    """RMS error ~ (mean accepted steps)^-p, p's 99% bootstrap CI above `lowest` (half-width below 0.3)."""
    steps, sq = _gbm_sq_errors(solver, tols, n_paths, seed=5)
    assert np.all(np.diff(steps) > 0)
    fit = fit_order(1.0 / steps, sq)
    assert fit.ci_low > lowest and fit.halfwidth < 0.3, fit.summary()


@nb.njit
def _decay_drift(x, t, p):
    return -p[0] * x / (1.0 + p[0] * t)


@nb.njit
def _constant_diffusion(x, t, p):
    return p[1] + 0.0 * x


DECAY = sdekit.SDE(_decay_drift, _constant_diffusion, 1, noise="additive", params=[10.0, 1.0], name="decay")


def test_sosra_converges_to_the_exact_solution_on_the_same_path() -> None:
    """dX = -c X / (1 + c t) dt + sigma dW (c = 10: decay rate 10 at t = 0, 10 / 11 at t = 1), whose solution reads
    the integral J of the path: (1 + c T) X_T = x0 + sigma int_0^T (1 + c s) dW_s = x0 + sigma ((1 + c T) W_T - c J_T).
    Error ~ (mean accepted steps)^-p with p's 99% CI above SOSRA's strong order 1.5 (measured 2.03, CI [1.99, 2.07])."""
    c, sigma, n_paths = 10.0, 1.0, 300
    w_t, j_t = BrownianIntegralPath(5, n_paths)(1.0)
    exact = ((1.0 + sigma * ((1.0 + c) * w_t - c * j_t)) / (1.0 + c))[:, 0]
    steps, sq = [], []
    for tol in (1e-2, 10**-2.75, 10**-3.5):
        sol = sdekit.simulate(DECAY, 1.0, (0.0, 1.0), solver="adaptive_sosra", n_paths=n_paths, seed=5, rtol=tol,
                              atol=tol)
        steps.append(sol.stats.extra["accepted"].mean())
        sq.append((sol.ys[-1, :, 0] - exact) ** 2)
    fit = fit_order(1.0 / np.array(steps), np.array(sq))
    assert fit.ci_low > sdekit.SDE_SOLVERS["adaptive_sosra"].strong_order and fit.halfwidth < 0.3, fit.summary()


def test_saves_land_on_off_grid_times_of_the_same_path() -> None:
    """save_at = [0.3, 0.7] on (0, 1): X at both times close to the exact GBM at W(0.3), W(0.7) of the tree over
    [0, 1] (the save times move neither the path nor its span)."""
    path = BrownianIntegralPath(2, 200)
    sol = sdekit.simulate(GBM.sde, 1.0, (0.0, 1.0), solver="adaptive_sosri", n_paths=200, seed=2, rtol=1e-4,
                          atol=1e-4, save_at=[0.3, 0.7])
    assert np.array_equal(sol.ts, [0.3, 0.7])
    for k, t in enumerate((0.3, 0.7)):
        exact = GBM.exact(np.ones((200, 1)), path(t)[0], t)
        assert math.sqrt(np.mean((sol.ys[k] - exact) ** 2)) < 0.01


@nb.njit
def _transient_drift(x, t, p):
    return -(1.0 + 49.0 * math.exp(-20.0 * t)) * (x - math.cos(t))


@nb.njit
def _transient_diffusion(x, t, p):
    return p[0] * x


TRANSIENT = sdekit.SDE(_transient_drift, _transient_diffusion, 1, noise="scalar", params=[0.2], name="transient")


def test_fast_transient_needs_fewer_adaptive_steps_than_fixed_ones_of_the_same_error() -> None:
    """Adaptive SOSRI (tol 1e-3) vs fixed-step SOSRI on dX = -lambda(t) (X - cos t) dt + 0.2 X dW, X0 = 3,
    lambda(t) = 1 + 49 exp(-20 t): each error against its own reference on its own path (the adaptive at tol 1e-6 on
    the tree; the fixed solve with 32x the steps on the coupled stream). With as many fixed steps as the adaptive
    solve's tries (accepted plus rejected, mean per path, rounded up to a power of two) the fixed error is larger."""
    kw = dict(n_paths=200, seed=4)
    adapt = sdekit.simulate(TRANSIENT, 3.0, (0.0, 1.0), solver="adaptive_sosri", rtol=1e-3, atol=1e-3, **kw)
    ref = sdekit.simulate(TRANSIENT, 3.0, (0.0, 1.0), solver="adaptive_sosri", rtol=1e-6, atol=1e-6, **kw)
    err_adaptive = math.sqrt(np.mean((adapt.ys[-1] - ref.ys[-1]) ** 2))
    tries = float(np.mean(adapt.stats.extra["accepted"] + adapt.stats.extra["rejected"]))
    n_fixed = int(2 ** math.ceil(math.log2(tries)))  # the first power of two at or above the adaptive tries
    fixed = sdekit.simulate(TRANSIENT, 3.0, (0.0, 1.0), solver="sosri", steps=n_fixed, noise_substeps=32, **kw)
    fine = sdekit.simulate(TRANSIENT, 3.0, (0.0, 1.0), solver="sosri", steps=32 * n_fixed, **kw)
    err_fixed = math.sqrt(np.mean((fixed.ys[-1] - fine.ys[-1]) ** 2))
    assert err_fixed > err_adaptive, (tries, err_adaptive, n_fixed, err_fixed)


DECAY_MEAN = 1.0 / 11.0  # X_1 of DECAY from X0 = 1: Gaussian, mean x0 / (1 + c), variance below (sigma = 1, c = 10)
DECAY_VAR = (11.0**3 - 1.0) / (3.0 * 10.0 * 11.0**2)


def decay_law_ok(n_paths: int = 5_000) -> tuple[bool, float, float, float]:
    """X_1 of DECAY by adaptive SOSRA at tol 1e-2: z of the mean and of E (X - m)^2, both below Z_CRIT?"""
    sol = sdekit.simulate(DECAY, 1.0, (0.0, 1.0), solver="adaptive_sosra", n_paths=n_paths, seed=3, rtol=1e-2,
                          atol=1e-2)
    x = sol.ys[-1, :, 0]
    z_mean = (x.mean() - DECAY_MEAN) / (x.std() / math.sqrt(n_paths))
    d2 = (x - DECAY_MEAN) ** 2
    z_var = (d2.mean() - DECAY_VAR) / (d2.std() / math.sqrt(n_paths))
    rejected = float(sol.stats.extra["rejected"].mean())
    return max(abs(z_mean), abs(z_var)) < Z_CRIT, z_mean, z_var, rejected


@nb.njit
def _fresh_increments(key, span, depth, u_now, u_new, w_now, j_now, cells, nodes, ends, valid, w_new, j_new):
    """Planted bug: every try draws new (dW, I_(1,0)) for [u_now, u_new] instead of reading the path."""
    valid[0] += 1
    m = w_new.shape[0]
    h = span * (u_new - u_now)
    for j in range(m):
        idx = 2 * (valid[0] * m + j)
        dw = math.sqrt(h) * _normal(key, idx)
        i10 = 0.5 * h * dw + math.sqrt(h * h * h / 12.0) * _normal(key, idx + 1)
        w_new[j] = w_now[j] + dw
        j_new[j] = j_now[j] + h * w_now[j] + i10


def test_rejections_happen_and_do_not_bias_the_law(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, z_mean, z_var, rejected = decay_law_ok()
    assert rejected > 1.0 and ok, (z_mean, z_var, rejected)
    monkeypatch.setattr(adaptive_sde, "KERNEL", adaptive_sde.build_kernel(_fresh_increments))
    ok, z_mean, z_var, rejected = decay_law_ok()
    assert rejected > 1.0 and not ok, (z_mean, z_var, rejected)


def test_same_numbers_for_any_batch_and_thread_count() -> None:
    x0 = np.linspace(0.5, 2.0, 64)[:, None]
    kw = dict(solver="adaptive_milstein", seed=9, rtol=1e-3, atol=1e-3, save_at=[0.5, 1.0])
    whole = sdekit.simulate(GBM.sde, x0, (0.0, 1.0), **kw)
    part = sdekit.simulate(GBM.sde, x0[:10], (0.0, 1.0), **kw)
    np.testing.assert_array_equal(whole.ys[:, :10], part.ys)
    np.testing.assert_array_equal(whole.stats.extra["accepted"][:10], part.stats.extra["accepted"])
    assert whole.stats.path_steps == whole.stats.extra["accepted"].sum()
    assert whole.stats.rejected == whole.stats.extra["rejected"].sum()
    tries = whole.stats.extra["accepted"] + whole.stats.extra["rejected"]
    assert whole.stats.evals == (tries * sdekit.SDE_SOLVERS["adaptive_milstein"].evals).max() == tries.max()
    if nb.config.NUMBA_NUM_THREADS >= 2:
        threaded = sdekit.simulate(GBM.sde, x0, (0.0, 1.0), threads=2, **kw)
        np.testing.assert_array_equal(whole.ys, threaded.ys)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"rtol": 0.0}, SDEKitError, "rtol must be a positive number"),
    ({"atol": -1.0}, SDEKitError, "atol must be a positive number"),
    ({"steps": 10}, SDEKitError, "is adaptive; give rtol/atol"),
    ({"dt0": 0.0}, SDEKitError, "dt0 must be a positive number"),
    ({"max_steps": 0}, SDEKitError, "max_steps"),
    ({"backend": "numpy"}, SDEKitError, "runs on backend='numba' only"),
    ({"t": (1.0, 0.0)}, SDEKitError, "integrates forwards in time"),
    ({"max_steps": 3}, sdekit.errors.StepSizeError, "max_steps exhausted"),
])
def test_bad_inputs_are_refused(kwargs: dict, error: type, match: str) -> None:
    kw = {"t": (0.0, 1.0), "solver": "adaptive_milstein", "n_paths": 4, **kwargs}
    with pytest.raises(error, match=match):
        sdekit.simulate(GBM.sde, 1.0, kw.pop("t"), **kw)


def test_incompatible_noise_and_torch_backend_are_refused() -> None:
    with pytest.raises(IncompatibleSolverError, match="adaptive_milstein.*noise=.additive"):
        sdekit.simulate(DECAY, 1.0, (0.0, 1.0), solver="adaptive_milstein")
    pytest.importorskip("torch")
    with pytest.raises(IncompatibleSolverError, match="adaptive_sosri.*backend='torch'"):
        sdekit.simulate(GBM.sde, 1.0, (0.0, 1.0), solver="adaptive_sosri", backend="torch")


def test_a_path_that_turns_non_finite_stops_naming_path_and_time() -> None:
    """x0 = 1e308: the first tries overflow, the step size collapses on non-finite values: NonFiniteError."""
    with pytest.raises(sdekit.errors.NonFiniteError, match=r"path 0 became non-finite .* at step \d+, t = "):
        sdekit.simulate(GBM.sde, 1e308, (0.0, 1.0), solver="adaptive_milstein", n_paths=3)
