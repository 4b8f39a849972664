"""Generator checks: L phi from an SDE's coefficients, the local generator test, Dynkin's formula, linear moments.

The generator of dX = b dt + sigma dW (Itô) acts on a smooth test function phi as

    L phi(x) = b(x) . grad phi(x) + 1/2 tr(sigma sigma^T(x) Hess phi(x))            (VALIDATION.md §2 (i))

and it is what every consistent one-step scheme must reproduce in the limit h -> 0:
E[phi(X_h) - phi(x)] / h -> L phi(x). Three tests are built on it, each a *battery* gated at an overall
false-alarm rate alpha (default 1e-6), Bonferroni-split over the test functions (and states) inside it:

* `generator_test` (local): one step of size h from a fixed state x with N noise draws, with the martingale
  control variate grad phi(x)^T sigma(x) dW removed, so that the standard error is O(N^{-1/2}) whatever h is.
  It localises a wrong drift or diffusion to a state; `generator_scan` runs it at several states.
* `dynkin_test` (along paths): D = phi(X_T) - phi(X_0) - int_0^T L phi(X_s) ds has E D = 0 (up to the scheme's
  O(h) weak error) for the true process.
* `linear_moment_test`: for dX = -A X dt + B dW the moments close (m' = -A m, S' = -A S - S A^T + B B^T); the
  sample mean and second moments are compared with their exact values by a chi-square moment test.

A correct sampler fails a battery with probability at most alpha = 1e-6 (up to the stated O(h) bias, which the
defaults keep below one standard error); the planted bugs a sampler author makes -- the noise off by a factor
sqrt(2), the drift's sign flipped -- fail with p-values far below 1e-6 (see tests/test_generator.py).

Stratonovich SDEs are supported: their generator is that of the equivalent Itô SDE, whose drift
b + 1/2 sum_j (D sigma_j) sigma_j (sigma_j the j-th column of sigma) is computed by central finite differences
of the diffusion along its own columns (relative error ~1e-10; exactly zero for additive noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st
from numba.core.errors import NumbaError

from sdekit.errors import SDEKitError
from sdekit.noise.streams import STREAM_BROWNIAN, path_normals
from sdekit.processes.ou import OrnsteinUhlenbeck
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.validate.checks import check_alpha, real_array
from sdekit.validate.stats import CheckResult, moment_chi2, whiten

ArrayFn = Callable[[np.ndarray], np.ndarray]
StepFn = Callable[[np.ndarray, float, float, np.ndarray], np.ndarray]
Sampler = SDE | StepFn

EPS = float(np.finfo(float).eps)
ROUNDING_ULPS = 1000.0
SMALL_DIM = 8


# ----------------------------------------------------------------------------------------------- test functions


@dataclass(frozen=True)
class TestFunction:
    """A test function phi with its exact gradient and Hessian, all on batches x of shape (n, d).

    value(x) -> (n,), grad(x) -> (n, d), hess(x) -> (n, d, d). dim: the dimension it is defined for (None: any).
    """

    __test__ = False  # not a pytest test class

    name: str
    value: ArrayFn
    grad: ArrayFn
    hess: ArrayFn
    dim: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """phi(x) for x of shape (n, d)."""
        return self.value(x)


def coordinate(i: int, dim: int | None = None) -> TestFunction:
    """phi(x) = x_i: grad phi = e_i, Hess phi = 0, so L phi = b_i."""
    i = _index(i, dim, "i")

    def value(x: np.ndarray) -> np.ndarray:
        return x[:, i].copy()

    def grad(x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        out[:, i] = 1.0
        return out

    def hess(x: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], x.shape[1], x.shape[1]))

    return TestFunction(f"x[{i}]", value, grad, hess, dim)


def product(i: int, j: int, dim: int | None = None) -> TestFunction:
    """phi(x) = x_i x_j: grad phi = x_j e_i + x_i e_j, Hess phi = e_i e_j^T + e_j e_i^T.

    So L phi = b_i x_j + b_j x_i + (sigma sigma^T)_ij.
    """
    i, j = _index(i, dim, "i"), _index(j, dim, "j")

    def value(x: np.ndarray) -> np.ndarray:
        return x[:, i] * x[:, j]

    def grad(x: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        out[:, i] += x[:, j]
        out[:, j] += x[:, i]
        return out

    def hess(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], x.shape[1], x.shape[1]))
        out[:, i, j] += 1.0
        out[:, j, i] += 1.0
        return out

    return TestFunction(f"x[{i}]*x[{j}]", value, grad, hess, dim)


def cosine(u: Any) -> TestFunction:
    """phi(x) = cos(u.x): grad phi = -sin(u.x) u, Hess phi = -cos(u.x) u u^T."""
    u = _direction(u)

    def value(x: np.ndarray) -> np.ndarray:
        return np.cos(x @ u)

    def grad(x: np.ndarray) -> np.ndarray:
        return -np.sin(x @ u)[:, None] * u

    def hess(x: np.ndarray) -> np.ndarray:
        return -np.cos(x @ u)[:, None, None] * np.outer(u, u)

    return TestFunction(f"cos({_fmt_vec(u)}.x)", value, grad, hess, u.size)


def sine(u: Any) -> TestFunction:
    """phi(x) = sin(u.x): grad phi = cos(u.x) u, Hess phi = -sin(u.x) u u^T."""
    u = _direction(u)

    def value(x: np.ndarray) -> np.ndarray:
        return np.sin(x @ u)

    def grad(x: np.ndarray) -> np.ndarray:
        return np.cos(x @ u)[:, None] * u

    def hess(x: np.ndarray) -> np.ndarray:
        return -np.sin(x @ u)[:, None, None] * np.outer(u, u)

    return TestFunction(f"sin({_fmt_vec(u)}.x)", value, grad, hess, u.size)


def default_test_functions(dim: int) -> list[TestFunction]:
    """The default battery: x_i (i < d), x_i x_j (i <= j), cos(u_a.x) and sin(u_b.x).

    u_a = (1, -0.5, 1, -0.5, ...) and u_b = (0.7, 0.7, ...): fixed, so the battery is a function of d only.
    The coordinates see the drift; the products and the trigonometric functions see drift and diffusion.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise SDEKitError(f"dim must be a positive integer; got {dim!r}")
    phis = [coordinate(i, dim) for i in range(dim)]
    phis += [product(i, j, dim) for i in range(dim) for j in range(i, dim)]
    u_a = np.where(np.arange(dim) % 2 == 0, 1.0, -0.5)
    phis += [cosine(u_a), sine(np.full(dim, 0.7))]
    return phis


