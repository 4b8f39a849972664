"""DDPM ancestral sampling (Ho, Jain & Abbeel 2020, "Denoising diffusion probabilistic models", Algorithm 2).

Model interface: ``score(x, alpha, sigma) -> (n, d)``, grad log p of the noised law at x = alpha x_0 + sigma eps;
the exact model for Gaussian-mixture data is ``MixtureMarginals(data).score``. The noise prediction and the
denoiser follow from it (Tweedie, Efron 2011; `sdekit.diffusion.parametrization`):

    epshat = -sigma_k s(x_k, alpha_k, sigma_k),      x0hat = (x_k + sigma_k^2 s(x_k, alpha_k, sigma_k)) / alpha_k.

One step from level k to k - 1 of a `DiscreteSchedule` (alphabar_0 = 1: level 0 is the data):

    x_{k-1} = (1 / sqrt(1 - beta_k)) (x_k - beta_k / sqrt(1 - alphabar_k) epshat) + s_k z,      z ~ N(0, I),

with s_k^2 = beta_k ("beta", the upper bound of Ho et al. section 3.2) or s_k^2 = betatilde_k =
(1 - alphabar_{k-1}) / (1 - alphabar_k) beta_k ("posterior", the variance of q(x_{k-1} | x_k, x_0)). The mean is
equivalently the posterior mean of q(x_{k-1} | x_k, x_0 = x0hat) (Ho et al. eq. 7):

    mu_k = sqrt(alphabar_{k-1}) beta_k / (1 - alphabar_k) x0hat
           + sqrt(1 - beta_k) (1 - alphabar_{k-1}) / (1 - alphabar_k) x_k

(``mean_form="x0"``). The last step (k = 1) adds no noise (z = 0 at t = 1 in Algorithm 2); since alphabar_0 = 1 it
returns exactly the Tweedie denoiser x0hat(x_1) = E[x_0 | x_1].

diffusers (DDPMScheduler, 0.35.1; tests/test_diffusers_conformance.py): on a respaced schedule (levels = its
timesteps + 1) its fixed_small / fixed_large variances are "posterior" / "beta" here, and the two agree to float32
rounding (1e-12 with float64 tables), except at the last step when diffusers' last timestep is > 0 ('trailing', or
'leading' with steps_offset = 1): diffusers then adds noise to the data level, of standard deviation
sqrt(1 - alphabar_{tau_1}) (fixed_large) or 1e-10 (fixed_small, its clamp of the zero posterior variance). This
sampler follows Ho et al. Algorithm 2 (z = 0 at the last step) on every schedule.

Noise: the step leaving level k draws the noise source's draw k (by default sdekit's per-path streams,
`sdekit.diffusion.samplers.run`), so each path's output depends only on (seed, path index), never on the batch size.

Backends: x_K may be a float64 NumPy array or a torch tensor (float32 / float64, any device). For a tensor the whole
run stays in torch on that device and dtype, the score is called on tensors, the normals are the same streams drawn
on that device (`run.sampler_normals`), and the result is a tensor; a float64 torch run equals the NumPy run to
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.samplers.arrays import State, is_torch
from sdekit.diffusion.samplers.checks import ScoreFn, check_score, check_state
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["DDPM_VARIANCES", "ddpm_coefficients", "ddpm_posterior_mean", "ddpm_sample"]

DDPM_VARIANCES = ("posterior", "beta")
MEAN_FORMS = ("eps", "x0")


def _check_schedule(schedule: Any) -> DiscreteSchedule:
    if not isinstance(schedule, DiscreteSchedule):
        raise SDEKitError(f"schedule must be a DiscreteSchedule; got {type(schedule).__name__}")
    return schedule


def _check_variance(variance: Any) -> str:
    if variance not in DDPM_VARIANCES:
        raise SDEKitError(f"variance must be one of {DDPM_VARIANCES}; got {variance!r}")
    return variance


def ddpm_coefficients(schedule: DiscreteSchedule, k: int, variance: str = "posterior") -> tuple[float, float, float]:
    """(a_k, b_k, s_k) of the DDPM step x_{k-1} = a_k x_k + b_k epshat + s_k z (Ho et al. 2020, Algorithm 2).

    a_k = 1 / sqrt(1 - beta_k), b_k = -beta_k / (sqrt(1 - beta_k) sqrt(1 - alphabar_k)), and s_k = sqrt(beta_k)
    (variance "beta") or sqrt(betatilde_k), betatilde_k = (1 - alphabar_{k-1}) / (1 - alphabar_k) beta_k
    ("posterior"); 1 <= k <= K. s_k is the step's noise *standard deviation*.
    """
    schedule = _check_schedule(schedule)
    variance = _check_variance(variance)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= int(k) <= schedule.n_steps:
        raise SDEKitError(f"k must be an integer level in 1..{schedule.n_steps}; got {k!r}")
    k = int(k)
    beta = float(schedule.betas[k - 1])
    one_m_abar = 1.0 - schedule.alpha_bar(k)
    one_m_prev = 1.0 - schedule.alpha_bar(k - 1)
    a = 1.0 / math.sqrt(1.0 - beta)
    b = -a * beta / math.sqrt(one_m_abar)
    var = beta if variance == "beta" else one_m_prev / one_m_abar * beta
    return a, b, math.sqrt(var)


def ddpm_posterior_mean(x: ArrayLike | State, x0hat: ArrayLike | State, schedule: DiscreteSchedule, k: int) -> State:
    """Mean of q(x_{k-1} | x_k = x, x_0 = x0hat) (Ho et al. 2020, eq. 7), 1 <= k <= K:

    mu = sqrt(alphabar_{k-1}) beta_k / (1 - alphabar_k) x0hat
         + sqrt(1 - beta_k) (1 - alphabar_{k-1}) / (1 - alphabar_k) x.

    x and x0hat: float64 NumPy arrays, or torch tensors of one dtype and device (then the result is a tensor).
    """
    schedule = _check_schedule(schedule)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= int(k) <= schedule.n_steps:
        raise SDEKitError(f"k must be an integer level in 1..{schedule.n_steps}; got {k!r}")
    k = int(k)
    if is_torch(x) or is_torch(x0hat):
        if not (is_torch(x) and is_torch(x0hat)):
            raise SDEKitError("x and x0hat must both be torch tensors or both be arrays")
        xa, x0 = x, x0hat
    else:
        xa = real_array(x, "x")
        x0 = real_array(x0hat, "x0hat")
    if tuple(xa.shape) != tuple(x0.shape):
        raise SDEKitError(f"x0hat must have the shape of x {tuple(xa.shape)}; got {tuple(x0.shape)}")
    beta = float(schedule.betas[k - 1])
    abar, prev = schedule.alpha_bar(k), schedule.alpha_bar(k - 1)
    c0 = math.sqrt(prev) * beta / (1.0 - abar)
    ck = math.sqrt(1.0 - beta) * (1.0 - prev) / (1.0 - abar)
    return c0 * x0 + ck * xa


def ddpm_sample(score: ScoreFn, schedule: DiscreteSchedule, x_K: ArrayLike, *, variance: str = "posterior",  # noqa: N803
                seed: int = 0, mean_form: str = "eps", final_denoise: bool = False, path_offset: int = 0,
                noise: NoiseFn | None = None, callback: Callable | None = None,
                return_trajectory: bool = False) -> SampleResult:
    """DDPM ancestral sampling from level K down to the data level 0 (Ho et al. 2020, Algorithm 2).

    For k = K, ..., 1 (epshat = -sigma_k s(x_k, alpha_k, sigma_k)):

        x_{k-1} = (1 / sqrt(1 - beta_k)) (x_k - beta_k / sqrt(1 - alphabar_k) epshat) + s_k z_k,

    s_k^2 = betatilde_k ("posterior") or beta_k ("beta"), z_1 = 0 (no noise at the last step). mean_form "x0"
    computes the same mean as the posterior mean of q(x_{k-1} | x_k, x0hat) (`ddpm_posterior_mean`).
    final_denoise: compute the last step as the Tweedie denoiser x0hat(x_1) = (x_1 + sigma_1^2 s) / alpha_1
    directly (`parametrization.x0_from_score`); with alphabar_0 = 1 the step formula gives the same value to rounding.

    x_K: (n, *shape) draws at level K (x_K = alpha_K x_0 + sigma_K eps; for a respaced schedule its last level).
    z_k: the noise source's draw k (`run.SamplerRun`: by default sdekit's per-path streams for (seed, path_offset +
    row)). callback / return_trajectory: see `sdekit.diffusion.samplers.run`. Returns a `SampleResult` (NFE = K);
    a torch x_K runs in torch on its device and dtype and gives a tensor (module docstring).
    """
    score = check_score(score)
    schedule = _check_schedule(schedule)
    variance = _check_variance(variance)
    if mean_form not in MEAN_FORMS:
        raise SDEKitError(f"mean_form must be one of {MEAN_FORMS}; got {mean_form!r}")
    if not isinstance(final_denoise, bool | np.bool_):
        raise SDEKitError(f"final_denoise must be a bool; got {final_denoise!r}")
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    x = check_state(x_K, "x_K")
    run.start(x, *schedule.level(schedule.n_steps))
    for k in range(schedule.n_steps, 0, -1):
        alpha, sigma = schedule.level(k)
        s = run.score(x, alpha, sigma, schedule.n_steps - k)
        x0 = _x0(x, s, alpha, sigma)
        if k == 1 and final_denoise:
            x = x0
        else:
            a, b, std = ddpm_coefficients(schedule, k, variance)
            if mean_form == "eps":
                x = a * x + b * (-sigma * s)
            else:
                x = ddpm_posterior_mean(x, x0, schedule, k)
            if k > 1 and std > 0:
                x = x + std * run.noise(k, x)
        run.step_done(schedule.n_steps - k, x, *schedule.level(k - 1), x0)
    return run.finish(x)


def _x0(x: State, s: State, alpha: float, sigma: float) -> State:
    """Tweedie's x0hat = (x + sigma^2 s) / alpha (Efron 2011; `parametrization.x0_from_score`), in x's kind."""
    return (x + sigma * sigma * s) / alpha
