"""Mean, central moments up to order 4 and the covariance, merged exactly by the pairwise formulas.

For two sample sets A, B with counts n_A, n_B, n = n_A + n_B, delta = mean_B - mean_A and central sums
M_p = sum (x - mean)^p (Chan, Golub & LeVeque 1979, "Updating formulae and a pairwise algorithm for computing
sample variances"; Pébay 2008, "Formulas for robust, one-pass parallel computation of covariances and
arbitrary-order statistical moments", SAND2008-6212):

    mean = mean_A + delta n_B / n
    M2 = M2_A + M2_B + delta^2 n_A n_B / n
    M3 = M3_A + M3_B + delta^3 n_A n_B (n_A - n_B) / n^2 + 3 delta (n_A M2_B - n_B M2_A) / n
    M4 = M4_A + M4_B + delta^4 n_A n_B (n_A^2 - n_A n_B + n_B^2) / n^3
         + 6 delta^2 (n_A^2 M2_B + n_B^2 M2_A) / n^2 + 4 delta (n_A M3_B - n_B M3_A) / n
    C  = C_A + C_B + delta delta^T n_A n_B / n          (co-moment matrix, C = sum (x - mean)(x - mean)^T)

An update with a batch is a merge with the batch's own two-pass moments, so the result equals a two-pass
computation on all data up to rounding (about 1e-15 relative per merge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.reductions.base import as_batch, check_dim, check_mergeable

__all__ = ["Covariance", "CovarianceResult", "Moments", "MomentsResult"]


@dataclass(frozen=True)
class MomentsResult:
    """Per coordinate (arrays of shape (d,)): n, mean, unbiased variance M2 / (n - 1), skewness
    g1 = sqrt(n) M3 / M2^{3/2}, excess kurtosis g2 = n M4 / M2^2 - 3 (the moment estimators, as
    ``scipy.stats.skew`` / ``kurtosis`` with bias=True; nan where the order was not kept or n is too small) and
    the standard error of the mean sqrt(variance / n)."""

    n: int
    mean: np.ndarray
    variance: np.ndarray
    skewness: np.ndarray
    excess_kurtosis: np.ndarray
    sem: np.ndarray


def _merge_central(na: int, ma: list[np.ndarray], nb: int, mb: list[np.ndarray], order: int) -> list[np.ndarray]:
    """[mean, M2, ..., M_order] of A followed by B from those of A and B (Pébay 2008, eqs. above)."""
    if nb == 0:
        return [m.copy() for m in ma]
    if na == 0:
        return [m.copy() for m in mb]
    n = na + nb
    delta = mb[0] - ma[0]
    out = [ma[0] + delta * (nb / n)]
    d2 = delta * delta
    out.append(ma[1] + mb[1] + d2 * (na * nb / n))
    if order >= 3:
        out.append(ma[2] + mb[2] + d2 * delta * (na * nb * (na - nb) / n**2)
                   + 3.0 * delta * (na * mb[1] - nb * ma[1]) / n)
    if order >= 4:
        out.append(ma[3] + mb[3] + d2 * d2 * (na * nb * (na * na - na * nb + nb * nb) / n**3)
                   + 6.0 * d2 * (na * na * mb[1] + nb * nb * ma[1]) / n**2
                   + 4.0 * delta * (na * mb[2] - nb * ma[2]) / n)
    return out


class Moments:
    """Count, mean and central sums M2..M_order per coordinate of samples (n, d), merged exactly (Chan, Golub &
    LeVeque 1979; Pébay 2008: see the module docstring). order: 2, 3 or 4."""

    def __init__(self, d: int = 1, order: int = 4):
        self.d = check_dim(d)
        if isinstance(order, bool) or order not in (2, 3, 4):
            raise SDEKitError(f"order must be 2, 3 or 4 (the highest central moment kept); got {order!r}")
        self.order = int(order)
        self.n = 0
        self._m = [np.zeros(self.d) for _ in range(self.order)]  # mean, M2, ..., M_order

    def empty(self) -> Moments:
        """A fresh summary with the same d and order."""
        return Moments(self.d, self.order)

    def update(self, x: Any) -> Moments:
        """Absorb a batch (n, d): merge with its two-pass mean and central sums."""
        x = as_batch(x, self.d)
        nb = x.shape[0]
        if nb == 0:
            return self
        mean = x.mean(axis=0)
        r = x - mean
        own = [mean]
        p = r * r
        own.append(p.sum(axis=0))
        for _ in range(3, self.order + 1):
            p = p * r
            own.append(p.sum(axis=0))
        self._m = _merge_central(self.n, self._m, nb, own, self.order)
        self.n += nb
        return self

    def merge(self, other: Moments) -> Moments:
        """A new summary of self's samples followed by other's."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)),
                        order=(self.order, getattr(other, "order", None)))
        out = self.empty()
        out._m = _merge_central(self.n, self._m, other.n, other._m, self.order)
        out.n = self.n + other.n
        return out

    def result(self) -> MomentsResult:
        """Mean, unbiased variance, skewness, excess kurtosis and standard error of the mean per coordinate."""
        n, nan = self.n, np.full(self.d, np.nan)
        mean = self._m[0].copy() if n else nan.copy()
        m2 = self._m[1]
        var = m2 / (n - 1) if n >= 2 else nan.copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            skew = np.sqrt(n) * self._m[2] / m2**1.5 if self.order >= 3 and n >= 2 else nan.copy()
            kurt = n * self._m[3] / m2**2 - 3.0 if self.order >= 4 and n >= 2 else nan.copy()
        sem = np.sqrt(var / n) if n >= 2 else nan.copy()
        return MomentsResult(n, mean, var, skew, kurt, sem)

    def __repr__(self) -> str:
        return f"Moments(d={self.d}, order={self.order}, n={self.n})"


