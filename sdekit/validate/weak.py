"""Weak convergence order (VALIDATION.md §4): coupled Monte Carlo differences and exact EM moments.

The weak error of a scheme at step size h for a test function phi is

    e_h = | E phi(X_h(T)) - E phi(X(T)) |.

Two Monte Carlo estimators are offered by `weak_errors`, both on nested grids (level l runs
base_steps 2^l steps and sees the Brownian path of the finest grid through ``noise_substeps``):

* against an exact expectation:  d_p = phi(X_h(T; p)) - E phi(X(T))       (variance O(1));
* coupled on the same path:      d_p = phi(X_h(T; p)) - phi(X(T; W_p))    (variance O(h^{2 q}) for a
  scheme of strong order q; X(T; W) the closed-form solution driven by the same Brownian path).

Both are unbiased for E phi(X_h) - E phi(X): the exact solution has the exact law whatever path
drives it. `fit_weak_order` fits log |mean_p d_p| on log h by OLS and bootstraps over paths.

Significance before fitting. log |mean| is meaningless when the mean is not resolved (its sign
flips under resampling), so `fit_weak_order` refuses (raises `UnresolvedWeakError`, listing each
level's mean, standard error and z) unless every level has |z| = |mean| / se above
z* = Phi^{-1}(1 - alpha / (2 L)): a two-sided test of "mean = 0" at false-alarm rate alpha
(default 1e-6) Bonferroni-split over the L levels. Measured (GBM mu = 0.5, sigma = 1, T = 1,
phi(x) = x, 20000 paths, h = 1/4 .. 1/128): Milstein's coupled |z| is 11-15 at every level (its
strong order 1 makes se = O(h), like the mean), order 0.994 with 99% CI [0.954, 1.038], so Milstein
is gated; Euler–Maruyama's coupled |z| falls like sqrt(h) (6.2 -> 0.9), so its Monte Carlo weak
order is refused rather than reported (VALIDATION.md: "EM weak with Monte Carlo is too noisy to gate, even coupled").

For linear SDEs (OU, dX = -A X dt + B dW) the law of Euler–Maruyama is Gaussian and known exactly
(m' = M m, S' = M S M^T + h Q, M = I - h A, Q = B B^T), so `em_weak_errors_linear` gives weak errors
with no Monte Carlo at all, to be fitted by `fit_order_deterministic`.

Gate: `OrderFit.passes(expected)`: expected - 0.2 <= p_hat <= expected + 0.25 and CI half-width
< 0.15. Planted bugs fail it: a recursion whose noise term is h Q / 2 (a lost factor 2) has
errors that plateau at 0.28 (order 0.003), and a correct order-1 fit fails the gate for expected order 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.stats as st

from sdekit.processes.ou import OrnsteinUhlenbeck
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.validate.onesample import check_alpha
from sdekit.validate.order import ClosedForm, OrderFit, brownian_terminal, loglog_slope

PhiFn = Callable[[np.ndarray], np.ndarray]
ExactFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
LinearLaw = Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, np.ndarray]]

DEFAULT_ALPHA = 1e-6


class UnresolvedWeakError(ValueError):
    """A weak-error level's mean difference is not significantly nonzero: the order cannot be fitted."""


def two_sided_z(alpha: float) -> float:
    """z* with P(|Z| > z*) = alpha for Z ~ N(0, 1): Phi^{-1}(1 - alpha / 2)."""
    return float(st.norm.isf(alpha / 2.0))


