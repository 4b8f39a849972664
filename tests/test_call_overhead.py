"""simulate's remembered solves (`sdekit.solve_cache`): a repeated problem skips the checks, the probe and the set-up,
gives the numbers of the full path bit for bit, and still sees what can change between calls (an edited closure
value or array, new parameters, a new x0 shape, a bad x0 or seed)."""

import numpy as np
import pytest

import sdekit
from sdekit.errors import SDEKitError
from sdekit.solve_cache import SOLVES
from sdekit.user_functions import FrozenWatch
from tests.problems import ADDITIVE, DIAGONAL, DIAGONAL_STRAT, PARAMS

X0 = np.array([0.3, -0.2, 0.5])
SPAN = (0.0, 1.0)


@pytest.fixture(autouse=True)
def _empty_cache():
    SOLVES.clear()
    yield
    SOLVES.clear()


def _full_path(problem, x0, **kw):
    """The same call with nothing remembered: checks, probe, grid, kernel set-up, run."""
    SOLVES.clear()
    sol = sdekit.simulate(problem, x0, SPAN, **kw)
    assert sol.stats.compile_seconds > 0.0  # prepared in this call
    return sol


@pytest.mark.parametrize("problem, options", [
    (DIAGONAL, dict(steps=12, n_paths=5, save_at=[0.25, 0.61, 1.0], save_brownian=True)),  # seeded save bridges
    (ADDITIVE, dict(steps=9, n_paths=4, solver="sra1", save_at="steps")),  # auxiliary noise (second stream)
    (DIAGONAL_STRAT, dict(steps=10, n_paths=3, solver="reversible_heun", on_nonfinite="mask")),  # carried state
])
def test_a_remembered_solve_gives_the_numbers_of_the_full_path(problem, options):
    """Call 1 prepares and remembers; calls 2.. (new x0, seed, parameter values, path_offset) reuse it and equal the
    full path with the same values, bit for bit."""
    rng = np.random.default_rng(3)
    sdekit.simulate(problem, rng.normal(size=(options["n_paths"], 3)), SPAN, seed=1, **options)
    assert len(SOLVES) == 1
    for seed, offset in ((2, 0), (2**64 - 1, 7), (2, 0)):
        x0 = rng.normal(size=(options["n_paths"], 3))
        moved = problem.with_params([PARAMS[0] + seed % 5, 0.5, 0.3])
        again = sdekit.simulate(moved, x0, SPAN, seed=seed, path_offset=offset, **options)
        assert again.stats.compile_seconds == 0.0 and len(SOLVES) == 1  # remembered, not prepared again
        want = _full_path(moved, x0, seed=seed, path_offset=offset, **options)
        assert np.array_equal(again.ts, want.ts) and np.array_equal(again.ys, want.ys)
        assert (again.ws is None) == (want.ws is None)
        if want.ws is not None:
            assert np.array_equal(again.ws, want.ws)
        assert again.stats.masked_paths == want.stats.masked_paths


def test_the_small_run_path_equals_the_general_run():
    """The small serial run (prepared kernel arguments, own scratch) and the general run (fresh scratch, as for a
    concurrent call) give the same numbers; so does the run in segments (progress)."""
    plan = sdekit.plan(DIAGONAL, X0, SPAN, steps=30, n_paths=6, save_at=[0.5, 1.0])
    x0 = np.random.default_rng(5).normal(size=(6, 3))
    small = plan(x0, seed=9)
    with plan.prepared._lock:  # the own scratch is busy: the run takes the general path on fresh scratch
        general = plan(x0, seed=9)
    segmented = sdekit.simulate(DIAGONAL, x0, SPAN, steps=30, n_paths=6, save_at=[0.5, 1.0], seed=9,
                                progress=False, chunk_size=2)  # three chunks: another argument list
    assert np.array_equal(small.ys, general.ys) and np.array_equal(small.ys, segmented.ys)


def test_an_array_edited_in_place_is_seen_by_a_remembered_solve():
    """The same array object with new entries (its identity unchanged): the remembered solve is not used, the
    function is compiled again, and the result is the full path's. (A rebound closure value or global: the tests of
    tests/test_user_functions.py, which run through the remembered solves too.)"""
    a = np.array([0.5, 0.25])
    sde = sdekit.SDE(lambda x, t, p: -a[0] * x, lambda x, t, p: a[1], dim=1, noise="additive")
    run = dict(steps=20, n_paths=3, seed=4)
    first = sdekit.simulate(sde, 0.5, SPAN, **run)
    again = sdekit.simulate(sde, 0.5, SPAN, **run)
    assert again.stats.compile_seconds == 0.0 and np.array_equal(again.ys, first.ys)
    a[1] = 0.75
    edited = sdekit.simulate(sde, 0.5, SPAN, **run)
    assert edited.stats.compile_seconds > 0.0 and not np.array_equal(edited.ys, first.ys)
    fresh = sdekit.SDE(sde.drift, lambda x, t, p: 0.75, dim=1, noise="additive")  # the new value written in
    assert np.array_equal(edited.ys, sdekit.simulate(fresh, 0.5, SPAN, **run).ys)


