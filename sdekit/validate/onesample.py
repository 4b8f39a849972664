"""One-sample tests of N i.i.d. draws against an exact law, each gated at a stated false-alarm rate.

Every test returns a `CheckResult` that rejects when its statistic exceeds a critical value
computed for the rate it was given (VALIDATION.md §3):

- Kolmogorov–Smirnov: D_N = sup |F_N - F|, exact/asymptotic Kolmogorov p-value (monotone, fine
  at 1e-6 and below).
- Cramér–von Mises: W^2 = 1/(12 N) + sum_i (F(x_(i)) - (2i - 1)/(2N))^2, gated on the statistic
  against the asymptotic critical value (Smirnov's series, `cvm_sf`), never on scipy's far-tail
  p-value, which is non-monotone beyond W^2 ~ 4.
- Moment chi-square: T = N rbar^T Cov(phi)^{-1} rbar ~ chi^2_p for phi = (x_i, x_i x_j), with the
  exact mean and covariance of phi under the target (`exact_feature_moments`).
- Stein identity: E_pi[div phi + phi . s] = 0 for phi in {e_i, x_i e_i}, i.e. psi = (s_i, 1 + x_i s_i);
  Hotelling T^2 with the sample covariance, (N - q) T^2 / (q (N - 1)) ~ F(q, N - q), q = 2d.
- One-sample MMD with the Gaussian kernel, McDiarmid bound p <= exp(-N (MMD_b - N^{-1/2})_+^2 / 2);
  rigorous but weak, so a diagnostic (never gating).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.stats as st
from scipy import integrate, optimize

from sdekit.errors import SDEKitError
from sdekit.validate.checks import check_alpha, check_callable, check_count, check_number, check_sample, checked_output
from sdekit.validate.laws import Law1D, exact_feature_moments, feature_names, features, law_1d, mixture_components
from sdekit.validate.stats import CheckResult

# ---------------------------------------------------------------------------------------------
# Cramér–von Mises: asymptotic tail and critical values


@functools.lru_cache(maxsize=256)
def cvm_sf(w: float) -> float:
    """P(W^2_inf > w) by Smirnov's series for the limiting Cramér–von Mises law:

        1 - F(w) = (1/pi) sum_{k>=1} (-1)^{k+1} int_{((2k-1) pi)^2}^{(2k pi)^2} sqrt(-sqrt(y) / sin sqrt(y))
                   exp(-w y / 2) / y dy

    (Smirnov 1937; Anderson & Darling 1952). The substitution y = c + r cos(theta) removes the
    inverse-square-root singularities at both ends. Accurate to ~1e-10 relative down to 1e-12;
    reproduces the critical values 0.461 (5%), 0.743 (1%) and 2.495 (1e-6).
    """
    w = check_number(w, "w")
    if w <= 0.0:
        return 1.0
    if w < 0.05:  # below the 0.9999... region the series needs many terms; the CDF is ~0 there
        return 1.0
    total = 0.0
    for k in range(1, 40):
        a = ((2 * k - 1) * math.pi) ** 2
        b = (2 * k * math.pi) ** 2
        c, r = 0.5 * (a + b), 0.5 * (b - a)

        def f(theta: float, c: float = c, r: float = r) -> float:
            y = c + r * math.cos(theta)
            s = math.sqrt(y)
            return math.sqrt(-s / math.sin(s)) * math.exp(-w * y / 2.0) / y * r * math.sin(theta)

        term, _ = integrate.quad(f, 0.0, math.pi, limit=200, epsabs=0.0, epsrel=1e-12)
        total += term if k % 2 else -term
        if abs(term) < 1e-16 * abs(total):
            break
    return min(1.0, max(0.0, total / math.pi))


@functools.lru_cache(maxsize=256)
def cvm_critical_value(alpha: float) -> float:
    """w_alpha with P(W^2_inf > w_alpha) = alpha (root of log cvm_sf(w) = log alpha); 2.495 at 1e-6."""
    alpha = check_alpha(alpha)
    return float(optimize.brentq(lambda w: math.log(cvm_sf(w)) - math.log(alpha), 0.06, 40.0, xtol=1e-10))


def cvm_statistic(u: np.ndarray) -> float:
    """W^2 = 1/(12 N) + sum_i (u_(i) - (2i - 1) / (2N))^2 for u_i = F(x_i)."""
    u = np.sort(np.asarray(u, dtype=float).ravel())
    n = u.shape[0]
    grid = (2.0 * np.arange(1, n + 1) - 1.0) / (2.0 * n)
    return float(1.0 / (12.0 * n) + np.sum((u - grid) ** 2))


CDF_ROUNDING = 1e-9  # a quadrature CDF may overshoot [0, 1] by rounding; such values are clipped, larger ones refused


def cdf_values(law: Law1D, x: np.ndarray) -> np.ndarray:
    """u_i = F(x_i) for a 1-D sample x, checked: real, one value per draw, finite and in [0, 1] up to
    ``CDF_ROUNDING`` (a density passed as the law's CDF is refused instead of giving a statistic that means
    nothing)."""
    u = checked_output(law.cdf(x), "law's cdf", x.shape, "one value F(x_i) per draw")
    outside = (u < -CDF_ROUNDING) | (u > 1.0 + CDF_ROUNDING)
    if outside.any():
        raise SDEKitError(f"law's cdf must return probabilities in [0, 1]; got {int(outside.sum())} values outside "
                          f"(range [{u.min():.4g}, {u.max():.4g}]): is it a density rather than a CDF?")
    return np.clip(u, 0.0, 1.0)


def _mean_bias(x: np.ndarray, law: Law1D) -> tuple[float, ...]:
    """(xbar - E X) / (sd / sqrt(N)) when the law's first two moments are known."""
    if not np.isfinite(law.sd) or law.sd <= 0:
        return ()
    return (float((x.mean() - law.mean) / (law.sd / math.sqrt(x.shape[0]))),)


