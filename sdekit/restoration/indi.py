"""InDI: inversion by direct iteration (Delbracio & Milanfar 2023, "Inversion by direct iteration: an alternative to
denoising diffusion for image restoration", TMLR), the incremental restoration of a degraded observation y.

Interpolant (`sdekit.restoration.interpolant`): x_t = (1 - t) x + t y + t eps_t eta, x_0 = x (clean), x_1 = y
(+ eps_1 eta). The model is a denoiser F(x, t) = E[x | x_t = x], trained with the loss
E ||F(x_t, t) - x||^2 (`sdekit.learn.indi_loss`). On a decreasing grid 1 = t_0 > t_1 > ... > t_N >= 0,
delta_i = t_i - t_{i+1}, step i is (the paper's eq. 8, with its noise-injection form of section 3.3):

    x_{t_{i+1}} = (delta_i / t_i) F(x_{t_i}, t_i) + (1 - delta_i / t_i) x_{t_i}
                  + t_{i+1} sqrt(eps_{t_{i+1}}^2 - eps_{t_i}^2) eta_{i+1},                 eta_{i+1} ~ N(0, I),

started from x_{t_0} = y + eps_1 eta_0. With eps = 0 (no noise_schedule) it is the deterministic InDI
x_{t-delta} = (delta / t) E[x | x_t] + (1 - delta / t) x_t.

Why it works. Given (x, y) the step with x in place of F gives exactly the interpolant's law at t - delta:
(delta / t) x + (1 - delta / t) x_t = (1 - t + delta) x + (t - delta) y + (t - delta) eps_t eta, and the added
normal lifts the noise from (t - delta) eps_t to (t - delta) eps_{t - delta}; this needs eps_{t - delta} >= eps_t,
i.e. eps_t non-increasing in t. InDI replaces x by its posterior mean F. The deterministic chain is then the Euler
method for dx/dt = (x - F(x, t)) / t = E[y - x | x_t = x], a velocity field whose flow carries the law of x_1 to
that of x_t for every t (the conditional-expectation argument of flow matching; Liu et al. 2022, Lipman et al.
2023), so the chain reaches the law of x as delta -> 0 (first order in delta).

For denoising (y = x + sigma_y n) x_t = x + s(t) xi with s(t) = t sqrt(sigma_y^2 + eps_t^2), F is the
variance-exploding denoiser D(x; s) (Tweedie: D = x + s^2 grad log p_s), and:

- eps = 0: s = t sigma_y and the deterministic chain is exactly the Euler method in sigma = t sigma_y for the VE
  probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022) on the sigma grid t_i sigma_y;
- eps_t > 0 (non-increasing in t, F trained on the noisy interpolant and the chain started at y + eps_1 eta): the
  step x' = x + K (D - x) + sqrt(Q) eta with K = delta / t, Q = t_{i+1}^2 (eps_{t_{i+1}}^2 - eps_{t_i}^2) satisfies
  K s^2 - Q / 2 = s (s(t) - s(t - delta)) to first order in delta, which is the condition for one step of
  x' = x + K s^2 grad log p_s + sqrt(Q) eta to move the law p_s (Fokker-Planck: p - (K s^2 - Q / 2) Delta p) to
  p_{s(t - delta)} (heat equation: p - s ds Delta p). So the stochastic chain also keeps the marginals as
  delta -> 0: it is a reverse-time SDE of the VE family.

Model calls: one per step (NFE = N); the last step to t_N = 0 has weight delta / t = 1 and returns F(x_{t_{N-1}},
t_{N-1}) exactly, so a single step from t = 1 is the posterior mean E[x | y] (the one-shot MMSE restoration that
InDI improves on in perceptual quality).

Accuracy with the exact denoiser (`MixtureDenoiser`; tests/test_indi.py: the 1-, 2-, 4-D anisotropic mixtures,
sigma_y = 2, y = x + sigma_y n drawn exactly, N = 20000, ``compare_with_law`` at 1e-6 against the data law; min p
of the battery in brackets). Deterministic, uniform grid: passes from 30 / 50 / 70 steps in 1-D / 2-D / 4-D (5e-6,
1e-5, 5e-6) and fails at 20 / 40 / 60 (1e-10, 3e-8, 1e-8); with t_i = (1 - i / N)^2 (``indi_times(N, rho=2)``) it
passes from 30 / 40 / 40. Stochastic with eps_t = sigma_y sqrt(1 - t): passes from 40 / 80 / 120 steps (6e-7, 7e-7,
2e-6) and fails at 30 / 70 / 100. The one-step posterior mean E[x | y] is rejected (p = 0: it regresses to the
mean). On Gaussian data the error against the exact flow map y sqrt(v / (v + sigma_y^2)) falls with order 0.97 in
the number of steps (10 .. 80).

Noise: eta_0 is the noise source's draw 0 and eta_{i+1} its draw i + 1 (by default sdekit's per-path streams,
`sdekit.diffusion.samplers.run`), so a path's output depends only on (seed, path index). Backends: y may be a float64
NumPy array or a torch tensor (any floating dtype, any device); a tensor run stays in torch, calls the denoiser on
tensors and returns a tensor (equal to the NumPy run to rounding in float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_state
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError
from sdekit.restoration.interpolant import noise_levels, resolve_times

__all__ = ["DenoiserFn", "InDIResult", "indi_sample"]

DenoiserFn = Callable[[State, float], State]


def _step_weight(t: float, t_next: float) -> float:
    """delta / t, the weight of the denoised estimate in the step from t to t_next = t - delta (a module hook: the
    tests plant a wrong weight)."""
    return (t - t_next) / t


def _injected_std(t_next: float, eps: float, eps_next: float) -> float:
    """(t - delta) sqrt(eps_{t - delta}^2 - eps_t^2): the standard deviation of the noise a stochastic step adds."""
    return t_next * math.sqrt(eps_next * eps_next - eps * eps)


@dataclass(frozen=True)
class InDIResult(SampleResult):
    """`SampleResult` of `indi_sample`: x (n, *shape), nfe, and the grid visited: times t_i (from 1 to the end),
    alphas = 1 - t_i and sigmas = t_i (the weights of x and y in x_t = (1 - t) x + t y)."""

    times: np.ndarray | None = None

    @property
    def sigmas_edm(self) -> np.ndarray:
        """sigmas / alphas = t / (1 - t) (inf at t = 1), without a division warning."""
        with np.errstate(divide="ignore"):
            return self.sigmas / self.alphas


def indi_sample(denoiser: DenoiserFn, y: ArrayLike, *, steps: int | None = None, times: ArrayLike | None = None,
                noise_schedule: Any = None, seed: int = 0, path_offset: int = 0, noise: NoiseFn | None = None,
                callback: Callable | None = None, return_trajectory: bool = False) -> InDIResult:
    """Restore y by InDI's incremental steps (Delbracio & Milanfar 2023, eq. 8 and section 3.3; module docstring):

        x_{t_{i+1}} = (delta_i / t_i) F(x_{t_i}, t_i) + (1 - delta_i / t_i) x_{t_i}
                      + t_{i+1} sqrt(eps_{t_{i+1}}^2 - eps_{t_i}^2) eta_{i+1},      x_{t_0} = y + eps_1 eta_0.

    denoiser: F(x (n, *shape), t) -> E[x_clean | x_t = x] of x's shape and kind (t a Python float in (0, 1]), e.g.
    `MixtureDenoiser` or a trained `sdekit.learn.InDIDenoiser`. y: the observations (n, *shape) (float64 NumPy or a
    torch tensor). Grid: ``steps`` (uniform, t_i = 1 - i / steps, down to 0) or ``times`` (strictly decreasing from
    1 to t_end >= 0; the result is then x_{t_end}). noise_schedule: None (deterministic), a number eps >= 0 or a
    callable eps(t), non-increasing in t (`sdekit.restoration.interpolant`); F must be the denoiser of the same
    noisy interpolant. First order in delta (Euler on the VE probability-flow ODE in sigma = t sigma_y for
    denoising). seed / path_offset / noise / callback / return_trajectory as every sampler
    (`sdekit.diffusion.samplers.run`); the callback's alpha, sigma are 1 - t, t. Returns an `InDIResult`.
    """
    if not callable(denoiser):
        raise SDEKitError(f"denoiser must be callable as denoiser(x, t) -> E[x | x_t = x]; got "
                          f"{type(denoiser).__name__}")
    grid = resolve_times(steps, times)
    eps = noise_levels(noise_schedule, grid)
    x = check_state(y, "y")
    run = SamplerRun(lambda state, alpha, sigma: denoiser(state, sigma), seed=seed, path_offset=path_offset,
                     noise=noise, callback=callback, return_trajectory=return_trajectory, name="denoiser")
    if eps[0] > 0:
        x = x + float(eps[0]) * run.noise(0, x)
    run.start(x, 0.0, 1.0)
    for i in range(grid.size - 1):
        t, t_next = float(grid[i]), float(grid[i + 1])
        denoised = run.score(x, 1.0 - t, t, i, t)
        w = _step_weight(t, t_next)
        x = w * denoised + (1.0 - w) * x
        std = _injected_std(t_next, float(eps[i]), float(eps[i + 1])) if t_next > 0 else 0.0
        if std > 0:
            x = x + std * run.noise(i + 1, x)
        run.step_done(i, x, 1.0 - t_next, t_next, denoised)
    return run.finish(x, InDIResult, times=grid.copy())