@dataclass(frozen=True)
class WeakErrors:
    """Per-path weak-error samples d[l, p] at step sizes hs (decreasing).

    mean_p d[l, p] estimates E phi(X_{h_l}(T)) - E phi(X(T)). coupled: d = phi(X_h) - phi(X(W))
    on the same Brownian path; otherwise d = phi(X_h) - E phi(X(T)).
    """

    hs: np.ndarray
    diffs: np.ndarray
    coupled: bool

    @property
    def n_paths(self) -> int:
        """P, the number of paths per level."""
        return int(self.diffs.shape[1])

    @property
    def means(self) -> np.ndarray:
        """mean_p d[l, p] per level (signed weak error estimates)."""
        return self.diffs.mean(axis=1)

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of each level's mean, sd_p(d[l, :]) / sqrt(P) (ddof = 1)."""
        return self.diffs.std(axis=1, ddof=1) / np.sqrt(self.n_paths)

    @property
    def errors(self) -> np.ndarray:
        """e_l = |mean_p d[l, p]|."""
        return np.abs(self.means)

    @property
    def z(self) -> np.ndarray:
        """z_l = mean / se: the significance of each level's weak error."""
        se = self.stderr
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, self.means / np.where(se > 0, se, 1.0),
                            np.where(self.means == 0, 0.0, np.inf))

    def resolved(self, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
        """Per level: |z_l| > Phi^{-1}(1 - alpha / (2 L)) (two-sided, Bonferroni over the L levels)."""
        alpha = check_alpha(alpha)
        return np.abs(self.z) > two_sided_z(alpha / self.hs.size)

    def summary(self, alpha: float = DEFAULT_ALPHA) -> str:
        """One line per level: h, mean, se, z and whether it is resolved at rate alpha."""
        ok = self.resolved(alpha)
        lines = [f"weak errors ({'coupled' if self.coupled else 'vs exact expectation'}, P = {self.n_paths}; "
                 f"resolved: |z| > {two_sided_z(alpha / self.hs.size):.2f} at alpha = {alpha:g})"]
        for h, m, s, z, r in zip(self.hs, self.means, self.stderr, self.z, ok):
            lines.append(f"  h = {h:.4g}: mean {m:+.4g} +- {s:.2g} (z = {z:+.1f}) {'ok' if r else 'UNRESOLVED'}")
        return "\n".join(lines)


def _phi_values(phi: PhiFn, x: np.ndarray) -> np.ndarray:
    v = np.asarray(phi(x), dtype=float)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != (x.shape[0],):
        raise ValueError(f"phi must map states (n, dim) to values (n,); got shape {v.shape} for n = {x.shape[0]}")
    return v


def weak_errors(problem: SDE | ClosedForm, solver: str, x0: Any, t1: float, phi: PhiFn, *,
                exact_expectation: float | None = None, exact_fn: ExactFn | None = None, base_steps: int,
                levels: int, n_paths: int, seed: int, coupled: bool = True, t0: float = 0.0,
                threads: int | None = None, brownian: str = "normals") -> WeakErrors:
    """Per-path weak-error samples at `levels` nested step sizes h_l = (t1 - t0) / (base_steps 2^l).

    coupled=True:  d[l, p] = phi(X_{h_l}(T; p)) - phi(X(T; W_p)), X(T) = exact_fn(x0, W_T) on the same
                   Brownian path (default exact_fn: problem.exact_at(t1) for a ClosedForm with t0 = 0).
    coupled=False: d[l, p] = phi(X_{h_l}(T; p)) - exact_expectation (plain Monte Carlo).
    phi maps states (n, dim) to (n,). Every level integrates the finest grid's Brownian path
    (noise_substeps = 2^(levels-1-l)), so levels are positively correlated and a bootstrap over
    paths (`fit_weak_order`) accounts for it.
    """
    sde = problem.sde if isinstance(problem, ClosedForm) else problem
    if not isinstance(sde, SDE):
        raise ValueError(f"problem must be an sdekit.SDE or a ClosedForm; got {type(problem).__name__}")
    for name, v, lo in (("base_steps", base_steps, 1), ("levels", levels, 2), ("n_paths", n_paths, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    if not callable(phi):
        raise ValueError(f"phi must be callable phi(x) -> (n,); got {phi!r}")
    if coupled:
        if exact_fn is None and isinstance(problem, ClosedForm) and t0 == 0.0:
            exact_fn = problem.exact_at(t1)
        if exact_fn is None:
            raise ValueError("coupled=True needs exact_fn(x0, W_T) -> X(T) (or a ClosedForm problem with t0 = 0); "
                             "pass coupled=False with exact_expectation for plain Monte Carlo")
    elif exact_expectation is None or not np.isfinite(exact_expectation):
        raise ValueError(f"coupled=False needs a finite exact_expectation = E phi(X(T)); got {exact_expectation!r}")
    x0_arr = np.array(np.broadcast_to(np.asarray(x0, dtype=float).reshape(-1, sde.dim), (n_paths, sde.dim)))
    fine = base_steps * 2 ** (levels - 1)
    if coupled:
        w = brownian_terminal(seed, n_paths, sde.m, t0, t1, fine, method=brownian)
        exact = np.asarray(exact_fn(x0_arr.copy(), w), dtype=float).reshape(n_paths, sde.dim)
        reference = _phi_values(phi, exact)
    else:
        reference = np.full(n_paths, float(exact_expectation))
    hs = np.empty(levels)
    diffs = np.empty((levels, n_paths))
    for lev in range(levels):
        steps = base_steps * 2**lev
        sol = simulate(sde, x0_arr.copy(), (t0, t1), steps=steps, n_paths=n_paths, seed=seed, solver=solver,
                       noise_substeps=2 ** (levels - 1 - lev), threads=threads)
        hs[lev] = abs(t1 - t0) / steps
        diffs[lev] = _phi_values(phi, sol.final) - reference
    return WeakErrors(hs, diffs, bool(coupled))


def fit_weak_order(weak: WeakErrors | tuple[Any, Any], *, n_boot: int = 400, level: float = 0.99, seed: int = 0,
                   alpha: float = DEFAULT_ALPHA, min_levels: int = 5) -> OrderFit:
    """Weak order from per-path differences: OLS slope of log |mean_p d[l, p]| on log h_l, bootstrap CI.

    weak: a `WeakErrors` or (hs, diffs) with diffs of shape (L, P). Needs L >= min_levels (5, as
    VALIDATION.md §4 asks). Every level's mean must be significantly nonzero: |z_l| > Phi^{-1}(1 -
    alpha / (2 L)) (false-alarm rate alpha for "some unresolved level looks resolved", default 1e-6);
    otherwise `UnresolvedWeakError` lists the levels. CI: ``n_boot`` resamples of the P paths with
    replacement (the same paths at every level, keeping the levels' correlation), each refitted;
    percentile interval at ``level``.
    """
    if isinstance(weak, WeakErrors):
        hs, diffs = weak.hs, weak.diffs
    else:
        hs, diffs = weak
    hs = np.asarray(hs, dtype=float)
    diffs = np.asarray(diffs, dtype=float)
    alpha = check_alpha(alpha)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be a confidence level in (0, 1); got {level!r}")
    if diffs.ndim != 2:
        raise ValueError(f"diffs must have shape (levels, paths); got {diffs.shape}")
    n_levels, n_paths = diffs.shape
    if n_levels < min_levels:
        raise ValueError(f"levels: a weak-order fit needs >= {min_levels} levels (VALIDATION.md §4); got {n_levels}")
    if hs.shape != (n_levels,) or np.any(hs <= 0) or np.any(np.diff(hs) >= 0):
        raise ValueError(f"hs must be positive, strictly decreasing, one per level ({n_levels}); got {hs}")
    if n_paths < 2 or not np.all(np.isfinite(diffs)):
        raise ValueError("diffs must be finite with at least 2 paths per level")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10; got {n_boot!r}")
    data = WeakErrors(hs, diffs, True)
    ok = data.resolved(alpha)
    if not np.all(ok):
        bad = ", ".join(f"level {i} (h = {hs[i]:.4g}: mean {data.means[i]:+.3g}, se {data.stderr[i]:.2g}, "
                        f"z = {data.z[i]:+.2f})" for i in np.flatnonzero(~ok))
        raise UnresolvedWeakError(
            f"weak error not significantly nonzero at {bad}; need |z| > {two_sided_z(alpha / n_levels):.2f} "
            f"(alpha = {alpha:g} over {n_levels} levels). Raise n_paths, use a coupled estimator, or use "
            f"exact moments (em_weak_errors_linear)")
    errors = data.errors
    order, _ = loglog_slope(hs, errors)
    rng = np.random.default_rng(seed)
    x = np.log(hs)
    xc = x - x.mean()
    slopes = np.empty(n_boot)
    chunk = max(1, min(n_boot, (1 << 22) // max(n_paths, 1)))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n_paths, size=(b, n_paths))
        counts = np.bincount((idx + n_paths * np.arange(b)[:, None]).ravel(), minlength=b * n_paths)
        boot = diffs @ counts.reshape(b, n_paths).T.astype(float) / n_paths  # (L, b)
        y = np.log(np.maximum(np.abs(boot), np.finfo(float).tiny))
        slopes[start:start + b] = (xc[:, None] * (y - y.mean(axis=0))).sum(axis=0) / float(xc @ xc)
    lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    return OrderFit(order, float(lo), float(hi), errors, hs)


def em_weak_errors_linear(A: Any, B: Any, x0: Any, T: float, base_steps: int, levels: int, *,
                          cov0: Any = None, moments: str = "both",
                          recursion: LinearLaw | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact weak errors of Euler–Maruyama on dX = -A X dt + B dW, no Monte Carlo (VALIDATION.md §1a).

    X_0 ~ N(x0, cov0) (cov0 = 0: a point). Level l: n = base_steps 2^l steps of h = T / n; EM's law is
    m_n = M^n x0, S_{k+1} = M S_k M^T + h Q (M = I - h A, Q = B B^T: `OrnsteinUhlenbeck.euler_maruyama_law`);
    the exact law is m_T = e^{-AT} x0, S_T = e^{-AT} cov0 e^{-A^T T} + Sigma_T. Returns (hs, errors) with
    e_l = ||m_n - m_T||_2 + ||S_n - S_T||_F (moments="both"), or only the mean ("mean") or covariance
    ("cov") term: the weak errors of phi in {x_i} and {x_i x_j}. Fit with `fit_order_deterministic`
    (EM: order 1). recursion(mean0, cov0, h, steps) -> (mean, cov) replaces EM's (e.g. to score another
    linear one-step scheme X' = M X + G xi, or a planted bug).
    """
    if moments not in ("both", "mean", "cov"):
        raise ValueError(f"moments must be 'both', 'mean' or 'cov'; got {moments!r}")
    for name, v, lo in (("base_steps", base_steps, 1), ("levels", levels, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    if not (np.isfinite(T) and T > 0):
        raise ValueError(f"T must be a positive time; got {T!r}")
    ou = OrnsteinUhlenbeck(A, B)
    d = ou.dim
    m0 = np.asarray(x0, dtype=float).reshape(d)
    s0 = np.zeros((d, d)) if cov0 is None else np.asarray(cov0, dtype=float).reshape(d, d)
    law = ou.euler_maruyama_law if recursion is None else recursion
    decay = sla.expm(-ou.A * T)
    _, sigma_t = ou.transition(m0, T)
    m_exact = decay @ m0
    s_exact = decay @ s0 @ decay.T + sigma_t
    hs = np.empty(levels)
    errors = np.empty(levels)
    for lev in range(levels):
        n = base_steps * 2**lev
        hs[lev] = T / n
        m, s = law(m0, s0, hs[lev], n)
        e_mean = float(np.linalg.norm(np.asarray(m) - m_exact))
        e_cov = float(np.linalg.norm(np.asarray(s) - s_exact))
        errors[lev] = {"both": e_mean + e_cov, "mean": e_mean, "cov": e_cov}[moments]
    return hs, errors
