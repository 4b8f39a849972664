"""Validation statistics built from means of per-sample features, merged exactly, finished exactly as the
single-process tests of `sdekit.validate` finish them (same `CheckResult`).

- `MomentChi2Test`: the moment chi-square of whitened Gaussian features (`sdekit.validate.stats.moment_chi2`):
  z = L^{-1} (x - m) with L L^T = cov; the sums n, sum z and sum z z^T merge by addition, and
  T = N [sum_i zbar_i^2 + sum_i (mean z_i^2 - 1)^2 / 2 + sum_{i<j} mean(z_i z_j)^2] ~ chi^2_{d + d(d+1)/2}.
- `MomentTest`: `sdekit.validate.onesample.moment_test`, T = N rbar^T C^{-1} rbar for phi = (x_i, x_i x_j),
  rbar = mean phi - E phi with E phi and C = Cov phi exact under the target (`exact_feature_moments`); rbar itself
  (the mean of phi - E phi, which avoids the cancellation of mean phi - E phi) merges by Chan's formula.
- `SteinTest`: `sdekit.validate.onesample.stein_test`, Hotelling T^2 = N psibar^T S^{-1} psibar for
  psi = (s_i, 1 + x_i s_i), s the score; mean and covariance of psi merge by Chan's formula (`Covariance`).

References: Chan, Golub & LeVeque (1979) for the merges; Hotelling (1931) and Gorham & Mackey (2015) for the Stein
identity test; the moment tests as in VALIDATION.md §3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.reductions.base import as_batch, check_dim, check_mergeable
from sdekit.reductions.moments import Covariance
from sdekit.validate.checks import check_alpha, check_callable, check_gaussian_law, checked_output
from sdekit.validate.laws import exact_feature_moments, feature_names, features, mixture_components
from sdekit.validate.stats import CheckResult, whiten

__all__ = ["MomentChi2Test", "MomentTest", "SteinTest"]


class MomentChi2Test:
    """Moment chi-square of samples against N(mean, cov) from merged sums of z and z z^T (module docstring).
    ``result(alpha)`` is the CheckResult ``gaussian_law_tests`` reports for it at per-test rate alpha."""

    def __init__(self, mean: Any, cov: Any, *, name: str = "sample"):
        self.mean, self.cov = (a.copy() for a in check_gaussian_law((mean, cov), "(mean, cov)", parts=("mean", "cov")))
        self.d = self.mean.shape[0]
        self.name = str(name)
        self.n = 0
        self._sz = np.zeros(self.d)
        self._szz = np.zeros((self.d, self.d))

    def empty(self) -> MomentChi2Test:
        """A fresh summary against the same law."""
        return MomentChi2Test(self.mean, self.cov, name=self.name)

    def update(self, x: Any) -> MomentChi2Test:
        """Whiten the batch and add n, sum z, sum z z^T."""
        x = as_batch(x, self.d)
        if x.shape[0]:
            z = whiten(x, self.mean, self.cov)
            self._sz += z.sum(axis=0)
            self._szz += z.T @ z
            self.n += x.shape[0]
        return self

    def merge(self, other: MomentChi2Test) -> MomentChi2Test:
        """A new summary: sums added."""
        check_mergeable(self, other, mean=(self.mean, getattr(other, "mean", None)),
                        cov=(self.cov, getattr(other, "cov", None)))
        out = self.empty()
        out.n, out._sz, out._szz = self.n + other.n, self._sz + other._sz, self._szz + other._szz
        return out

    def statistic(self) -> float:
        """T from the merged sums (as `moment_chi2` computes it from all z)."""
        n, d = self.n, self.d
        if n < 2:
            raise SDEKitError(f"the moment chi-square needs at least 2 samples; this summary holds {n}")
        second = self._szz / n
        iu = np.triu_indices(d, 1)
        t = n * np.sum((self._sz / n) ** 2)
        t += n * np.sum((np.diag(second) - 1.0) ** 2) / 2.0
        t += n * np.sum(second[iu] ** 2)
        return float(t)

    def result(self, alpha: float = 1e-6) -> CheckResult:
        """Reject when T >= chi2.isf(alpha, p), p = d + d(d+1)/2."""
        alpha = check_alpha(alpha)
        p = self.d + self.d * (self.d + 1) // 2
        stat = self.statistic()
        thr = float(st.chi2.isf(alpha, p))
        return CheckResult(self.name, f"chi2 moments (df={p})", stat, thr, float(st.chi2.sf(stat, p)), stat < thr,
                           alpha=alpha)

    def __repr__(self) -> str:
        return f"MomentChi2Test(d={self.d}, n={self.n})"


class MomentTest:
    """`moment_test` (exact feature moments of a Gaussian / Gaussian-mixture target) from the merged mean of
    phi(x) = (x_i, x_i x_j (i <= j)); ``result(alpha)`` equals ``moment_test(all samples, target, alpha)``."""

    def __init__(self, target: Any, *, name: str = "sample"):
        self.feature_mean, self.feature_cov = exact_feature_moments(target)
        self.d = mixture_components(target)[1].shape[1]
        self.target_label = repr(target)
        self.name = str(name)
        self.n = 0
        self._mean = np.zeros(self.feature_mean.shape[0])  # rbar = mean of phi(x) - E phi

    def empty(self) -> MomentTest:
        """A fresh summary against the same target."""
        out = object.__new__(MomentTest)
        out.feature_mean, out.feature_cov, out.d = self.feature_mean, self.feature_cov, self.d
        out.target_label, out.name, out.n = self.target_label, self.name, 0
        out._mean = np.zeros_like(self._mean)
        return out

    def _absorb(self, nb: int, mean_b: np.ndarray) -> None:
        """Chan's mean merge: mean = mean_A + (mean_B - mean_A) n_B / n."""
        if nb:
            n = self.n + nb
            self._mean = mean_b.copy() if self.n == 0 else self._mean + (mean_b - self._mean) * (nb / n)
            self.n = n

    def update(self, x: Any) -> MomentTest:
        """Add the batch's mean of phi(x) - E phi."""
        x = as_batch(x, self.d)
        if x.shape[0]:
            self._absorb(x.shape[0], (features(x) - self.feature_mean).mean(axis=0))
        return self

    def merge(self, other: MomentTest) -> MomentTest:
        """A new summary: feature means merged."""
        check_mergeable(self, other, feature_mean=(self.feature_mean, getattr(other, "feature_mean", None)),
                        feature_cov=(self.feature_cov, getattr(other, "feature_cov", None)))
        out = self.empty()
        out._absorb(self.n, self._mean)
        out._absorb(other.n, other._mean)
        return out

    def result(self, alpha: float = 1e-6) -> CheckResult:
        """T = N rbar^T C^{-1} rbar against chi2.isf(alpha, p), as `moment_test`."""
        alpha = check_alpha(alpha)
        n, p = self.n, self.feature_mean.shape[0]
        if n < 10 * p:
            raise SDEKitError(f"the moment test needs at least 10 p = {10 * p} samples on {p} features; this summary "
                              f"holds {n}")
        rbar = self._mean
        z = np.linalg.solve(np.linalg.cholesky(self.feature_cov), rbar)
        stat = float(n * z @ z)
        thr = float(st.chi2.isf(alpha, p))
        bias = tuple(float(v) for v in rbar / np.sqrt(np.diag(self.feature_cov) / n))
        return CheckResult(self.name, f"chi2 moments (df={p})", stat, thr, float(st.chi2.sf(stat, p)), stat <= thr,
                           note=", ".join(feature_names(self.d)), bias=bias, alpha=alpha)

    def __repr__(self) -> str:
        return f"MomentTest(d={self.d}, n={self.n})"


