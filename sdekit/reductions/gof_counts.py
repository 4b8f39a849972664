"""Validation statistics built from cell counts, merged exactly (counts add).

- `HistogramChi2Test`: Pearson's X^2 = sum_j (O_j - N q_j)^2 / (N q_j) ~ chi^2_{J-1} (Pearson 1900) of a 1-D sample
  on the cells (-inf, e_1), [e_1, e_2), ..., [e_{J-1}, inf) against given probabilities q_j (the binning of
  `sdekit.validate.fokker_planck.chi2_histogram_test`).
- `GridKSTest`, `GridCvMTest`: Kolmogorov–Smirnov and Cramér–von Mises of a 1-D sample against a law F, from the
  counts c_j of u = F(x) in K equal cells [j/K, (j+1)/K) (the last one closed). With C_j = c_0 + ... + c_j and
  G the empirical CDF of u:

  KS: D_grid = max_{1 <= j < K} |C_{j-1} / N - j / K| = max over the cell edges of |G(e^-) - e|, and
  D_grid <= D <= D_grid + 1/K (on a cell [a, b), C_{j-1}/N <= G <= C_j/N). The test rejects only when
  D_grid > kstwo.isf(alpha, N), i.e. when even the lower bound exceeds the critical value, so the false-alarm
  rate stays <= alpha (the reported p-value kstwo.sf(D_grid, N) is an upper bound on the exact one).

  CvM: W^2 = 1/(12 N) + sum_i (u_(i) - (2i - 1)/(2N))^2 (Cramér 1928; von Mises 1931) with every u in cell j moved
  to its midpoint m_j gives W^2_grid = 1/(12N) + sum_j [c_j delta_j^2 + c_j (c_j^2 - 1) / (12 N^2)],
  delta_j = m_j - (2 C_{j-1} + c_j) / (2N). Moving each u by at most h = 1/(2K) keeps the order, so
  |W^2 - W^2_grid| <= B = 2 h sqrt(N (W^2_grid - 1/(12N))) + N h^2 (Cauchy–Schwarz on sum |b_i| with
  b_i = m_(i) - (2i - 1)/(2N)). The test rejects only when W^2_grid - B > w_alpha (`cvm_critical_value`):
  reported as statistic W^2_grid against threshold w_alpha + B; p-value cvm_sf(max(W^2_grid - B, 0)), an upper
  bound. B stays small while N << K^2 (K = 2^16: B ~ 0.01 at N = 10^6).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.reductions.base import as_batch, check_mergeable
from sdekit.reductions.histogram import check_edges
from sdekit.validate.checks import check_alpha, check_count, check_number, real_array
from sdekit.validate.laws import law_1d
from sdekit.validate.onesample import cdf_values, cvm_critical_value, cvm_sf
from sdekit.validate.stats import CheckResult

__all__ = ["GridCvMTest", "GridKSTest", "HistogramChi2Test"]


class HistogramChi2Test:
    """Pearson's chi-square of a 1-D sample on the cells cut at ``edges`` (J = len(edges) + 1 cells from -inf to
    +inf) against cell probabilities ``probabilities`` (J values > 0 summing to 1); counts merge exactly.
    ``result(alpha)`` refuses (SDEKitError) when an expected count N q_j is below ``min_expected``."""

    def __init__(self, edges: Any, probabilities: Any, *, min_expected: float = 5.0, name: str = "sample"):
        self.edges = check_edges(edges, minimum=1)
        q = np.atleast_1d(real_array(probabilities, "probabilities"))
        cells = self.edges.size + 1
        if q.shape != (cells,) or not np.isfinite(q).all() or not (q > 0).all():
            raise SDEKitError(f"probabilities must be {cells} positive numbers (one per cell of the {self.edges.size} "
                              f"edges, from -inf to +inf); got shape {q.shape}")
        if abs(q.sum() - 1.0) > 1e-9:
            raise SDEKitError(f"probabilities must sum to 1; they sum to {q.sum():.12g}")
        self.probabilities = q / q.sum()
        self.min_expected = check_number(min_expected, "min_expected", minimum=0.0, strict=True)
        self.name = str(name)
        self.n = 0
        self._counts = np.zeros(cells, dtype=np.int64)

    def empty(self) -> HistogramChi2Test:
        """A fresh summary on the same cells."""
        return HistogramChi2Test(self.edges, self.probabilities, min_expected=self.min_expected, name=self.name)

    def update(self, x: Any) -> HistogramChi2Test:
        """Count the batch: cell j holds e_j <= x < e_{j+1} (e_0 = -inf, e_J = +inf)."""
        x = as_batch(x, 1)[:, 0]
        self._counts += np.bincount(np.searchsorted(self.edges, x, side="right"), minlength=self._counts.size)
        self.n += x.size
        return self

    def merge(self, other: HistogramChi2Test) -> HistogramChi2Test:
        """A new summary: counts summed."""
        check_mergeable(self, other, edges=(self.edges, getattr(other, "edges", None)),
                        probabilities=(self.probabilities, getattr(other, "probabilities", None)))
        out = self.empty()
        out.n, out._counts = self.n + other.n, self._counts + other._counts
        return out

    def result(self, alpha: float = 1e-6) -> CheckResult:
        """X^2 against chi2.isf(alpha, J - 1); bias = (O_j - N q_j) / sqrt(N q_j (1 - q_j))."""
        alpha = check_alpha(alpha)
        q, n = self.probabilities, self.n
        expected = n * q
        if n == 0 or expected.min() < self.min_expected:
            raise SDEKitError(f"the histogram chi-square needs N q_j >= min_expected = {self.min_expected:g} in every "
                              f"cell; the smallest is {expected.min():.3g} (N = {n}): merge cells or give more samples")
        counts = self._counts.astype(float)
        stat = float(np.sum((counts - expected) ** 2 / expected))
        df = q.size - 1
        thr = float(st.chi2.isf(alpha, df))
        bias = tuple(((counts - expected) / np.sqrt(expected * (1.0 - q))).tolist())
        return CheckResult(self.name, f"chi2 histogram (J={q.size})", stat, thr, float(st.chi2.sf(stat, df)),
                           stat <= thr, f"J={q.size}, N={n}", bias, True, alpha)

    def __repr__(self) -> str:
        return f"HistogramChi2Test(J={self._counts.size}, n={self.n})"


LAW_PROBES = np.array([-1e3, -10.0, -3.0, -1.0, -0.3, 0.0, 0.3, 1.0, 3.0, 10.0, 1e3])  # F at these tells laws apart


class _UniformCells:
    """Counts of u = F(x) in K equal cells of [0, 1] for a 1-D law F (anything `law_1d` accepts; it must pickle
    to travel to workers: a frozen scipy distribution, a 1-D Gaussian / GaussianMixture, a module-level CDF)."""

    def __init__(self, law: Any, cells: int = 2**16, *, name: str = "sample"):
        self.law = law
        self._law = law_1d(law)
        self.law_key = (self._law.label, *cdf_values(self._law, LAW_PROBES).tolist())
        self.cells = check_count(cells, "cells", 2)
        self.name = str(name)
        self.n = 0
        self._counts = np.zeros(self.cells, dtype=np.int64)

    def empty(self) -> Any:
        """A fresh summary against the same law on the same cells."""
        return type(self)(self.law, self.cells, name=self.name)

    def update(self, x: Any) -> Any:
        """Count u = F(x) of the batch: cell floor(u K) (u = 1 in the last cell)."""
        x = as_batch(x, 1)[:, 0]
        if x.size:
            u = cdf_values(self._law, x)
            idx = np.minimum((u * self.cells).astype(np.int64), self.cells - 1)
            self._counts += np.bincount(idx, minlength=self.cells)
            self.n += x.size
        return self

    def merge(self, other: Any) -> Any:
        """A new summary: counts summed."""
        check_mergeable(self, other, cells=(self.cells, getattr(other, "cells", None)),
                        law=(self.law_key, getattr(other, "law_key", None)))
        out = self.empty()
        out.n, out._counts = self.n + other.n, self._counts + other._counts
        return out

    def _need(self, minimum: int, test: str) -> None:
        if self.n < minimum:
            raise SDEKitError(f"the grid {test} test needs at least {minimum} samples; this summary holds {self.n}")


class GridKSTest(_UniformCells):
    """Kolmogorov–Smirnov on K equal cells of u = F(x): D_grid <= D <= D_grid + 1/K; rejects only when D_grid
    exceeds the critical value (false-alarm rate <= alpha; module docstring)."""

    def statistic(self) -> float:
        """D_grid = max_{1 <= j < K} |C_{j-1} / N - j / K|."""
        self._need(1, "KS")
        below = np.cumsum(self._counts)[:-1] / self.n
        return float(np.max(np.abs(below - np.arange(1, self.cells) / self.cells)))

    def result(self, alpha: float = 1e-6) -> CheckResult:
        """Reject when kstwo.sf(D_grid, N) <= alpha (threshold kstwo.isf(alpha, N) reported)."""
        alpha = check_alpha(alpha)
        self._need(5, "KS")
        d = self.statistic()
        thr = float(st.kstwo.isf(alpha, self.n))
        pval = float(st.kstwo.sf(d, self.n))
        return CheckResult(self.name, "KS grid", d, thr, pval, bool(pval > alpha),
                           note=f"D in [{d:.6g}, {d + 1.0 / self.cells:.6g}] (K = {self.cells} cells), N = {self.n}",
                           alpha=alpha)

    def __repr__(self) -> str:
        return f"GridKSTest(cells={self.cells}, n={self.n})"


class GridCvMTest(_UniformCells):
    """Cramér–von Mises on K equal cells of u = F(x): |W^2 - W^2_grid| <= B; rejects only when W^2_grid - B
    exceeds the critical value (false-alarm rate <= alpha; module docstring)."""

    def statistic(self) -> tuple[float, float]:
        """(W^2_grid, B)."""
        self._need(1, "CvM")
        n, k = self.n, self.cells
        c = self._counts.astype(float)
        before = np.concatenate([[0.0], np.cumsum(c)[:-1]])
        mid = (np.arange(k) + 0.5) / k
        delta = mid - (2.0 * before + c) / (2.0 * n)
        w2 = float(1.0 / (12.0 * n) + np.sum(c * delta**2 + c * (c * c - 1.0) / (12.0 * n * n)))
        h = 0.5 / k
        bound = 2.0 * h * math.sqrt(n * max(w2 - 1.0 / (12.0 * n), 0.0)) + n * h * h
        return w2, float(bound)

    def result(self, alpha: float = 1e-6) -> CheckResult:
        """Reject when W^2_grid > w_alpha + B (statistic W^2_grid, threshold w_alpha + B)."""
        alpha = check_alpha(alpha)
        self._need(20, "CvM")
        w2, bound = self.statistic()
        thr = cvm_critical_value(alpha) + bound
        pval = cvm_sf(round(max(w2 - bound, 0.0), 12))
        return CheckResult(self.name, "CvM grid", w2, thr, pval, bool(w2 <= thr),
                           note=f"W^2 in [{w2 - bound:.6g}, {w2 + bound:.6g}] (K = {self.cells} cells), N = {self.n}",
                           alpha=alpha)

    def __repr__(self) -> str:
        return f"GridCvMTest(cells={self.cells}, n={self.n})"
