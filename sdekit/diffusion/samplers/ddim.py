"""DDIM sampling (Song, Meng & Ermon 2021, "Denoising diffusion implicit models", eq. 12 and 16).

Model interface: ``score(x, alpha, sigma) -> (n, d)``, grad log p of the noised law at x = alpha x_0 + sigma eps
(the exact model for Gaussian-mixture data is ``MixtureMarginals(data).score``); epshat = -sigma s and
x0hat = (x + sigma^2 s) / alpha (Tweedie, Efron 2011; `sdekit.diffusion.parametrization`).

On a subsequence of levels 0 = tau_0 < tau_1 < ... < tau_S of a `DiscreteSchedule` (alphabar_0 = 1: the data),
one step from level tau_i (alphabar = alphabar_{tau_i}) to tau_{i-1} (alphabar_prev) is

    x_prev = sqrt(alphabar_prev) x0hat + sqrt(1 - alphabar_prev - s^2) epshat + s z,      z ~ N(0, I),
    s = eta sqrt((1 - alphabar_prev) / (1 - alphabar)) sqrt(1 - alphabar / alphabar_prev).

eta = 0 is the deterministic DDIM map (a discretisation of the probability-flow ODE); eta = 1 makes s^2 the DDPM
posterior variance betatilde, and the step is then exactly the DDPM ancestral step on the respaced schedule
(`ddpm_sample(..., variance="posterior")` on ``schedule.respaced(tau)``, same noise). The last step (to the data,
alphabar_prev = 1) has s = 0 and returns x0hat.

diffusers (DDIMScheduler, 0.35.1; tests/test_diffusers_conformance.py): on its timesteps t_S > ... > t_1 (levels
tau_i = t_i + 1) it equals this sampler to float32 rounding (1e-12 with float64 tables) when the timesteps are
evenly spaced by K // S ('leading'; 'trailing' with S dividing K). It differs otherwise: its step from t goes to
alphabar at ``prev_timestep = t - K // S`` (level t - K // S + 1, the data below 0) while its next model call is at
the next entry of the list, so with 'linspace' spacing or S not dividing K it does not step between consecutive
levels of its own subsequence. This sampler follows Song et al. eq. 12 on the subsequence given (alphabar_prev =
alphabar_{tau_{i-1}}).

Noise: the step leaving position i of the subsequence (level tau_i) takes the noise source's draw i (by default
sdekit's per-path streams), the same numbers as the DDPM step leaving level i of the respaced schedule; a path's
output depends only on (seed, path).

Backends: x_K may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays in
torch on that device and dtype, calls the score on tensors, uses the same normals drawn on that device
(`run.sampler_normals`) and returns a tensor (equal to the NumPy run to rounding in float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.checks import ScoreFn, check_real, check_score, check_state
from sdekit.diffusion.samplers.discrete import DiscreteSchedule, as_levels
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["DEFAULT_DDIM_STEPS", "ddim_coefficients", "ddim_levels", "ddim_sample"]

DEFAULT_DDIM_STEPS = 50


def ddim_coefficients(alpha_bar: float, alpha_bar_prev: float, eta: float = 0.0) -> tuple[float, float, float]:
    """(c_x0, c_eps, s) of the DDIM step x_prev = c_x0 x0hat + c_eps epshat + s z (Song et al. 2021, eq. 12, 16).

    c_x0 = sqrt(alphabar_prev), s = eta sqrt((1 - alphabar_prev) / (1 - alphabar)) sqrt(1 - alphabar / alphabar_prev),
    c_eps = sqrt(1 - alphabar_prev - s^2). Needs 0 < alphabar < alphabar_prev <= 1 and 0 <= eta <= 1.
    """
    abar = check_real(alpha_bar, "alpha_bar")
    prev = check_real(alpha_bar_prev, "alpha_bar_prev")
    e = check_real(eta, "eta")
    if not 0 < abar < 1:
        raise SDEKitError(f"alpha_bar must lie in (0, 1); got {abar!r}")
    if not abar < prev <= 1:
        raise SDEKitError(f"alpha_bar_prev must lie in (alpha_bar, 1] = ({abar!r}, 1]; got {prev!r}")
    if not 0 <= e <= 1:
        raise SDEKitError(f"eta must lie in [0, 1]; got {e!r}")
    var = e * e * (1.0 - prev) / (1.0 - abar) * (1.0 - abar / prev)
    return math.sqrt(prev), math.sqrt(max(1.0 - prev - var, 0.0)), math.sqrt(var)


def ddim_levels(schedule: DiscreteSchedule, *, steps: int | None = None,
                indices: ArrayLike | None = None) -> np.ndarray:
    """The subsequence tau_1 < ... < tau_S (levels in 1..K) that `ddim_sample` runs on.

    ``indices`` as given (strictly increasing levels in 1..K), or ``steps`` levels evenly spaced over 1..K with
    tau_S = K (`DiscreteSchedule.spaced_levels`); with neither, steps = DEFAULT_DDIM_STEPS (capped at K).
    """
    if not isinstance(schedule, DiscreteSchedule):
        raise SDEKitError(f"schedule must be a DiscreteSchedule; got {type(schedule).__name__}")
    if steps is not None and indices is not None:
        raise SDEKitError("give steps or indices, not both")
    if indices is not None:
        return as_levels(indices, schedule.n_steps)
    if steps is None:
        steps = min(DEFAULT_DDIM_STEPS, schedule.n_steps)
    return schedule.spaced_levels(steps)


def ddim_sample(score: ScoreFn, schedule: DiscreteSchedule, x_K: ArrayLike, *, steps: int | None = None,  # noqa: N803
                indices: ArrayLike | None = None, eta: float = 0.0, seed: int = 0, path_offset: int = 0,
                noise: NoiseFn | None = None, callback: Callable | None = None,
                return_trajectory: bool = False) -> SampleResult:
    """DDIM from level tau_S down to the data level 0 (Song, Meng & Ermon 2021, eq. 12).

    For i = S, ..., 1 with alphabar = alphabar_{tau_i}, alphabar_prev = alphabar_{tau_{i-1}} (alphabar_{tau_0} = 1),
    epshat = -sigma s(x, alpha, sigma) and x0hat = (x + sigma^2 s) / alpha at (alpha, sigma) of level tau_i:

        x <- sqrt(alphabar_prev) x0hat + sqrt(1 - alphabar_prev - s_i^2) epshat + s_i z_i,
        s_i = eta sqrt((1 - alphabar_prev) / (1 - alphabar)) sqrt(1 - alphabar / alphabar_prev).

    The subsequence is ``indices`` or ``steps`` evenly spaced levels (see `ddim_levels`; NFE = S). x_K: (n, *shape)
    draws at level tau_S (= K for ``steps``). eta in [0, 1]: 0 deterministic (the seed is then ignored), 1 the DDPM
    posterior variance. z_i: the noise source's draw i (`sdekit.diffusion.samplers.run`; by default sdekit's per-path
    streams for (seed, path_offset + row)). Returns a `SampleResult`; a torch x_K runs in torch on its device and
    dtype and gives a tensor (module docstring).
    """
    score = check_score(score)
    levels = ddim_levels(schedule, steps=steps, indices=indices)
    e = check_real(eta, "eta")
    if not 0 <= e <= 1:
        raise SDEKitError(f"eta must lie in [0, 1]; got {e!r}")
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_K, "x_K")
    run.start(x, *schedule.level(int(levels[-1])))
    for i in range(levels.shape[0], 0, -1):
        k = int(levels[i - 1])
        prev_k = int(levels[i - 2]) if i > 1 else 0
        alpha, sigma = schedule.level(k)
        s = run.score(x, alpha, sigma, levels.shape[0] - i)
        eps = -sigma * s
        x0 = (x + sigma * sigma * s) / alpha
        c_x0, c_eps, std = ddim_coefficients(schedule.alpha_bar(k), schedule.alpha_bar(prev_k), e)
        x = c_x0 * x0 + c_eps * eps
        if std > 0:
            x = x + std * run.noise(i, x)
        run.step_done(levels.shape[0] - i, x, *schedule.level(prev_k), x0)
    return run.finish(x)
