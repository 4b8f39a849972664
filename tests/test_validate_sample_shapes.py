"""The validation batteries take samples of shape (n, *shape) (e.g. image batches) for a law of dimension
prod(shape), flattening each draw row-wise (C order) where the statistics need vectors.

A 4-D Gaussian with distinct means and an anisotropic, correlated covariance; n = 4000 exact draws (fixed seed)
reshaped to (n, 2, 2). compare_with_law at overall false-alarm rate 1e-6 must pass it, give exactly the statistics
of the (n, 4) sample, and reject (planted bugs): the same draws shifted by 0.2 in one pixel, and the draws with each
2 x 2 "image" transposed (a column-major flattening would read them so: coordinates 1 and 2 swapped).
Measured min gating p-value: 0.066 (exact draws), 1.5e-26 (shifted), 0 (transposed).
"""

from __future__ import annotations

import numpy as np
import pytest

from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian
from sdekit.testing import assert_law
from sdekit.validate import compare_with_law, moment_test, stein_test

N = 4000
MEAN = np.array([0.0, 1.0, -2.0, 3.0])
_A = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.8, 0.0, 0.0], [0.0, 0.3, 1.5, 0.0], [0.2, 0.0, 0.4, 0.6]])
LAW = Gaussian(MEAN, _A @ _A.T)
FLAT = np.random.default_rng(20260413).multivariate_normal(MEAN, LAW.cov, N)
IMAGES = FLAT.reshape(N, 2, 2)


def test_image_shaped_sample_passes_and_equals_the_flat_battery():
    rep = compare_with_law(IMAGES, LAW)
    flat = compare_with_law(FLAT, LAW)
    assert rep.passed, rep.summary()
    assert [r.statistic for r in rep.results] == [r.statistic for r in flat.results]
    assert_law(IMAGES, LAW)  # sdekit.testing goes through the same check


def test_shifted_image_sample_fails():
    shifted = IMAGES.copy()
    shifted[:, 1, 0] += 0.2  # pixel (1, 0) is coordinate 2
    rep = compare_with_law(shifted, LAW)
    assert not rep.passed
    assert not moment_test(shifted, LAW).passed


def test_column_major_reading_fails():
    transposed = IMAGES.transpose(0, 2, 1).copy()  # what reading the draws in Fortran order would give
    assert not compare_with_law(transposed, LAW).passed


def test_stein_score_receives_flat_rows():
    seen = []

    def score(x):
        seen.append(x.shape)
        return LAW.score(x)

    res = stein_test(IMAGES, score)
    assert seen == [(N, 4)] and res.passed
    assert res.statistic == stein_test(FLAT, LAW.score).statistic


@pytest.mark.parametrize(("sample", "match"), [
    (np.zeros((N, 3, 2)), r"sample must have shape \(N, 4\), or \(N, \*shape\) with prod\(shape\) = 4, .*"
                          r"got shape \(4000, 3, 2\)"),
    (np.zeros((N, 2, 0)), r"sample must have at least one coordinate per draw"),
])
def test_wrong_sizes_name_the_sample(sample, match):
    with pytest.raises(SDEKitError, match=match):
        compare_with_law(sample, LAW)


def test_classify_bias_takes_image_shaped_runs():
    from sdekit.validate import classify_bias

    def run(shape):
        def draws(h, seed):
            return np.random.default_rng(seed).multivariate_normal(MEAN, LAW.cov, N).reshape(N, *shape)
        return draws

    flat = classify_bias(run((4,)), 0.1, exact_law=LAW)
    images = classify_bias(run((2, 2)), 0.1, exact_law=LAW)
    assert images.verdict == flat.verdict
    assert [c.statistic for c in images.discrepancy_checks] == [c.statistic for c in flat.discrepancy_checks]
    with pytest.raises(SDEKitError, match=r"returned samples of shape \(4000, 3, 2\).*prod\(shape\) = 4"):
        classify_bias(lambda h, s: np.zeros((N, 3, 2)), 0.1, exact_law=LAW)
