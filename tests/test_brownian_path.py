"""The queryable Brownian path (`sdekit.noise.brownian_path`): a pure function of (seed, stream, path, t) with the
law of Brownian motion.

Law tests (fixed seeds, N = 20,000 paths; each test's thresholds are Bonferroni-split over its checks so that its
false-alarm rate is at most 1e-6): W(s) ~ N(0, s - t0) and W(t) - W(s) ~ N(0, t - s) by KS, their correlation zero by
the Fisher z test, at dyadic and non-dyadic times. A planted bridge variance (b - a) / 2 instead of (b - a) / 4
fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.noise import brownian_path as bp
from sdekit.noise.brownian_path import BrownianPath

N = 20_000
ALPHA = 1e-6


def law_ok(path: BrownianPath, s: float, t: float) -> bool:
    """W(s) ~ N(0, s - t0), W(t) - W(s) ~ N(0, t - s), uncorrelated: three checks at ALPHA / 3 each."""
    ws, wt = path(s)[:, 0], path(t)[:, 0]
    inc = wt - ws
    p1 = st.kstest(ws / math.sqrt(s - path.t0), "norm").pvalue
    p2 = st.kstest(inc / math.sqrt(t - s), "norm").pvalue
    r = np.corrcoef(ws, inc)[0, 1]
    p3 = 2 * st.norm.sf(abs(math.atanh(r)) * math.sqrt(N - 3))
    return min(p1, p2, p3) > ALPHA / 3


@pytest.mark.parametrize(("s", "t"), [(0.5, 0.75), (0.3, 0.71), (1e-3, 0.999)])
def test_values_and_increments_have_the_brownian_law(s, t):
    assert law_ok(BrownianPath(seed=4, n_paths=N, t0=0.0, t1=1.0, depth=40), s, t)


def test_a_planted_bridge_variance_fails_the_law_test(monkeypatch):
    monkeypatch.setattr(bp, "_bridge_std", lambda width: math.sqrt(width / 2.0))
    assert not law_ok(BrownianPath(seed=4, n_paths=N, depth=40), 0.3, 0.71)


def test_the_path_is_a_pure_function_of_its_key():
    a = BrownianPath(seed=7, n_paths=12, m=3, t0=1.0, t1=3.5)
    first = [a(t) for t in (2.2, 1.1, 3.5, 2.2)]
    b = BrownianPath(seed=7, n_paths=12, m=3, t0=1.0, t1=3.5)
    later = [b(t) for t in (3.5, 2.2, 1.1)]  # another order, another object
    np.testing.assert_array_equal(first[0], first[3])
    np.testing.assert_array_equal(first[0], later[1])
    np.testing.assert_array_equal(first[1], later[2])
    part = BrownianPath(seed=7, n_paths=4, m=3, t0=1.0, t1=3.5, path_offset=8)
    np.testing.assert_array_equal(part(2.2), first[0][8:])  # rows do not depend on the batch
    assert not np.array_equal(BrownianPath(seed=8, n_paths=12, m=3, t0=1.0, t1=3.5)(2.2), first[0])
    assert not np.array_equal(BrownianPath(seed=7, n_paths=12, m=3, t0=1.0, t1=3.5, stream=1)(2.2), first[0])


def test_increments_over_a_partition_add_up_and_dyadic_points_follow_the_midpoint_rule():
    path = BrownianPath(seed=2, n_paths=50, m=2)
    grid = np.sort(np.r_[0.0, np.random.default_rng(0).uniform(0, 1, 37), 1.0])
    total = sum(path.increment(s, t) for s, t in zip(grid[:-1], grid[1:]))
    np.testing.assert_allclose(total, path.increment(0.0, 1.0), rtol=0, atol=1e-13)
    z1 = path._normals(1)  # the midpoint of the root cell
    np.testing.assert_allclose(path(0.5), 0.5 * path(1.0) + 0.5 * z1, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(path(0.0), np.zeros((50, 2)))


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"t0": 1.0, "t1": 1.0}, "t1 must exceed t0"),
    ({"m": 0}, "m must be"),
    ({"m": 5000}, "m must be"),
    ({"depth": 0}, "depth must be"),
    ({"t1": float("nan")}, "t1 must be finite"),
    ({"n_paths": 0}, "n_paths"),
    ({"seed": -1}, "seed"),
])
def test_bad_settings_are_refused_naming_them(kwargs, word):
    args = {"seed": 0, "n_paths": 3, **kwargs}
    with pytest.raises(SDEKitError, match=word):
        BrownianPath(**args)


def test_bad_times_are_refused_naming_them():
    path = BrownianPath(seed=0, n_paths=3)
    with pytest.raises(SDEKitError, match=r"t must lie in \[t0, t1\]"):
        path(1.5)
    with pytest.raises(SDEKitError, match="t must be a real number"):
        path("0.5")
