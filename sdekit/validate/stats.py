"""Calibrated one-sample tests against closed-form laws, each gated at a stated false-alarm rate.

A battery of k tests at overall rate alpha gates each at alpha / k (Bonferroni).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.validate.budget import BUDGET
from sdekit.validate.checks import check_alpha, check_gaussian_law, check_number, check_sample, real_array


@dataclass(frozen=True)
class CheckResult:
    """One test: its statistic, the threshold it is compared with, p-value and verdict.

    name: what was checked (sampler / problem). test: which test (e.g. "KS x[0]").
    statistic / threshold: the test rejects when statistic > threshold (for p-value-gated tests
    the threshold is the per-test alpha and the comparison is pvalue <= alpha; see `passed`).
    bias: standardized bias per feature, (feature mean - exact mean) / (exact sd / sqrt(N)), where
    the test has features (empty otherwise). gating: False for diagnostics (reported, never failing
    a battery). alpha: the false-alarm rate this test was run at (nan for deterministic checks).
    """

    name: str
    test: str
    statistic: float
    threshold: float
    pvalue: float
    passed: bool
    note: str = ""
    bias: tuple[float, ...] = ()
    gating: bool = True
    alpha: float = float("nan")

    def __post_init__(self) -> None:
        """Spend this test's alpha on the process-wide false-alarm ledger (`sdekit.validate.budget`)."""
        if self.gating:
            BUDGET.spend(self.alpha, self.test)

    @property
    def verdict(self) -> str:
        """'pass', 'FAIL', or for diagnostics 'ok' / 'flag'."""
        if not self.gating:
            return "ok" if self.passed else "flag"
        return "pass" if self.passed else "FAIL"


def whiten(sample: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """z = L^{-1} (x - m) with L L^T = cov: N(0, I) exactly when x ~ N(m, cov)."""
    chol = np.linalg.cholesky(np.atleast_2d(cov))
    return np.linalg.solve(chol, (np.atleast_2d(sample) - mean).T).T


def moment_chi2(z: np.ndarray) -> float:
    """T = N rbar^T Cov(phi)^{-1} rbar for phi(z) = (z_i, z_i z_j (i <= j)) under z ~ N(0, I).

    Under N(0, I) the features are uncorrelated with variances 1 (z_i, z_i z_j, i < j) and
    2 (z_i^2), so T = N [sum_i zbar_i^2 + sum_i (mean z_i^2 - 1)^2 / 2 + sum_{i<j} mean(z_i z_j)^2]
    ~ chi^2 with d + d(d+1)/2 degrees of freedom (asymptotically, by the CLT).
    """
    z = real_array(z, "z")
    if z.ndim != 2 or z.shape[0] < 1:
        raise SDEKitError(f"z must be whitened samples of shape (N, d); got shape {z.shape}")
    n, d = z.shape
    t = n * np.sum(z.mean(axis=0) ** 2)
    second = z.T @ z / n
    t += n * np.sum((np.diag(second) - 1.0) ** 2) / 2.0
    iu = np.triu_indices(d, 1)
    t += n * np.sum(second[iu] ** 2)
    return float(t)


def gaussian_law_tests(name: str, sample: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                       alpha: float = 1e-6) -> list[CheckResult]:
    """KS on each whitened coordinate and the moment chi-square: d + 1 tests sharing alpha.

    mean (d,) and cov (d, d) (symmetric positive definite) must match the sample's shape (N, d)."""
    alpha = check_alpha(alpha)
    x = check_sample(sample, min_size=2)
    mean, cov = check_gaussian_law((mean, cov), "(mean, cov)", x.shape[1], parts=("mean", "cov"))
    z = whiten(x, mean, cov)
    n, d = z.shape
    each = alpha / (d + 1)
    out = []
    for i in range(d):
        res = st.kstest(z[:, i], "norm")
        out.append(CheckResult(name, f"KS z[{i}]", float(res.statistic), each, float(res.pvalue),
                               bool(res.pvalue > each), alpha=each))
    p = d + d * (d + 1) // 2
    stat = moment_chi2(z)
    thr = float(st.chi2.isf(each, p))
    out.append(CheckResult(name, f"chi2 moments (df={p})", stat, thr, float(st.chi2.sf(stat, p)), stat < thr,
                           alpha=each))
    return out


def ks_law_test(name: str, sample: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray],
                alpha: float = 1e-6, label: str = "KS") -> CheckResult:
    """One-sample Kolmogorov–Smirnov of a 1-D sample against an exact CDF, rejected when p <= alpha."""
    alpha = check_alpha(alpha)
    x = check_sample(sample, min_size=2)
    if x.shape[1] != 1:
        raise SDEKitError(f"sample must be 1-D for a KS test; got shape {x.shape}")
    res = st.kstest(x[:, 0], cdf)
    return CheckResult(name, label, float(res.statistic), alpha, float(res.pvalue), bool(res.pvalue > alpha),
                       alpha=alpha)


def deterministic_check(name: str, label: str, error: float, tolerance: float) -> CheckResult:
    """A non-random comparison (ODE against its closed form): passes when error <= tolerance."""
    if isinstance(error, bool) or not isinstance(error, numbers.Real):  # NaN or inf errors fail the check
        raise SDEKitError(f"error must be a real number; got {error!r}")
    tolerance = check_number(tolerance, "tolerance", minimum=0.0)
    return CheckResult(name, label, float(error), float(tolerance), float("nan"), bool(error <= tolerance))
