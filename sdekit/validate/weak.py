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

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.stats as st

from sdekit.errors import SDEKitError, SDEKitWarning
from sdekit.processes.ou import OrnsteinUhlenbeck
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.validate.checks import (
    check_alpha,
    check_callable,
    check_count,
    check_number,
    check_seed,
    checked_output,
    real_array,
)
from sdekit.validate.order import (
    ClosedForm,
    OrderFit,
    brownian_terminal,
    exact_terminal,
    initial_states,
    loglog_slope,
    time_span,
)

PhiFn = Callable[[np.ndarray], np.ndarray]
ExactFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
LinearLaw = Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, np.ndarray]]

DEFAULT_ALPHA = 1e-6


class UnresolvedWeakError(ValueError):
    """A weak-error level's mean difference is not significantly nonzero: the order cannot be fitted."""


class UnresolvedWeakWarning(SDEKitWarning):
    """Every level of a weak-error table lies within one standard error of zero: the table is Monte Carlo noise."""


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

    @property
    def all_within_stderr(self) -> bool:
        """True when every level's |mean| is at most its standard error (and some se > 0): no level is resolved
        even at one standard error, so the errors are Monte Carlo noise, not a convergence result."""
        se = self.stderr
        return bool(np.all(np.abs(self.means) <= se) and np.any(se > 0))

    def unresolved_message(self) -> str:
        """One line naming the numbers behind `all_within_stderr`: the largest |z|, its level and P."""
        z = np.abs(self.z)
        i = int(np.argmax(z))
        return (f"weak errors unresolved: every level's |mean| is within one standard error (largest |z| = {z[i]:.2f} "
                f"at h = {self.hs[i]:.4g}: mean {self.means[i]:+.3g}, se {self.stderr[i]:.2g}; P = {self.n_paths} "
                f"paths): the table is Monte Carlo noise, not a weak error; "
                + ("raise n_paths" if self.coupled else "raise n_paths or use the coupled estimator"))

    def summary(self, alpha: float = DEFAULT_ALPHA) -> str:
        """One line per level: h, mean, se, z and whether it is resolved at rate alpha (a last line says so when
        every level is within one standard error)."""
        ok = self.resolved(alpha)
        lines = [f"weak errors ({'coupled' if self.coupled else 'vs exact expectation'}, P = {self.n_paths}; "
                 f"resolved: |z| > {two_sided_z(alpha / self.hs.size):.2f} at alpha = {alpha:g})"]
        for h, m, s, z, r in zip(self.hs, self.means, self.stderr, self.z, ok):
            lines.append(f"  h = {h:.4g}: mean {m:+.4g} +- {s:.2g} (z = {z:+.1f}) {'ok' if r else 'UNRESOLVED'}")
        if self.all_within_stderr:
            lines.append("  " + self.unresolved_message())
        return "\n".join(lines)


def warn_if_unresolved(weak: WeakErrors, what: str, stacklevel: int = 3) -> bool:
    """Warn (`UnresolvedWeakWarning`, one line) when every level of `weak` is within one standard error of zero;
    returns whether it warned."""
    if not weak.all_within_stderr:
        return False
    warnings.warn(f"{what}: {weak.unresolved_message()}", UnresolvedWeakWarning, stacklevel=stacklevel)
    return True


