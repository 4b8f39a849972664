"""sdekit.plan: a checked and compiled solve run again for new x0, seed and parameters gives simulate's numbers."""

import numpy as np
import pytest

import sdekit
from sdekit.errors import NonFiniteError, SDEKitError
from tests.problems import ADDITIVE, DIAGONAL, DIAGONAL_STRAT, PARAMS

X0 = np.array([0.3, -0.2, 0.5])


def _same(a: sdekit.Solution, b: sdekit.Solution) -> None:
    assert np.array_equal(a.ts, b.ts)
    assert np.array_equal(a.ys, b.ys)
    assert (a.ws is None) == (b.ws is None)
    if a.ws is not None:
        assert np.array_equal(a.ws, b.ws)
    assert (a.stats.steps, a.stats.path_steps, a.stats.evals, a.stats.solver) == \
        (b.stats.steps, b.stats.path_steps, b.stats.evals, b.stats.solver)


@pytest.mark.parametrize("problem, options", [
    (DIAGONAL, dict(steps=12, save_at=[0.25, 0.61, 1.0], save_brownian=True)),  # saves inside steps: seeded bridges
    (DIAGONAL, dict(steps=12, noise_substeps=3, save_at="steps")),
    (ADDITIVE, dict(steps=9, solver="sra1", save_at=[0.5, 1.0])),  # auxiliary noise (second stream)
    (DIAGONAL_STRAT, dict(steps=10, solver="reversible_heun")),  # a step that carries state between steps
])
def test_plan_equals_simulate_for_new_x0_seeds_and_params(problem, options):
    """Every call of a plan equals simulate with the same options and values, bit for bit, in any order of calls."""
    n = 7
    plan = sdekit.plan(problem, X0, (0.0, 1.0), n_paths=n, **options)
    rng = np.random.default_rng(0)
    for seed in (0, 5, 2**64 - 1, 5):
        x0 = rng.normal(size=(n, 3))
        params = [1.0 + seed % 3, 0.5, 0.2]
        got = plan(x0, seed=seed, params=params)
        want = sdekit.simulate(problem.with_params(params), x0, (0.0, 1.0), n_paths=n, seed=seed, **options)
        _same(got, want)
    _same(plan(seed=3), sdekit.simulate(problem, X0, (0.0, 1.0), n_paths=n, seed=3, **options))  # planned x0
    _same(plan(X0, seed=3, path_offset=4), sdekit.simulate(problem, X0, (0.0, 1.0), n_paths=n, seed=3,
                                                            path_offset=4, **options))
    assert plan(seed=1).stats.compile_seconds == 0.0


def test_plan_threads_and_the_input_left_alone():
    """A plan on two threads (paths above the serial threshold) equals one thread; x0 is copied, not written."""
    n = 2500
    x0 = np.random.default_rng(1).normal(size=(n, 3))
    kept = x0.copy()
    two = sdekit.plan(DIAGONAL, x0, (0.0, 1.0), steps=6, threads=2)
    one = sdekit.simulate(DIAGONAL, x0, (0.0, 1.0), steps=6, seed=4, threads=1)
    assert np.array_equal(two(x0, seed=4).ys, one.ys)
    assert np.array_equal(x0, kept)
    assert two(seed=4).ys is not two(seed=4).ys


def test_plan_masks_and_raises_like_simulate():
    """on_nonfinite: a plan raises NonFiniteError naming the path (offset included) and step as simulate does."""
    plan = sdekit.plan(DIAGONAL, X0, (0.0, 1.0), steps=5, n_paths=3)
    bad = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    big = [1e308, 0.5, 0.4]  # the drift overflows at once
    with pytest.raises(NonFiniteError) as got:
        plan(bad, seed=2, params=big, path_offset=10)
    with pytest.raises(NonFiniteError) as want:
        sdekit.simulate(DIAGONAL.with_params(big), bad, (0.0, 1.0), steps=5, n_paths=3, seed=2, path_offset=10)
    assert str(got.value) == str(want.value)
    masked = sdekit.plan(DIAGONAL, X0, (0.0, 1.0), steps=5, n_paths=3, on_nonfinite="mask")
    sol = masked(bad, seed=2, params=big)
    ref = sdekit.simulate(DIAGONAL.with_params(big), bad, (0.0, 1.0), steps=5, n_paths=3, seed=2,
                          on_nonfinite="mask")
    assert np.array_equal(sol.ys, ref.ys, equal_nan=True) and sol.stats.masked_paths == ref.stats.masked_paths > 0
    assert np.array_equal(masked(X0, seed=2).ys, sdekit.simulate(DIAGONAL, X0, (0.0, 1.0), steps=5, n_paths=3,
                                                                  seed=2).ys)  # the scratch is reset between runs


def test_plan_refuses_bad_input_by_name():
    plan = sdekit.plan(DIAGONAL, X0, (0.0, 1.0), steps=5, n_paths=4)
    cases = [
        (lambda: plan(np.zeros((5, 3))), "x0 has 5 rows but n_paths = 4"),
        (lambda: plan(np.zeros(2)), "x0 has shape"),
        (lambda: plan(np.array([0.0, np.nan, 0.0])), "x0 must be finite"),
        (lambda: plan(params=[1.0, 2.0]), "params must have the planned structure"),
        (lambda: plan(params=[1.0, "a", 2.0]), "params must be"),
        (lambda: plan(seed=-1), "seed must be"),
        (lambda: plan(seed=1.5), "seed must be"),
        (lambda: plan(path_offset=-2), "path_offset must be"),
        (lambda: sdekit.plan(sdekit.ODE(DIAGONAL.drift, dim=3, params=PARAMS), X0, (0.0, 1.0)),
         "plan runs fixed-step solvers"),
        (lambda: sdekit.plan(DIAGONAL, X0, (0.0, 1.0), steps=0), "steps"),
        (lambda: sdekit.plan("not a problem", X0, (0.0, 1.0), steps=3), "problem must be an sdekit.SDE"),
    ]
    for call, message in cases:
        with pytest.raises(SDEKitError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()
    assert "SolvePlan(solver='euler_maruyama', n_paths=4, dim=3, steps=5" in repr(plan)


def test_plan_called_from_several_threads_at_once():
    """Concurrent calls of one plan (one finds the scratch busy and allocates its own) give the sequential results."""
    from concurrent.futures import ThreadPoolExecutor

    plan = sdekit.plan(DIAGONAL, X0, (0.0, 1.0), steps=400, n_paths=64, save_at=[0.3, 1.0])
    want = {seed: plan(seed=seed).ys for seed in range(12)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(zip(range(12), pool.map(lambda s: plan(seed=s).ys, range(12))))
    assert all(np.array_equal(got[s], want[s]) for s in want)


def test_plan_of_one_path_takes_its_state_as_a_vector():
    """At n_paths = 1 a (dim,) x0 is the path's state (a view, not copied by the plan; the run copies it)."""
    plan = sdekit.plan(DIAGONAL, X0, (0.0, 1.0), steps=7, n_paths=1)
    x0 = np.array([0.1, -0.4, 0.9])
    kept = x0.copy()
    for seed in (1, 2):
        want = sdekit.simulate(DIAGONAL, x0, (0.0, 1.0), steps=7, n_paths=1, seed=seed)
        assert np.array_equal(plan(x0, seed=seed).ys, want.ys)
    assert np.array_equal(x0, kept)
    with pytest.raises(SDEKitError, match="x0 must be finite"):
        plan(np.array([0.0, np.inf, 0.0]))
