"""DPM-Solver's explicit order schedules (``orders=``) and grids of (alpha, sigma) pairs ending at the data level.

* Singlestep ``orders``: a step of order k spans k intervals of the grid and takes the grid points inside it as its
  intermediate points (general r1, r2, Lu et al. 2022). On a grid uniform in lambda with 2S (3S) intervals these
  are the points lambda_s + h / 2 (lambda_s + h / 3, + 2h / 3) of the fixed rules, so orders = [2] * S ([3] * S)
  equals the default order-2 (order-3) sampler on the S-interval grid, for the VP closed form and for the VE
  kernel (bisection of lambda(t)), to 1e-12.
* Multistep ``orders``: [1, 2, ..., 2] and [1, 2, ..., 2, 1] are the default without and with the lower-order
  final step; an order schedule that differs (a first-order step in the middle) changes the result.
* A grid whose last row is (1, 0) ends with the final denoise, the same as ``to_zero=True`` on the grid without it.
* Bad ``orders`` raise SDEKitError naming it.

Model: the exact score of Gaussian data N(0, diag(c^2)), s(x, alpha, sigma) = -x / (alpha^2 c^2 + sigma^2).
"""

from __future__ import annotations

import numpy as np
import pytest

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample, lambda_grid
from sdekit.errors import SDEKitError

VARS = np.array([0.3, 1.0, 2.5])
X_T = np.random.default_rng(0).standard_normal((16, 3))
VP = ForwardSDE.vp()
VE = ForwardSDE.ve()


def gauss_score(x, alpha, sigma):
    return -x / (alpha * alpha * VARS + sigma * sigma)


def grid(forward: ForwardSDE, steps: int) -> np.ndarray:
    return np.stack(lambda_grid(forward, steps, "logSNR"), axis=1)


@pytest.mark.parametrize("algorithm", ["dpmsolver", "dpmsolver++"])
@pytest.mark.parametrize("forward", [VP, VE], ids=["vp", "ve"])
@pytest.mark.parametrize("order", [2, 3])
def test_singlestep_orders_with_grid_points_equal_the_fixed_rules(order, forward, algorithm):
    steps = 4
    x = X_T * forward.kernel(forward.T)[1]
    rule = dpm_solver_sample(gauss_score, forward, x, order=order, steps=steps, skip="logSNR", algorithm=algorithm)
    fine = grid(forward, order * steps)
    ours = dpm_solver_sample(gauss_score, fine, x, orders=[order] * steps, method="singlestep", algorithm=algorithm)
    assert ours.nfe == rule.nfe == order * steps
    np.testing.assert_allclose(ours.x, rule.x, rtol=0, atol=1e-12 * np.abs(rule.x).max())
    np.testing.assert_allclose(ours.sigmas, rule.sigmas, rtol=1e-12)  # the step endpoints visited


def test_singlestep_orders_from_a_forward_sde_imply_the_grid():
    """With a ForwardSDE, orders alone fixes the grid: sum(orders) intervals (minus the to_zero step)."""
    x = X_T * VP.kernel(VP.T)[1]
    ours = dpm_solver_sample(gauss_score, VP, x, orders=[3, 2, 1], skip="logSNR")
    same = dpm_solver_sample(gauss_score, grid(VP, 6), x, orders=[3, 2, 1])
    assert ours.nfe == 6 and ours.sigmas.size == 4
    np.testing.assert_array_equal(ours.x, same.x)
    with_zero = dpm_solver_sample(gauss_score, VP, x, orders=[3, 2, 1], skip="logSNR", to_zero=True)
    assert with_zero.sigmas[-1] == 0 and with_zero.nfe == 6 and with_zero.sigmas.size == 4