def derivative_errors(phi: TestFunction, x: Any, step: float = 1e-5) -> tuple[float, float]:
    """Max abs error of phi.grad and phi.hess at x against central differences of phi.value and phi.grad.

    grad_k ~ (phi(x + s e_k) - phi(x - s e_k)) / 2s and Hess_kl ~ (grad_l(x + s e_k) - grad_l(x - s e_k)) / 2s,
    both O(s^2); use it to check a hand-written TestFunction (errors ~1e-9 are fine, a wrong sign gives O(1)).
    """
    x = np.atleast_2d(real_array(x, "x"))
    if x.ndim != 2:
        raise SDEKitError(f"x must be a state (d,) or states (n, d); got shape {x.shape}")
    n, d = x.shape
    g, h = phi.grad(x), phi.hess(x)
    g_fd, h_fd = np.empty((n, d)), np.empty((n, d, d))
    for k in range(d):
        e = np.zeros(d)
        e[k] = step
        g_fd[:, k] = (phi.value(x + e) - phi.value(x - e)) / (2 * step)
        h_fd[:, k, :] = (phi.grad(x + e) - phi.grad(x - e)) / (2 * step)
    return float(np.max(np.abs(g - g_fd))), float(np.max(np.abs(h - h_fd)))


# ----------------------------------------------------------------------------------------------- coefficients


