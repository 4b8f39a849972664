"""BrownianIntegralPath.space_space_levy_area: the space-space Lévy area of any interval, from the path's (dW, H).

Statistical checks: z-tests at |z| <= 5.5 on 3 statistics per approximation (two-sided false-alarm rate 3.8e-8 each,
about 1.2e-7 per test by the union bound), 20,000 paths, exact fourth moments bound the variance of the estimators
(A's kurtosis is finite; the sample variance's own variance is estimated from the sample).
"""

from __future__ import annotations

import numpy as np
import pytest

from sdekit.errors import SDEKitError
from sdekit.noise.brownian_integral_path import BrownianIntegralPath
from sdekit.noise.levy_area import spacetime_part

Z = 5.5
N = 20000
S, T = 0.3, 0.55  # non-dyadic ends


def _z_mean(x: np.ndarray, mean: float) -> float:
    return float((x.mean() - mean) / (x.std(ddof=1) / np.sqrt(x.size)))


def area_checks(a: np.ndarray, dw: np.ndarray, hh: np.ndarray, h: float) -> list[float]:
    """z-scores of E A_01 = 0, E A_01^2 = h^2/4, E[A_01 H_0 dW_1] = h^2/12 (the (dW, H) part of A is exact)."""
    a01 = a[:, 0, 1]
    return [_z_mean(a01, 0.0), _z_mean(a01 * a01, h * h / 4), _z_mean(a01 * hh[:, 0] * dw[:, 1], h * h / 12)]


@pytest.fixture(scope="module")
def path():
    return BrownianIntegralPath(11, N, m=2)


@pytest.mark.parametrize("method", ["foster", "davie"])
def test_area_has_the_exact_moments(path, method):
    a = path.space_space_levy_area(S, T, method=method)
    dw, _ = path.increment(S, T)
    hh = path.space_time_levy_area(S, T)
    assert np.array_equal(a, -a.transpose(0, 2, 1))
    zs = area_checks(a, dw, hh, T - S)
    assert max(abs(z) for z in zs) < Z, zs


def test_planted_bug_without_the_bridge_part_fails(path):
    """The (dW, H) part alone (bridge area dropped) has variance h^2/6, not h^2/4: rejected."""
    dw, _ = path.increment(S, T)
    hh = path.space_time_levy_area(S, T)
    zs = area_checks(spacetime_part(dw, hh), dw, hh, T - S)
    assert abs(zs[1]) > Z, zs


def test_same_interval_same_area_other_interval_other_bridge(path):
    a1 = path.space_space_levy_area(S, T)
    other = BrownianIntegralPath(11, N, m=2)
    other(0.9)  # a different query history
    assert np.array_equal(a1, other.space_space_levy_area(S, T))
    first = BrownianIntegralPath(11, 5, m=2).space_space_levy_area(S, T)
    assert np.array_equal(first, a1[:5])  # the first paths do not depend on how many are asked for
    b = path.space_space_levy_area(S, 0.56)
    assert np.corrcoef(a1[:, 0, 1], b[:, 0, 1])[0, 1] < 0.99  # a new interval draws a new bridge part


def test_bad_method_and_interval_are_refused(path):
    with pytest.raises(SDEKitError, match="method must be one of"):
        path.space_space_levy_area(S, T, method="wiktorsson")
    with pytest.raises(SDEKitError, match="needs s < t"):
        path.space_space_levy_area(T, S)
