"""Quantiles of streamed, sharded samples: a mergeable compactor sketch with a stated rank-error bound.

`QuantileSketch` is the randomised compactor hierarchy of Karnin, Lang & Liberty (2016), "Optimal quantile
approximation in streams" (KLL), with equal capacities k at every level. Level h holds items of weight 2^h, each
column sorted. A level holding more than k items is compacted: if its length is odd its largest row stays behind;
of the rest a fair coin keeps the items at even or at odd positions, which move up one level (weight doubled).
For any fixed y the estimated rank R^(y) = sum_h 2^h #{items at level h <= y} changes by 0 (an even number of
compacted items <= y) or by +-2^h with equal probability, so the rank error is a martingale with increments
bounded by 2^h. Crucially the NUMBER of compactions at each level depends only on the input sizes, never on the
coins, so V = sum over compactions of 4^h is known exactly, and Azuma-Hoeffding plus a union bound over the n + 1
distinct values of the rank function give

    P( sup_y |R^(y) - R(y)| > t ) <= delta   for   t = sqrt(2 V ln(2 (n + 1) / delta)),

per coordinate, where R(y) = #{x_i <= y}. The returned q-quantile x^ (the smallest item whose cumulative weight
reaches q n) then satisfies #{x_i < x^} < q n + t and #{x_i <= x^} >= q n - t: a rank error of at most t = eps n.
For one pass over n items V = sum_{h <= log2(n/k)} 4^h <= (4/3) (n / k)^2 (one compaction per level), so
eps <= 1.64 sqrt(ln(2 (n + 1) / delta)) / k; streaming in small batches or merging shards adds compactions of the
lower levels, which weigh little (measured at n = 10^6, k = 1024, delta = 1e-6: eps = 0.0044 for one pass, 0.0061
streamed in batches of 250 or merged from 100 shards, with 1,000-1,900 items kept). Until the first compaction
(n <= k) V = 0 and the quantiles are exact.

Coins: bit 0 of a SeedSequence(seed, key + (counter,)) state, where key is a 128-bit digest chained through every
update (with the bytes of the batch) and merge (with both keys), so a result depends only on the seed, the data
and the order of updates and merges: merged in a fixed (shard) order, the sketch is deterministic. Shards started
from copies of one sketch draw different coins because their data differ; ``spawn(index)`` gives each shard its
own key explicitly.

`ExactQuantiles` keeps every sample (memory grows with n): the exact route for small n and for tests.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.reductions.base import as_batch, check_dim, check_mergeable
from sdekit.validate.checks import check_alpha, check_count, check_seed, real_array

__all__ = ["ExactQuantiles", "QuantileResult", "QuantileSketch", "check_probabilities"]


def check_probabilities(q: Any, name: str = "q") -> np.ndarray:
    """q as a 1-D float array of probabilities in [0, 1]."""
    arr = np.atleast_1d(real_array(q, name))
    if arr.ndim != 1 or arr.size == 0 or not np.all((arr >= 0.0) & (arr <= 1.0)):
        raise SDEKitError(f"{name} must be probabilities in [0, 1] (a number or a 1-D array); got {q!r}")
    return arr


def _digest(*parts: Any) -> tuple[int, ...]:
    """A 128-bit digest of the parts (ints, tuples of ints, bytes) as four uint32 words."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"|")
    return tuple(int.from_bytes(h.digest()[i:i + 4], "little") for i in range(0, 16, 4))


@dataclass(frozen=True)
class QuantileResult:
    """A weighted summary per coordinate: values (m, d), each column sorted, with the cumulative weights
    cum_weights (m, d) of that column (the last row is n); n; V = sum over compactions of 4^h (0: exact).

    quantile(q): per coordinate the smallest value whose cumulative weight reaches q n (q = 0: the minimum).
    rank_error_bound(delta): t = sqrt(2 V ln(2 (n + 1) / delta)), the bound that holds for every rank and every
    quantile of one coordinate with probability >= 1 - delta (see the module docstring); 0 when exact.
    """

    n: int
    values: np.ndarray
    cum_weights: np.ndarray
    variance_sum: float

    def quantile(self, q: Any) -> np.ndarray:
        """Quantiles (len(q), d) for probabilities q (nan when n = 0)."""
        q = check_probabilities(q)
        d = self.values.shape[1]
        if self.n == 0:
            return np.full((q.size, d), np.nan)
        out = np.empty((q.size, d))
        for j in range(d):
            i = np.searchsorted(self.cum_weights[:, j], q * self.n, side="left")
            out[:, j] = self.values[np.minimum(i, self.values.shape[0] - 1), j]
        return out

    def rank(self, y: Any) -> np.ndarray:
        """Estimated R(y) = #{x_i <= y} per coordinate for points y (m,) (every coordinate) -> (m, d)."""
        y = np.atleast_1d(real_array(y, "y"))
        d = self.values.shape[1]
        out = np.zeros((y.size, d))
        for j in range(d):
            i = np.searchsorted(self.values[:, j], y, side="right")
            out[:, j] = np.where(i > 0, self.cum_weights[np.maximum(i - 1, 0), j], 0.0)
        return out

    def rank_error_bound(self, delta: float = 1e-6) -> float:
        """t with P(sup_y |R^(y) - R(y)| > t) <= delta per coordinate (Azuma-Hoeffding + union bound)."""
        delta = check_alpha(delta, "delta")
        return math.sqrt(2.0 * self.variance_sum * math.log(2.0 * (self.n + 1) / delta))


