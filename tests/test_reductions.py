"""Streaming reductions (sdekit.reductions): merging summaries of random splits equals one pass over all data
(exactly for counts, to ~1e-12 relative for float moments against NumPy two-pass), the quantile sketch stays within
its stated rank-error bound, summaries pickle and stay small, bad input is refused."""

import pickle

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from sdekit.errors import SDEKitError
from sdekit.reductions import (
    AdaptiveHistogram,
    Covariance,
    ExactQuantiles,
    Exceedance,
    Histogram,
    Moments,
    QuantileSketch,
    merge_all,
    summarize,
)
from sdekit.reductions.base import as_batch


def random_splits(x, rng, shards):
    """x split at random cut points, forced to include an empty shard and a one-sample shard."""
    n = x.shape[0]
    cuts = np.sort(rng.integers(0, n + 1, shards - 3))
    cuts = np.sort(np.concatenate([cuts, [n // 3, n // 3, n // 2, n // 2 + 1]]))
    parts = np.split(x, cuts)
    assert any(p.shape[0] == 0 for p in parts) and any(p.shape[0] == 1 for p in parts)
    return parts


def merged(reduction, parts):
    return merge_all([summarize(reduction, p) for p in parts])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20261207)
    x = rng.standard_normal((6000, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 2.0, -0.5], [0.0, 0.0, 0.7]]) + [3.0, -1, 0]
    x[:, 2] = np.exp(x[:, 2])  # skewed coordinate
    return x


def two_pass_moments(x):
    c = x - x.mean(axis=0)
    m2 = (c**2).sum(axis=0)
    return x.mean(axis=0), m2 / (x.shape[0] - 1), st.skew(x), st.kurtosis(x)


@pytest.mark.parametrize("shards", [4, 9, 40])
def test_moments_merge_equals_two_pass(data, shards):
    parts = random_splits(data, np.random.default_rng(shards), shards)
    res = merged(Moments(3), parts).result()
    mean, var, skew, kurt = two_pass_moments(data)
    assert res.n == data.shape[0]
    np.testing.assert_allclose(res.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(res.variance, var, rtol=1e-12)
    np.testing.assert_allclose(res.skewness, skew, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.excess_kurtosis, kurt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.sem, np.sqrt(var / data.shape[0]), rtol=1e-12)


def test_moments_lower_order_and_one_dimensional_input(data):
    x = data[:, 2]
    res = merged(Moments(1, order=2), random_splits(x, np.random.default_rng(1), 6)).result()
    np.testing.assert_allclose(res.variance, [x.var(ddof=1)], rtol=1e-12)
    assert np.isnan(res.skewness).all() and np.isnan(res.excess_kurtosis).all()
    three = summarize(Moments(1, order=3), x).result()
    np.testing.assert_allclose(three.skewness, [st.skew(x)], rtol=1e-12)


@pytest.mark.parametrize("shards", [4, 25])
def test_covariance_merge_equals_two_pass(data, shards):
    res = merged(Covariance(3), random_splits(data, np.random.default_rng(100 + shards), shards)).result()
    cov = np.cov(data, rowvar=False)
    sd = np.sqrt(np.diag(cov))
    assert res.n == data.shape[0]
    np.testing.assert_allclose(res.mean, data.mean(axis=0), rtol=1e-12)
    assert np.max(np.abs(res.covariance - cov) / np.outer(sd, sd)) < 1e-12
    assert np.max(np.abs(res.correlation - np.corrcoef(data, rowvar=False))) < 1e-12


@settings(max_examples=8, deadline=None)
@given(hs.lists(hs.integers(0, 300), min_size=0, max_size=12))
def test_moments_and_covariance_any_split(cuts):
    x = np.random.default_rng(7).standard_normal((300, 2)) * [1.0, 5.0] + [2.0, -3.0]
    parts = np.split(x, sorted(cuts))
    mom, cov = merged(Moments(2), parts).result(), merged(Covariance(2), parts).result()
    mean, var, skew, kurt = two_pass_moments(x)
    np.testing.assert_allclose(mom.variance, var, rtol=1e-12)
    np.testing.assert_allclose(mom.excess_kurtosis, kurt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov.covariance, np.cov(x, rowvar=False), rtol=1e-12, atol=1e-12 * var.max())


def test_empty_and_single_sample_summaries():
    one = Moments(2).update(np.array([[1.0, 2.0]]))
    res = one.result()
    assert res.n == 1 and np.array_equal(res.mean, [1.0, 2.0]) and np.isnan(res.variance).all()
    assert np.isnan(Moments(2).result().mean).all()
    assert Covariance(2).update(np.zeros((0, 2))).result().n == 0
    both = one.merge(Moments(2).update(np.array([[3.0, 2.0]])))
    np.testing.assert_array_equal(both.result().variance, [2.0, 0.0])
    assert one.n == 1  # merge returned a new object


def test_histogram_counts_are_exact(data):
    edges = np.linspace(-2.0, 6.0, 17)
    parts = random_splits(data, np.random.default_rng(3), 11)
    res = merged(Histogram(edges, d=3), parts).result()
    one = summarize(Histogram(edges, d=3), data).result()
    for j in range(3):
        counts, _ = np.histogram(data[:, j], edges)
        np.testing.assert_array_equal(res.counts[j], counts)
        assert res.underflow[j] == np.sum(data[:, j] < edges[0]) and res.overflow[j] == np.sum(data[:, j] > edges[-1])
    for field in ("counts", "underflow", "overflow"):
        np.testing.assert_array_equal(getattr(res, field), getattr(one, field))
    assert res.n == data.shape[0]
    last = summarize(Histogram([0.0, 1.0, 2.0]), np.array([2.0, 0.0, 1.0, 2.5])).result()
    np.testing.assert_array_equal(last.counts, [[1, 2]])  # the last bin is closed, as numpy.histogram
    assert last.overflow[0] == 1


def _assert_same_adaptive(a, b):
    assert a.level == b.level and a.n == b.n
    for i, j in zip(a.index, b.index):
        np.testing.assert_array_equal(i, j)
    for i, j in zip(a.count, b.count):
        np.testing.assert_array_equal(i, j)


def test_adaptive_histogram_merge_equals_one_pass(data):
    h = AdaptiveHistogram(3, width0=1e-3, max_bins=40)
    one = summarize(h, data).result()
    for shards in (5, 30):
        _assert_same_adaptive(merged(h, random_splits(data, np.random.default_rng(shards), shards)).result(), one)
    for j in range(3):  # exact counts on the final grid, and the level is the smallest that fits max_bins
        idx, cnt = np.unique(np.floor(data[:, j] / one.width[j]).astype(np.int64), return_counts=True)
        np.testing.assert_array_equal(one.index[j], idx)
        np.testing.assert_array_equal(one.count[j], cnt)
        assert idx.size <= 40 < np.unique(np.floor(data[:, j] / (one.width[j] / 2))).size
    edges, counts = one.dense(0)
    assert counts.sum() == data.shape[0] and edges.size == counts.size + 1


def test_adaptive_histogram_merges_different_widths():
    rng = np.random.default_rng(4)
    narrow, wide = rng.uniform(0, 0.01, 500), rng.uniform(-50, 50, 500)
    h = AdaptiveHistogram(1, width0=1e-4, max_bins=16)
    a, b = summarize(h, narrow), summarize(h, wide)
    assert a.result().level != b.result().level
    _assert_same_adaptive(a.merge(b).result(), summarize(h, np.concatenate([narrow, wide])).result())
    _assert_same_adaptive(b.merge(a).result(), a.merge(b).result())
    huge = summarize(h, np.array([1e300, -1e300, 0.0])).result()  # indices stay in range
    assert huge.count[0].sum() == 3


def test_exceedance_counts_and_intervals():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20000, 2))
    thresholds = np.array([-1.0, 0.0, 2.5, 4.0, 50.0])
    red = Exceedance(thresholds, 2, coordinate=1, level=0.99)
    res = merged(red, random_splits(x, rng, 8)).result()
    counts = np.array([np.sum(x[:, 1] > a) for a in thresholds])
    np.testing.assert_array_equal(res.counts, counts)
    np.testing.assert_array_equal(res.counts, summarize(red, x).result().counts)
    n = x.shape[0]
    np.testing.assert_allclose(res.p_hat, counts / n, rtol=1e-15)
    np.testing.assert_allclose(res.se, np.sqrt(counts / n * (1 - counts / n) / n), rtol=1e-15)
    for k, lo, hi in zip(counts, res.lower, res.upper):
        ci = st.binomtest(int(k), n).proportion_ci(confidence_level=0.99, method="exact")
        np.testing.assert_allclose([lo, hi], [ci.low, ci.high], rtol=1e-10, atol=1e-15)
    assert counts[-1] == 0 and res.upper[-1] == pytest.approx(1 - 0.005 ** (1 / n), rel=1e-10)
    w = np.array([1.0, -2.0])
    lin = summarize(Exceedance([0.5], 2, weights=w), x).result()
    assert lin.counts[0] == np.sum(x @ w > 0.5)


def _rank_errors(result, ys, q):
    """Per quantile: how far the returned value's rank interval [#{<}, #{<=}] lies from q n."""
    xq = result.quantile(q)[:, 0]
    below, upto = np.searchsorted(ys, xq, "left"), np.searchsorted(ys, xq, "right")
    return np.maximum(below - q * ys.size, q * ys.size - upto)


class UnsortedCompactor(QuantileSketch):
    """Planted bug: level buffers are never sorted, so a compaction pairs arbitrary items."""

    def update(self, x):
        x = as_batch(x, self.d)
        self._levels[0] = np.concatenate([self._levels[0], x])
        self.n += x.shape[0]
        self._compress()
        return self

    def _compress(self):
        for h in range(64):
            if h == len(self._levels):
                break
            buf = self._levels[h]
            if buf.shape[0] > self.k:
                keep = buf.shape[0] - buf.shape[0] % 2
                if h + 1 == len(self._levels):
                    self._levels.append(np.zeros((0, self.d)))
                self._levels[h + 1] = np.concatenate([self._levels[h + 1], buf[self._coin():keep:2]])
                self._levels[h] = buf[keep:]
                self.variance_sum += 4**h


def test_quantile_sketch_within_stated_bound():
    """rank error <= t = sqrt(2 V ln(2 (n + 1) / delta)), uniformly over ranks and quantiles, for one pass, streamed
    batches and two merges over random splits; delta = 1e-6 / 4 per sketch, so the test's false-alarm rate is <= 1e-6
    (union bound). The unsorted-compaction bug breaks the bound."""
    rng = np.random.default_rng(6)
    y = rng.standard_normal(200_000)
    ys, q = np.sort(y), np.linspace(0.0, 1.0, 1001)
    sketch = QuantileSketch(1, k=256, seed=11)
    streamed = sketch.empty()
    for b in np.array_split(y, 100):
        streamed.update(b)
    parts = random_splits(y, rng, 16)
    for s in (summarize(sketch, y), streamed, merged(sketch, parts),
              merge_all([sketch.spawn(i).update(p) for i, p in enumerate(parts)])):
        res = s.result()
        bound = res.rank_error_bound(1e-6 / 4)
        assert res.n == y.size and 0 < bound < 0.03 * y.size
        assert _rank_errors(res, ys, q).max() <= bound
        assert np.abs(res.rank(ys[::997])[:, 0] - np.arange(1, y.size + 1)[::997]).max() <= bound
        assert s.size < 20 * 256  # O(k log(n / k)) items
    buggy = UnsortedCompactor(1, k=256, seed=11)
    for b in np.array_split(y, 100):
        buggy.update(b)
    assert _rank_errors(buggy.result(), ys, q).max() > buggy.result().rank_error_bound(1e-6 / 4)


def test_quantile_sketch_is_deterministic_and_exact_while_small():
    rng = np.random.default_rng(8)
    y = rng.standard_normal((5000, 2))
    parts = random_splits(y, rng, 6)
    a, b = merged(QuantileSketch(2, k=64), parts).result(), merged(QuantileSketch(2, k=64), parts).result()
    assert np.array_equal(a.values, b.values) and np.array_equal(a.cum_weights, b.cum_weights)
    small = y[:200]
    q = np.linspace(0, 1, 57)
    exact = merged(ExactQuantiles(2), random_splits(small, rng, 5)).result()
    sketch = merged(QuantileSketch(2, k=256), random_splits(small, rng, 5)).result()
    assert sketch.variance_sum == 0 and sketch.rank_error_bound() == 0.0
    np.testing.assert_array_equal(sketch.quantile(q), exact.quantile(q))
    ref = np.sort(small, axis=0)[np.maximum(np.ceil(q * 200).astype(int) - 1, 0)]  # smallest x with rank >= q n
    np.testing.assert_array_equal(exact.quantile(q), ref)


def _reductions():
    return [Moments(2), Covariance(2), Histogram(np.linspace(-3, 3, 9), d=2), AdaptiveHistogram(2, 0.01, 32),
            Exceedance([0.0, 1.0], 2), QuantileSketch(2, k=64)]


def _same_result(a, b):
    for k in a.__dataclass_fields__:
        u, v = getattr(a, k), getattr(b, k)
        if isinstance(u, tuple):
            assert len(u) == len(v) and all(np.array_equal(p, r, equal_nan=True) for p, r in zip(u, v)), k
        else:
            assert np.array_equal(u, v, equal_nan=True), k


def test_pickle_round_trip_and_size_independent_of_n():
    rng = np.random.default_rng(9)
    small, big = rng.standard_normal((500, 2)), rng.standard_normal((50_000, 2))
    for red in _reductions():
        s = summarize(red, small)
        back = pickle.loads(pickle.dumps(s))
        _same_result(back.result(), s.result())
        _same_result(back.merge(s).result(), s.merge(s).result())
        size_small, size_big = len(pickle.dumps(s)), len(pickle.dumps(summarize(red, big)))
        if isinstance(red, QuantileSketch):
            assert size_big < 4 * size_small  # log(n / k) levels
        elif isinstance(red, AdaptiveHistogram):
            assert size_big < 1000 + 2 * 32 * 16  # at most max_bins (index, count) pairs per coordinate
        else:
            assert abs(size_big - size_small) < 64, type(red).__name__


def test_bad_inputs_are_refused():
    with pytest.raises(SDEKitError, match=r"x must have shape \(n, 2\)"):
        Moments(2).update(np.zeros((4, 3)))
    with pytest.raises(SDEKitError, match="non-finite rows"):
        Covariance(1).update([1.0, np.nan])
    with pytest.raises(SDEKitError, match="must be real"):
        Histogram([0, 1]).update(np.array([1j]))
    with pytest.raises(SDEKitError, match="edges must be strictly increasing"):
        Histogram([0.0, 2.0, 1.0])
    with pytest.raises(SDEKitError, match="order must be 2, 3 or 4"):
        Moments(1, order=5)
    with pytest.raises(SDEKitError, match="width0 must be > 0"):
        AdaptiveHistogram(1, width0=0.0)
    with pytest.raises(SDEKitError, match="coordinate must be an integer in"):
        Exceedance([0.0], 2, coordinate=2)
    with pytest.raises(SDEKitError, match=r"weights must be a finite array of shape \(2,\)"):
        Exceedance([0.0], 2, weights=[1.0])
    with pytest.raises(SDEKitError, match="level must be in"):
        Exceedance([0.0], level=1.0)
    with pytest.raises(SDEKitError, match="q must be probabilities"):
        QuantileSketch().update([1.0]).result().quantile(1.5)
    with pytest.raises(SDEKitError, match="non-empty sequence"):
        merge_all([])
    with pytest.raises(SDEKitError, match="not a reduction"):
        merge_all([Moments(1), 3])
    with pytest.raises(SDEKitError, match="reduction must be a reduction"):
        summarize(np.zeros(3), [1.0])


@pytest.mark.parametrize("a, b, what", [
    (Moments(2), Moments(3), r"d \(2 vs 3\)"),
    (Moments(2, order=3), Moments(2), r"order \(3 vs 4\)"),
    (Histogram([0, 1, 2]), Histogram([0, 1, 3]), "edges"),
    (AdaptiveHistogram(1, 1.0), AdaptiveHistogram(1, 2.0), "width0"),
    (AdaptiveHistogram(1, 1.0, 8), AdaptiveHistogram(1, 1.0, 16), "max_bins"),
    (Exceedance([0.0]), Exceedance([1.0]), "thresholds"),
    (QuantileSketch(1, k=64), QuantileSketch(1, k=128), r"k \(64 vs 128\)"),
    (Moments(1), Covariance(1), "can only merge a Moments with another Moments"),
])
def test_merge_refuses_mismatched_configurations(a, b, what):
    with pytest.raises(SDEKitError, match=what):
        a.merge(b)
