"""Milstein for matrix noise: milstein_commutative (noise="commutative", checked at x0) and milstein_levy (any
matrix noise, with the Lévy area of sdekit.noise.levy_area). Strong orders are gated in tests/test_orders.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import sdekit
from sdekit.errors import IncompatibleSolverError, SDEKitError
from sdekit.solvers import SDE_SOLVERS, compatible_solvers
from sdekit.validate import fit_order, strong_errors
from tests.problems import GBM2, NONCOMM, NONCOMM_X0, gbm2_drift, noncomm_diffusion
from tests.test_orders import GATE, NOISE_TABLE, SEED, T


def test_planted_bug_area_dropped_fails_order_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """milstein_levy with its Lévy area dropped (levy_area=False: the kernel passes no area), scored against the
    correct solver's reference on the same Brownian path: the order falls towards 0.5 and fails the order-1 gate
    (measured 0.72, pairwise 0.79, 0.71, 0.65; the correct solver: 1.03, CI [1.00, 1.07])."""
    planted = replace(SDE_SOLVERS["milstein_levy"], name="milstein_no_area", levy_area=False)
    monkeypatch.setitem(SDE_SOLVERS, "milstein_no_area", planted)
    case = NOISE_TABLE["general"]("ito")
    hs, sq = strong_errors(case.sde, "milstein_no_area", case.x0, T, None, case.base_steps, case.levels,
                           case.n_paths, SEED, reference_solver="milstein_levy")
    fit = fit_order(hs, sq)
    assert not fit.passes(1.0, **GATE), fit.summary()
    assert fit.order < 0.8, fit.summary()


@pytest.mark.parametrize("sde, solver, substeps", [
    (GBM2["ito"], "milstein_commutative", 1), (GBM2["stratonovich"], "milstein_commutative", 2),
    (NONCOMM["ito"], "milstein_levy", 1), (NONCOMM["ito"], "milstein_levy", 3),
    (NONCOMM["stratonovich"], "milstein_levy", 2)], ids=lambda v: getattr(v, "name", str(v)))
def test_numba_matches_numpy_reference(sde: sdekit.SDE, solver: str, substeps: int) -> None:
    x0 = 1.0 if sde.dim == 1 else NONCOMM_X0
    kw = dict(steps=5, n_paths=7, seed=3, solver=solver, noise_substeps=substeps)
    ys = sdekit.simulate(sde, x0, (0.0, 1.0), **kw).ys
    ref = sdekit.simulate(sde, x0, (0.0, 1.0), backend="numpy", **kw).ys
    np.testing.assert_allclose(ys, ref, rtol=1e-11, atol=1e-13)


def test_same_numbers_whatever_batch_size_and_chunking() -> None:
    kw = dict(steps=6, seed=5, solver="milstein_levy", noise_substeps=2)
    big = sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), n_paths=9, **kw).ys
    small = sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), n_paths=4, **kw).ys
    chunked = sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), n_paths=9, chunk_size=2, **kw).ys
    np.testing.assert_array_equal(big[:, :4], small)
    np.testing.assert_array_equal(big, chunked)


def test_commutative_noise_refused_when_columns_do_not_commute() -> None:
    wrong = sdekit.SDE(gbm2_drift, noncomm_diffusion, dim=2, noise="commutative", brownian_dim=2, name="wrong")
    with pytest.raises(SDEKitError, match=r"columns 0 and 1 do not commute"):
        sdekit.simulate(wrong, NONCOMM_X0, (0.0, 1.0), steps=2, n_paths=2, solver="milstein_commutative")


def test_registry_and_refusals() -> None:
    """Commutative noise is general noise: every general-noise solver takes it; milstein_commutative takes nothing
    else; milstein_levy declares the Lévy area; the torch backend refuses both by name."""
    assert SDE_SOLVERS["milstein_levy"].levy_area and not SDE_SOLVERS["milstein_commutative"].levy_area
    on_comm, on_general = compatible_solvers(GBM2["ito"]), compatible_solvers(NONCOMM["ito"])
    assert {"euler_maruyama", "milstein_commutative", "milstein_levy"} <= set(on_comm)
    assert "milstein_levy" in on_general and "milstein_commutative" not in on_general
    assert set(on_general) <= set(on_comm)
    with pytest.raises(IncompatibleSolverError, match=r"'milstein_commutative' supports noise types \['commutative'\]"):
        sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), steps=2, n_paths=2, solver="milstein_commutative")
    for name in ("milstein_levy", "milstein_commutative"):
        with pytest.raises(IncompatibleSolverError, match=f"solver '{name}' has no torchsde counterpart"):
            sdekit.simulate(GBM2["ito"], 1.0, (0.0, 1.0), steps=2, n_paths=2, solver=name, backend="torch")


def test_commutative_and_levy_milstein_agree_as_h_shrinks_on_commutative_noise() -> None:
    """On commutative noise the exact area terms cancel; the difference quotients of g leave an O(h^1.5) mean-zero
    local difference between the two solvers, so their paths differ by O(h): 8 times less at 8 times the steps
    (asserted: at least 4 times less)."""
    def rms_gap(steps: int) -> float:
        kw = dict(steps=steps, n_paths=200, seed=9, noise_substeps=64 // steps)
        a = sdekit.simulate(GBM2["ito"], 1.0, (0.0, 1.0), solver="milstein_commutative", **kw).ys[-1]
        b = sdekit.simulate(GBM2["ito"], 1.0, (0.0, 1.0), solver="milstein_levy", **kw).ys[-1]
        return float(np.sqrt(np.mean((a - b) ** 2)))

    coarse, fine = rms_gap(8), rms_gap(64)
    assert 0.0 < fine < coarse / 4.0, (coarse, fine)


def test_levy_area_solver_refuses_a_save_inside_a_step_and_keeps_grid_saves() -> None:
    with pytest.raises(SDEKitError, match=r"'milstein_levy' draws a Lévy area per step.*\[0\.3"):
        sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), steps=4, n_paths=3, solver="milstein_levy",
                        save_at=[0.3, 1.0])
    on_grid = sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), steps=4, n_paths=3, solver="milstein_levy",
                              save_at=[0.25, 1.0])
    every = sdekit.simulate(NONCOMM["ito"], NONCOMM_X0, (0.0, 1.0), steps=4, n_paths=3, solver="milstein_levy",
                            save_at="steps")
    np.testing.assert_array_equal(on_grid.ys, every.ys[[1, 4]])
