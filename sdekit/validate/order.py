"""Convergence-order estimation (VALIDATION.md §4): shared-path strong errors, log-log fits, bootstrap CIs.

Strong order. For step sizes h_1 > ... > h_L and P paths, the strong error at level l is

    e_l = sqrt( (1/P) sum_p ||X_{h_l}(T; p) - X(T; p)||^2 ),

with X(T; p) the exact solution driven by the *same* Brownian path at every level (a coarse
increment is the sum of fine ones: sdekit's ``noise_substeps``). The order p_hat is the OLS
slope of

    log e_l = log C + p log h_l,

and its CI comes from a bootstrap over paths: resample the P paths with replacement, recompute
every e_l from the resampled squared errors, refit, and take the percentile interval.

Gate (VALIDATION.md §4): pass when p - 0.2 <= p_hat <= p + 0.25 and the CI half-width is below
0.15; if the CI is wider, raise P rather than loosen the window.

The module also holds the closed-form reference problems of VALIDATION.md §1a (GBM, S1, S2, S3
and Brownian motion itself), built on module-level functions so that every test using them
shares one compiled kernel per solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.noise.streams import STREAM_BROWNIAN, path_normals
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

ArrayFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# ---------------------------------------------------------------------------------------------
# Fits


@dataclass(frozen=True)
class OrderFit:
    """A fitted convergence order p_hat with a CI.

    order: OLS slope of log e_h on log h. ci_low / ci_high: the bootstrap percentile interval
    (equal to ``order`` for deterministic fits). errors: e_h per level. hs: the step sizes.
    """

    order: float
    ci_low: float
    ci_high: float
    errors: np.ndarray
    hs: np.ndarray

    @property
    def halfwidth(self) -> float:
        """Half the CI width, (ci_high - ci_low) / 2 (0 for deterministic fits)."""
        return 0.5 * (self.ci_high - self.ci_low)

    @property
    def pairwise(self) -> np.ndarray:
        """Local orders log(e_l / e_{l+1}) / log(h_l / h_{l+1}) between consecutive levels."""
        return np.diff(np.log(self.errors)) / np.diff(np.log(self.hs))

    def passes(self, expected: float, lo: float = 0.2, hi: float = 0.25, max_halfwidth: float = 0.15,
               max_pairwise_dev: float | None = None) -> bool:
        """VALIDATION.md §4 gate: expected - lo <= order <= expected + hi and CI half-width < max_halfwidth.

        max_pairwise_dev (off by default): also require every pairwise order within that distance
        of `expected`. The OLS slope alone can pass a sequence that is not a power law at all, e.g.
        errors flat at O(1) on all levels but the finest (pairwise [-0.1, 0.1, 0.1, 0.35, 4.0]
        fits to 0.69, inside the EM window).
        """
        ok = expected - lo <= self.order <= expected + hi and self.halfwidth < max_halfwidth
        if max_pairwise_dev is not None:
            ok = ok and bool(np.all(np.abs(self.pairwise - expected) <= max_pairwise_dev))
        return bool(ok)

    def summary(self) -> str:
        """One line for assertion messages: order, CI, errors and pairwise orders."""
        errs = ", ".join(f"{e:.3g}" for e in self.errors)
        pw = ", ".join(f"{q:.2f}" for q in self.pairwise)
        return (f"order {self.order:.3f}, CI [{self.ci_low:.3f}, {self.ci_high:.3f}] "
                f"(half-width {self.halfwidth:.3f}); errors [{errs}]; pairwise [{pw}]")


def _check_levels(hs: np.ndarray, n_levels: int) -> None:
    if hs.ndim != 1 or hs.size != n_levels:
        raise SDEKitError(f"hs must be 1-D with one entry per level ({n_levels}); got shape {hs.shape}")
    if hs.size < 2:
        raise SDEKitError("levels: need at least two levels to fit an order (VALIDATION.md asks for five)")
    if not np.all(np.isfinite(hs)) or np.any(hs <= 0) or np.any(np.diff(hs) >= 0):
        raise SDEKitError(f"hs must be finite, positive and strictly decreasing; got {hs}")


def loglog_slope(hs: Any, errors: Any) -> tuple[float, float]:
    """OLS fit of log e = log C + p log h; returns (p, log C)."""
    h = real_array(hs, "hs")
    e = real_array(errors, "errors")
    if h.ndim != 1 or e.shape != h.shape or h.size < 2:
        raise SDEKitError(f"hs and errors must be 1-D of one common length >= 2; got shapes {h.shape} and {e.shape}")
    if not (np.all(np.isfinite(h)) and np.all(h > 0) and np.all(np.isfinite(e)) and np.all(e > 0)):
        raise SDEKitError(f"hs and errors must be finite and positive for a log-log fit; got hs {h}, errors {e}")
    if np.ptp(h) == 0:
        raise SDEKitError(f"hs must hold at least two distinct step sizes; got {h}")
    x = np.log(h)
    y = np.log(e)
    xc = x - x.mean()
    p = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    return p, float(y.mean() - p * x.mean())


def fit_order(hs: Any, sq_errors: Any, *, n_boot: int = 400, level: float = 0.99, seed: int = 0) -> OrderFit:
    """Strong order from per-path squared errors, with a bootstrap CI over paths.

    hs: step sizes h_1 > ... > h_L. sq_errors: array (L, P) of ||X_h(T) - X(T)||^2 per level
    and path (or a zero-argument callable returning it). e_l = sqrt(mean_p sq_errors[l, p]);
    order = OLS slope of log e_l on log h_l. CI: ``n_boot`` resamples of the P paths with
    replacement (numpy Generator seeded with ``seed``, so the interval is reproducible), each
    refitted; the interval is the [(1 - level) / 2, (1 + level) / 2] percentile range.
    """
    if callable(sq_errors):
        sq_errors = sq_errors()
    hs = real_array(hs, "hs")
    sq = real_array(sq_errors, "sq_errors")
    n_boot = check_count(n_boot, "n_boot", 10)
    level = check_alpha(level, "level")
    seed = check_seed(seed)
    if sq.ndim != 2:
        raise SDEKitError(f"sq_errors must have shape (levels, paths); got {sq.shape}")
    _check_levels(hs, sq.shape[0])
    if not np.all(np.isfinite(sq)) or np.any(sq < 0):
        raise SDEKitError("sq_errors must be finite and non-negative")
    n_levels, n_paths = sq.shape
    if n_paths < 2:
        raise SDEKitError(f"sq_errors must hold at least 2 paths per level for a bootstrap CI; got {n_paths}")
    errors = np.sqrt(sq.mean(axis=1))
    if np.any(errors == 0):
        raise SDEKitError("sq_errors: an error level is exactly zero, so the order is undefined (is the solver "
                          "exact here?)")
    order, _ = loglog_slope(hs, errors)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_paths, size=(n_boot, n_paths))
    counts = np.bincount((idx + n_paths * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n_paths)
    counts = counts.reshape(n_boot, n_paths).astype(float)
    boot_e = np.sqrt(sq @ counts.T / n_paths)  # (L, B)
    x = np.log(hs)
    xc = (x - x.mean())[:, None]
    y = np.log(np.maximum(boot_e, np.finfo(float).tiny))
    slopes = (xc * (y - y.mean(axis=0))).sum(axis=0) / float((xc**2).sum())
    lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    return OrderFit(order, float(lo), float(hi), errors, hs)


def fit_order_deterministic(hs: Any, errors: Any) -> OrderFit:
    """Order from deterministic errors e_l (ODE global errors, exact weak-error recursions).

    order = OLS slope of log e_l on log h_l; no resampling, so ci_low = ci_high = order and
    the gate reduces to the window test. Drop coarse (pre-asymptotic) levels before calling.
    """
    hs = real_array(hs, "hs")
    errors = np.abs(real_array(errors, "errors"))
    if errors.ndim != 1:
        raise SDEKitError(f"errors must be 1-D (one per level); got shape {errors.shape}")
    _check_levels(hs, errors.size)
    if np.any(errors == 0) or not np.all(np.isfinite(errors)):
        raise SDEKitError(f"errors must be finite and non-zero; got {errors}")
    order, _ = loglog_slope(hs, errors)
    return OrderFit(order, order, order, errors, hs)


# ---------------------------------------------------------------------------------------------
# Brownian path and strong errors


def brownian_terminal(seed: int, n_paths: int, m: int, t0: float, t1: float, fine_steps: int, *,
                      method: str = "normals", max_block: int = 1 << 22) -> np.ndarray:
    """W(t1) - W(t0) of each path, shape (n_paths, m), as sdekit's kernels see it.

    Stream 0 of path p holds the increments in the order (fine step, component), each a
    standard normal z scaled by sqrt(h_f), h_f = |t1 - t0| / fine_steps. So
    W_j = sum_k sqrt(h_f) z[k m + j]. method="normals" sums `path_normals` (in blocks of at
    most ``max_block`` numbers); method="simulate" integrates dX = 0 dt + 1 dW (diagonal noise,
    dim m) with Euler–Maruyama, which is exact for it, and returns X(t1).
    """
    n_paths, m, fine_steps = check_count(n_paths, "n_paths"), check_count(m, "m"), check_count(fine_steps, "fine_steps")
    if method == "simulate":
        sol = simulate(brownian_problem(m), np.zeros(m), (t0, t1), steps=fine_steps, n_paths=n_paths, seed=seed,
                       solver="euler_maruyama")
        return sol.ys[-1]
    if method != "normals":
        raise SDEKitError(f"method (brownian) must be 'normals' or 'simulate'; got {method!r}")
    n_draws = fine_steps * m
    sq = np.sqrt(abs(t1 - t0) / fine_steps)
    out = np.empty((n_paths, m))
    block = max(1, max_block // max(n_draws, 1))
    for start in range(0, n_paths, block):
        stop = min(n_paths, start + block)
        z = path_normals(seed, stop - start, n_draws, path_offset=start, stream=STREAM_BROWNIAN)
        out[start:stop] = (sq * z).reshape(stop - start, fine_steps, m).sum(axis=1)
    return out


def initial_states(x0: Any, dim: int, n_paths: int, name: str = "x0") -> np.ndarray:
    """x0 as a fresh (n_paths, dim) array: one state (a number when dim = 1, shape (dim,) or (1, dim)) repeated on
    every path, or one state per path, shape (n_paths, dim) ((n_paths,) when dim = 1). Finite real values only."""
    arr = real_array(x0, name)
    if arr.shape in ((), (dim,), (1, dim)) and arr.size == dim:
        arr = np.broadcast_to(arr.reshape(1, dim), (n_paths, dim))
    elif dim == 1 and arr.shape == (n_paths,):
        arr = arr.reshape(n_paths, 1)
    elif arr.shape != (n_paths, dim):
        raise SDEKitError(f"{name} must be one state of shape ({dim},) or one per path of shape ({n_paths}, {dim}) "
                          f"(n_paths = {n_paths}, dim = {dim}); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise SDEKitError(f"{name} must be finite; got {np.asarray(x0).ravel()[:4].tolist()}...")
    return np.array(arr)


def exact_terminal(exact_fn: ArrayFn, x0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X(T) = exact_fn(x0, W_T), checked: real, finite, of shape (n_paths, dim) (or (n_paths,) when dim = 1, read
    as one column). Any other shape is refused, never reshaped or broadcast: a (dim, n_paths) array or an (n, n)
    outer broadcast would otherwise pair paths with the wrong exact values."""
    n, d = x0.shape
    return checked_output(exact_fn(x0.copy(), w.copy()), "exact_fn", (n, d), "(n_paths, dim), X(T) for each path",
                          flat_ok=True)


