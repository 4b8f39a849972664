"""Interpolants x_t = alpha_t x_0 + sigma_t eps of flow matching, as data.

A flow-matching model learns the velocity of the interpolant between data x_0 and noise eps ~ N(0, I)
(Lipman, Chen, Ben-Hamu, Nickel & Le 2023, "Flow matching for generative modeling"; Liu, Gong & Liu 2022, "Flow
straight and fast: learning to generate and transfer data with rectified flow"; Albergo & Vanden-Eijnden 2023,
"Building normalizing flows with stochastic interpolants"):

    x_t = alpha_t x_0 + sigma_t eps,       d x_t / dt = alpha'_t x_0 + sigma'_t eps,   t in [0, 1],

and its marginal velocity u(x, t) = E[alpha'_t x_0 + sigma'_t eps | x_t = x] = alpha'_t E[x_0 | x] + sigma'_t E[eps | x]
carries p_0 (the data) to p_1 along dx/dt = u (the continuity equation of the interpolant's marginals).

An `Interpolant` holds the four functions t -> alpha_t, sigma_t, alpha'_t, sigma'_t (vectorised over NumPy arrays
and torch tensors: only arithmetic and the functions of `_ops`). Built in (``INTERPOLANTS``):

    "linear"         alpha = 1 - t,          sigma = t              (rectified flow / conditional OT flow matching:
                                                                     Liu et al. 2022, Lipman et al. 2023; default)
    "trigonometric"  alpha = cos(pi t / 2),  sigma = sin(pi t / 2)  (variance preserving: alpha^2 + sigma^2 = 1;
                                                                     Albergo & Vanden-Eijnden 2023)

Both start at the data (alpha_0 = 1, sigma_0 = 0) and end at pure noise (alpha_1 = 0, sigma_1 = 1). Any other pair of
differentiable functions with their derivatives is an `Interpolant(...)`; its log-SNR log(alpha_t / sigma_t) must
decrease in t (checked on a grid), which makes t <-> (alpha, sigma) one-to-one up to scale (`time_of_level`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.arrays import cos, sin
from sdekit.errors import SDEKitError

__all__ = ["INTERPOLANTS", "LINEAR", "TRIGONOMETRIC", "Interpolant", "get_interpolant"]

CHECK_GRID = 257  # points of [0, 1] on which a custom interpolant is checked
BISECTION_STEPS = 80


_HALF_PI = 0.5 * math.pi


@dataclass(frozen=True)
class Interpolant:
    """x_t = alpha(t) x_0 + sigma(t) eps with the derivatives dalpha(t), dsigma(t) (module docstring).

    Each function maps t (a float, a NumPy array or a torch tensor) to the same kind. ``code`` is set by the
    built-in interpolants only (their index in the compiled kernels of `sdekit.flow.mixture_velocity`; a code >= 0
    skips the checks of a custom interpolant); leave it at -1.
    ``time_of_ratio`` optionally inverts r = sigma_t / alpha_t to t in closed form (else bisection)."""

    alpha: Callable[[Any], Any]
    sigma: Callable[[Any], Any]
    dalpha: Callable[[Any], Any]
    dsigma: Callable[[Any], Any]
    name: str = "custom"
    code: int = -1
    time_of_ratio: Callable[[float], float] | None = None

    def __post_init__(self) -> None:
        for field in ("alpha", "sigma", "dalpha", "dsigma"):
            if not callable(getattr(self, field)):
                raise SDEKitError(f"{field} must be a function of t; got {type(getattr(self, field)).__name__}")
        if self.code < 0:
            _check_custom(self)

    def coefficients(self, t: float) -> tuple[float, float, float, float]:
        """(alpha_t, sigma_t, alpha'_t, sigma'_t) as floats."""
        t = float(t)
        return float(self.alpha(t)), float(self.sigma(t)), float(self.dalpha(t)), float(self.dsigma(t))

    def level(self, t: float) -> tuple[float, float]:
        """(alpha_t, sigma_t) as floats: the level of a sampler's (alpha, sigma) grid."""
        t = float(t)
        return float(self.alpha(t)), float(self.sigma(t))

    def time_of_level(self, alpha: float, sigma: float) -> float:
        """The t in [0, 1] whose level has the same signal-to-noise ratio: sigma_t / alpha_t = sigma / alpha (so
        (alpha_t, sigma_t) = m (alpha, sigma) with m = alpha_t / alpha, or sigma_t / sigma when alpha = 0)."""
        if sigma <= 0:
            return 0.0
        if alpha <= 0:
            return 1.0
        r = sigma / alpha
        if self.time_of_ratio is not None:
            return float(self.time_of_ratio(r))
        lo, hi = 0.0, 1.0  # sigma_t - r alpha_t increases in t (the log-SNR decreases)
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if float(self.sigma(mid)) - r * float(self.alpha(mid)) < 0:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


