"""Mergeable validation statistics (sdekit.reductions): merged over random splits they give the CheckResult of the
single-process test (statistic to ~1e-12 relative, same verdict), the grid KS / CvM lie within their stated bounds
of the exact statistics, and planted bugs (wrong variance, shifted mean) fail at alpha = 1e-6."""

import math
import pickle

import numpy as np
import pytest
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.reductions import (
    GridCvMTest,
    GridKSTest,
    HistogramChi2Test,
    MomentChi2Test,
    MomentTest,
    SteinTest,
    merge_all,
    summarize,
)
from sdekit.targets import Gaussian
from sdekit.validate.laws import exact_feature_moments, features
from sdekit.validate.onesample import cvm_test, ks_test, moment_test, stein_test
from sdekit.validate.stats import gaussian_law_tests, moment_chi2, whiten

ALPHA = 1e-6
MEAN = np.array([1.0, -2.0])
COV = np.array([[2.0, 0.6], [0.6, 1.0]])


def splits(x, seed, shards=12):
    """Random cut points plus an empty and a one-sample shard."""
    n = x.shape[0]
    cuts = np.sort(np.concatenate([np.random.default_rng(seed).integers(0, n + 1, shards - 3), [7, 7, 8]]))
    return np.split(x, cuts)


def merged(reduction, x, seed, shards=12):
    return merge_all([summarize(reduction, p) for p in splits(x, seed, shards)])


@pytest.fixture(scope="module")
def good():
    return np.random.default_rng(20261208).multivariate_normal(MEAN, COV, size=20000)


@pytest.fixture(scope="module")
def bad_variance(good):
    return MEAN + (good - MEAN) * 1.06  # variance 12% too large


def same_check(merged_result, reference):
    assert merged_result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert merged_result.threshold == pytest.approx(reference.threshold, rel=1e-12)
    assert merged_result.passed == reference.passed and merged_result.test == reference.test


def test_moment_chi2_matches_single_process(good, bad_variance):
    red = MomentChi2Test(MEAN, COV)
    for shards in (4, 30):
        res = merged(red, good, shards, shards).result(ALPHA / 3)
        same_check(res, gaussian_law_tests("sample", good, MEAN, COV, ALPHA)[-1])
        assert res.statistic == pytest.approx(moment_chi2(whiten(good, MEAN, COV)), rel=1e-12)
        assert res.passed
    bug = merged(red, bad_variance, 1).result(ALPHA)
    same_check(bug, gaussian_law_tests("sample", bad_variance, MEAN, COV, 3 * ALPHA)[-1])
    assert not bug.passed


def exactly_rounded_moment_statistic(x, target):
    """T = N rbar^T C^{-1} rbar with the feature means summed exactly (math.fsum)."""
    mean, cov = exact_feature_moments(target)
    phi = features(x)
    rbar = np.array([math.fsum(phi[:, j]) / x.shape[0] for j in range(phi.shape[1])]) - mean
    z = np.linalg.solve(np.linalg.cholesky(cov), rbar)
    return x.shape[0] * float(z @ z)


def test_moment_test_matches_single_process(good):
    """mean phi - E phi cancels (|E phi| / |rbar| ~ 10^3 here), so moment_test's own rounding is ~1e-12 relative: the
    merged statistic (which sums phi - E phi) must be at least as close to the exactly rounded one."""
    target = Gaussian(MEAN, COV)
    red = MomentTest(target)
    res, ref = merged(red, good, 2).result(ALPHA), moment_test(good, target, ALPHA)
    exact = exactly_rounded_moment_statistic(good, target)
    assert res.statistic == pytest.approx(exact, rel=1e-13)
    assert abs(res.statistic - ref.statistic) <= abs(ref.statistic - exact) + 1e-13 * exact
    assert res.threshold == ref.threshold and res.passed == ref.passed and res.test == ref.test
    np.testing.assert_allclose(res.bias, ref.bias, rtol=1e-10)
    assert res.passed
    shifted = good + [0.15, 0.0]
    bug = merged(red, shifted, 3).result(ALPHA)
    same_check(bug, moment_test(shifted, target, ALPHA))
    assert not bug.passed


def test_stein_test_matches_single_process(good, bad_variance):
    target = Gaussian(MEAN, COV)
    red = SteinTest(target.score, 2)
    res = merged(red, good, 4).result(ALPHA)
    same_check(res, stein_test(good, target.score, ALPHA))
    assert res.passed
    bug = merged(red, bad_variance, 5).result(ALPHA)
    same_check(bug, stein_test(bad_variance, target.score, ALPHA))
    assert not bug.passed
    assert pickle.loads(pickle.dumps(summarize(red, good[:100]))).n == 100


