"""Exceedance probabilities p(a) = P(v > a) of a linear functional v = w . x, counted exactly and merged by sums.

For n samples with k(a) = #{v_i > a}: p^ = k / n, its standard error sqrt(p^ (1 - p^) / n), and the exact
Clopper–Pearson interval at confidence 1 - alpha (Clopper & Pearson 1934, "The use of confidence or fiducial
limits illustrated in the case of the binomial", Biometrika 26):

    lower = Beta^{-1}(alpha / 2; k, n - k + 1)   (0 when k = 0)
    upper = Beta^{-1}(1 - alpha / 2; k + 1, n - k)   (1 when k = n)

With zero hits the upper limit is 1 - (alpha / 2)^{1/n} (the Clopper–Pearson one; about ln(2 / alpha) / n), which
is what to quote for a rare event never seen; the normal standard error is 0 there and says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.reductions.base import as_batch, check_dim, check_mergeable
from sdekit.validate.checks import check_alpha, real_array

__all__ = ["Exceedance", "ExceedanceResult", "clopper_pearson"]


def clopper_pearson(k: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided (1 - alpha) Clopper–Pearson interval for k successes in n trials (see module docstring)."""
    k = np.asarray(k, dtype=float)
    if n == 0:
        return np.zeros_like(k), np.ones_like(k)
    lower = np.where(k > 0, st.beta.ppf(alpha / 2.0, np.maximum(k, 1.0), n - k + 1.0), 0.0)
    upper = np.where(k < n, st.beta.ppf(1.0 - alpha / 2.0, k + 1.0, np.maximum(n - k, 1.0)), 1.0)
    return lower, upper


@dataclass(frozen=True)
class ExceedanceResult:
    """Per threshold a: counts k = #{v > a}, p_hat = k / n, se = sqrt(p_hat (1 - p_hat) / n), and the exact
    Clopper–Pearson interval [lower, upper] at confidence ``level``; n."""

    thresholds: np.ndarray
    counts: np.ndarray
    n: int
    p_hat: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float


def _key(weights: np.ndarray | None) -> tuple[float, ...] | None:
    """weights as a comparable tuple (None stays None)."""
    return None if weights is None else tuple(weights.tolist())


class Exceedance:
    """Counts of v = x[:, coordinate] (or v = x @ weights) above each threshold; exact merge (sums).

    thresholds: 1-D finite values a_j. coordinate: which column is v (default 0); or weights (d,): v = x @ weights
    (then coordinate is ignored). level: confidence of the Clopper–Pearson interval (default 0.95)."""

    def __init__(self, thresholds: Any, d: int = 1, *, coordinate: int = 0, weights: Any = None,
                 level: float = 0.95):
        a = np.atleast_1d(real_array(thresholds, "thresholds"))
        if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
            raise SDEKitError(f"thresholds must be a finite number or 1-D array of them; got {thresholds!r}")
        self.thresholds = a.copy()
        self.d = check_dim(d)
        if weights is None:
            if isinstance(coordinate, bool) or not isinstance(coordinate, int | np.integer) or not (
                    0 <= coordinate < self.d):
                raise SDEKitError(f"coordinate must be an integer in [0, {self.d}); got {coordinate!r}")
            self.coordinate, self.weights = int(coordinate), None
        else:
            w = real_array(weights, "weights")
            if w.shape != (self.d,) or not np.isfinite(w).all():
                raise SDEKitError(f"weights must be a finite array of shape ({self.d},) (v = x @ weights); "
                                  f"got shape {w.shape}")
            self.coordinate, self.weights = None, w.copy()
        self.level = check_alpha(level, "level")
        self.n = 0
        self._counts = np.zeros(a.size, dtype=np.int64)

    def empty(self) -> Exceedance:
        """A fresh summary with the same thresholds, functional and level."""
        return Exceedance(self.thresholds, self.d, coordinate=self.coordinate or 0, weights=self.weights,
                          level=self.level)

    def values(self, x: np.ndarray) -> np.ndarray:
        """v for a checked batch (n, d)."""
        return x[:, self.coordinate] if self.weights is None else x @ self.weights

    def update(self, x: Any) -> Exceedance:
        """Count a batch: k(a) += #{v_i > a}."""
        x = as_batch(x, self.d)
        v = np.sort(self.values(x))
        self._counts += v.size - np.searchsorted(v, self.thresholds, side="right")
        self.n += x.shape[0]
        return self

    def merge(self, other: Exceedance) -> Exceedance:
        """A new summary: counts summed."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)),
                        thresholds=(self.thresholds, getattr(other, "thresholds", None)),
                        coordinate=(self.coordinate, getattr(other, "coordinate", None)),
                        weights=(_key(self.weights), _key(getattr(other, "weights", None))),
                        level=(self.level, getattr(other, "level", None)))
        out = self.empty()
        out.n = self.n + other.n
        out._counts = self._counts + other._counts
        return out

    def result(self) -> ExceedanceResult:
        """p_hat, its standard error and the Clopper–Pearson interval per threshold."""
        n, k = self.n, self._counts.copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            p = k / n if n else np.full(k.shape, np.nan)
            se = np.sqrt(p * (1.0 - p) / n) if n else np.full(k.shape, np.nan)
        lower, upper = clopper_pearson(k, n, 1.0 - self.level)
        return ExceedanceResult(self.thresholds.copy(), k, n, p, se, lower, upper, self.level)

    def __repr__(self) -> str:
        return f"Exceedance({self.thresholds.size} thresholds, d={self.d}, n={self.n})"
