"""User functions are never silently wrong: reads past the parameters, writes into x, stale captured values and
uncompilable helpers are caught before or at the solve, with the role named.

Each test here failed on the code before issue 12: the solve ran and returned numbers (out-of-bounds reads of p,
writes into x, stale closures and globals), or ended in a raw Numba/NumPy exception.
"""

import dataclasses
import math

import numba as nb
import numpy as np
import pytest

import sdekit
from sdekit import SDEKitError
from tests import problems

RUN = dict(t=(0.0, 1.0), steps=20, n_paths=8, seed=3)


def solve(sde, x0=0.5, **kw):
    return sdekit.simulate(sde, x0, **{**RUN, **kw}).final


def test_params_shorter_than_what_the_drift_reads_are_refused():
    sde = sdekit.SDE(lambda x, t, p: -p[0] * x + p[1], lambda x, t, p: 0.3, dim=1, noise="additive", params=[1.0])
    with pytest.raises(SDEKitError, match=r"drift reads past the end.*params has 1 entries"):
        solve(sde)
    fixed = sde.with_params([1.0, 0.2])
    assert np.all(np.isfinite(solve(fixed)))


def test_params_shorter_than_what_the_diffusion_reads_are_refused():
    sde = sdekit.SDE(lambda x, t, p: -p[0] * x, lambda x, t, p: p[2] * (1.0 + 0.0 * x), dim=2, params=[1.0, 2.0])
    with pytest.raises(SDEKitError, match=r"diffusion reads past the end.*params has 2 entries"):
        solve(sde, x0=np.zeros(2))


def test_a_drift_that_writes_into_x_is_refused():
    def drift(x, t, p):
        x[:, 0] = 0.0
        return -1.0 * x

    sde = sdekit.SDE(drift, lambda x, t, p: 1.0, dim=1, noise="additive")
    with pytest.raises(SDEKitError, match=r"drift writes into its input x \(x\[0, 0\] went from 0.5 to 0.0\)"):
        solve(sde)


def test_a_diffusion_that_writes_into_x_in_place_is_refused():
    def diffusion(x, t, p):
        x *= 2.0
        return np.ones_like(x)

    sde = sdekit.SDE(lambda x, t, p: -x, diffusion, dim=1)
    with pytest.raises(SDEKitError, match="diffusion writes into its input x"):
        solve(sde)


def test_a_rebound_closure_variable_is_recompiled_not_stale():
    scale = 1.0
    sde = sdekit.SDE(lambda x, t, p: -scale * x, lambda x, t, p: 0.5, dim=1, noise="additive")
    first = solve(sde)
    scale = 3.0  # noqa: F841 (read by the lambda)
    second = solve(sde)
    fresh = solve(sdekit.SDE(lambda x, t, p: -3.0 * x, lambda x, t, p: 0.5, dim=1, noise="additive"))
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(first, second)


def test_an_array_edited_in_place_after_a_solve_is_seen_by_the_next_solve():
    a = np.array([1.0, 0.5])
    sde = sdekit.SDE(lambda x, t, p: -a[0] * x, lambda x, t, p: a[1], dim=1, noise="additive")
    first = solve(sde)
    a[0] = 4.0
    second = solve(sde)
    b = np.array([4.0, 0.5])
    fresh = solve(sdekit.SDE(lambda x, t, p: -b[0] * x, lambda x, t, p: b[1], dim=1, noise="additive"))
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(first, second)


def test_a_user_jitted_function_compiled_before_an_edit_is_not_trusted():
    a = np.array([1.0])
    drift = nb.njit(lambda x, t, p: -a[0] * x)
    drift(np.ones((2, 1)), 0.0, np.zeros(0))  # compiled with a[0] = 1 baked in
    a[0] = 5.0
    got = solve(sdekit.SDE(drift, lambda x, t, p: 0.5, dim=1, noise="additive"))
    b = np.array([5.0])
    fresh = solve(sdekit.SDE(lambda x, t, p: -b[0] * x, lambda x, t, p: 0.5, dim=1, noise="additive"))
    np.testing.assert_array_equal(got, fresh)


def test_a_module_global_rebound_at_run_time_is_seen(monkeypatch):
    sde = sdekit.SDE(problems.global_scaled_drift, problems.unit_diffusion, dim=1, noise="additive")
    first = solve(sde)
    monkeypatch.setattr(problems, "DRIFT_SCALE", 2.5)
    second = solve(sde)
    fresh = solve(sdekit.SDE(lambda x, t, p: -2.5 * x, problems.unit_diffusion, dim=1, noise="additive"))
    np.testing.assert_allclose(second, fresh, rtol=0, atol=1e-15)
    assert not np.allclose(first, second)


def test_x0_with_zero_rows_is_refused():
    with pytest.raises(SDEKitError, match="x0 has 0 rows"):
        solve(problems.DIAGONAL, x0=np.zeros((0, 3)), n_paths=None)


def test_a_complex_diffusion_is_refused_before_numba_sees_it():
    sde = sdekit.SDE(lambda x, t, p: -x, lambda x, t, p: (1.0 + 1.0j) * np.ones(x.shape), dim=1)
    with pytest.raises(SDEKitError, match="diffusion returned complex values"):
        solve(sde)


def _plain_helper(x):
    return 2.0 * x


