"""Histograms that merge exactly: fixed edges, and an adaptive power-of-two grid that needs no range up front.

`Histogram`: counts per coordinate on fixed edges e_0 < ... < e_K (bins [e_i, e_{i+1}), the last one closed, as
``numpy.histogram``), plus underflow (x < e_0) and overflow (x > e_K) counts. Merge = sum of counts (exact).

`AdaptiveHistogram`: per coordinate, bins [j w, (j + 1) w) with w = width0 2^k anchored at 0 (j = floor(x / w)).
When more than ``max_bins`` bins would be occupied, k grows by one and neighbour pairs (2m, 2m + 1) merge into m
(floor(j / 2) = floor(x / 2w), exactly, since w is a power-of-two multiple of width0). The level after any sequence
of updates and merges is the smallest k at which the data's occupied bins number at most ``max_bins`` (and the
indices fit in 53 bits), a function of the sample set alone, so merged summaries equal one-pass ones exactly:
a mergeable summary in the sense of Agarwal et al. (2013), "Mergeable summaries", ACM TODS 38(4), resting only on
the dyadic identity floor(x / 2w) = floor(floor(x / w) / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.reductions.base import as_batch, check_dim, check_mergeable
from sdekit.validate.checks import check_count, check_number, real_array

__all__ = ["AdaptiveHistogram", "AdaptiveHistogramResult", "Histogram", "HistogramResult", "check_edges"]


def check_edges(edges: Any, name: str = "edges", minimum: int = 2) -> np.ndarray:
    """edges as a finite, strictly increasing float64 array of at least ``minimum`` values."""
    e = np.atleast_1d(real_array(edges, name))
    if e.ndim != 1 or e.shape[0] < minimum:
        raise SDEKitError(f"{name} must be a 1-D array of at least {minimum} bin edges; got shape {e.shape}")
    if not np.isfinite(e).all():
        raise SDEKitError(f"{name} must be finite; got {e[~np.isfinite(e)][:3].tolist()}")
    if not (np.diff(e) > 0).all():
        i = int(np.flatnonzero(np.diff(e) <= 0)[0])
        raise SDEKitError(f"{name} must be strictly increasing; got {name}[{i}] = {e[i]} >= {name}[{i + 1}] = "
                          f"{e[i + 1]}")
    return e.copy()


@dataclass(frozen=True)
class HistogramResult:
    """edges (K + 1,), counts (d, K), underflow (d,), overflow (d,), n; density (d, K) = counts / (n width)."""

    edges: np.ndarray
    counts: np.ndarray
    underflow: np.ndarray
    overflow: np.ndarray
    n: int

    @property
    def density(self) -> np.ndarray:
        """counts / (n bin width): integrates to the fraction of samples inside [e_0, e_K]."""
        return self.counts / (max(self.n, 1) * np.diff(self.edges))


class Histogram:
    """Counts of each of d coordinates on the fixed edges e_0 < ... < e_K, plus under- and overflow; exact merge."""

    def __init__(self, edges: Any, d: int = 1):
        self.edges = check_edges(edges)
        self.d = check_dim(d)
        k = self.edges.shape[0] - 1
        self.n = 0
        self._counts = np.zeros((self.d, k), dtype=np.int64)
        self._under = np.zeros(self.d, dtype=np.int64)
        self._over = np.zeros(self.d, dtype=np.int64)

    def empty(self) -> Histogram:
        """A fresh summary on the same edges and d."""
        return Histogram(self.edges, self.d)

    def update(self, x: Any) -> Histogram:
        """Count a batch (n, d): bin i holds e_i <= x < e_{i+1}, the last bin also x = e_K."""
        x = as_batch(x, self.d)
        k = self.edges.shape[0] - 1
        for j in range(self.d):
            col = x[:, j]
            idx = np.searchsorted(self.edges, col, side="right") - 1
            idx[col == self.edges[-1]] = k - 1
            self._under[j] += int(np.count_nonzero(idx < 0))
            self._over[j] += int(np.count_nonzero(idx >= k))
            inside = idx[(idx >= 0) & (idx < k)]
            self._counts[j] += np.bincount(inside, minlength=k)
        self.n += x.shape[0]
        return self

    def merge(self, other: Histogram) -> Histogram:
        """A new summary: counts summed."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)),
                        edges=(self.edges, getattr(other, "edges", None)))
        out = self.empty()
        out.n = self.n + other.n
        out._counts = self._counts + other._counts
        out._under = self._under + other._under
        out._over = self._over + other._over
        return out

    def result(self) -> HistogramResult:
        """Edges, counts, underflow, overflow, n."""
        return HistogramResult(self.edges.copy(), self._counts.copy(), self._under.copy(), self._over.copy(), self.n)

    def __repr__(self) -> str:
        return f"Histogram({self.edges.shape[0] - 1} bins, d={self.d}, n={self.n})"