def _phi_values(phi: PhiFn, x: np.ndarray) -> np.ndarray:
    """phi(x) as (n,) finite real values ((n, 1) is read as one column; nothing else is reshaped)."""
    v = real_array(phi(x.copy()), "phi's output")
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != (x.shape[0],):
        raise SDEKitError(f"phi must map states (n, dim) to values (n,); got shape {v.shape} for states of shape "
                          f"{x.shape}")
    if not np.all(np.isfinite(v)):
        raise SDEKitError(f"phi returned {int(np.sum(~np.isfinite(v)))} non-finite values on states of shape {x.shape}")
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

    x0 is one state or one per path; phi is probed on x0 before any solve; exact_fn's output must have shape
    (n_paths, dim) ((n_paths,) when dim = 1). When every level's |mean| is within one standard error the errors
    are noise: an `UnresolvedWeakWarning` (an `SDEKitWarning`) says so, naming the largest |z|.
    """
    sde = problem.sde if isinstance(problem, ClosedForm) else problem
    if not isinstance(sde, SDE):
        raise SDEKitError(f"problem must be an sdekit.SDE or a ClosedForm; got {type(problem).__name__}")
    base_steps = check_count(base_steps, "base_steps")
    levels = check_count(levels, "levels", 2)
    n_paths = check_count(n_paths, "n_paths", 2)
    seed = check_seed(seed)
    t0, t1 = time_span(t0, t1)
    check_callable(phi, "phi", "phi(x) -> (n,)")
    if coupled:
        if exact_fn is None and isinstance(problem, ClosedForm) and t0 == 0.0:
            exact_fn = problem.exact_at(t1)
        if exact_fn is None:
            raise SDEKitError("coupled=True needs exact_fn(x0, W_T) -> X(T) (or a ClosedForm problem with t0 = 0); "
                              "pass coupled=False with exact_expectation for plain Monte Carlo")
        check_callable(exact_fn, "exact_fn", "exact_fn(x0, w) -> X(T) of shape (n_paths, dim)")
    elif exact_expectation is None:
        raise SDEKitError("coupled=False needs a finite exact_expectation = E phi(X(T)); got None")
    else:
        exact_expectation = check_number(exact_expectation, "exact_expectation")
    x0_arr = initial_states(x0, sde.dim, n_paths)
    _phi_values(phi, x0_arr)  # probe phi before any solve
    fine = base_steps * 2 ** (levels - 1)
    if coupled:
        w = brownian_terminal(seed, n_paths, sde.m, t0, t1, fine, method=brownian)
        reference = _phi_values(phi, exact_terminal(exact_fn, x0_arr, w))
    else:
        reference = np.full(n_paths, exact_expectation)
    hs = np.empty(levels)
    diffs = np.empty((levels, n_paths))
    for lev in range(levels):
        steps = base_steps * 2**lev
        sol = simulate(sde, x0_arr.copy(), (t0, t1), steps=steps, n_paths=n_paths, seed=seed, solver=solver,
                       noise_substeps=2 ** (levels - 1 - lev), threads=threads)
        hs[lev] = abs(t1 - t0) / steps
        diffs[lev] = _phi_values(phi, sol.final) - reference
    weak = WeakErrors(hs, diffs, bool(coupled))
    warn_if_unresolved(weak, f"{sde.name}/{solver}")
    return weak


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
        try:
            hs, diffs = weak
        except (TypeError, ValueError):
            raise SDEKitError(f"weak must be a WeakErrors or a pair (hs, diffs); got {type(weak).__name__}") from None
    hs = real_array(hs, "hs")
    diffs = real_array(diffs, "diffs")
    alpha = check_alpha(alpha)
    level = check_alpha(level, "level")
    seed = check_seed(seed)
    min_levels = check_count(min_levels, "min_levels", 2)
    if diffs.ndim != 2:
        raise SDEKitError(f"diffs must have shape (levels, paths); got {diffs.shape}")
    n_levels, n_paths = diffs.shape
    if n_levels < min_levels:
        raise SDEKitError(f"levels: a weak-order fit needs >= {min_levels} levels (VALIDATION.md §4); got {n_levels}")
    if hs.shape != (n_levels,) or not np.all(np.isfinite(hs)) or np.any(hs <= 0) or np.any(np.diff(hs) >= 0):
        raise SDEKitError(f"hs must be positive, strictly decreasing, one per level ({n_levels}); got {hs}")
    if n_paths < 2 or not np.all(np.isfinite(diffs)):
        raise SDEKitError("diffs must be finite with at least 2 paths per level")
    n_boot = check_count(n_boot, "n_boot", 10)
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
        raise SDEKitError(f"moments must be 'both', 'mean' or 'cov'; got {moments!r}")
    base_steps = check_count(base_steps, "base_steps")
    levels = check_count(levels, "levels", 2)
    T = check_number(T, "T", minimum=0.0, strict=True)
    if recursion is not None:
        check_callable(recursion, "recursion", "recursion(mean0, cov0, h, steps) -> (mean, cov)")
    ou = OrnsteinUhlenbeck(A, B)
    d = ou.dim
    m0 = real_array(x0, "x0")
    if m0.size != d or m0.ndim > 1 or not np.all(np.isfinite(m0)):
        raise SDEKitError(f"x0 must be a finite state of shape ({d},) (d from A); got shape {m0.shape}")
    m0 = m0.reshape(d)
    s0 = np.zeros((d, d)) if cov0 is None else real_array(cov0, "cov0")
    if d == 1 and s0.size == 1:
        s0 = s0.reshape(1, 1)
    if s0.shape != (d, d) or not np.all(np.isfinite(s0)):
        raise SDEKitError(f"cov0 must be a finite ({d}, {d}) matrix (d from A); got shape {s0.shape}")
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
        law_h = law(m0.copy(), s0.copy(), hs[lev], n)
        if not (isinstance(law_h, tuple | list) and len(law_h) == 2):
            raise SDEKitError(f"recursion must return a pair (mean, cov); got {type(law_h).__name__}")
        m = checked_output(law_h[0], "recursion's mean", (d,), f"the mean after {n} steps")
        s = checked_output(law_h[1], "recursion's cov", (d, d), f"the covariance after {n} steps")
        e_mean = float(np.linalg.norm(m - m_exact))
        e_cov = float(np.linalg.norm(s - s_exact))
        errors[lev] = {"both": e_mean + e_cov, "mean": e_mean, "cov": e_cov}[moments]
    return hs, errors