def ito_coefficients(sde: SDE, x: Any, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(b, sigma) of the Itô form at states x: b of shape (n, d), sigma of shape (n, d, m).

    Diagonal noise gives sigma = diag(g), scalar noise the column g (m = 1), additive noise diag(g) or the
    (d, m) matrix, general noise the matrix g. For a Stratonovich SDE b is the Itô-corrected drift
    b_i + 1/2 sum_j sum_k sigma_kj d_k sigma_ij, each column term (D sigma_j) sigma_j taken by a central
    difference of sigma_j along sigma_j itself (step ~6e-6 (1 + |x|), error O(step^2)).
    """
    if not isinstance(sde, SDE):
        raise SDEKitError(f"sde must be an sdekit.SDE; got {type(sde).__name__}")
    x = _states(x, sde.dim, "x")
    b = _drift(sde, x, t)
    sig = _diffusion(sde, x, t)
    if sde.calculus == "stratonovich" and sde.noise != "additive":
        b = b + 0.5 * _stratonovich_correction(sde, x, t, sig)
    return b, sig


def generator(sde: SDE, phi: TestFunction, x: Any, t: float = 0.0) -> np.ndarray:
    """L phi(x) = b(x) . grad phi(x) + 1/2 tr(sigma sigma^T(x) Hess phi(x)), shape (n,) for x of shape (n, d) or (d,).

    b and sigma are the Itô coefficients (`ito_coefficients`; Stratonovich SDEs are converted).
    """
    phi = _check_phis([phi], sde.dim)[0]
    x = _states(x, sde.dim, "x")
    b, sig = ito_coefficients(sde, x, t)
    return _apply_generator(phi, x, b, _covariance(sig))


# ----------------------------------------------------------------------------------------------- local generator test


@dataclass(frozen=True)
class GeneratorEstimate:
    """The local generator estimate for one test function at one state.

    estimate / se: G = mean[(phi(X_h) - phi(x) - grad phi(x)^T sigma(x) dW) / h] and its standard error
    (sample sd / sqrt(n)). raw_estimate / raw_se: the same without the control variate; raw_se grows like
    |sigma^T grad phi| / sqrt(n h). exact: L phi(x). rounding: the floating-point allowance added to the
    threshold (~1e-9 at h = 1e-4; it matters only when se = 0, e.g. phi = x_i under Euler–Maruyama).
    """

    phi: str
    state: tuple[float, ...]
    t: float
    h: float
    n: int
    estimate: float
    se: float
    raw_estimate: float
    raw_se: float
    exact: float
    rounding: float
    extrapolated: bool = False

    @property
    def z(self) -> float:
        """(estimate - exact) / max(se, rounding): the standardized error (se = 0 happens, e.g. x_i under EM)."""
        scale = max(self.se, self.rounding)
        return (self.estimate - self.exact) / scale if scale > 0 else 0.0


def generator_estimates(sde: SDE, x: Any, phis: Sequence[TestFunction] | None = None, *, h: float = 1e-4,
                        n: int = 200_000, seed: int = 0, solver: str | None = None, t: float = 0.0,
                        sampler: Sampler | None = None, extrapolate: bool = False) -> list[GeneratorEstimate]:
    """Local generator estimates at one state x (shape (d,)), one per test function.

    One step of size h of `solver` on `sampler` (default: `sde` itself) from X_0 = x on n paths; each path's
    dW = sqrt(h) z is rebuilt from the noise stream (`path_normals`, same seed), and

        G = (1/n) sum_p [phi(X_h^p) - phi(x) - grad phi(x)^T sigma(x) dW^p] / h,   E G = L phi(x) + O(h),

    with sigma from `sde` (the reference). extrapolate=True also runs h/2 on the same normals and returns
    2 G_{h/2} - G_h per path, which removes the O(h) bias at almost no cost in variance. `sampler` may also be
    a callable step(x, t, h, dw) -> x_new on (n, d) states and (n, m) increments (a hand-written scheme).
    """
    states = _states(x, sde.dim, "x")
    if states.shape[0] != 1:
        raise SDEKitError(f"x must be one state of shape ({sde.dim},); use generator_scan for several states")
    return _estimate_states(sde, states, phis, h=h, n=n, seed=seed, solver=solver, t=t, sampler=sampler,
                            extrapolate=extrapolate)[0]


def generator_test(sde: SDE, x: Any, phis: Sequence[TestFunction] | None = None, *, h: float = 1e-4,
                   n: int = 200_000, seed: int = 0, solver: str | None = None, t: float = 0.0, alpha: float = 1e-6,
                   bias_allowance: float = 0.0, extrapolate: bool = False, sampler: Sampler | None = None,
                   name: str | None = None) -> list[CheckResult]:
    """The local generator test with the martingale control variate at one state x (VALIDATION.md §2 (i)).

    For each test function (default `default_test_functions(d)`) it passes when
    |G - L phi(x)| <= z se + bias_allowance + rounding, with z = Phi^{-1}(1 - alpha / (2 k)) for k test
    functions (two-sided, Bonferroni), so a correct sampler fails the battery with probability <= alpha
    (default 1e-6). The O(h) bias of a consistent scheme must stay below se: with h = 1e-4 it is ~1e-4 |L^2 phi|
    against se ~ 1e-3 at n = 2e5; otherwise pass extrapolate=True (Richardson on h, h/2) or a bias_allowance.
    A sampler with noise scaled by sqrt(2) or the drift's sign flipped fails with p << 1e-6.
    """
    check_alpha(alpha)
    states = _states(x, sde.dim, "x")
    if states.shape[0] != 1:
        raise SDEKitError(f"x must be one state of shape ({sde.dim},); use generator_scan for several states")
    scan = generator_scan(sde, states, phis, h=h, n=n, seed=seed, solver=solver, t=t,
                          alpha=alpha, bias_allowance=bias_allowance, extrapolate=extrapolate, sampler=sampler,
                          name=name)
    return scan.results[0]


@dataclass(frozen=True)
class GeneratorScan:
    """`generator_test` at several states: results[s] is the battery at states[s] (all sharing one alpha)."""

    states: np.ndarray
    results: list[list[CheckResult]]
    estimates: list[list[GeneratorEstimate]]

    @property
    def passed(self) -> bool:
        """True when every test at every state passed."""
        return all(r.passed for res in self.results for r in res if r.gating)

    @property
    def failed_states(self) -> list[int]:
        """Indices of the states where some test function failed."""
        return [s for s, res in enumerate(self.results) if any(not r.passed for r in res if r.gating)]

    def summary(self) -> str:
        """One line per failing state: the state and the test functions that failed there, with their z."""
        lines = []
        for s in self.failed_states:
            bad = [f"{r.test} (z = {r.bias[0]:+.1f})" if r.bias else r.test for r in self.results[s] if not r.passed]
            lines.append(f"x = {_fmt_vec(self.states[s])}: " + ", ".join(bad))
        return "\n".join(lines) if lines else f"all {len(self.states)} states pass"


def generator_scan(sde: SDE, states: Any, phis: Sequence[TestFunction] | None = None, *, h: float = 1e-4,
                   n: int = 200_000, seed: int = 0, solver: str | None = None, t: float = 0.0, alpha: float = 1e-6,
                   bias_allowance: float = 0.0, extrapolate: bool = False, sampler: Sampler | None = None,
                   name: str | None = None) -> GeneratorScan:
    """`generator_test` at each row of states (shape (k, d)), Bonferroni over k states x the test functions.

    All states run in one solve (path block s starts at states[s]), so their noise is independent; the
    overall false-alarm rate of the scan is alpha (default 1e-6). `failed_states` and `summary()` say where
    the drift or diffusion is wrong: a sampler bug shows up at every state where it changes L phi.
    """
    check_alpha(alpha)
    bias_allowance = _nonneg(bias_allowance, "bias_allowance")
    states = _states(states, sde.dim, "states")
    phis = _check_phis(default_test_functions(sde.dim) if phis is None else phis, sde.dim)
    estimates = _estimate_states(sde, states, phis, h=h, n=n, seed=seed, solver=solver, t=t, sampler=sampler,
                                 extrapolate=extrapolate)
    each = alpha / (len(phis) * states.shape[0])
    zq = float(st.norm.isf(each / 2))
    label = name or sde.name
    results = []
    for row in estimates:
        res = []
        for e in row:
            diff = abs(e.estimate - e.exact)
            allow = bias_allowance + e.rounding
            thr = zq * e.se + allow
            excess = max(diff - allow, 0.0)
            if e.se > 0:
                pval = float(2 * st.norm.sf(excess / e.se))
            else:
                pval = 1.0 if excess == 0 else 0.0
            passed = bool(diff <= thr)  # False for NaN
            kind = "Richardson(h, h/2)" if e.extrapolated else f"h={e.h:.3g}"
            note = (f"G = {e.estimate:.6g} +- {e.se:.3g} vs L phi = {e.exact:.6g} (raw {e.raw_estimate:.6g} +- "
                    f"{e.raw_se:.3g}); {kind}, n={e.n}, per-test alpha {each:.3g}")
            res.append(CheckResult(label, f"generator {e.phi} at x={_fmt_vec(e.state)}", diff, thr, pval, passed,
                                   note=note, bias=(e.z,), alpha=each))
        results.append(res)
    return GeneratorScan(states, results, estimates)


# ----------------------------------------------------------------------------------------------- Dynkin


def dynkin_test(sde: SDE, x0: Any, t_span: Any, phis: Sequence[TestFunction] | None = None, *, steps: int,
                n_paths: int | None = None, seed: int = 0, solver: str | None = None, alpha: float = 1e-6,
                bias_allowance: float = 0.0, sampler: Sampler | None = None,
                name: str | None = None) -> list[CheckResult]:
    """Dynkin's formula along simulated paths: E[phi(X_T) - phi(X_0) - int_{t0}^{T} L phi(X_s) ds] = 0.

    Simulates `sampler` (default `sde`; or a callable step(x, t, h, dw)) from x0 (a state (d,) with n_paths,
    or samples (N, d)) over t_span = (t0, t1) with `steps` steps, saving every step; per path
    D = phi(X_T) - phi(X_0) - sum_k w_k L phi(X_k) (trapezoid weights w on the grid, L from `sde`). The mean of
    D is z-tested against 0 with its standard error: |mean D| <= z se + bias_allowance, z two-sided at
    alpha / k for k test functions (default alpha 1e-6 for the battery). E D = O(h) for a weak-order-1 scheme:
    choose steps so that this bias is below se (N bias^2 << 1), or give bias_allowance. A sampler with noise
    scaled by sqrt(2) or the drift's sign flipped fails with p << 1e-6.
    """
    check_alpha(alpha)
    bias_allowance = _nonneg(bias_allowance, "bias_allowance")
    steps = _int(steps, "steps")
    t0, t1 = _span(t_span)
    phis = _check_phis(default_test_functions(sde.dim) if phis is None else phis, sde.dim)
    starts = _initial(x0, sde.dim, n_paths)
    sampler = _check_sampler(sde, sde if sampler is None else sampler)
    n = starts.shape[0]
    if isinstance(sampler, SDE):
        sol = simulate(sampler, starts, (t0, t1), steps=steps, seed=seed, solver=solver, save_at="steps")
        ts, ys = np.asarray(sol.ts, dtype=float), sol.ys
    else:
        ts = np.linspace(t0, t1, steps + 1)
        ys = np.empty((steps + 1, n, sde.dim))
        ys[0] = starts
        z = path_normals(seed, n, steps * sde.m, stream=STREAM_BROWNIAN)
        for k in range(steps):
            hk = ts[k + 1] - ts[k]
            dw = np.sqrt(hk) * z[:, k * sde.m:(k + 1) * sde.m]
            ys[k + 1] = _step_output(sampler(ys[k].copy(), float(ts[k]), float(hk), dw), n, sde.dim)
    weights = np.zeros(ts.size)
    dts = np.diff(ts)
    weights[:-1] += 0.5 * dts
    weights[1:] += 0.5 * dts
    integral = np.zeros((len(phis), n))
    for k in range(ts.size):
        xk = np.ascontiguousarray(ys[k], dtype=float)
        b, sig = ito_coefficients(sde, xk, float(ts[k]))
        a = _covariance(sig)
        for j, phi in enumerate(phis):
            integral[j] += weights[k] * _apply_generator(phi, xk, b, a)
    x_first, x_last = np.ascontiguousarray(ys[0], dtype=float), np.ascontiguousarray(ys[-1], dtype=float)
    each = alpha / len(phis)
    zq = float(st.norm.isf(each / 2))
    out = []
    for j, phi in enumerate(phis):
        d = _values(phi, x_last) - _values(phi, x_first) - integral[j]
        mean = float(np.mean(d))
        se = float(np.std(d, ddof=1) / np.sqrt(n))
        excess = max(abs(mean) - bias_allowance, 0.0)
        pval = float(2 * st.norm.sf(excess / se)) if se > 0 else (1.0 if excess == 0 else 0.0)
        thr = zq * se + bias_allowance
        out.append(CheckResult(name or sde.name, f"Dynkin {phi.name}", abs(mean), thr, pval, bool(abs(mean) <= thr),
                               note=f"mean D = {mean:.4g} +- {se:.3g}; t in [{t0:g}, {t1:g}], steps={steps}, "
                                    f"N={n}, per-test alpha {each:.3g}",
                               bias=(mean / se if se > 0 else 0.0,), alpha=each))
    return out


# ----------------------------------------------------------------------------------------------- linear SDEs


def linear_moments(A: Any, B: Any, mean0: Any, cov0: Any, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Solution at time t of the moment ODEs of dX = -A X dt + B dW: m' = -A m, S' = -A S - S A^T + B B^T.

    m_t = e^{-At} m_0 and S_t = e^{-At} S_0 e^{-A^T t} + Sigma_t, with Sigma_t = int_0^t e^{-As} B B^T e^{-A^T s} ds
    the OU transition covariance (Van Loan, `OrnsteinUhlenbeck.transition`); valid for any A, stable or not.
    """
    ou, m0, s0 = _linear_setup(A, B, mean0, cov0)
    t = _finite(t, "t")
    decay = ou.transition(np.eye(ou.dim), t)[0].T  # rows of eye @ decay^T = decay^T
    mean_t, cov_ou = ou.transition(m0, t)
    cov = decay @ s0 @ decay.T + cov_ou
    return mean_t, 0.5 * (cov + cov.T)


def linear_moment_test(sample: Any, A: Any, B: Any, x0: Any, t: float, *, cov0: Any = None, alpha: float = 1e-6,
                       em_steps: int | None = None, name: str = "linear SDE") -> list[CheckResult]:
    """Chi-square moment test of a sample of X_t for dX = -A X dt + B dW started at x0 (or N(x0, cov0)).

    The reference law N(m_t, S_t) solves the moment ODEs (`linear_moments`); with em_steps = K it is instead
    the exact law of Euler–Maruyama with h = t / K (m' = M m, S' = M S M^T + h B B^T, M = I - h A), which
    removes the discretisation bias. The sample is whitened with (m_t, S_t) and the features z_i and z_i z_j
    (i <= j) are compared with their exact Gaussian moments:
    T = N rbar^T Cov^{-1} rbar ~ chi^2 with d + d(d+1)/2 degrees of freedom; fails when T > chi2.isf(alpha)
    (default alpha 1e-6). Exact for a Gaussian or point start. A planted sqrt(2) in B or a flipped drift sign
    moves m_t or S_t and fails with p << 1e-6 at a few thousand samples.
    """
    check_alpha(alpha)
    ou, m0, s0 = _linear_setup(A, B, x0, cov0)
    t = _nonneg(t, "t")
    x = real_array(sample, "sample")
    if x.ndim != 2 or x.shape[1] != ou.dim or x.shape[0] < 2:
        raise SDEKitError(f"sample must have shape (N, {ou.dim}) with N >= 2 (d from A); got shape {x.shape}")
    if em_steps is None:
        mean, cov = linear_moments(ou.A, ou.B, m0, s0, t)
        ref = "moment ODEs"
    else:
        em_steps = _int(em_steps, "em_steps")
        mean, cov = ou.euler_maruyama_law(m0, s0, t / em_steps, em_steps)
        ref = f"EM law, h={t / em_steps:.3g}"
    try:
        z = whiten(x, mean, cov)
    except np.linalg.LinAlgError as exc:
        raise SDEKitError(f"the covariance S_t at t = {t} is singular (t = 0 with a point start, or B B^T "
                          "degenerate); the moment test needs a non-degenerate law") from exc
    nn, d = z.shape
    stat = moment_chi2(z)
    df = d + d * (d + 1) // 2
    thr = float(st.chi2.isf(alpha, df))
    mean_part = float(nn * np.sum(z.mean(axis=0) ** 2))
    second = z.T @ z / nn
    iu = np.triu_indices(d)
    scale = np.where(iu[0] == iu[1], np.sqrt(2.0), 1.0)
    bias = tuple(np.sqrt(nn) * z.mean(axis=0)) + tuple(np.sqrt(nn) * (second[iu] - np.eye(d)[iu]) / scale)
    note = (f"T = {stat:.4g} (mean part {mean_part:.4g}, second moments {stat - mean_part:.4g}); "
            f"reference: {ref} at t={t:g}; N={nn}")
    return [CheckResult(name, f"linear moments chi2 (df={df})", stat, thr, float(st.chi2.sf(stat, df)), stat < thr,
                        note=note, bias=tuple(float(v) for v in bias), alpha=alpha)]


# ----------------------------------------------------------------------------------------------- internals


def _estimate_states(sde: SDE, states: np.ndarray, phis: Sequence[TestFunction] | None, *, h: float, n: int,
                     seed: int, solver: str | None, t: float, sampler: Sampler | None,
                     extrapolate: bool) -> list[list[GeneratorEstimate]]:
    """Run the one-step experiments at every state (one solve per step size) and reduce them per state and phi."""
    if not isinstance(sde, SDE):
        raise SDEKitError(f"sde must be an sdekit.SDE; got {type(sde).__name__}")
    h = _finite(h, "h")
    if h <= 0:
        raise SDEKitError(f"h must be a positive step size; got {h!r}")
    n = _int(n, "n", 2)
    t = _finite(t, "t")
    phis = _check_phis(default_test_functions(sde.dim) if phis is None else phis, sde.dim)
    sampler = _check_sampler(sde, sde if sampler is None else sampler)
    k, d = states.shape
    m = sde.m
    starts = np.repeat(states, n, axis=0)
    z = path_normals(seed, k * n, m, stream=STREAM_BROWNIAN)
    sizes = (h, h / 2) if extrapolate else (h,)
    finals = []
    for hs in sizes:
        dw = np.sqrt(hs) * z
        if isinstance(sampler, SDE):
            sol = simulate(sampler, starts, (t, t + hs), steps=1, seed=seed, solver=solver)
            finals.append(sol.ys[-1])
        else:
            finals.append(_step_output(sampler(starts.copy(), t, hs, dw), k * n, d))
    b, sig = ito_coefficients(sde, states, t)
    a = _covariance(sig)
    out = []
    for s in range(k):
        x = states[s:s + 1]
        rows = slice(s * n, (s + 1) * n)
        row = []
        for phi in phis:
            phi0 = float(_values(phi, x)[0])
            g0 = _shaped(phi.grad(x), (1, d), f"{phi.name}.grad").reshape(d)
            exact = float(_apply_generator(phi, x, b[s:s + 1], a[s:s + 1])[0])
            loading = sig[s].T @ g0  # sigma(x)^T grad phi(x), shape (m,)
            mart_unit = z[rows] @ loading  # grad phi^T sigma z: the martingale increment is sqrt(h) times this
            cv, raw = [], []
            for hs, xh in zip(sizes, finals):
                incr = _values(phi, np.ascontiguousarray(xh[rows])) - phi0
                raw.append(incr / hs)
                cv.append((incr - np.sqrt(hs) * mart_unit) / hs)
            if extrapolate:
                cv_p, raw_p = 2 * cv[1] - cv[0], 2 * raw[1] - raw[0]
            else:
                cv_p, raw_p = cv[0], raw[0]
            scale = abs(phi0) + float(np.sum(np.abs(g0))) * (1.0 + float(np.max(np.abs(x))))
            rounding = ROUNDING_ULPS * EPS * scale / min(sizes) * (3.0 if extrapolate else 1.0)
            row.append(GeneratorEstimate(
                phi=phi.name, state=tuple(float(v) for v in states[s]), t=t, h=h, n=n,
                estimate=float(np.mean(cv_p)), se=float(np.std(cv_p, ddof=1) / np.sqrt(n)),
                raw_estimate=float(np.mean(raw_p)), raw_se=float(np.std(raw_p, ddof=1) / np.sqrt(n)),
                exact=exact, rounding=float(rounding), extrapolated=bool(extrapolate)))
        out.append(row)
    return out


def _apply_generator(phi: TestFunction, x: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """b . grad phi + 1/2 tr(a Hess phi) for precomputed b (n, d) and a = sigma sigma^T (n, d, d)."""
    n, d = x.shape
    grad = _shaped(phi.grad(x), (n, d), f"{phi.name}.grad")
    hess = _shaped(phi.hess(x), (n, d, d), f"{phi.name}.hess")
    if d > SMALL_DIM:
        return np.einsum("ni,ni->n", b, grad) + 0.5 * np.einsum("nij,nij->n", a, hess)
    out = np.zeros(n)
    for i in range(d):  # column loops: numpy reductions over tiny trailing axes are slow
        out += b[:, i] * grad[:, i]
        for j in range(d):
            out += 0.5 * a[:, i, j] * hess[:, i, j]
    return out


def _covariance(sig: np.ndarray) -> np.ndarray:
    """a = sigma sigma^T per row, shape (n, d, d)."""
    n, d, m = sig.shape
    if d > SMALL_DIM or m > SMALL_DIM:
        return np.matmul(sig, np.swapaxes(sig, 1, 2))
    a = np.zeros((n, d, d))
    for i in range(d):
        for j in range(i, d):
            acc = np.zeros(n)
            for k in range(m):
                acc += sig[:, i, k] * sig[:, j, k]
            a[:, i, j] = acc
            a[:, j, i] = acc
    return a


def _values(phi: TestFunction, x: np.ndarray) -> np.ndarray:
    return _shaped(phi.value(x), (x.shape[0],), f"{phi.name}.value")


def _shaped(v: Any, shape: tuple[int, ...], role: str) -> np.ndarray:
    arr = real_array(v, role)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError as exc:
        raise SDEKitError(f"{role} returned shape {arr.shape}; expected {shape}") from exc


def _call(sde: SDE, role: str, x: np.ndarray, t: float) -> np.ndarray:
    """Evaluate the drift or diffusion the way the kernels do (Numba-compiled), falling back to plain Python."""
    fn = getattr(sde, role)
    try:
        compiled = sde.compiled()[0 if role == "drift" else 1]
        return np.asarray(compiled(x, float(t), sde.params), dtype=float)
    except NumbaError:
        return np.asarray(fn(x, float(t), sde.params), dtype=float)


def _drift(sde: SDE, x: np.ndarray, t: float) -> np.ndarray:
    return np.ascontiguousarray(_shaped(_call(sde, "drift", x, t), x.shape, f"drift of {sde.name!r}"))


def _diffusion(sde: SDE, x: np.ndarray, t: float) -> np.ndarray:
    """sigma(x) as a (n, d, m) matrix for any noise type."""
    n, d = x.shape
    g = _call(sde, "diffusion", x, t)
    role = f"diffusion of {sde.name!r} (noise={sde.noise!r})"
    if sde.matrix_noise:
        return np.ascontiguousarray(_shaped(g, (n, d, sde.m), role))
    gv = _shaped(g, (n, d), role)
    if sde.noise == "scalar":
        return np.ascontiguousarray(gv[:, :, None])
    sig = np.zeros((n, d, d))
    idx = np.arange(d)
    sig[:, idx, idx] = gv
    return sig


def _stratonovich_correction(sde: SDE, x: np.ndarray, t: float, sig: np.ndarray) -> np.ndarray:
    """sum_j (D sigma_j) sigma_j by central differences along each column sigma_j of sigma."""
    n, d = x.shape
    out = np.zeros((n, d))
    base = 6e-6 * (1.0 + np.max(np.abs(x), axis=1))
    for j in range(sig.shape[2]):
        v = sig[:, :, j]
        norm = np.max(np.abs(v), axis=1)
        live = norm > 0
        if not np.any(live):
            continue
        eps = np.where(live, base / np.where(live, norm, 1.0), 0.0)
        plus = _diffusion(sde, np.ascontiguousarray(x + eps[:, None] * v), t)[:, :, j]
        minus = _diffusion(sde, np.ascontiguousarray(x - eps[:, None] * v), t)[:, :, j]
        out += np.where(live[:, None], (plus - minus) / np.where(live, 2 * eps, 1.0)[:, None], 0.0)
    return out


def _step_output(v: Any, n: int, d: int) -> np.ndarray:
    arr = real_array(v, "sampler step's output")
    if arr.shape != (n, d):
        raise SDEKitError(f"sampler step returned shape {arr.shape}; expected ({n}, {d})")
    return arr


def _check_sampler(sde: SDE, sampler: Any) -> Sampler:
    if isinstance(sampler, SDE):
        if sampler.dim != sde.dim or sampler.m != sde.m:
            raise SDEKitError(f"sampler has dim={sampler.dim}, m={sampler.m} but the sde has dim={sde.dim}, "
                              f"m={sde.m}; they must agree for the noise to be shared")
        return sampler
    if callable(sampler):
        return sampler
    raise SDEKitError(f"sampler must be an sdekit.SDE or a callable step(x, t, h, dw); got {type(sampler).__name__}")


def _check_phis(phis: Any, dim: int) -> list[TestFunction]:
    if isinstance(phis, TestFunction):
        phis = [phis]
    phis = list(phis)
    if not phis:
        raise SDEKitError("phis must hold at least one TestFunction")
    for k, phi in enumerate(phis):
        if not isinstance(phi, TestFunction):
            raise SDEKitError(f"phis[{k}] must be a TestFunction; got {type(phi).__name__}")
        if phi.dim is not None and phi.dim != dim:
            raise SDEKitError(f"phis[{k}] ({phi.name}) is defined for dim={phi.dim} but the SDE has dim={dim}")
    return phis


def _states(x: Any, dim: int, name: str) -> np.ndarray:
    arr = np.array(real_array(x, name))
    if arr.ndim == 0 and dim == 1:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] < 1:
        raise SDEKitError(f"{name} must have shape ({dim},) or (n, {dim}) for an SDE of dim {dim}; "
                          f"got shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise SDEKitError(f"{name} must be finite; got {x!r}")
    return np.ascontiguousarray(arr)


def _initial(x0: Any, dim: int, n_paths: int | None) -> np.ndarray:
    arr = real_array(x0, "x0")
    if arr.ndim <= 1:
        if n_paths is None:
            raise SDEKitError("n_paths is needed when x0 is one state; or pass samples of shape (N, dim) as x0")
        one = _states(arr, dim, "x0")
        return np.ascontiguousarray(np.repeat(one, _int(n_paths, "n_paths", 2), axis=0))
    starts = _states(arr, dim, "x0")
    if starts.shape[0] < 2:
        raise SDEKitError(f"x0 as samples must have at least 2 rows; got shape {starts.shape}")
    if n_paths is not None and _int(n_paths, "n_paths", 2) != starts.shape[0]:
        raise SDEKitError(f"x0 has {starts.shape[0]} rows but n_paths = {n_paths}; give one or make them agree")
    return starts


def _linear_setup(A: Any, B: Any, mean0: Any, cov0: Any) -> tuple[OrnsteinUhlenbeck, np.ndarray, np.ndarray]:
    ou = OrnsteinUhlenbeck(A, B)
    d = ou.dim
    m0 = real_array(mean0, "x0")
    if m0.ndim == 0 and d == 1:
        m0 = m0.reshape(1)
    if m0.shape != (d,) or not np.all(np.isfinite(m0)):
        raise SDEKitError(f"x0 (the initial state or mean) must be finite of shape ({d},) (d from A); "
                          f"got shape {m0.shape}")
    if cov0 is None:
        s0 = np.zeros((d, d))
    else:
        s0 = np.atleast_2d(real_array(cov0, "cov0"))
        if s0.shape != (d, d) or not np.all(np.isfinite(s0)) or not np.allclose(s0, s0.T):
            raise SDEKitError(f"cov0 must be a finite symmetric ({d}, {d}) matrix; got shape {s0.shape}")
        if np.linalg.eigvalsh(s0).min() < -1e-12 * max(1.0, np.abs(s0).max()):
            raise SDEKitError("cov0 must be positive semi-definite")
    return ou, m0, s0


def _finite(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
        raise SDEKitError(f"{name} must be a finite number; got {v!r}")
    return float(v)


def _nonneg(v: Any, name: str) -> float:
    v = _finite(v, name)
    if v < 0:
        raise SDEKitError(f"{name} must be >= 0; got {v!r}")
    return v


def _int(v: Any, name: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise SDEKitError(f"{name} must be an integer >= {lo}; got {v!r}")
    return int(v)


def _span(t_span: Any) -> tuple[float, float]:
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"t_span must be a pair (t0, t1); got {t_span!r}") from exc
    if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
        raise SDEKitError(f"t_span must be finite with t1 > t0; got {t_span!r}")
    return t0, t1


def _index(i: Any, dim: int | None, name: str) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0 or (dim is not None and i >= dim):
        bound = f"in [0, {dim})" if dim is not None else ">= 0"
        raise SDEKitError(f"{name} must be an integer index {bound}; got {i!r}")
    return int(i)


def _direction(u: Any) -> np.ndarray:
    arr = np.atleast_1d(real_array(u, "u"))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise SDEKitError(f"u must be a finite vector; got {u!r}")
    return arr


def _fmt_vec(v: Any) -> str:
    return "(" + ", ".join(f"{float(c):.3g}" for c in np.ravel(v)) + ")"


__all__ = ["GeneratorEstimate", "GeneratorScan", "TestFunction", "coordinate", "cosine", "default_test_functions",
           "derivative_errors", "dynkin_test", "generator", "generator_estimates", "generator_scan", "generator_test",
           "ito_coefficients", "linear_moment_test", "linear_moments", "product", "sine"]