@dataclass(frozen=True)
class AdaptiveHistogramResult:
    """Per coordinate j: width[j] = width0 2^level[j], and the occupied bins: index[j] (sorted ints i, the bin
    [i width, (i + 1) width)) with count[j]; n. ``edges(j)`` / ``dense(j)`` give the contiguous form."""

    width: tuple[float, ...]
    level: tuple[int, ...]
    index: tuple[np.ndarray, ...]
    count: tuple[np.ndarray, ...]
    n: int

    def dense(self, j: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(edges, counts) of coordinate j on the contiguous run of bins from the first occupied to the last."""
        idx, cnt = self.index[j], self.count[j]
        if idx.size == 0:
            return np.zeros(1), np.zeros(0, dtype=np.int64)
        lo, hi = int(idx[0]), int(idx[-1])
        counts = np.zeros(hi - lo + 1, dtype=np.int64)
        counts[idx - lo] = cnt
        return np.arange(lo, hi + 2) * self.width[j], counts


def _sum_by_index(index: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct indices, integer count sums per index)."""
    uniq, inv = np.unique(index, return_inverse=True)
    total = np.zeros(uniq.size, dtype=np.int64)
    np.add.at(total, inv, count)
    return uniq, total


MAX_INDEX = 2.0**53  # bin indices stay exact integers in float64 and int64


class AdaptiveHistogram:
    """Counts on the dyadic grid [j w, (j + 1) w), w = width0 2^k per coordinate, with k the smallest level at
    which at most ``max_bins`` bins are occupied; merged summaries equal the one-pass summary exactly (see the
    module docstring)."""

    def __init__(self, d: int = 1, width0: float = 1.0, max_bins: int = 256):
        self.d = check_dim(d)
        self.width0 = check_number(width0, "width0", minimum=0.0, strict=True)
        self.max_bins = check_count(max_bins, "max_bins", 2)
        self.n = 0
        self._level = [0] * self.d
        self._index = [np.zeros(0, dtype=np.int64) for _ in range(self.d)]
        self._count = [np.zeros(0, dtype=np.int64) for _ in range(self.d)]

    def empty(self) -> AdaptiveHistogram:
        """A fresh summary with the same d, width0 and max_bins."""
        return AdaptiveHistogram(self.d, self.width0, self.max_bins)

    def _width(self, level: int) -> float:
        return math.ldexp(self.width0, level)

    @staticmethod
    def _coarsen(index: np.ndarray, count: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Merge bins 2^steps at a time: i -> floor(i / 2^steps), counts summed."""
        if steps == 0 or index.size == 0:
            return index, count
        return _sum_by_index(index >> steps, count)  # arithmetic shift = floor division by 2^steps (negatives too)

    def _settle(self, j: int, index: np.ndarray, count: np.ndarray) -> None:
        """Store coordinate j's bins, coarsening until at most max_bins are occupied."""
        while index.size > self.max_bins:
            index, count = self._coarsen(index, count, 1)
            self._level[j] += 1
        self._index[j], self._count[j] = index, count

    def update(self, x: Any) -> AdaptiveHistogram:
        """Count a batch (n, d) on the current grid, coarsening as needed."""
        x = as_batch(x, self.d)
        if x.shape[0] == 0:
            return self
        for j in range(self.d):
            col = x[:, j]
            big = float(np.max(np.abs(col)))
            level = self._level[j]
            while big / self._width(level) >= MAX_INDEX:
                level += 1
            old_i, old_c = self._coarsen(self._index[j], self._count[j], level - self._level[j])
            self._level[j] = level
            new = np.floor(col / self._width(level)).astype(np.int64)
            self._settle(j, *_sum_by_index(np.concatenate([old_i, new]),
                                           np.concatenate([old_c, np.ones(new.size, dtype=np.int64)])))
        self.n += x.shape[0]
        return self

    def merge(self, other: AdaptiveHistogram) -> AdaptiveHistogram:
        """A new summary: the finer grid is coarsened to the coarser one, counts summed, then coarsened further
        while more than max_bins bins are occupied."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)),
                        width0=(self.width0, getattr(other, "width0", None)),
                        max_bins=(self.max_bins, getattr(other, "max_bins", None)))
        out = self.empty()
        out.n = self.n + other.n
        for j in range(self.d):
            level = max(self._level[j], other._level[j])
            ai, ac = self._coarsen(self._index[j], self._count[j], level - self._level[j])
            bi, bc = self._coarsen(other._index[j], other._count[j], level - other._level[j])
            out._level[j] = level
            out._settle(j, *_sum_by_index(np.concatenate([ai, bi]), np.concatenate([ac, bc])))
        return out

    def result(self) -> AdaptiveHistogramResult:
        """The occupied bins of each coordinate on its final grid."""
        return AdaptiveHistogramResult(tuple(self._width(k) for k in self._level), tuple(self._level),
                                       tuple(i.copy() for i in self._index), tuple(c.copy() for c in self._count),
                                       self.n)

    def __repr__(self) -> str:
        return f"AdaptiveHistogram(d={self.d}, width0={self.width0:g}, max_bins={self.max_bins}, n={self.n})"