def ks_test(sample: Any, law: Any, alpha: float = 1e-6, *, name: str = "sample", label: str = "KS") -> CheckResult:
    """Kolmogorov–Smirnov: D_N = sup_z |F_N(z) - F(z)|, rejected when p <= alpha (Kolmogorov p-value);
    the reported threshold is the critical D with P(D_N > D) = alpha (scipy's ``kstwo``)."""
    alpha = check_alpha(alpha)
    x = check_sample(sample, min_size=5)
    if x.shape[1] != 1:
        raise SDEKitError(f"sample must be 1-D for a KS test; got shape {x.shape}")
    x = x[:, 0]
    law = law_1d(law)
    cdf_values(law, x)
    res = st.kstest(x, law.cdf)
    thr = float(st.kstwo.isf(alpha, x.shape[0]))
    return CheckResult(name, label, float(res.statistic), thr, float(res.pvalue), bool(res.pvalue > alpha),
                       bias=_mean_bias(x, law), alpha=alpha)


def cvm_test(sample: Any, law: Any, alpha: float = 1e-6, *, name: str = "sample", label: str = "CvM") -> CheckResult:
    """Cramér–von Mises: reject when W^2 > w_alpha (`cvm_critical_value`); p-value from `cvm_sf`.

    The asymptotic law is used for every N >= 20 (its error at N = 20 is below 1% of the tail
    probability in the central range, and shrinks like 1/N).
    """
    alpha = check_alpha(alpha)
    x = check_sample(sample)
    if x.shape[1] != 1:
        raise SDEKitError(f"sample must be 1-D for a CvM test; got shape {x.shape}")
    x = x[:, 0]
    law = law_1d(law)
    w2 = cvm_statistic(cdf_values(law, x))
    thr = cvm_critical_value(alpha)
    return CheckResult(name, label, w2, thr, cvm_sf(round(w2, 12)), bool(w2 <= thr), bias=_mean_bias(x, law),
                       alpha=alpha)