@dataclass(frozen=True)
class CovarianceResult:
    """n, mean (d,), unbiased covariance C / (n - 1) (d, d) and correlation (d, d) (nan where n < 2, and in the
    rows and columns of constant coordinates)."""

    n: int
    mean: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray


class Covariance:
    """Count, mean and co-moment matrix C = sum (x - mean)(x - mean)^T of samples (n, d), merged by Chan's
    formula C = C_A + C_B + delta delta^T n_A n_B / n (Chan, Golub & LeVeque 1979; Pébay 2008)."""

    def __init__(self, d: int = 1):
        self.d = check_dim(d)
        self.n = 0
        self._mean = np.zeros(self.d)
        self._c = np.zeros((self.d, self.d))

    def empty(self) -> Covariance:
        """A fresh summary with the same d."""
        return Covariance(self.d)

    def _absorb(self, nb: int, mean_b: np.ndarray, c_b: np.ndarray) -> None:
        """Merge (nb, mean_b, c_b) into self, in place (B after self)."""
        na = self.n
        if nb == 0:
            return
        if na == 0:
            self.n, self._mean, self._c = nb, mean_b.copy(), c_b.copy()
            return
        n = na + nb
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (nb / n)
        self._c = self._c + c_b + np.outer(delta, delta) * (na * nb / n)
        self.n = n

    def update(self, x: Any) -> Covariance:
        """Absorb a batch (n, d): merge with its two-pass mean and co-moment matrix."""
        x = as_batch(x, self.d)
        if x.shape[0] == 0:
            return self
        mean = x.mean(axis=0)
        r = x - mean
        self._absorb(x.shape[0], mean, r.T @ r)
        return self

    def merge(self, other: Covariance) -> Covariance:
        """A new summary of self's samples followed by other's."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)))
        out = self.empty()
        out._absorb(self.n, self._mean, self._c)
        out._absorb(other.n, other._mean, other._c)
        return out

    def result(self) -> CovarianceResult:
        """Mean, unbiased covariance and correlation."""
        n, d = self.n, self.d
        if n < 2:
            nan = np.full((d, d), np.nan)
            return CovarianceResult(n, self._mean.copy() if n else np.full(d, np.nan), nan, nan.copy())
        cov = self._c / (n - 1)
        cov = 0.5 * (cov + cov.T)
        sd = np.sqrt(np.diag(cov))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov / np.outer(sd, sd)
        corr[sd == 0, :] = np.nan
        corr[:, sd == 0] = np.nan
        return CovarianceResult(n, self._mean.copy(), cov, corr)

    def __repr__(self) -> str:
        return f"Covariance(d={self.d}, n={self.n})"
