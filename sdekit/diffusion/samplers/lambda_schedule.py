"""Noise-level grids in lambda = log(alpha / sigma) for the samplers that work on a kernel x = alpha x_0 + sigma eps
(DPM-Solver, DPM-Solver++, UniPC, DEIS, ...): how a ``forward`` argument (a ForwardSDE, a kernel function
t -> (alpha, sigma), or an (m, 2) array of (alpha, sigma) rows) becomes the sampler's grid of (alpha, sigma) pairs,
and (alpha, sigma) at any lambda in between (closed form for VP-type kernels, alpha^2 + sigma^2 = 1:
alpha = (1 + e^{-2 lambda})^{-1/2}, sigma = (1 + e^{2 lambda})^{-1/2}; otherwise bisection of lambda(t) on t).
Grids are uniform in t ("time_uniform") or in lambda ("logSNR"; Lu et al. 2022, section 3.3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError

__all__ = ["LambdaSchedule", "SKIPS", "check_steps", "grid_pairs", "half_log_snr", "kernel_pair", "lambda_grid",
           "is_vp_grid", "resolve_grid", "schedule_of", "vp_alpha_sigma"]

KernelFn = Callable[[float], tuple[float, float]]
SKIPS = ("time_uniform", "logSNR")


def vp_alpha_sigma(lam: float) -> tuple[float, float]:
    """(alpha, sigma) of a VP-type kernel (alpha^2 + sigma^2 = 1) at lambda = log(alpha / sigma):
    alpha = (1 + e^{-2 lambda})^{-1/2}, sigma = (1 + e^{2 lambda})^{-1/2} (log1p forms, stable for any lambda)."""
    lam = check_real(lam, "lam")
    return math.exp(-0.5 * math.log1p(math.exp(-2.0 * lam))), math.exp(-0.5 * math.log1p(math.exp(2.0 * lam)))


def half_log_snr(alpha: float, sigma: float) -> float:
    """lambda = log(alpha / sigma), half the log-SNR."""
    return math.log(alpha) - math.log(sigma)


def kernel_pair(kernel: KernelFn, t: float) -> tuple[float, float]:
    """kernel(t) = (alpha, sigma) as floats, both finite and > 0; an SDEKitError naming forward otherwise."""
    try:
        a, s = kernel(t)
        a, s = float(a), float(s)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"forward must map t to a pair (alpha, sigma); at t = {t} it gave an error: {exc}") from None
    if not (math.isfinite(a) and math.isfinite(s) and a > 0 and s > 0):
        raise SDEKitError(f"forward's kernel must give alpha > 0 and sigma > 0 on the sampling interval; "
                          f"at t = {t} got alpha = {a}, sigma = {s}")
    return a, s


class LambdaSchedule:
    """The kernel of a sampling range: (alpha, sigma) at any lambda in it (the VP closed form, or bisection of
    lambda(t) on t)."""

    def __init__(self, kernel: KernelFn | None, t_hi: float, t_lo: float, vp: bool) -> None:
        self.kernel, self.t_hi, self.t_lo, self.vp = kernel, t_hi, t_lo, vp

    def at_lambda(self, lam: float) -> tuple[float, float]:
        if self.vp:
            return vp_alpha_sigma(lam)
        assert self.kernel is not None
        hi, lo = self.t_hi, self.t_lo  # lambda(hi) <= lam <= lambda(lo)
        for _ in range(200):
            mid = 0.5 * (hi + lo)
            if mid in (hi, lo):
                break
            if half_log_snr(*kernel_pair(self.kernel, mid)) > lam:
                lo = mid
            else:
                hi = mid
        return kernel_pair(self.kernel, 0.5 * (hi + lo))


def lambda_grid(forward: ForwardSDE | KernelFn, steps: int, skip: str = "logSNR",
                t_span: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, sigmas), each (steps + 1,), from t = T down to t = eps: uniform in t ("time_uniform") or in
    lambda = log(alpha / sigma) ("logSNR"; interior points by `vp_alpha_sigma` for VP-type kernels, else by
    bisection of lambda(t)). forward: a ForwardSDE (t_span defaults to (T, eps)) or a kernel t -> (alpha, sigma)
    (t_span = (T, eps) required)."""
    sched, t_hi, t_lo = schedule_of(forward, t_span)
    steps = check_steps(steps)
    if skip not in SKIPS:
        raise SDEKitError(f"skip must be one of {SKIPS}; got {skip!r}")
    kernel = sched.kernel
    assert kernel is not None
    if skip == "time_uniform":
        pairs = [kernel_pair(kernel, t) for t in np.linspace(t_hi, t_lo, steps + 1)]
    else:
        first, last = kernel_pair(kernel, t_hi), kernel_pair(kernel, t_lo)
        lams = np.linspace(half_log_snr(*first), half_log_snr(*last), steps + 1)
        pairs = [first] + [sched.at_lambda(v) for v in lams[1:-1]] + [last]
    alphas, sigmas = (np.array(v) for v in zip(*pairs))
    return alphas, sigmas


