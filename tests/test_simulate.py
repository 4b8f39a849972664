"""simulate(): shapes, backends agreeing, saves, reverse time, dtypes, no recompiles."""

import numpy as np
import pytest

import sdekit
from sdekit.backends.numba import kernels
from tests.problems import ALL, DIAGONAL, compatible, coupled_drift

X0 = np.array([0.3, -0.2, 0.5])


def test_issue_example_shapes():
    """The README example: OU, 100k paths, two saves."""
    ou = sdekit.SDE(drift=lambda x, t, p: -p[0] * x, diffusion=lambda x, t, p: p[1],
                    noise="additive", dim=1, params=[1.0, 2 ** 0.5])
    sol = sdekit.simulate(ou, x0=0.0, t=(0.0, 1.0), steps=1000, n_paths=100_000, seed=7,
                          solver="euler_maruyama", save_at=[0.5, 1.0])
    assert sol.ys.shape == (2, 100_000, 1)
    assert np.allclose(sol.ts, [0.5, 1.0])
    assert sol.stats.steps == 1000 and sol.stats.path_steps == 100_000_000
    # stationary variance 1 - e^{-2t}: 1e5 paths put the sample variance within 0.03 (~ 6 s.e.)
    assert abs(sol.ys[1].var() - (1 - np.exp(-2.0))) < 0.03


@pytest.mark.parametrize("solver_name", sorted(n for n, s in sdekit.SDE_SOLVERS.items() if not s.adaptive))
def test_numpy_reference_agrees_with_numba(solver_name):
    """Same seed, same increments: both backends give the same paths to rounding, for every noise type."""
    solver = sdekit.SDE_SOLVERS[solver_name]
    problems = [sde for sde in ALL if compatible(solver, sde)]
    assert problems, f"no test problem for {solver_name}"
    for sde in problems:
        kw = dict(x0=X0, t=(0.0, 0.5), steps=25, n_paths=300, seed=11, solver=solver_name, save_at=[0.2, 0.5])
        a = sdekit.simulate(sde, backend="numba", **kw)
        b = sdekit.simulate(sde, backend="numpy", **kw)
        assert np.allclose(a.ys, b.ys, rtol=1e-11, atol=1e-12), (solver_name, sde.name)
        assert np.array_equal(a.ts, b.ts)


@pytest.mark.parametrize("solver_name", sorted(sdekit.ODE_SOLVERS))
def test_ode_backends_agree(solver_name):
    """ODE solvers: NumPy reference and Numba kernel agree (adaptive ones take the same steps)."""
    ode = sdekit.ODE(coupled_drift, dim=3, params=[1.0, 0.5, 0.0])
    x0 = np.random.default_rng(1).normal(size=(20, 3))
    kw = dict(x0=x0, t=(0.0, 1.0), solver=solver_name, save_at=[0.5, 1.0])
    if not sdekit.ODE_SOLVERS[solver_name].adaptive:
        kw["steps"] = 40
    a = sdekit.simulate(ode, backend="numba", **kw)
    b = sdekit.simulate(ode, backend="numpy", **kw)
    assert np.allclose(a.ys, b.ys, rtol=1e-10, atol=1e-12)
    assert a.stats.path_steps == b.stats.path_steps


def test_time_may_run_backwards_with_saves_inside_steps():
    sol = sdekit.simulate(DIAGONAL, X0, (1.0, 0.0), steps=10, n_paths=5, seed=1, save_at=[0.75, 0.33, 0.0])
    assert np.allclose(sol.ts, [0.75, 0.33, 0.0])
    ref = sdekit.simulate(DIAGONAL, X0, (1.0, 0.0), steps=10, n_paths=5, seed=1, save_at=[0.75, 0.33, 0.0],
                          backend="numpy")
    assert np.allclose(sol.ys, ref.ys, rtol=1e-12)
    every = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=10, n_paths=4, seed=1, save_at="steps")
    assert every.ys.shape == (11, 4, 3) and np.allclose(every.ys[0], X0)


def test_explicit_grid_matches_uniform_span():
    a = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=8, n_paths=50, seed=3)
    b = sdekit.simulate(DIAGONAL, X0, np.linspace(0.0, 1.0, 9), n_paths=50, seed=3)
    assert np.array_equal(a.ys, b.ys)


def test_float32_close_to_float64():
    a = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=50, n_paths=200, seed=5)
    b = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=50, n_paths=200, seed=5, dtype="float32")
    assert b.ys.dtype == np.float32
    assert np.allclose(a.ys, b.ys, rtol=1e-4, atol=1e-4)


def test_new_parameter_values_do_not_recompile():
    """Parameters are runtime data: with_params reuses the compiled kernel (no new signature, ~0 s compile)."""
    sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=5, n_paths=10, seed=1)
    before = len(kernels.fixed_step.signatures)
    sol = sdekit.simulate(DIAGONAL.with_params([2.0, -0.1, 0.9]), X0, (0.0, 1.0), steps=5, n_paths=10, seed=1)
    assert len(kernels.fixed_step.signatures) == before
    assert sol.stats.compile_seconds < 0.5
    base = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=5, n_paths=10, seed=1)
    assert not np.allclose(sol.ys, base.ys)


def test_threads_and_chunks_do_not_change_results():
    ref = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=20, n_paths=5000, seed=9, threads=1)
    for kw in (dict(threads=2), dict(threads=2, chunk_size=7), dict(threads=1, chunk_size=1000)):
        other = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=20, n_paths=5000, seed=9, **kw)
        assert np.array_equal(ref.ys, other.ys), kw


def test_progress_bar_runs_in_segments_with_identical_results(capsys):
    a = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=120, n_paths=300, seed=2, save_at=[0.5, 1.0])
    b = sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=120, n_paths=300, seed=2, save_at=[0.5, 1.0],
                        progress=True)
    assert np.array_equal(a.ys, b.ys)