def time_span(t0: Any, t1: Any) -> tuple[float, float]:
    """(t0, t1) as finite floats with t1 > t0."""
    t0, t1 = check_number(t0, "t0"), check_number(t1, "t1")
    if not t1 > t0:
        raise SDEKitError(f"t1 must be > t0; got t0 = {t0:g}, t1 = {t1:g}")
    return t0, t1


def strong_errors(problem: SDE | ClosedForm, solver: str, x0: Any, t1: float, exact_fn: ArrayFn | None, base_steps: int,
                  levels: int, n_paths: int, seed: int, *, t0: float = 0.0, threads: int | None = None,
                  brownian: str = "normals", reference_levels: int = 2,
                  reference_solver: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-path squared strong errors at `levels` nested step sizes on one Brownian path per path.

    Level l (0 .. levels-1) runs `solver` with steps = base_steps 2^l and noise_substeps =
    2^(levels-1-l), so every level integrates the Brownian path of the finest grid
    (base_steps 2^(levels-1) steps). The exact terminal value is X(T) = exact_fn(x0, W_T), with
    x0 of shape (n_paths, dim) and W_T = W(t1) - W(t0) of shape (n_paths, m) (see
    `brownian_terminal`; ``brownian`` picks its method). exact_fn closes over t1 and the
    parameters. Returns (hs, sq_errors): hs of shape (levels,), decreasing, and
    sq_errors[l, p] = ||X_{h_l}(T; p) - X(T; p)||^2, shape (levels, n_paths).

    Without a closed form (exact_fn=None) the reference is a solve by ``reference_solver``
    (default: `solver` itself) ``reference_levels`` halvings finer than the finest level, on the
    same Brownian path (and I_(1,0)); every level then uses noise_substeps =
    2^(levels-1-l+reference_levels). diffrax's test_sde.py uses two levels.

    problem may be a `ClosedForm`: with exact_fn=None and t0 = 0 its exact solution is the reference. x0 is one
    state or one per path (`initial_states`); exact_fn's output must have shape (n_paths, dim) ((n_paths,) is read
    as one column when dim = 1; nothing else is reshaped) and be finite (`exact_terminal`).
    """
    if isinstance(problem, ClosedForm):
        if exact_fn is None and t0 == 0.0:
            exact_fn = problem.exact_at(t1)
        problem = problem.sde
    if not isinstance(problem, SDE):
        raise SDEKitError(f"problem must be an sdekit.SDE or a ClosedForm; got {type(problem).__name__}")
    base_steps = check_count(base_steps, "base_steps")
    levels = check_count(levels, "levels", 2)
    n_paths = check_count(n_paths, "n_paths")
    seed = check_seed(seed)
    t0, t1 = time_span(t0, t1)
    if exact_fn is not None:
        check_callable(exact_fn, "exact_fn", "exact_fn(x0, w) -> X(T) of shape (n_paths, dim)")
    extra = 0 if exact_fn is not None else check_count(reference_levels, "reference_levels", 0)
    x0_arr = initial_states(x0, problem.dim, n_paths)
    if exact_fn is not None:
        w = brownian_terminal(seed, n_paths, problem.m, t0, t1, base_steps * 2 ** (levels - 1), method=brownian)
        exact = exact_terminal(exact_fn, x0_arr, w)
    else:
        exact = simulate(problem, np.array(x0_arr), (t0, t1), steps=base_steps * 2 ** (levels - 1 + extra),
                         n_paths=n_paths, seed=seed, solver=reference_solver or solver, threads=threads).ys[-1]
    hs = np.empty(levels)
    sq = np.empty((levels, n_paths))
    for lev in range(levels):
        steps = base_steps * 2**lev
        sol = simulate(problem, np.array(x0_arr), (t0, t1), steps=steps, n_paths=n_paths, seed=seed, solver=solver,
                       noise_substeps=2 ** (levels - 1 - lev + extra), threads=threads)
        hs[lev] = abs(t1 - t0) / steps
        sq[lev] = ((sol.ys[-1] - exact) ** 2).sum(axis=1)
    return hs, sq


# ---------------------------------------------------------------------------------------------
# Closed-form reference problems (VALIDATION.md §1a). Functions live at module level so that all
# users share one Numba compilation per (solver, problem).


@dataclass(frozen=True)
class ClosedForm:
    """An SDE with a strong solution X(t) = exact(x0, W_t, t): x0 (n, dim), W_t (n, m) -> (n, dim)."""

    sde: SDE
    exact: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    commutative: bool = True
    additive: bool = False

    def exact_at(self, t: float) -> ArrayFn:
        """exact_fn(x0, w) at a fixed time, the form `strong_errors` takes."""
        return lambda x0, w: self.exact(x0, w, t)


def _gbm_f(x, t, p):
    return p[0] * x


def _gbm_g(x, t, p):
    return p[1] * x


def _s1_f(x, t, p):
    return -p[0] * p[0] * np.sin(x) * np.cos(x) ** 3


def _s1_g(x, t, p):
    return p[0] * np.cos(x) ** 2


def _s2_f(x, t, p):
    return 0.5 * x


def _s2_g(x, t, p):
    return np.sqrt(1.0 + x * x)


def _s3_f(x, t, p):
    return p[1] / np.sqrt(1.0 + t) - x / (2.0 * (1.0 + t)) - p[2] * np.sin(x)


def _s3_g(x, t, p):
    return p[0] * p[1] / np.sqrt(1.0 + t)


def _zero(x, t, p):
    return 0.0


def _one(x, t, p):
    return 1.0


def gbm_problem(mu: float, sigma: float, calculus: str = "ito") -> ClosedForm:
    """GBM dX = mu X dt + sigma X dW (scalar noise), X_t = X0 exp((mu - c sigma^2 / 2) t + sigma W_t).

    c = 1 for Itô, 0 for Stratonovich (calculus="stratonovich": the integral sigma X o dW).
    """
    c = 1.0 if calculus == "ito" else 0.0

    def exact(x0: np.ndarray, w: np.ndarray, t: float) -> np.ndarray:
        return x0 * np.exp((mu - 0.5 * c * sigma**2) * t + sigma * w)

    sde = SDE(_gbm_f, _gbm_g, 1, noise="scalar", calculus=calculus, params=[mu, sigma], name=f"gbm_{calculus}")
    return ClosedForm(sde, exact)


def s1_problem(a: float) -> ClosedForm:
    """S1: dX = -a^2 sin X cos^3 X dt + a cos^2 X dW (Itô), X_t = arctan(a W_t + tan X0)."""

    def exact(x0: np.ndarray, w: np.ndarray, t: float) -> np.ndarray:
        return np.arctan(a * w + np.tan(x0))

    return ClosedForm(SDE(_s1_f, _s1_g, 1, noise="scalar", params=[a], name="s1"), exact)


def s2_problem() -> ClosedForm:
    """S2: dX = X/2 dt + sqrt(1 + X^2) dW (Itô), X_t = sinh(W_t + asinh X0)."""

    def exact(x0: np.ndarray, w: np.ndarray, t: float) -> np.ndarray:
        return np.sinh(w + np.arcsinh(x0))

    return ClosedForm(SDE(_s2_f, _s2_g, 1, noise="scalar", name="s2"), exact)


def s3_problem(alpha: float, beta: float) -> ClosedForm:
    """S3 (additive, time-dependent): dX = (b / sqrt(1+t) - X / (2 (1+t))) dt + a b / sqrt(1+t) dW.

    X_t = (X0 + b t + a b W_t) / sqrt(1 + t); a = alpha, b = beta.
    """

    def exact(x0: np.ndarray, w: np.ndarray, t: float) -> np.ndarray:
        return (x0 + beta * t + alpha * beta * w) / np.sqrt(1.0 + t)

    sde = SDE(_s3_f, _s3_g, 1, noise="additive", params=[alpha, beta, 0.0], name="s3")
    return ClosedForm(sde, exact, additive=True)


def s3_sine_problem(alpha: float, beta: float, eps: float) -> SDE:
    """S3 with a nonlinear drift term: dX = (b / sqrt(1+t) - X / (2 (1+t)) - eps sin X) dt + a b / sqrt(1+t) dW.

    No closed form (use a reference solve). S3's drift is affine in X, so for it the order-2
    terms g^2 f'' I_(1,1,0) of the Itô–Taylor expansion vanish and SRA1 shows strong order 2;
    the sine term (f'' != 0) brings out SRA1's general additive-noise order 1.5. It shares
    S3's compiled functions (eps is a runtime parameter).
    """
    return SDE(_s3_f, _s3_g, 1, noise="additive", params=[alpha, beta, eps], name="s3_sine")


def brownian_problem(dim: int = 1, noise: str = "diagonal") -> SDE:
    """dX = 0 dt + 1 dW in R^dim (noise "diagonal" or "additive"): X_t = X_0 + W_t, exact under every scheme."""
    return SDE(_zero, _one, dim, noise=noise, name="brownian")