# ---------------------------------------------------------------------------------------------
# moments, Stein, MMD


def moment_test(sample: Any, target: Any, alpha: float = 1e-6, *, name: str = "sample",
                label: str | None = None) -> CheckResult:
    """chi^2 test of the first and second moments: T = N rbar^T C^{-1} rbar ~ chi^2_p, with
    rbar = mean phi(x_n) - E phi and C = Cov phi exact under the target (Gaussian or mixture),
    phi = (x_i, x_i x_j (i <= j)), p = d + d(d+1)/2. bias: rbar_j / sqrt(C_jj / N) per feature.
    """
    alpha = check_alpha(alpha)
    mean, cov = exact_feature_moments(target)
    d = mixture_components(target)[1].shape[1]
    x = check_sample(sample, dim=d)
    n = x.shape[0]
    p = mean.shape[0]
    if n < 10 * p:
        raise SDEKitError(f"sample must hold at least 10 p = {10 * p} draws for the moment test on {p} features; "
                          f"got {n}")
    rbar = features(x).mean(axis=0) - mean
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, rbar)
    stat = float(n * z @ z)
    thr = float(st.chi2.isf(alpha, p))
    bias = tuple(float(v) for v in rbar / np.sqrt(np.diag(cov) / n))
    return CheckResult(name, label or f"chi2 moments (df={p})", stat, thr, float(st.chi2.sf(stat, p)),
                       stat <= thr, note=", ".join(feature_names(d)), bias=bias, alpha=alpha)


def stein_test(sample: Any, score: Callable[[np.ndarray], np.ndarray], alpha: float = 1e-6, *,
               name: str = "sample", label: str = "Stein") -> CheckResult:
    """Stein identity E_pi[div phi + phi . s] = 0 with phi in {e_i, x_i e_i}: psi = (s_i, 1 + x_i s_i).

    Hotelling: T^2 = N psibar^T Shat^{-1} psibar, (N - q) T^2 / (q (N - 1)) ~ F(q, N - q), q = 2d;
    statistic and threshold are reported on the T^2 scale. It sees a within-mode variance
    inflation (Langevin discretisation bias on a mixture) that global tests dilute.
    bias: psibar_j / (sd_j / sqrt(N)). A sample (N, *shape) is flattened row-wise to (N, d) first
    (`check_sample`), and ``score`` is called on those rows.
    """
    alpha = check_alpha(alpha)
    x = check_sample(sample)
    n, d = x.shape
    check_callable(score, "score", "score(x) -> (n, d), the gradient of log pi")
    s = checked_output(score(x.copy()), "score", (n, d), "(n, d), one gradient per draw", flat_ok=True)
    psi = np.concatenate([s, 1.0 + x * s], axis=1)
    q = 2 * d
    if n <= q + 10:
        raise SDEKitError(f"sample must hold more than {q + 10} draws for the Stein test; got {n}")
    mean = psi.mean(axis=0)
    cov = np.cov(psi, rowvar=False).reshape(q, q)
    t2 = float(n * mean @ np.linalg.solve(cov, mean))
    scale = (n - q) / (q * (n - 1.0))
    thr = float(st.f.isf(alpha, q, n - q) / scale)
    pval = float(st.f.sf(t2 * scale, q, n - q))
    bias = tuple(float(v) for v in mean / np.sqrt(np.diag(cov) / n))
    return CheckResult(name, label, t2, thr, pval, t2 <= thr, note=f"q = {q}", bias=bias, alpha=alpha)


def mmd_lengthscale(target: Any) -> float:
    """Kernel length scale l = sqrt(tr Cov(X) / d): the target's own scale (fixed, not fitted to the sample)."""
    cov = np.atleast_2d(target.cov)
    return float(np.sqrt(np.trace(cov) / cov.shape[0]))


