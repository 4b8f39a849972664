"""The InDI interpolant between a clean image x and its degraded observation y, its time grids and its noise
schedule (Delbracio & Milanfar 2023, "Inversion by direct iteration: an alternative to denoising diffusion for image
restoration", TMLR, sections 3.1 and 3.3):

    x_t = (1 - t) x + t y + t eps_t eta,      t in [0, 1],  eta ~ N(0, I),

so x_0 = x and x_1 = y + eps_1 eta. eps_t (the noise schedule) is 0 for the deterministic InDI; a stochastic InDI
takes eps_t >= 0 non-increasing in t (more noise injected as t falls), so the increments of the variance
t^2 eps_t^2 along the chain, t_{i+1}^2 (eps_{t_{i+1}}^2 - eps_{t_i}^2), are >= 0.

For denoising (y = x + sigma_y n, n ~ N(0, I)) the interpolant is x_t = x + t sqrt(sigma_y^2 + eps_t^2) xi with
xi ~ N(0, I) independent of x: a variance-exploding kernel (alpha, sigma) = (1, s(t)) at the level

    s(t) = t sqrt(sigma_y^2 + eps_t^2),

so E[x | x_t] is the posterior-mean denoiser at that level (`denoising_level`).

A noise schedule is given as None (eps_t = 0), a number eps >= 0 (eps_t = eps for every t: only the start
y + eps eta is noisier) or a callable eps(t) -> eps_t >= 0 (e.g. ``lambda t: e * math.sqrt(1 - t)``, which starts
from y itself; or ``lambda t: e / math.sqrt(t)``, whose injected noise t eps_t eta = e sqrt(t) eta is a Brownian
motion). The callable is evaluated only at times t > 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.checks import check_count, check_real
from sdekit.errors import SDEKitError

__all__ = ["NoiseSchedule", "check_noise_schedule", "denoising_level", "indi_times", "noise_at",
           "noise_levels", "resolve_times"]

NoiseSchedule = None | float | Callable[[float], float]


def check_noise_schedule(noise_schedule: Any) -> NoiseSchedule:
    """noise_schedule as None, a float >= 0 or a callable eps(t); an SDEKitError naming it otherwise."""
    if noise_schedule is None or callable(noise_schedule):
        return noise_schedule
    if isinstance(noise_schedule, bool | np.bool_ | str):
        raise SDEKitError(f"noise_schedule must be None, a number >= 0 or a callable eps(t) -> eps_t >= 0; got "
                          f"{noise_schedule!r}")
    try:
        return check_real(noise_schedule, "noise_schedule", lo=0.0)
    except SDEKitError:
        raise SDEKitError(f"noise_schedule must be None, a finite number >= 0 or a callable eps(t) -> eps_t >= 0; "
                          f"got {noise_schedule!r}") from None


def noise_at(noise_schedule: NoiseSchedule, t: Any) -> Any:
    """eps_t of a checked noise schedule at t (a number, or an array / tensor when the callable takes one); 0.0 for
    None. Unchecked values (see `noise_levels`)."""
    if noise_schedule is None:
        return 0.0
    if callable(noise_schedule):
        return noise_schedule(t)
    return float(noise_schedule)


def noise_levels(noise_schedule: Any, times: np.ndarray) -> np.ndarray:
    """eps_t at each grid time t > 0 of a decreasing grid (0 at a final t = 0, where t eps_t is 0), float64, checked:
    finite, >= 0 and non-decreasing along the grid (eps_{t_{i+1}} >= eps_{t_i}: the injected variance
    t_{i+1}^2 (eps_{t_{i+1}}^2 - eps_{t_i}^2) is >= 0)."""
    schedule = check_noise_schedule(noise_schedule)
    eps = np.zeros(times.size)
    for i, t in enumerate(times):
        if t > 0:
            value = noise_at(schedule, float(t))
            if isinstance(value, bool | np.bool_) or np.ndim(value) != 0:
                raise SDEKitError(f"noise_schedule(t) must return one number; got {value!r} at t = {t}")
            eps[i] = check_real(value, f"noise_schedule({float(t)!r})", lo=0.0)
    positive = times > 0
    if np.any(np.diff(eps[positive]) < 0):
        i = int(np.argmax(np.diff(eps[positive]) < 0))
        raise SDEKitError(f"noise_schedule must be non-increasing in t (eps_t grows as t falls, so that the injected "
                          f"variance t^2 (eps_(t-delta)^2 - eps_t^2) is >= 0); got eps = {eps[i]:.6g} at "
                          f"t = {times[i]:.6g} and {eps[i + 1]:.6g} at t = {times[i + 1]:.6g}")
    return eps


def denoising_level(t: Any, sigma_y: float, noise_schedule: NoiseSchedule = None) -> Any:
    """s(t) = t sqrt(sigma_y^2 + eps_t^2): the noise level of x_t = x + s(t) xi for denoising (y = x + sigma_y n).
    t: a number, array or tensor (the callable schedule must then accept it)."""
    eps = noise_at(noise_schedule, t)
    if isinstance(t, int | float) and isinstance(eps, int | float):
        return t * math.sqrt(sigma_y * sigma_y + eps * eps)
    return t * (sigma_y * sigma_y + eps * eps) ** 0.5


def indi_times(steps: int, rho: float = 1.0) -> np.ndarray:
    """The grid t_i = (1 - i / steps)^rho, i = 0..steps, from y at t = 1 to the restoration at t = 0: uniform for
    rho = 1 (the paper's); rho > 1 puts the steps closer together near t = 0, where the denoiser changes fastest (as
    the sigma grids of Karras et al. 2022 do)."""
    steps = check_count(steps, "steps")
    rho = check_real(rho, "rho", lo=0.0, strict=True)
    t = (1.0 - np.arange(steps + 1, dtype=np.float64) / steps) ** rho
    t[0], t[-1] = 1.0, 0.0
    return t


def resolve_times(steps: Any, times: ArrayLike | None) -> np.ndarray:
    """The grid of `indi_sample`: `indi_times(steps)`, or ``times`` checked (1-D float64, at least 2 entries, finite,
    times[0] = 1, times[-1] >= 0, strictly decreasing). Exactly one of steps and times must be given."""
    if (steps is None) == (times is None):
        raise SDEKitError("give exactly one of steps (a uniform grid of t from 1 to 0) and times (a decreasing grid "
                          "from 1 to t_end >= 0)")
    if times is None:
        return indi_times(steps)
    try:
        t = np.array(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise SDEKitError("times must be a 1-D array of numbers") from None
    if t.ndim != 1 or t.size < 2:
        raise SDEKitError(f"times must be a 1-D array of at least 2 times; got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise SDEKitError("times must be finite")
    if t[0] != 1.0 or t[-1] < 0.0:
        raise SDEKitError(f"times must start at 1 (the observation y) and end at t >= 0; got {t[0]!r} .. {t[-1]!r}")
    if not np.all(np.diff(t) < 0):
        raise SDEKitError("times must be strictly decreasing (from 1 towards 0)")
    return t