def test_new_parameters_x0_shapes_and_bad_values_on_a_remembered_problem():
    run = dict(steps=8, seed=2)
    sdekit.simulate(DIAGONAL, X0, SPAN, n_paths=4, **run)
    more = np.random.default_rng(1).normal(size=(6, 3))  # another x0 shape: prepared for it, the right rows
    got = sdekit.simulate(DIAGONAL, more, SPAN, **run)
    assert got.ys.shape == (1, 6, 3) and got.stats.compile_seconds > 0.0
    assert np.array_equal(got.ys, _full_path(DIAGONAL, more, **run).ys)
    sdekit.simulate(DIAGONAL, X0, SPAN, n_paths=4, **run)
    with pytest.raises(SDEKitError, match=r"drift reads past the end"):  # fewer parameters: probed again
        sdekit.simulate(DIAGONAL.with_params([1.0]), X0, SPAN, n_paths=4, **run)
    with pytest.raises(SDEKitError, match=r"x0 must be finite; x0\[2, 1\] = nan"):
        sdekit.simulate(DIAGONAL, np.where(np.arange(12).reshape(4, 3) == 7, np.nan, 0.0), SPAN, **run)
    with pytest.raises(SDEKitError, match="x0 must be finite"):
        sdekit.simulate(DIAGONAL, np.array([0.0, np.inf, 0.0]), SPAN, n_paths=4, **run)
    with pytest.raises(SDEKitError, match="seed must be"):
        sdekit.simulate(DIAGONAL, X0, SPAN, n_paths=4, steps=8, seed=-3)
    with pytest.raises(SDEKitError, match="path_offset must be"):
        sdekit.simulate(DIAGONAL, X0, SPAN, n_paths=4, path_offset=1.5, **run)
    as_list = sdekit.simulate(DIAGONAL, [list(X0)] * 4, SPAN, **run)  # a list x0 with the remembered shape
    assert np.array_equal(as_list.ys, sdekit.simulate(DIAGONAL, X0, SPAN, n_paths=4, **run).ys)


def test_keys_tell_apart_values_that_compare_equal():
    """t = (0, 1) and (0.0, 1.0) are the same grid, but -0.0 is not 0.0 and True is not 1: never one key."""
    base = SOLVES.key(DIAGONAL, X0, (0.0, 1.0), (8, None))
    assert base == SOLVES.key(DIAGONAL, X0.copy(), (0.0, 1.0), (8, None))
    for t, opts in (((-0.0, 1.0), (8, None)), ((0, 1), (8, None)), ((0.0, 1.0), (True, None)),
                    ((0.0, 1.0), (8.0, None)), ([0.0, 1.0], (8, None))):
        assert SOLVES.key(DIAGONAL, X0, t, opts) != base
    assert SOLVES.key(DIAGONAL, X0, object(), (8, None)) is None  # no exact form: not remembered


GAIN = np.array([2.0])
OFFSET = 1.0


def _helper(x):
    return OFFSET * x


def _reads_globals(x, t, p):
    return -GAIN[0] * _helper(x)


def test_a_frozen_watch_sees_every_kind_of_change(monkeypatch):
    watch = FrozenWatch(_reads_globals)
    assert watch.unchanged()
    GAIN[0] = 2.0  # the same bytes written again
    assert watch.unchanged()
    GAIN[0] = -0.0 + 2.0 * (1 + 2**-52)  # one ulp
    assert not watch.unchanged()
    GAIN[0] = 2.0
    assert watch.unchanged()
    monkeypatch.setattr(f"{__name__}.OFFSET", 1.5)  # a helper's global rebound
    assert not watch.unchanged()
    monkeypatch.undo()
    assert watch.unchanged()
    monkeypatch.setattr(f"{__name__}.GAIN", GAIN.copy())  # an equal array, another object: the full check decides
    assert not watch.unchanged()
    monkeypatch.undo()
    cell = np.zeros(3)
    watched = FrozenWatch(lambda x, t, p: cell[0] * x)
    cell[2] = np.nan
    assert not watched.unchanged()