def _check_custom(interp: Interpolant) -> None:
    """A custom interpolant: finite, alpha >= 0, sigma >= 0, not both 0, and sigma_t / alpha_t strictly increasing on
    a grid of [0, 1] (the log-SNR decreases), with each derivative matching a central difference of its function."""
    ts = np.linspace(0.0, 1.0, CHECK_GRID)
    try:
        a, s, da, ds = (np.array([float(f(float(t))) for t in ts]) for f in
                        (interp.alpha, interp.sigma, interp.dalpha, interp.dsigma))
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"the interpolant's functions must map a float t to a float: {exc}") from None
    if not all(np.all(np.isfinite(v)) for v in (a, s, da, ds)):
        raise SDEKitError("the interpolant's alpha, sigma and derivatives must be finite on [0, 1]")
    if np.any(a < 0) or np.any(s < 0) or np.any(a + s <= 0):
        raise SDEKitError("the interpolant must have alpha_t >= 0, sigma_t >= 0 and not both 0 on [0, 1]")
    if not np.all(np.diff(np.arctan2(s, a)) > 0):
        raise SDEKitError("the interpolant's sigma_t / alpha_t must increase strictly in t (data at t = 0, noise at "
                          "t = 1)")
    h = 1e-6
    mids = ts[1:-1]
    for f, df, name in ((interp.alpha, da, "dalpha"), (interp.sigma, ds, "dsigma")):
        fd = np.array([(float(f(t + h)) - float(f(t - h))) / (2 * h) for t in mids])
        if not np.allclose(fd, df[1:-1], rtol=1e-4, atol=1e-4):
            i = int(np.argmax(np.abs(fd - df[1:-1])))
            raise SDEKitError(f"{name} is not the derivative of its function: at t = {mids[i]:.4g} it gives "
                              f"{df[1 + i]:.6g}, a central difference {fd[i]:.6g}")


LINEAR = Interpolant(alpha=lambda t: 1.0 - t, sigma=lambda t: t, dalpha=lambda t: -1.0 + 0.0 * t,
                     dsigma=lambda t: 1.0 + 0.0 * t, name="linear", code=0, time_of_ratio=lambda r: r / (1.0 + r))
# alpha written as sin(pi (1 - t) / 2) (= cos(pi t / 2)) so that alpha_1 = 0 and alpha_0 = 1 exactly in floating point
TRIGONOMETRIC = Interpolant(alpha=lambda t: sin(_HALF_PI * (1.0 - t)), sigma=lambda t: sin(_HALF_PI * t),
                            dalpha=lambda t: -_HALF_PI * cos(_HALF_PI * (1.0 - t)),
                            dsigma=lambda t: _HALF_PI * cos(_HALF_PI * t), name="trigonometric", code=1,
                            time_of_ratio=lambda r: math.atan(r) / _HALF_PI)
INTERPOLANTS = {"linear": LINEAR, "trigonometric": TRIGONOMETRIC}


def get_interpolant(interpolant: Any) -> Interpolant:
    """An `Interpolant`, or a built-in one by name ("linear", "trigonometric"); an SDEKitError otherwise."""
    if isinstance(interpolant, Interpolant):
        return interpolant
    if isinstance(interpolant, str) and interpolant in INTERPOLANTS:
        return INTERPOLANTS[interpolant]
    raise SDEKitError(f"interpolant must be an Interpolant or one of {tuple(INTERPOLANTS)}; got {interpolant!r}")