def _score_key(score: Callable, d: int) -> tuple[Any, ...]:
    """What identifies a score across pickling: module.qualname and its values at fixed probe points (None where
    it cannot be evaluated there)."""
    target = getattr(score, "__func__", score)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(score).__qualname__)}"
    probes = np.random.default_rng(20_261_207).standard_normal((3, d))
    try:
        values = np.asarray(score(probes.copy()), dtype=float).ravel().tolist()
    except Exception:  # a score undefined at the probes is compared by name only
        values = None
    return (name, values)


class SteinTest:
    """`stein_test` from the merged mean and covariance of psi = (s(x), 1 + x s(x)) (Chan's formula).
    score(x) -> (n, d) must pickle (a module-level function or a target's bound ``score``) to travel to workers."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], d: int, *, name: str = "sample"):
        self.score = check_callable(score, "score", "score(x) -> (n, d), the gradient of log pi")
        self.d = check_dim(d)
        self.name = str(name)
        self.score_key = _score_key(self.score, self.d)
        self._psi = Covariance(2 * self.d)

    @property
    def n(self) -> int:
        """Number of samples absorbed."""
        return self._psi.n

    def empty(self) -> SteinTest:
        """A fresh summary with the same score and d."""
        return SteinTest(self.score, self.d, name=self.name)

    def update(self, x: Any) -> SteinTest:
        """psi of the batch into the merged mean and co-moments."""
        x = as_batch(x, self.d)
        if x.shape[0]:
            n = x.shape[0]
            s = checked_output(self.score(x.copy()), "score", (n, self.d), "(n, d), one gradient per draw",
                               flat_ok=True)
            self._psi.update(np.concatenate([s, 1.0 + x * s], axis=1))
        return self

    def merge(self, other: SteinTest) -> SteinTest:
        """A new summary: psi moments merged."""
        check_mergeable(self, other, d=(self.d, getattr(other, "d", None)),
                        score=(self.score_key, getattr(other, "score_key", None)))
        out = self.empty()
        out._psi = self._psi.merge(other._psi)
        return out

    def result(self, alpha: float = 1e-6) -> CheckResult:
        """Hotelling T^2 against F(q, N - q) as `stein_test`, q = 2d."""
        alpha = check_alpha(alpha)
        n, q = self.n, 2 * self.d
        if n <= q + 10:
            raise SDEKitError(f"the Stein test needs more than {q + 10} samples; this summary holds {n}")
        res = self._psi.result()
        mean, cov = res.mean, res.covariance
        t2 = float(n * mean @ np.linalg.solve(cov, mean))
        scale = (n - q) / (q * (n - 1.0))
        thr = float(st.f.isf(alpha, q, n - q) / scale)
        pval = float(st.f.sf(t2 * scale, q, n - q))
        bias = tuple(float(v) for v in mean / np.sqrt(np.diag(cov) / n))
        return CheckResult(self.name, "Stein", t2, thr, pval, t2 <= thr, note=f"q = {q}", bias=bias, alpha=alpha)

    def __repr__(self) -> str:
        return f"SteinTest(d={self.d}, n={self.n})"
