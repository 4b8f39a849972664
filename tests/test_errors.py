"""Bad input raises a clear error naming the argument; non-finite paths stop with path, step and time."""

import ast
import dataclasses
import re

import numba as nb
import numpy as np
import pytest

import sdekit
from sdekit import IncompatibleSolverError, NonFiniteError, SDEKitError
from sdekit.solvers import compatible_solvers
from tests.problems import ADDITIVE, DIAGONAL, DIAGONAL_STRAT, GENERAL

X0 = np.array([0.3, -0.2, 0.5])


@pytest.mark.parametrize("kwargs, needle", [
    (dict(x0=np.zeros(2)), "x0"),
    (dict(x0=np.array([0.0, np.nan, 1.0])), "x0"),
    (dict(x0=np.zeros((4, 3)), n_paths=5), "n_paths"),
    (dict(t=(0.0, 0.0)), "t"),
    (dict(t=np.array([0.0, 0.5, 0.4, 1.0]), steps=None), "monotone"),
    (dict(t=(0.0, np.inf)), "t[1]"),
    (dict(steps=0), "steps"),
    (dict(steps=-3), "steps"),
    (dict(steps=None, dt=-0.1), "dt"),
    (dict(steps=None), "steps"),
    (dict(solver="rk45"), "solver"),
    (dict(solver="rk4"), "ODE solver"),
    (dict(dtype="float16"), "dtype"),
    (dict(backend="cuda"), "backend"),
    (dict(seed=-1), "seed"),
    (dict(noise_substeps=0), "noise_substeps"),
    (dict(on_nonfinite="ignore"), "on_nonfinite"),
    (dict(save_at=[0.5, 2.0]), "save_at"),
    (dict(save_at=[0.6, 0.5]), "save_at"),
    (dict(threads=0), "threads"),
    (dict(n_paths=10**9, save_at="steps", steps=10**3), "GiB"),
])
def test_bad_arguments_name_the_argument(kwargs, needle):
    base = dict(x0=X0, t=(0.0, 1.0), steps=10, n_paths=4, seed=0)
    base.update(kwargs)
    if base.get("steps") is None:
        base.pop("steps")
    with pytest.raises(SDEKitError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        sdekit.simulate(DIAGONAL, **base)


def test_bad_specifications():
    f = DIAGONAL.drift
    with pytest.raises(SDEKitError, match="noise"):
        sdekit.SDE(f, f, dim=2, noise="multiplicative")
    with pytest.raises(SDEKitError, match="calculus"):
        sdekit.SDE(f, f, dim=2, calculus="ito-ish")
    with pytest.raises(SDEKitError, match="dim"):
        sdekit.SDE(f, f, dim=0)
    with pytest.raises(SDEKitError, match="params"):
        sdekit.SDE(f, f, dim=2, params=[1.0, np.inf])
    with pytest.raises(SDEKitError, match="drift"):
        sdekit.SDE("not a function", f, dim=2)
    with pytest.raises(SDEKitError, match="brownian_dim"):
        sdekit.SDE(f, f, dim=2, noise="diagonal", brownian_dim=3)


@pytest.mark.parametrize("solver, sde, needle", [
    ("milstein", GENERAL, "noise"),
    ("sra1", DIAGONAL, "additive"),
    ("euler_maruyama", DIAGONAL_STRAT, "stratonovich"),
    ("heun", DIAGONAL, "ito"),
])
def test_incompatible_pairs_are_refused_before_compiling(solver, sde, needle):
    with pytest.raises(IncompatibleSolverError, match=needle) as info:
        sdekit.simulate(sde, X0, (0.0, 1.0), steps=5, solver=solver)
    assert solver in str(info.value) and sde.name in str(info.value)
    # the hint suggests exactly the compatible solvers, without the refused one (the hints used to suggest refused
    # solvers); that each of them runs this SDE is test_bad_inputs.py::test_every_suggested_solver_runs_the_problem
    suggested = ast.literal_eval(re.search(r"choose one of (\[.*\])", str(info.value)).group(1))
    assert suggested == compatible_solvers(sde) and solver not in suggested and suggested
    assert set(suggested) <= set(sdekit.SDE_SOLVERS)


def test_additive_noise_takes_heun_in_ito_and_milstein_with_a_noise_matrix():
    """On additive noise Itô = Stratonovich and Milstein's correction vanishes: Heun on the Itô label equals Heun on
    the Stratonovich label, and Milstein on a (dim, m) noise matrix equals Euler–Maruyama, path by path."""
    strat = dataclasses.replace(ADDITIVE, calculus="stratonovich")
    heun_ito = sdekit.simulate(ADDITIVE, X0, (0.0, 1.0), steps=20, n_paths=16, seed=4, solver="heun")
    heun_strat = sdekit.simulate(strat, X0, (0.0, 1.0), steps=20, n_paths=16, seed=4, solver="heun")
    np.testing.assert_array_equal(heun_ito.ys, heun_strat.ys)
    assert ADDITIVE.matrix_noise
    mil = sdekit.simulate(ADDITIVE, X0, (0.0, 1.0), steps=20, n_paths=16, seed=4, solver="milstein")
    em = sdekit.simulate(ADDITIVE, X0, (0.0, 1.0), steps=20, n_paths=16, seed=4, solver="euler_maruyama")
    np.testing.assert_array_equal(mil.ys, em.ys)
    ref = sdekit.simulate(ADDITIVE, X0, (0.0, 1.0), steps=20, n_paths=16, seed=4, solver="milstein", backend="numpy")
    np.testing.assert_allclose(ref.ys, mil.ys, rtol=1e-12, atol=1e-14)


def test_wrong_output_shapes_and_uncompilable_functions():
    bad_shape = sdekit.SDE(lambda x, t, p: x[:, 0], lambda x, t, p: 1.0, dim=3)
    with pytest.raises(SDEKitError, match="drift returned shape"):
        sdekit.simulate(bad_shape, X0, (0.0, 1.0), steps=5)
    not_numba = sdekit.SDE(lambda x, t, p: {"a": x}["a"] * "s", lambda x, t, p: 1.0, dim=3)
    with pytest.raises(SDEKitError, match="drift could not be evaluated"):
        sdekit.simulate(not_numba, X0, (0.0, 1.0), steps=5)
    fake_additive = sdekit.SDE(lambda x, t, p: -1.0 * x, lambda x, t, p: 1.0 + 0.1 * x, dim=3, noise="additive")
    with pytest.raises(SDEKitError, match="additive"):
        sdekit.simulate(fake_additive, X0, (0.0, 1.0), steps=5)
    view = sdekit.SDE(lambda x, t, p: x, lambda x, t, p: 1.0, dim=3)
    with pytest.raises(SDEKitError, match="view of x"):
        sdekit.simulate(view, X0, (0.0, 1.0), steps=5)


@nb.njit
def explosive_drift(x, t, p):
    """dx = x^3 dt blows up in finite time for |x0| large."""
    return x * x * x


@nb.njit
def unit_noise(x, t, p):
    return 0.1


EXPLOSIVE = sdekit.SDE(explosive_drift, unit_noise, dim=1, noise="additive", name="explosive")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_nonfinite_path_stops_with_path_step_and_time(backend):
    x0 = np.zeros((50, 1))
    x0[17] = 3.0  # blows up first: x' = x^3 from 3 reaches infinity at t = 1/18
    with pytest.raises(NonFiniteError) as info:
        sdekit.simulate(EXPLOSIVE, x0, (0.0, 1.0), steps=200, seed=1, backend=backend)
    err = info.value
    assert err.path == 17 and 1 <= err.step < 200
    assert err.t == pytest.approx(err.step / 200)
    assert "path 17" in str(err) and f"step {err.step}" in str(err)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_mask_option_drops_and_counts_nonfinite_paths(backend):
    x0 = np.zeros((50, 1))
    x0[[3, 40]] = 3.0
    sol = sdekit.simulate(EXPLOSIVE, x0, (0.0, 1.0), steps=200, seed=1, backend=backend, on_nonfinite="mask",
                          save_at=[0.01, 1.0])
    assert sol.stats.masked_paths == 2
    assert np.all(np.isnan(sol.ys[-1, [3, 40]])) and np.all(np.isfinite(np.delete(sol.ys[-1], [3, 40], axis=0)))
    assert np.all(np.isfinite(sol.ys[0]))


def test_adaptive_solver_reports_nonfinite_and_budget():
    ode = sdekit.ODE(explosive_drift, dim=1)
    with pytest.raises((NonFiniteError, sdekit.StepSizeError)) as info:
        sdekit.simulate(ode, np.array([[0.1], [3.0]]), (0.0, 1.0), solver="dopri5")
    assert info.value.path == 1
    with pytest.raises(sdekit.StepSizeError, match="max_steps"):
        sdekit.simulate(ode, np.array([[0.1]]), (0.0, 1.0), solver="dopri5", max_steps=3)
    with pytest.raises(SDEKitError, match="adaptive"):
        sdekit.simulate(ode, np.array([[0.1]]), (0.0, 1.0), solver="dopri5", steps=10)


def test_heun_on_ito_additive_noise_runs_on_torch_as_on_numba():
    torch = pytest.importorskip("torch")
    sde = sdekit.SDE(lambda x, t, p: -1.0 * x, lambda x, t, p: 0.7, dim=2, noise="additive")
    a = sdekit.simulate(sde, np.ones(2), (0.0, 1.0), steps=10, n_paths=5, seed=2, solver="heun")
    b = sdekit.simulate(sde, torch.ones(2, dtype=torch.float64), (0.0, 1.0), steps=10, n_paths=5, seed=2,
                        solver="heun", backend="torch")
    np.testing.assert_allclose(b.ys.numpy(), a.ys, rtol=1e-12, atol=1e-13)