def test_a_helper_that_is_not_njit_is_named_as_the_cause():
    sde = sdekit.SDE(lambda x, t, p: -_plain_helper(x), lambda x, t, p: 1.0, dim=1, noise="additive")
    with pytest.raises(SDEKitError, match=r"drift could not be evaluated.*Untyped global name '_plain_helper'"):
        solve(sde)


def test_a_function_only_numba_can_run_is_probed_compiled():
    # math.sqrt(-1) raises in Python but is NaN in Numba: the compiled probe reports the non-finite value
    sde = sdekit.SDE(lambda x, t, p: math.sqrt(-1.0) * x, lambda x, t, p: 1.0, dim=1, noise="additive")
    with pytest.raises(SDEKitError, match=r"drift\(x0, t0\) is not finite"):
        solve(sde)


def test_compile_seconds_include_the_user_functions_compile():
    sde = sdekit.SDE(lambda x, t, p: -1.5 * x, lambda x, t, p: 0.25, dim=1, noise="additive")
    first = sdekit.simulate(sde, 0.0, **RUN).stats.compile_seconds
    again = sdekit.simulate(sde, 0.0, **RUN).stats.compile_seconds
    assert first > again


def test_an_exception_in_the_middle_of_a_solve_stops_it_naming_the_function_and_time():
    # importable (kernel with the function inlined): the exception itself, wrapped with the time span
    sde = sdekit.SDE(problems.drift_raising_late, problems.unit_diffusion, dim=1, noise="additive")
    with pytest.raises(SDEKitError, match=r"t = 0 and t = 1: drift or diffusion raised ZeroDivisionError"):
        solve(sde)
    # a lambda (called through a function pointer, which no exception can cross): the step and time where it
    # happened, never garbage (Numba would print 'Exception ignored' and go on)
    late = sdekit.SDE(lambda x, t, p: problems.drift_raising_late(x, t, p), lambda x, t, p: 1.0, dim=1,
                      noise="additive")
    with pytest.raises(sdekit.NonFiniteError, match=r"drift or diffusion raised an exception there.*step 12, t = 0.6"):
        solve(late)


def test_an_energy_reading_an_edited_array_runs_on_the_new_values():
    """The public ULA before and after the edit; the reference (an energy with the new value written in) runs on
    the serial copy of the same driver (`sdekit.mcmc.defects.SERIAL_DRIVER`): each chain's numbers depend only on
    (seed, chain), so they are the same bits, and a serial kernel compiles in a fraction of a parallel one's time."""
    import warnings

    from sdekit.mcmc import ula
    from sdekit.mcmc.defects import SERIAL_DRIVER
    from sdekit.mcmc.ula import ula_step, ula_with
    from sdekit.targets import EnergyTarget

    centre = np.array([0.0])

    @nb.njit
    def energy(x, p, grad):
        grad[0] = x[0] - centre[0]
        return 0.5 * (x[0] - centre[0]) ** 2

    target = EnergyTarget(energy, dim=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sdekit.SDEKitWarning)  # a short run: ESS/R-hat diagnostics may flag it
        run = dict(step_size=0.1, n_chains=2, n_draws=30, seed=2, x0=np.zeros(1))
        first = ula(target, **run).samples
        centre[0] = 3.0
        second = ula(target, **run).samples
        moved = np.array([3.0])

        @nb.njit
        def energy_at_3(x, p, grad):
            grad[0] = x[0] - moved[0]
            return 0.5 * (x[0] - moved[0]) ** 2

        fresh = ula_with(ula_step, EnergyTarget(energy_at_3, dim=1), n_warmup=0, driver=SERIAL_DRIVER, **run).samples
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("name", ["diagonal-em", "general-em", "additive-matrix-sra1", "ode-dopri5", "ode-rk4"])
def test_function_pointer_kernels_give_the_numbers_of_inlined_kernels(name):
    """The same functions, importable (inlined into a kernel generated for them) and wrapped in lambdas (called
    through first-class function pointers from the kernel cached for the step and noise term): equal to the bit."""
    x0 = np.array([0.3, -0.2, 0.5])

    def wrapped(fn):
        return lambda x, t, p: fn(x, t, p)

    if name.startswith("ode"):
        inlined = sdekit.ODE(problems.coupled_drift, dim=3, params=problems.PARAMS)
        pointers = sdekit.ODE(wrapped(problems.coupled_drift), dim=3, params=problems.PARAMS)
        kw = dict(solver="dopri5", save_at=[0.5, 1.0]) if name == "ode-dopri5" else dict(solver="rk4", steps=20)
    else:
        inlined = {"diagonal-em": problems.DIAGONAL, "general-em": problems.GENERAL,
                   "additive-matrix-sra1": problems.ADDITIVE}[name]
        pointers = dataclasses.replace(inlined, drift=wrapped(inlined.drift), diffusion=wrapped(inlined.diffusion))
        kw = dict(steps=20, solver="sra1" if "sra1" in name else "euler_maruyama")
    a = sdekit.simulate(inlined, x0, (0.0, 1.0), n_paths=40, seed=9, **kw)
    b = sdekit.simulate(pointers, x0, (0.0, 1.0), n_paths=40, seed=9, **kw)
    np.testing.assert_array_equal(a.ys, b.ys)