def mmd_test(sample: Any, target: Any, alpha: float = 1e-6, *, lengthscale: float | None = None,
             max_points: int = 2000, name: str = "sample", label: str = "MMD") -> CheckResult:
    """One-sample MMD_b = ||(1/N) sum_n k(x_n, .) - mu_pi|| for k(x, y) = exp(-||x - y||^2 / (2 l^2)):

        MMD_b^2 = (1/N^2) sum_nm k(x_n, x_m) - (2/N) sum_n mu_pi(x_n) + ||mu_pi||^2,
        mu_pi(x) = sum_k pi_k det(I + S_k / l^2)^{-1/2} exp(-1/2 r_k^T (S_k + l^2 I)^{-1} r_k),
        ||mu_pi||^2 = sum_kl pi_k pi_l det(I + (S_k + S_l) / l^2)^{-1/2}
                      exp(-1/2 D_kl^T (S_k + S_l + l^2 I)^{-1} D_kl),

    with the McDiarmid bound p <= exp(-N (MMD_b - N^{-1/2})_+^2 / 2) (kernel bounded by 1). A
    diagnostic (gating=False): rigorous but weak. Uses the first ``max_points`` draws (the double
    sum costs N^2 kernel evaluations).
    """
    alpha = check_alpha(alpha)
    max_points = check_count(max_points, "max_points", 2)
    weights, means, covs = mixture_components(target)
    d = means.shape[1]
    x = check_sample(sample, dim=d)[:max_points]
    n = x.shape[0]
    if lengthscale is None:
        ell = mmd_lengthscale(target)
    else:
        ell = check_number(lengthscale, "lengthscale", minimum=0.0, strict=True)
    l2 = ell * ell
    eye = np.eye(d)
    mu_x = np.zeros(n)
    for w, m, s in zip(weights, means, covs):
        a = s + l2 * eye
        r = x - m
        quad = np.einsum("ni,ni->n", r, np.linalg.solve(a, r.T).T)
        mu_x += w / math.sqrt(np.linalg.det(eye + s / l2)) * np.exp(-0.5 * quad)
    norm2 = 0.0
    for wk, mk, sk in zip(weights, means, covs):
        for wl, ml, sl in zip(weights, means, covs):
            dlt = mk - ml
            a = sk + sl + l2 * eye
            norm2 += wk * wl / math.sqrt(np.linalg.det(eye + (sk + sl) / l2)) * math.exp(
                -0.5 * dlt @ np.linalg.solve(a, dlt))
    sq = np.einsum("ni,ni->n", x, x)
    kk = 0.0
    block = 1024
    for i in range(0, n, block):
        xi = x[i:i + block]
        d2 = sq[i:i + block, None] + sq[None, :] - 2.0 * xi @ x.T
        kk += float(np.exp(-0.5 * np.maximum(d2, 0.0) / l2).sum())
    mmd2 = kk / n**2 - 2.0 * mu_x.mean() + norm2
    mmd = math.sqrt(max(mmd2, 0.0))
    excess = max(mmd - 1.0 / math.sqrt(n), 0.0)
    pval = math.exp(-n * excess**2 / 2.0)
    thr = 1.0 / math.sqrt(n) + math.sqrt(2.0 * math.log(1.0 / alpha) / n)
    return CheckResult(name, label, mmd, thr, pval, mmd <= thr, note=f"l = {ell:.3g}, N = {n}", gating=False,
                       alpha=alpha)


# ---------------------------------------------------------------------------------------------
# projections


def random_directions(d: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` fixed unit vectors in R^d (rows), drawn from N(0, I) with their own seed and normalised.

    Fixed means independent of the sample under test: the same directions for every run.
    """
    d, count = check_count(d, "d"), check_count(count, "count", 0)
    u = np.random.default_rng(seed).standard_normal((count, d))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def projection_laws(target: Any, directions: np.ndarray) -> list[Law1D]:
    """The exact 1-D law of u^T X for each row u (a projected Gaussian mixture is a 1-D mixture)."""
    return [law_1d(target.project(u)) for u in directions]