def _weighted(levels: Sequence[np.ndarray], d: int, n: int, variance_sum: float) -> QuantileResult:
    """Sorted values and cumulative weights per column from the level buffers (level h weighs 2^h)."""
    sizes = [lv.shape[0] for lv in levels]
    if sum(sizes) == 0:
        return QuantileResult(n, np.zeros((0, d)), np.zeros((0, d)), variance_sum)
    vals = np.concatenate(list(levels), axis=0)
    w = np.concatenate([np.full(s, 2.0**h) for h, s in enumerate(sizes)])
    order = np.argsort(vals, axis=0, kind="stable")
    values = np.take_along_axis(vals, order, axis=0)
    cum = np.cumsum(w[order], axis=0)
    return QuantileResult(n, values, cum, variance_sum)


class QuantileSketch:
    """KLL-style mergeable quantile sketch per coordinate (Karnin, Lang & Liberty 2016) with capacity k per level
    and the a-posteriori rank-error bound of the module docstring."""

    def __init__(self, d: int = 1, k: int = 1024, seed: int = 0):
        self.d = check_dim(d)
        self.k = check_count(k, "k", 8)
        self.seed = check_seed(seed)
        self.n = 0
        self.variance_sum = 0
        self._levels: list[np.ndarray] = [np.zeros((0, self.d))]
        self._key: tuple[int, ...] = _digest("root", self.seed)
        self._counter = 0

    def empty(self) -> QuantileSketch:
        """A fresh sketch with the same d, k, seed and key."""
        out = QuantileSketch(self.d, self.k, self.seed)
        out._key = self._key
        return out

    def spawn(self, index: int) -> QuantileSketch:
        """A fresh sketch with its own coins for shard ``index`` (same configuration)."""
        out = self.empty()
        out._key = _digest("spawn", self._key, check_count(index, "index", 0))
        return out

    def _coin(self) -> int:
        """The next fair bit: SeedSequence(seed, key + (counter,))."""
        ss = np.random.SeedSequence(entropy=self.seed, spawn_key=(*self._key, self._counter))
        self._counter += 1
        return int(ss.generate_state(1)[0] & 1)

    def _compress(self) -> None:
        """Compact every level holding more than k items, bottom up."""
        h = 0
        while h < len(self._levels):
            buf = self._levels[h]
            if buf.shape[0] > self.k:
                keep = buf.shape[0] - buf.shape[0] % 2
                up = buf[self._coin():keep:2]
                self._levels[h] = buf[keep:]
                if h + 1 == len(self._levels):
                    self._levels.append(np.zeros((0, self.d)))
                self._levels[h + 1] = np.sort(np.concatenate([self._levels[h + 1], up]), axis=0)
                self.variance_sum += 4**h
            h += 1

    def update(self, x: Any) -> QuantileSketch:
        """Absorb a batch (n, d) into level 0, then compact."""
        x = as_batch(x, self.d)
        if x.shape[0] == 0:
            return self
        self._key = _digest("update", self._key, self._counter, x.tobytes())
        self._counter = 0
        self._levels[0] = np.sort(np.concatenate([self._levels[0], x]), axis=0)
        self.n += x.shape[0]
        self._compress()
        return self

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch: level-wise union of the buffers, then compaction (coins keyed by both sketches)."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)), k=(self.k, getattr(other, "k", None)),
                        seed=(self.seed, getattr(other, "seed", None)))
        out = self.empty()
        out._key = _digest("merge", self._key, self._counter, other._key, other._counter)
        out.n = self.n + other.n
        out.variance_sum = self.variance_sum + other.variance_sum
        height = max(len(self._levels), len(other._levels))
        out._levels = []
        for h in range(height):
            parts = [lv[h] for lv in (self._levels, other._levels) if h < len(lv)]
            out._levels.append(np.sort(np.concatenate(parts), axis=0))
        out._compress()
        return out

    def result(self) -> QuantileResult:
        """The weighted summary: quantiles, ranks and the rank-error bound."""
        return _weighted(self._levels, self.d, self.n, float(self.variance_sum))

    @property
    def size(self) -> int:
        """Items held (all levels): at most about k per level, log2(n / k) + 1 levels."""
        return sum(lv.shape[0] for lv in self._levels)

    def __repr__(self) -> str:
        return f"QuantileSketch(d={self.d}, k={self.k}, seed={self.seed}, n={self.n}, items={self.size})"


class ExactQuantiles:
    """Every sample kept (memory grows with n; for small n and tests): exact quantiles by the same rule as the
    sketch (the smallest value whose rank reaches q n), rank error bound 0."""

    def __init__(self, d: int = 1):
        self.d = check_dim(d)
        self._parts: list[np.ndarray] = []

    @property
    def n(self) -> int:
        """Number of samples held."""
        return sum(p.shape[0] for p in self._parts)

    def empty(self) -> ExactQuantiles:
        """A fresh summary with the same d."""
        return ExactQuantiles(self.d)

    def update(self, x: Any) -> ExactQuantiles:
        """Keep a copy of the batch."""
        x = as_batch(x, self.d)
        if x.shape[0]:
            self._parts.append(x.copy())
        return self

    def merge(self, other: ExactQuantiles) -> ExactQuantiles:
        """A new summary holding both sample sets."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)))
        out = self.empty()
        out._parts = self._parts + other._parts
        return out

    def result(self) -> QuantileResult:
        """All samples, weight 1 each (V = 0)."""
        x = np.concatenate(self._parts, axis=0) if self._parts else np.zeros((0, self.d))
        return _weighted([x], self.d, x.shape[0], 0.0)

    def __repr__(self) -> str:
        return f"ExactQuantiles(d={self.d}, n={self.n})"
