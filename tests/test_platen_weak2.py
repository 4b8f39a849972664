"""Platen's weak order-2 scheme (Kloeden & Platen 1992, eq. 15.1.1): its weak order, exactly and by Monte Carlo.

Exact weak errors on GBM (no Monte Carlo). On dX = mu X dt + sigma X dW the scheme is linear, X' = X R(dW), with R a
polynomial of degree 2 in dW; so E X_n = X_0 (E R)^n and E X_n^2 = X_0^2 (E R^2)^n, and E R, E R^2 are integrals of
polynomials of degree <= 4 against N(0, h), which 3-point Gauss–Hermite quadrature gives exactly. The quadrature
nodes are fed to the Numba step itself (dW = sqrt(h) * node, one node per row), so these are the weak errors of
the compiled step, fitted with `fit_order_deterministic` (a zero-width CI) and gated at 2. Planted bugs (the NumPy
reference's terms with one second-order term dropped) fall to weak order 1 and fail the gate.

Monte Carlo: `weak_errors` (coupled on one Brownian path) on a drift-dominated GBM, fitted with a bootstrap CI,
every level resolved at alpha = 1e-6; Milstein (Platen's scheme without its second-order terms) fails the same gate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sdekit
from sdekit.backends.numba.access import gdw_scalar
from sdekit.backends.numba.steps import STEPS
from sdekit.backends.reference_platen_weak2 import platen_weak2_step, platen_weak2_terms
from sdekit.validate import fit_order_deterministic, gbm_problem
from sdekit.validate.weak import fit_weak_order, weak_errors
from tests.problems import GENERAL

T = 1.0
ALPHA = 1e-6
MU, SIGMA = 1.5, 0.5  # drift-dominated: the weak error is large against the coupled Monte Carlo noise
GBM = gbm_problem(MU, SIGMA)
GH_NODES = np.array([-math.sqrt(3.0), 0.0, math.sqrt(3.0)])  # probabilists' Gauss–Hermite: exact to degree 5
GH_WEIGHTS = np.array([1.0, 4.0, 1.0]) / 6.0
STEPS_PER_LEVEL = 64 * 2 ** np.arange(6)  # h = 1/64 .. 1/2048 (at 1/8 the pairwise order is still 1.87)
BUG_STEPS_PER_LEVEL = 256 * 2 ** np.arange(6)  # h = 1/256 .. 1/8192: past the bugs' h^2 terms


def numba_step(x: np.ndarray, h: float, dw: np.ndarray) -> np.ndarray:
    """One compiled Platen step of GBM from states x (n, 1) with increments dw (n, 1)."""
    f, g = GBM.sde.compiled()
    y = x.copy()
    STEPS["platen_weak2"](f, g, gdw_scalar, y, 0.0, h, dw, np.zeros_like(dw), GBM.sde.params,
                          np.zeros((3,) + x.shape), (np.array([1.0]),), np.empty((0, 0, 0)), np.empty((0, 0, 0)))
    return y


def one_step_factor(h: float, step=None) -> np.ndarray:
    """R(sqrt(h) * node) at the Gauss–Hermite nodes: X' / X from X = 1 (the compiled step unless ``step``)."""
    dw = math.sqrt(h) * GH_NODES[:, None]
    ones = np.ones((3, 1))
    if step is None:
        return numba_step(ones, h, dw)[:, 0]
    return step(GBM.sde.drift, GBM.sde.diffusion, ones, 0.0, h, dw, GBM.sde.params)[:, 0]