def test_histogram_chi2_matches_scipy(good):
    x = good[:, 0]
    law = st.norm(MEAN[0], np.sqrt(COV[0, 0]))
    edges = law.ppf(np.linspace(0, 1, 21)[1:-1])
    q = np.diff(np.concatenate([[0.0], law.cdf(edges), [1.0]]))
    red = HistogramChi2Test(edges, q)
    res = merged(red, x, 6).result(ALPHA)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=20)
    ref = st.chisquare(counts, x.size * q)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12) and res.pvalue == pytest.approx(ref.pvalue)
    assert res.passed and res.statistic == summarize(red, x).result(ALPHA).statistic
    bug = merged(red, x * 1.06 - MEAN[0] * 0.06, 7).result(ALPHA)
    assert not bug.passed


def test_grid_ks_and_cvm_within_bounds_and_merge_exactly(good):
    law = st.norm(MEAN[0], np.sqrt(COV[0, 0]))
    x = good[:, 0]
    ks, cvm = GridKSTest(law), GridCvMTest(law)
    k_one, c_one = summarize(ks, x).result(ALPHA), summarize(cvm, x).result(ALPHA)
    for seed in (8, 9):
        assert merged(ks, x, seed).result(ALPHA).statistic == k_one.statistic
        assert merged(cvm, x, seed).result(ALPHA).statistic == c_one.statistic
    d_exact, w_exact = ks_test(x, law, ALPHA).statistic, cvm_test(x, law, ALPHA).statistic
    assert k_one.statistic <= d_exact <= k_one.statistic + 1.0 / ks.cells
    w2, bound = summarize(cvm, x).statistic()
    assert abs(w2 - w_exact) <= bound and bound < 0.01
    assert k_one.passed and c_one.passed
    shifted = x + 0.1 * np.sqrt(COV[0, 0])
    k_bug, c_bug = merged(ks, shifted, 10).result(ALPHA), merged(cvm, shifted, 11).result(ALPHA)
    assert not k_bug.passed and not c_bug.passed
    assert not ks_test(shifted, law, ALPHA).passed  # the exact tests agree
    coarse = summarize(GridKSTest(law, cells=64), x)  # the bound holds on a coarse grid too
    assert coarse.statistic() <= d_exact <= coarse.statistic() + 1 / 64


def test_validation_reductions_refuse_bad_input(good):
    law = st.norm()
    with pytest.raises(SDEKitError, match="probabilities must sum to 1"):
        HistogramChi2Test([0.0], [0.5, 0.6])
    with pytest.raises(SDEKitError, match="probabilities must be 3 positive numbers"):
        HistogramChi2Test([0.0, 1.0], [0.5, 0.5])
    with pytest.raises(SDEKitError, match="N q_j >= min_expected"):
        summarize(HistogramChi2Test([0.0], [0.5, 0.5]), [1.0, -1.0]).result()
    with pytest.raises(SDEKitError, match="cov must be positive definite"):
        MomentChi2Test([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(SDEKitError, match=r"x must have shape \(n, 1\)"):
        GridKSTest(law).update(good)
    with pytest.raises(SDEKitError, match="needs at least 20 samples"):
        summarize(GridCvMTest(law), good[:5, 0]).result()
    with pytest.raises(SDEKitError, match="score returned shape"):
        SteinTest(lambda x: x[:, :1], 2).update(good[:30])
    with pytest.raises(SDEKitError, match="cells"):
        GridKSTest(law).merge(GridKSTest(law, cells=128))
    with pytest.raises(SDEKitError, match="mean"):
        MomentChi2Test(MEAN, COV).merge(MomentChi2Test(MEAN + 1, COV))


def test_validation_summaries_pickle(good):
    law = st.norm(MEAN[0], np.sqrt(COV[0, 0]))
    cases = [(MomentChi2Test(MEAN, COV), good), (MomentTest(Gaussian(MEAN, COV)), good),
             (SteinTest(Gaussian(MEAN, COV).score, 2), good),
             (HistogramChi2Test([MEAN[0]], [0.5, 0.5]), good[:, 0]), (GridKSTest(law), good[:, 0]),
             (GridCvMTest(law), good[:, 0])]
    for red, x in cases:
        s = summarize(red, x)
        back = pickle.loads(pickle.dumps(s))
        assert back.result(ALPHA).statistic == s.result(ALPHA).statistic
        assert back.merge(s).result(ALPHA).statistic == s.merge(s).result(ALPHA).statistic


def test_merge_refuses_different_laws_and_scores():
    with pytest.raises(SDEKitError, match="law"):
        GridCvMTest(st.norm(0, 1)).merge(GridCvMTest(st.norm(0, 2)))
    with pytest.raises(SDEKitError, match="score"):
        SteinTest(Gaussian(MEAN, COV).score, 2).merge(SteinTest(Gaussian(MEAN, 2 * COV).score, 2))
    assert SteinTest(Gaussian(MEAN, COV).score, 2).merge(SteinTest(Gaussian(MEAN, COV).score, 2)).n == 0
