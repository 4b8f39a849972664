"""The Brownian path with its time integral (`sdekit.noise.brownian_integral_path`): (W, J = int W) in law, exact
additivity under partition, per-path queries equal to the object's whatever their order.

Law tests (fixed seeds, N = 20,000 paths; six checks per interval, each at ALPHA / 6, so a test's false-alarm rate is
at most 1e-6): over [s, t] with h = t - s, dW / sqrt(h) and the Lévy area H / sqrt(h / 12) are standard normal (KS),
J(s) / sqrt((s - t0)^3 / 3) too, and dW, H are uncorrelated with each other and with W(s), J(s) (Fisher z). A planted
conditional standard deviation of the midpoint (sqrt(d) / 2, the unconditioned bridge's, instead of sqrt(d) / 4)
fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.noise import brownian_integral_path as bip
from sdekit.noise.brownian_integral_path import BrownianIntegralPath
from sdekit.noise.brownian_path import BrownianPath
from sdekit.noise.counter import stream_base

N = 20_000
ALPHA = 1e-6


def _pvalues(ws: np.ndarray, js: np.ndarray, wt: np.ndarray, jt: np.ndarray, t0: float, s: float,
             t: float) -> list[float]:
    h = t - s
    dw = wt - ws
    i10 = jt - js - h * ws
    area = i10 / h - 0.5 * dw
    out = [st.kstest(dw / math.sqrt(h), "norm").pvalue, st.kstest(area / math.sqrt(h / 12.0), "norm").pvalue]
    out.append(st.kstest(js / math.sqrt((s - t0) ** 3 / 3.0), "norm").pvalue if s > t0 else 1.0)
    for a, b in ((dw, area), (ws, dw) if s > t0 else (dw, area), (js, area) if s > t0 else (dw, area)):
        r = np.corrcoef(a, b)[0, 1]
        out.append(2 * st.norm.sf(abs(math.atanh(r)) * math.sqrt(N - 3)))
    return out


def law_ok(values_at, t0: float, s: float, t: float) -> bool:
    """Six checks of (W, J) at s and t (values_at(t) -> (W, J) of component 0), each at ALPHA / 6."""
    ws, js = values_at(s)
    wt, jt = values_at(t)
    return min(_pvalues(ws, js, wt, jt, t0, s, t)) > ALPHA / 6


@pytest.mark.parametrize(("s", "t"), [(0.3, 0.7123), (1.0, 1.25), (0.5, 0.5 + 1e-3)])
def test_w_and_its_integral_have_the_gauss_markov_law(s: float, t: float) -> None:
    path = BrownianIntegralPath(seed=7, n_paths=N, m=2, t0=0.25, t1=1.75)
    assert law_ok(lambda u: tuple(a[:, 1] for a in path(u)), 0.25, s, t)


def _python_values(depth: int):
    """(W, J) of component 0 by the pure-Python query (so that a module constant can be planted)."""
    base = np.uint64(stream_base(3, bip.STREAM_BROWNIAN_INTEGRAL))
    trail = bip.new_trail(1, depth)

    def values_at(u: float) -> tuple[np.ndarray, np.ndarray]:
        w, j = np.empty((N, 1)), np.empty((N, 1))
        for p in range(N):
            trail[3][0] = 0
            bip.query_path(np.uint64(bip.path_key(base, np.uint64(p))), 1.0, depth, u, *trail, w[p], j[p])
        return w[:, 0], j[:, 0]

    return values_at


def test_planted_midpoint_variance_fails_the_law(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python query (dyadic times, level <= 3) passes; with the bridge's unconditioned sd sqrt(d) / 2 it fails."""
    monkeypatch.setattr(bip, "query_path", bip.query_path.py_func)
    assert law_ok(_python_values(8), 0.0, 0.25, 0.625)
    monkeypatch.setattr(bip, "MIDPOINT_SD", 0.5)
    assert not law_ok(_python_values(8), 0.0, 0.25, 0.625)