def exact_weak_errors(step=None, steps: np.ndarray = STEPS_PER_LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hs, |E X_n - E X_T|, |E X_n^2 - E X_T^2|) of the scheme on GBM from X_0 = 1, from E R and E R^2."""
    hs = T / steps
    err1, err2 = np.empty(hs.size), np.empty(hs.size)
    for k, (h, n) in enumerate(zip(hs, steps)):
        r = one_step_factor(h, step)
        err1[k] = abs((GH_WEIGHTS @ r) ** n - math.exp(MU * T))
        err2[k] = abs((GH_WEIGHTS @ r**2) ** n - math.exp((2 * MU + SIGMA**2) * T))
    return hs, err1, err2


def test_compiled_step_is_linear_on_gbm_and_equals_the_reference() -> None:
    """The premise of the exact weak errors: X' = X R(dW) (same R from X = 1 and X = 2.5, to rounding), and the
    compiled step equals the NumPy reference at the nodes."""
    h = 0.125
    dw = math.sqrt(h) * GH_NODES[:, None]
    r = one_step_factor(h)
    np.testing.assert_allclose(numba_step(np.full((3, 1), 2.5), h, dw)[:, 0], 2.5 * r, rtol=1e-14)
    np.testing.assert_allclose(r, one_step_factor(h, platen_weak2_step), rtol=1e-14)
    # R is the polynomial 1 + mu h + mu^2 h^2 / 2 + sigma (1 + mu h) dW + sigma^2 (dW^2 - h) / 2 of the scheme
    w = dw[:, 0]
    expected = 1 + MU * h + 0.5 * (MU * h) ** 2 + SIGMA * (1 + MU * h) * w + 0.5 * SIGMA**2 * (w**2 - h)
    np.testing.assert_allclose(r, expected, rtol=1e-14)


def test_exact_weak_order_two_on_gbm() -> None:
    """E X_T and E X_T^2, h = 1/64 .. 1/2048: both weak errors fall at order 2 (measured 1.995 and 1.994, pairwise
    1.98 -> 2.00; deterministic fit)."""
    hs, err1, err2 = exact_weak_errors()
    for errors in (err1, err2):
        fit = fit_order_deterministic(hs, errors)
        assert fit.passes(2.0, max_pairwise_dev=0.2), fit.summary()


def _without_correction(f, g, x, t, h, dwi, p):
    drift, noise, _ = platen_weak2_terms(f, g, x, t, h, dwi, p)
    return x + drift + noise


def _without_drift_average(f, g, x, t, h, dwi, p):
    _, noise, correction = platen_weak2_terms(f, g, x, t, h, dwi, p)
    return x + np.broadcast_to(f(x, t, p), x.shape) * h + noise + correction


@pytest.mark.parametrize("bug, moment", [(_without_correction, 2), (_without_drift_average, 1)],
                         ids=["no-(dW^2-h)-term", "no-drift-average"])
def test_planted_bug_dropped_second_order_term_falls_to_order_one(bug, moment: int) -> None:
    """Dropping the (g(Y+) - g(Y-)) (dW^2 - h) term (seen by E X^2) or averaging the drift (seen by E X) leaves a
    weak order-1 scheme: the order-2 gate fails and the order-1 gate passes (h = 1/256 .. 1/8192: measured 1.05,
    pairwise 1.13 -> 1.01, and 0.998; the first bug's order-1 term is small, so at h = 1/64 .. 1/2048 it reads 1.16,
    pairwise 1.36 -> 1.04)."""
    hs, *errors = exact_weak_errors(bug, BUG_STEPS_PER_LEVEL)
    fit = fit_order_deterministic(hs, errors[moment - 1])
    assert not fit.passes(2.0), fit.summary()
    assert fit.passes(1.0, max_pairwise_dev=0.2), fit.summary()


def _second_moment(x: np.ndarray) -> np.ndarray:
    return x[:, 0] ** 2


@pytest.mark.parametrize("solver, order", [("platen_weak2", 2.0), ("milstein", 1.0)])
def test_monte_carlo_weak_order_with_bootstrap_ci(solver: str, order: float) -> None:
    """phi(x) = x^2, coupled differences on the finest path, 20000 paths, h = 1/8 .. 1/128, every level resolved
    (|z| 11-36 > 5.2, alpha = 1e-6): Platen's scheme fits order 1.89, 99% bootstrap CI [1.83, 1.96]; Milstein,
    which lacks the second-order terms, fits 0.89 [0.887, 0.898] and fails the order-2 gate."""
    weak = weak_errors(GBM, solver, 1.0, T, _second_moment, base_steps=8, levels=5, n_paths=20000, seed=5)
    fit = fit_weak_order(weak, alpha=ALPHA)
    assert fit.passes(order), fit.summary() + "\n" + weak.summary()
    if order == 1.0:
        assert not fit.passes(2.0), fit.summary()


def test_refuses_stratonovich_and_general_noise() -> None:
    strat = gbm_problem(MU, SIGMA, "stratonovich").sde
    with pytest.raises(sdekit.IncompatibleSolverError, match=r"'platen_weak2' converges in \['ito'\]"):
        sdekit.simulate(strat, 1.0, (0.0, T), steps=4, n_paths=2, solver="platen_weak2")
    with pytest.raises(sdekit.IncompatibleSolverError, match=r"'platen_weak2' supports noise types .*'general'"):
        sdekit.simulate(GENERAL, np.zeros(3), (0.0, T), steps=4, n_paths=2, solver="platen_weak2")
