"""Ancestral samplers in sigma form (k-diffusion, Crowson 2022): Euler ancestral, DPM-2 ancestral and DPM++ 2S
ancestral, for a VE-type kernel x = x_0 + sigma n (alpha = 1; the convention of `sdekit.diffusion.samplers.edm`).

The model is a score s(x, 1, sigma) ~ grad log p(x; sigma); the denoiser is Tweedie's D(x; sigma) = x + sigma^2 s.
Every step sigma -> sigma' (N = len(sigmas) - 1 steps) splits the target level into a deterministic part and fresh
noise (the ancestral split: the DDPM posterior q(x_{sigma'} | x_sigma, x_0) in VE form, scaled by eta):

    sigma_up   = min(sigma', eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2)),
    sigma_down = sqrt(sigma'^2 - sigma_up^2),
    x'         = ODE(x; sigma -> sigma_down) + s_noise sigma_up z_i          (no noise when sigma' = 0),

so sigma_down^2 + sigma_up^2 = sigma'^2 and, with the exact probability-flow map, eta = 1 is the exact DDPM
ancestral step (for eta = 1 the step to sigma_down = sigma'^2 / sigma). The ODE part is (d = (x - D(x; sigma)) / sigma
= -sigma s):

* Euler ancestral (order 1):   x + (sigma_down - sigma) d.
* DPM-2 ancestral (order 2; Karras et al. 2022 / Lu et al. 2022's DPM-Solver-2 in sigma): sigma_mid =
  sqrt(sigma sigma_down) (the log-midpoint), x_2 = x + (sigma_mid - sigma) d,
  d_2 = (x_2 - D(x_2; sigma_mid)) / sigma_mid, x + (sigma_down - sigma) d_2.
* DPM++ 2S ancestral (order 2; Lu et al. 2022b, DPM-Solver++(2S) with r = 1/2): t = -log sigma,
  h = -log sigma_down - t, sigma_s = sigma e^{-h/2}, x_2 = (sigma_s / sigma) x - expm1(-h / 2) D(x; sigma),
  (sigma_down / sigma) x - expm1(-h) D(x_2; sigma_s).

When sigma_down = 0 (the last step onto sigma' = 0, or eta so large that sigma_up = sigma') the ODE part is the Euler
step to 0, x - sigma d = D(x; sigma) (one model call). With eta = 0 there is no noise: the samplers are the ODE
solvers Euler, DPM-2 and DPM-Solver++(2S) on the grid, of global orders 1, 2, 2. NFE: N for Euler ancestral,
2 N - #{i : sigma_down_i = 0} for the two second-order samplers (2 N - 1 on a grid ending at 0).

z_i is the noise source's draw i (`sdekit.diffusion.samplers.run`: by default sdekit's per-path streams keyed by
(seed, path_offset + row, step), so a path's output does not depend on the batch; ``noise=`` replaces them). The
seed is ignored when eta = 0 or s_noise = 0.

References: k-diffusion ``sample_euler_ancestral``, ``sample_dpm_2_ancestral``, ``sample_dpmpp_2s_ancestral`` and
``get_ancestral_step`` (Crowson, github.com/crowsonkb/k-diffusion); Ho, Jain & Abbeel 2020 (ancestral sampling);
Karras, Aittala, Aila & Laine 2022 (sigma form, DPM-2); Lu, Zhou, Bao, Chen, Li & Zhu 2022 (DPM-Solver) and 2022b
(DPM-Solver++).

diffusers (0.35.1; tests/test_samplers_ancestral_sde_conformance.py): EulerAncestralDiscreteScheduler (eta = 1, no
s_noise) and KDPM2AncestralDiscreteScheduler (eta = 1) are these updates on diffusers' sigma grid; fed the same
normals they agree to float32 rounding (Euler ancestral casts its sample to float32 in every step) and KDPM2
ancestral to 1e-12 with float64 tables.

Accuracy with the exact score (tests/test_samplers_ancestral_sde.py; data = 1-, 2- and 4-D anisotropic mixtures,
N = 20000, start ~ p(x; 80), ``karras_sigmas(n, 0.002, 80)`` ending at 0, ``compare_with_law`` at 1e-6 against the
data law; steps n: fails at n / passes at n, min p over 1-, 2-, 4-D): Euler ancestral fails at 256 (4-D p 1e-12),
passes at 384 (min p 1.7e-6); DPM-2 ancestral fails at 40 (79 NFE, 4-D p 8e-10), passes at 48 (95 NFE, 4.5e-4);
DPM++ 2S ancestral fails at 48 (95 NFE, 4-D p 1.2e-8), passes at 56 (111 NFE, 1.3e-6). With eta = 0 the measured
orders on Gaussian data are 0.95 / 2.1 / 1.8 (NFE 10 .. 80, Karras grid).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_real, check_state
from sdekit.diffusion.samplers.edm import check_sigma_grid
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["ancestral_step", "dpm2_ancestral_sample", "dpmpp_2s_ancestral_sample", "euler_ancestral_sample"]

ScoreFn = Callable[[State, float, float], State]


def _up_variance(sigma: float, sigma_next: float, eta: float) -> float:
    """sigma_up^2 = min(sigma'^2, eta^2 sigma'^2 (sigma^2 - sigma'^2) / sigma^2) (a module function so the tests can
    plant a wrong one)."""
    return min(sigma_next * sigma_next,
               (eta * eta) * sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma))


def _noise_std(variance: float) -> float:
    """The standard deviation of the ancestral noise from its variance sigma_up^2 (a module function so the tests can
    plant the noise without its square root)."""
    return math.sqrt(variance)


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """The ancestral split of a step sigma -> sigma' (k-diffusion's ``get_ancestral_step``): (sigma_down, sigma_up)
    with sigma_up = min(sigma', eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2)) and
    sigma_down = sqrt(sigma'^2 - sigma_up^2); (sigma', 0) when eta = 0. For eta = 1 and the exact ODE map this is the
    DDPM posterior step (Ho et al. 2020) in VE form."""
    if eta == 0.0:
        return sigma_next, 0.0
    var = _up_variance(sigma, sigma_next, eta)
    return math.sqrt(max(sigma_next * sigma_next - var, 0.0)), _noise_std(var)


def _check_common(score: ScoreFn, sigmas: ArrayLike, x_init: ArrayLike, eta: float, s_noise: float):
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    s = check_sigma_grid(sigmas)
    x = check_state(x_init, "x_init")
    return s, x, check_real(eta, "eta", lo=0.0), check_real(s_noise, "s_noise", lo=0.0)


def _euler_part(run: SamplerRun, x: State, sigma: float, sigma_down: float, denoised: State, i: int) -> State:
    """Euler from sigma to sigma_down: x + (sigma_down - sigma) (x - D) / sigma."""
    return x + ((sigma_down - sigma) / sigma) * (x - denoised)


def _dpm2_part(run: SamplerRun, x: State, sigma: float, sigma_down: float, denoised: State, i: int) -> State:
    """DPM-2 (log-midpoint) from sigma to sigma_down > 0."""
    sigma_mid = math.exp(0.5 * (math.log(sigma) + math.log(sigma_down)))
    x2 = x + ((sigma_mid - sigma) / sigma) * (x - denoised)
    d2 = (-sigma_mid) * run.score(x2, 1.0, sigma_mid, i)  # (x_2 - D(x_2; sigma_mid)) / sigma_mid
    return x + (sigma_down - sigma) * d2


def _dpmpp_2s_part(run: SamplerRun, x: State, sigma: float, sigma_down: float, denoised: State, i: int) -> State:
    """DPM-Solver++(2S), r = 1/2, from sigma to sigma_down > 0 in t = -log sigma."""
    t, t_next = -math.log(sigma), -math.log(sigma_down)
    h = t_next - t
    sigma_s = math.exp(-(t + 0.5 * h))
    x2 = (sigma_s / sigma) * x - math.expm1(-0.5 * h) * denoised
    d2 = x2 + (sigma_s * sigma_s) * run.score(x2, 1.0, sigma_s, i)  # D(x_2; sigma_s)
    return (sigma_down / sigma) * x - math.expm1(-h) * d2


def _ancestral(score: ScoreFn, sigmas: ArrayLike, x_init: ArrayLike, eta: float, s_noise: float, seed: int,
               path_offset: int, noise: NoiseFn | None, callback: Callable | None, return_trajectory: bool,
               ode_part: Callable) -> SampleResult:
    """The shared loop: D at (x, sigma_i), the ODE part to sigma_down (Euler when sigma_down = 0), then the noise
    s_noise sigma_up z_i when sigma_{i+1} > 0 and sigma_up > 0."""
    s, x, eta, noise_scale = _check_common(score, sigmas, x_init, eta, s_noise)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    run.start(x, 1.0, float(s[0]))
    for i in range(s.size - 1):
        sig, sig_next = float(s[i]), float(s[i + 1])
        denoised = x + (sig * sig) * run.score(x, 1.0, sig, i)
        sig_down, sig_up = ancestral_step(sig, sig_next, eta)
        if sig_down == 0.0:
            x = denoised  # the Euler step to 0: x + (0 - sigma) (x - D) / sigma
        else:
            x = ode_part(run, x, sig, sig_down, denoised, i)
        if sig_next > 0.0 and sig_up > 0.0 and noise_scale > 0.0:
            x = x + (noise_scale * sig_up) * run.noise(i, x)
        run.step_done(i, x, 1.0, sig_next, denoised)
    return run.finish(x)


def euler_ancestral_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *,
                           eta: float = 1.0, s_noise: float = 1.0, seed: int = 0, path_offset: int = 0,
                           noise: NoiseFn | None = None, callback: Callable | None = None,
                           return_trajectory: bool = False) -> SampleResult:
    """Euler ancestral (k-diffusion ``sample_euler_ancestral``; diffusers EulerAncestralDiscreteScheduler) from
    x_init ~ p(x; sigmas[0]).

    Step i: D = x + sigma_i^2 s(x, 1, sigma_i), (sigma_down, sigma_up) = `ancestral_step`(sigma_i, sigma_{i+1}, eta),
    x' = x + (sigma_down - sigma_i) (x - D) / sigma_i + s_noise sigma_up z_i (z_i only when sigma_{i+1} > 0).
    Order 1 (weak); eta = 0 is Euler on the probability-flow ODE. sigmas: strictly decreasing, > 0 except possibly
    the last (e.g. `karras_sigmas`); eta >= 0 (1: the DDPM posterior step); s_noise >= 0 (1 keeps the law). NFE = N.
    Returns a `SampleResult` (alphas all 1); a torch x_init runs in torch (module docstring).
    """
    return _ancestral(score, sigmas, x_init, eta, s_noise, seed, path_offset, noise, callback, return_trajectory,
                      _euler_part)


def dpm2_ancestral_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *,
                          eta: float = 1.0, s_noise: float = 1.0, seed: int = 0, path_offset: int = 0,
                          noise: NoiseFn | None = None, callback: Callable | None = None,
                          return_trajectory: bool = False) -> SampleResult:
    """DPM-2 ancestral (k-diffusion ``sample_dpm_2_ancestral``; diffusers KDPM2AncestralDiscreteScheduler) from
    x_init ~ p(x; sigmas[0]).

    Step i: D, d = (x - D) / sigma_i at sigma_i; (sigma_down, sigma_up) = `ancestral_step`; if sigma_down > 0:
    sigma_mid = sqrt(sigma_i sigma_down), x_2 = x + (sigma_mid - sigma_i) d, d_2 = -sigma_mid s(x_2, 1, sigma_mid),
    x' = x + (sigma_down - sigma_i) d_2; else x' = D. Then + s_noise sigma_up z_i when sigma_{i+1} > 0.
    eta = 0 is DPM-Solver-2 in sigma (Karras et al. 2022's DPM-2), order 2. NFE = 2 N - #{sigma_down = 0}.
    """
    return _ancestral(score, sigmas, x_init, eta, s_noise, seed, path_offset, noise, callback, return_trajectory,
                      _dpm2_part)


def dpmpp_2s_ancestral_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *,
                              eta: float = 1.0, s_noise: float = 1.0, seed: int = 0, path_offset: int = 0,
                              noise: NoiseFn | None = None, callback: Callable | None = None,
                              return_trajectory: bool = False) -> SampleResult:
    """DPM++ 2S ancestral (k-diffusion ``sample_dpmpp_2s_ancestral``; Lu et al. 2022b's DPM-Solver++(2S), r = 1/2)
    from x_init ~ p(x; sigmas[0]).

    Step i: D at sigma_i; (sigma_down, sigma_up) = `ancestral_step`; if sigma_down > 0: t = -log sigma_i,
    h = -log sigma_down - t, sigma_s = sigma_i e^{-h/2}, x_2 = (sigma_s / sigma_i) x - expm1(-h/2) D,
    x' = (sigma_down / sigma_i) x - expm1(-h) D(x_2; sigma_s); else x' = D. Then + s_noise sigma_up z_i when
    sigma_{i+1} > 0. eta = 0 is DPM-Solver++(2S), order 2. NFE = 2 N - #{sigma_down = 0}.
    """
    return _ancestral(score, sigmas, x_init, eta, s_noise, seed, path_offset, noise, callback, return_trajectory,
                      _dpmpp_2s_part)