def test_multistep_orders_reproduce_the_default_schedules():
    x = X_T * VP.kernel(VP.T)[1]
    g = grid(VP, 10)
    for lof, orders in ((False, [1] + [2] * 9), (True, [1] + [2] * 8 + [1])):
        ref = dpm_solver_sample(gauss_score, g, x, method="multistep", algorithm="dpmsolver++",
                                lower_order_final=lof)
        ours = dpm_solver_sample(gauss_score, g, x, method="multistep", algorithm="dpmsolver++", orders=orders)
        np.testing.assert_array_equal(ours.x, ref.x)
    other = dpm_solver_sample(gauss_score, g, x, method="multistep", algorithm="dpmsolver++",
                              orders=[1, 2, 2, 2, 1, 2, 2, 2, 2, 1])
    assert np.abs(other.x - ours.x).max() > 1e-6


@pytest.mark.parametrize("method", ["singlestep", "multistep"])
def test_a_grid_ending_at_the_data_level_is_the_final_denoise(method):
    x = X_T * VP.kernel(VP.T)[1]
    g = grid(VP, 8)
    with_zero = np.vstack([g, [1.0, 0.0]])
    a = dpm_solver_sample(gauss_score, with_zero, x, method=method, algorithm="dpmsolver++", return_trajectory=True)
    b = dpm_solver_sample(gauss_score, g, x, method=method, algorithm="dpmsolver++", to_zero=True)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.sigmas[-1] == 0 and a.nfe == (2 * 8 + 1 if method == "singlestep" else 9)
    # the final denoise: x0hat = alpha c^2 / (alpha^2 c^2 + sigma^2) x of the Gaussian score at the last noisy level
    alpha, sigma = g[-1]
    np.testing.assert_allclose(a.x, alpha * VARS / (alpha * alpha * VARS + sigma * sigma) * a.trajectory[-2],
                               rtol=1e-12)


GRID = np.stack(lambda_grid(VP, 6, "logSNR"), axis=1)


@pytest.mark.parametrize("kwargs,needle", [
    ({"orders": [2, 2, 2], "order": 2}, "order or orders"),
    ({"orders": [2, 2, 2], "lower_order_final": True}, "lower_order_final"),
    ({"orders": [2, 2]}, "sum(orders)"),
    ({"orders": []}, "non-empty list"),
    ({"orders": [4, 2]}, "step orders in (1, 2, 3)"),
    ({"orders": [True, 2, 3]}, "step orders in"),
    ({"orders": [2.0, 2, 2]}, "step orders in"),
    ({"orders": "222"}, "non-empty list"),
    ({"orders": [1, 3, 3], "method": "multistep"}, "orders[i] must be <= i + 1"),
    ({"orders": [2, 1, 1, 1, 1, 1], "method": "multistep"}, "orders[0]"),
    ({"orders": [1, 2, 2, 2, 2], "method": "multistep"}, "len(orders)"),
])
def test_bad_orders_raise(kwargs, needle):
    with pytest.raises(SDEKitError, match="orders|order"):
        try:
            dpm_solver_sample(gauss_score, GRID, X_T, **kwargs)
        except SDEKitError as exc:
            assert needle in str(exc), str(exc)
            raise


def test_the_step_onto_sigma_zero_must_be_first_order():
    with_zero = np.vstack([GRID, [1.0, 0.0]])
    with pytest.raises(SDEKitError, match=r"orders\[-1\] must be 1"):
        dpm_solver_sample(gauss_score, with_zero, X_T, orders=[2, 2, 3])
    with pytest.raises(SDEKitError, match=r"orders\[-1\] must be 1"):
        dpm_solver_sample(gauss_score, with_zero, X_T, method="multistep", orders=[1, 2, 2, 2, 2, 2, 2])


def test_a_grid_with_sigma_zero_before_the_end_is_refused():
    bad = np.vstack([GRID[:3], [1.0, 0.0], GRID[3:]])
    with pytest.raises(SDEKitError, match="only the last row may have sigma = 0"):
        dpm_solver_sample(gauss_score, bad, X_T)