def test_python_query_equals_the_compiled_one() -> None:
    w, j = BrownianIntegralPath(seed=3, n_paths=500)(0.625)
    wp, jp = _python_values(bip.DEFAULT_DEPTH)(0.625)
    np.testing.assert_array_equal(w[:, 0], wp[:500])
    np.testing.assert_array_equal(j[:, 0], jp[:500])


def test_increments_add_up_over_a_partition() -> None:
    """dW and I_(1,0) over [s, t] equal the sums over a partition: I(s, u) = I(s, r) + I(r, u) + (u - r) dW(s, r)."""
    path = BrownianIntegralPath(seed=1, n_paths=200, m=3, t0=-1.0, t1=2.0)
    s, t = -0.37, 1.613
    cuts = np.concatenate([[s], np.sort(np.random.default_rng(0).uniform(s, t, 9)), [t]])
    dw_sum, i10_sum = np.zeros((200, 3)), np.zeros((200, 3))
    for a, b in zip(cuts[:-1], cuts[1:]):
        dw, i10 = path.increment(a, b)
        i10_sum += i10 + (b - a) * dw_sum
        dw_sum += dw
    dw, i10 = path.increment(s, t)
    np.testing.assert_allclose(dw_sum, dw, rtol=0, atol=1e-13)
    np.testing.assert_allclose(i10_sum, i10, rtol=0, atol=1e-13)
    h_area = path.space_time_levy_area(s, t)
    np.testing.assert_allclose(h_area, i10 / (t - s) - 0.5 * dw, rtol=0, atol=1e-15)


def test_per_path_trail_queries_equal_fresh_descents_in_any_order() -> None:
    """query_path reusing its trail (sorted, then shuffled times) gives the object's values bit for bit."""
    path = BrownianIntegralPath(seed=5, n_paths=3, m=2)
    base = np.uint64(stream_base(5, bip.STREAM_BROWNIAN_INTEGRAL))
    rng = np.random.default_rng(2)
    us = np.concatenate([np.sort(rng.uniform(size=30)), rng.uniform(size=30), [0.0, 1.0, 0.5]])
    us[::3] = np.floor(us[::3] * 2**20) / 2**20  # dyadic points too
    trail = bip.new_trail(2)
    w, j = np.empty(2), np.empty(2)
    for p in range(3):
        trail[3][0] = 0
        key = np.uint64(bip.path_key(base, np.uint64(p)))
        for u in us:
            bip.query_path(key, 1.0, bip.DEFAULT_DEPTH, u, *trail, w, j)
            wo, jo = path(u)
            assert np.array_equal(wo[p], w) and np.array_equal(jo[p], j), (p, u)


def test_w_agrees_in_law_with_brownian_path() -> None:
    """Two-sample KS of W(0.3) and W(0.8) - W(0.3) against BrownianPath's (each at ALPHA / 2)."""
    a = BrownianIntegralPath(seed=11, n_paths=N)
    b = BrownianPath(seed=11, n_paths=N, depth=40)
    wa, wb = a(0.3)[0][:, 0], b(0.3)[:, 0]
    ia, ib = a(0.8)[0][:, 0] - wa, b(0.8)[:, 0] - wb
    assert min(st.ks_2samp(wa, wb).pvalue, st.ks_2samp(ia, ib).pvalue) > ALPHA / 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"t0": 1.0, "t1": 1.0}, "t1 must exceed t0"), ({"m": 0}, "m must be"), ({"m": 2000}, "m must be"),
    ({"depth": 53}, "depth must be"), ({"n_paths": 0}, "n_paths must be"), ({"seed": -1}, "seed must be"),
])
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(SDEKitError, match=match):
        BrownianIntegralPath(**{"seed": 0, "n_paths": 2, **kwargs})


def test_bad_query_times_are_refused() -> None:
    path = BrownianIntegralPath(0, 2)
    with pytest.raises(SDEKitError, match=r"t must lie in \[t0, t1\]"):
        path(1.5)
    with pytest.raises(SDEKitError, match="s < t"):
        path.space_time_levy_area(0.5, 0.5)
