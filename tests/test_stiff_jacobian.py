"""A user drift Jacobian for the drift-implicit solvers: used in Newton's iteration, checked at x0, refused when wrong.

Deterministic checks only (no statistics): the solves with the user's J and with forward differences converge to the
same Newton root (both to tol 1e-10), Numba equals the NumPy reference, and a Jacobian that is right at x0 but wrong
elsewhere (the planted bug) makes Newton fail loudly — so the solver really uses the Jacobian it is given.
"""

from __future__ import annotations

import numpy as np
import pytest

import sdekit
from sdekit.errors import NonFiniteError, SDEKitError

GAMMA = 1000.0
X0 = np.array([0.8, -0.3])


def drift(x, t, p):
    """Stiff and nonlinear, with a non-symmetric Jacobian: f = (-γ(x0 + x0³) + x1, 0.5 x0 - x1)."""
    out = np.empty_like(x)
    out[:, 0] = -p[0] * (x[:, 0] + x[:, 0] ** 3) + x[:, 1]
    out[:, 1] = 0.5 * x[:, 0] - x[:, 1]
    return out


def jacobian(x, t, p):
    out = np.zeros((x.shape[0], 2, 2))
    out[:, 0, 0] = -p[0] * (1.0 + 3.0 * x[:, 0] ** 2)
    out[:, 0, 1] = 1.0
    out[:, 1, 0] = 0.5
    out[:, 1, 1] = -1.0
    return out


def transposed_jacobian(x, t, p):
    out = np.zeros((x.shape[0], 2, 2))
    out[:, 0, 0] = -p[0] * (1.0 + 3.0 * x[:, 0] ** 2)
    out[:, 0, 1] = 0.5
    out[:, 1, 0] = 1.0
    out[:, 1, 1] = -1.0
    return out


def right_only_at_x0(x, t, p):
    """The planted bug: exact at the start (so the probe accepts it), zero elsewhere (Newton then iterates
    y <- c + θ h f(y), which diverges at θ h γ = 50)."""
    out = np.zeros((x.shape[0], 2, 2))
    for b in range(x.shape[0]):
        if x[b, 0] == 0.8 and x[b, 1] == -0.3:
            out[b, 0, 0] = -p[0] * (1.0 + 3.0 * x[b, 0] ** 2)
            out[b, 0, 1] = 1.0
            out[b, 1, 0] = 0.5
            out[b, 1, 1] = -1.0
    return out


def noise(x, t, p):
    return 0.2 * x


def wrong_shape(x, t, p):
    return np.zeros((x.shape[0], 2))


def problem(jac=None) -> sdekit.SDE:
    return sdekit.SDE(drift, noise, 2, params=np.array([GAMMA]), drift_jacobian=jac, name="stiff_pair")


def solve(jac, solver, backend="numba", n=64):
    return sdekit.simulate(problem(jac), X0, (0.0, 1.0), steps=20, n_paths=n, seed=5, solver=solver,
                           backend=backend, save_at="steps").ys


@pytest.mark.parametrize("solver", ["implicit_euler_maruyama", "implicit_milstein"])
def test_user_jacobian_reaches_the_finite_difference_root(solver):
    with_j, with_fd = solve(jacobian, solver), solve(None, solver)
    assert np.all(np.isfinite(with_j))
    np.testing.assert_allclose(with_j, with_fd, rtol=1e-8, atol=1e-10)
    assert not np.array_equal(with_j, with_fd)  # a different Newton iteration ran, not the same code path


def test_user_jacobian_numba_equals_numpy_reference():
    np.testing.assert_allclose(solve(jacobian, "theta_maruyama"),
                               solve(jacobian, "theta_maruyama", backend="numpy"), rtol=1e-12, atol=1e-14)


def test_jacobian_wrong_elsewhere_makes_newton_fail_loudly():
    with pytest.raises(NonFiniteError, match="Newton"):
        solve(right_only_at_x0, "implicit_euler_maruyama", n=8)


@pytest.mark.parametrize("jac, pattern", [
    (transposed_jacobian, r"drift_jacobian disagrees with the drift: at x0 row 0, J\[0, 1\] = 0\.5 .* ≈ 1\b"),
    (wrong_shape, r"drift_jacobian returned shape \(\d+, 2\) .* expected \(\d+, 2, 2\) or \(2, 2\)"),
])
def test_bad_jacobian_is_refused_before_the_solve(jac, pattern):
    with pytest.raises(SDEKitError, match=pattern):
        solve(jac, "implicit_euler_maruyama", n=8)


def test_jacobian_must_be_callable():
    with pytest.raises(SDEKitError, match="drift_jacobian must be None or callable"):
        sdekit.SDE(drift, noise, 2, drift_jacobian=np.eye(2))