def check_steps(steps: Any) -> int:
    """steps as an int >= 1; an SDEKitError naming steps otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise SDEKitError(f"steps must be an integer >= 1; got {steps!r}")
    return int(steps)


def schedule_of(forward: Any, t_span: Any) -> tuple[LambdaSchedule, float, float]:
    """The LambdaSchedule of a ForwardSDE or kernel function on t_span = (T, eps) (a ForwardSDE's own by default),
    with T and eps; SDEKitErrors naming forward / t_span for anything else."""
    if isinstance(forward, ForwardSDE):
        kernel: KernelFn = forward.kernel
        default = (forward.T, forward.eps)
        vp = forward.name in ("vp", "cosine") and forward.custom_kernel is None
    elif callable(forward):
        kernel, default, vp = forward, None, False
    else:
        raise SDEKitError(f"forward must be a ForwardSDE, a kernel t -> (alpha, sigma), or an (m, 2) array of "
                          f"(alpha, sigma) pairs; got {type(forward).__name__}")
    span = t_span if t_span is not None else default
    if span is None:
        raise SDEKitError("t_span = (T, eps) is required when forward is a kernel function")
    try:
        t_hi, t_lo = (float(v) for v in span)
    except (TypeError, ValueError):
        raise SDEKitError(f"t_span must be a pair (T, eps) of numbers; got {span!r}") from None
    if not (math.isfinite(t_hi) and math.isfinite(t_lo) and t_hi > t_lo):
        raise SDEKitError(f"t_span must be (T, eps) with T > eps, both finite; got {span!r}")
    if half_log_snr(*kernel_pair(kernel, t_hi)) >= half_log_snr(*kernel_pair(kernel, t_lo)):
        raise SDEKitError("forward's lambda = log(alpha / sigma) must decrease from t = eps to t = T")
    return LambdaSchedule(kernel, t_hi, t_lo, vp), t_hi, t_lo


def grid_pairs(grid: Any) -> tuple[np.ndarray, np.ndarray]:
    """An (m, 2) array of (alpha, sigma) rows, noisiest first, checked (lambda strictly increasing; only the last
    row may have sigma = 0, the data), as (alphas, sigmas)."""
    try:
        g = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise SDEKitError(f"forward must be a ForwardSDE, a kernel t -> (alpha, sigma), or an (m, 2) array of "
                          f"(alpha, sigma) pairs; got {grid!r}") from None
    if g.ndim != 2 or g.shape[1] != 2 or g.shape[0] < 2:
        raise SDEKitError(f"forward given as a grid must have shape (m, 2), m >= 2, rows (alpha, sigma); "
                          f"got shape {g.shape}")
    a, s = g[:, 0].copy(), g[:, 1].copy()
    if not (np.all(np.isfinite(g)) and np.all(a > 0) and np.all(s[:-1] > 0) and s[-1] >= 0):
        raise SDEKitError("forward grid must hold finite alpha > 0 and sigma > 0 (only the last row may have "
                          "sigma = 0: the data level, reached by the final denoise)")
    noisy = s > 0
    if not np.all(np.diff(np.log(a[noisy]) - np.log(s[noisy])) > 0):
        raise SDEKitError("forward grid must have lambda = log(alpha / sigma) strictly increasing (noise decreasing)")
    return a, s


def resolve_grid(forward: ForwardSDE | KernelFn | ArrayLike, steps: Any, skip: str = "logSNR",
                 t_span: tuple[float, float] | None = None,
                 default_steps: int = 20) -> tuple[np.ndarray, np.ndarray, LambdaSchedule, bool]:
    """A sampler's grid from its ``forward`` argument: (alphas, sigmas, schedule, from_pairs).

    A ForwardSDE or kernel function gives `lambda_grid` (steps, default ``default_steps``, and skip) and its
    LambdaSchedule; an (m, 2) array of (alpha, sigma) rows is the grid itself (steps must be None or m - 1, t_span
    None) and its schedule is the VP closed form (``from_pairs`` True: a caller needing intermediate points off the
    grid checks that the rows are VP-type with `is_vp_grid`)."""
    if skip not in SKIPS:
        raise SDEKitError(f"skip must be one of {SKIPS}; got {skip!r}")
    if isinstance(forward, ForwardSDE) or callable(forward):
        sched, _, _ = schedule_of(forward, t_span)
        alphas, sigmas = lambda_grid(forward, default_steps if steps is None else steps, skip, t_span)
        return alphas, sigmas, sched, False
    alphas, sigmas = grid_pairs(forward)
    if steps is not None and check_steps(steps) != alphas.size - 1:
        raise SDEKitError(f"steps must be None or {alphas.size - 1} (the grid's intervals); got {steps!r}")
    if t_span is not None:
        raise SDEKitError("t_span must be None when forward is a grid of (alpha, sigma) pairs")
    return alphas, sigmas, LambdaSchedule(None, 0.0, 0.0, True), True


def is_vp_grid(alphas: np.ndarray, sigmas: np.ndarray) -> bool:
    """Whether the noisy rows of a grid satisfy alpha^2 + sigma^2 = 1 (to 1e-10)."""
    noisy = sigmas > 0
    return bool(np.allclose(alphas[noisy] ** 2 + sigmas[noisy] ** 2, 1.0, rtol=0, atol=1e-10))
