"""SDE-DPM-Solver++(2M) and (3M) with eta and s_noise (k-diffusion's ``sample_dpmpp_2m_sde`` /
``sample_dpmpp_3m_sde``, Crowson 2023; Lu et al. 2022b, "DPM-Solver++", and Gonzalez et al. 2023, "SEEDS", for the
SDE form) in sigma form for a VE-type kernel x = x_0 + sigma n (alpha = 1; the convention of
`sdekit.diffusion.samplers.edm`).

The model is a score s(x, 1, sigma); D(x; sigma) = x + sigma^2 s. With t = -log sigma (lambda of a VE kernel),
a step sigma_i -> sigma_{i+1} has h = t_{i+1} - t_i > 0 and, for eta >= 0, H = (1 + eta) h. The reverse SDE whose
drift mixes the probability-flow ODE (eta = 0) and the reverse-time SDE (eta = 1) has the exact linear propagator
(sigma_{i+1} / sigma_i) e^{-eta h} = e^{-H}, data weight 1 - e^{-H} = -expm1(-H) for a constant D, and noise
variance sigma_{i+1}^2 (1 - e^{-2 eta h}); the multistep solvers expand D in t from the previous outputs D_1, D_2
(of the steps before, with step sizes h_1, h_2):

    x' = e^{-H} x - expm1(-H) D + [correction] + s_noise sigma_{i+1} sqrt(-expm1(-2 eta h)) z_i,

    2M, r = h_1 / h, D1 = (D - D_1) / r:
        "midpoint":  correction = -expm1(-H) D1 / 2
        "heun":      correction = phi_2(H) D1,  phi_2(H) = expm1(-H) / H + 1
    3M, r0 = h_1 / h, r1 = h_2 / h, d1_0 = (D - D_1) / r0, d1_1 = (D_1 - D_2) / r1,
        d1 = d1_0 + r0 (d1_0 - d1_1) / (r0 + r1),  d2 = (d1_0 - d1_1) / (r0 + r1),
        correction = phi_2(H) d1 - 2 phi_3(H) d2,  phi_3(H) = phi_2(H) / H - 1/2
        (the second step uses phi_2(H) (D - D_1) / r, the first none).

The step onto sigma = 0 is the final denoise x' = D. With h D'(t) ~ d1 and h^2 D''(t) / 2 ~ d2, the weights are the
exact integrals of the Taylor terms (u / h)^k against the propagator, int_0^h (1 + eta) e^{-(1 + eta)(h - u)}
(u / h)^k du = phi_2(H) (k = 1) and -2 phi_3(H) (k = 2), so for eta = 0 these are the multistep DPM-Solver++(2M)
(order 2) and (3M) (order 3) ODE solvers; for eta > 0 they are weak first-order SDE schemes (exact in law for a
constant D). NFE = N (N = len(sigmas) - 1). With eta = 0, 3M takes the steps of
``dpm_solver_sample(method="multistep", order=3, algorithm="dpmsolver++", lower_order_final=False)`` on the VP pairs
of the grid except the second (warm-up) step, which there is the midpoint form -expm1(-H) D1 / 2 (with that form
the two agree to 2.4e-14 on a 9-level Karras grid, 2-D).

**Noise.** z_i is the noise source's draw i (`sdekit.diffusion.samplers.run`; by default sdekit's per-path streams),
or with ``brownian=True`` the normalised increment (W(t_{i+1}) - W(t_i)) / sqrt(h) of one Brownian path per row
(`sdekit.diffusion.samplers.dpmpp_sde.BrownianNoise`, k-diffusion's default BrownianTreeNoiseSampler). The increments
of one path over disjoint steps are independent standard normals, so both choices have the same law on a grid; the
path couples different grids of the same seed (a coarse step's noise is the sum of the fine steps' noises).
The per-step streams stay the default (no tree descent per step).

diffusers (0.35.1; tests/test_samplers_ancestral_sde_conformance.py): DPMSolverMultistepScheduler(algorithm_type=
"sde-dpmsolver++", final_sigmas_type="zero") is eta = 1, s_noise = 1 of these samplers on its grid (VP pairs of
sigma_edm; the VP update divided by alpha is the VE update): solver_order 2 with solver_type "midpoint" / "heun" is
the same algorithm (agreement to float32 rounding: its step casts the sample to float32), including its
lower_order_final rule (the last step onto 0 is the denoise in both). solver_order 3 is NOT the same: diffusers'
third-order SDE update weights d2 by (1 - e^{-H} - H) / H^2 - 1/2, i.e. -phi_3 with phi_3 = phi_2 / H + 1/2
(its weight tends to -1 instead of 0 as h -> 0, a first-order error); it equals this sampler with the module
constants ``_D2_WEIGHT = K_DIFFUSION_D2_WEIGHT`` (1) and ``_PHI3_HALF = -0.5`` to float32 rounding, which the
conformance test pins. diffusers also lowers the order of the second-to-last step with lower_order_final and
fewer than 15 steps (not done here).

**Order of 3M: the d2 weight.** k-diffusion's ``sample_dpmpp_3m_sde`` (as DPM-Solver's multistep code and
diffusers) weights d2 by -phi_3(H) = 1/2 - phi_2(H) / H ~ H / 6, HALF the exact Taylor weight -2 phi_3(H) ~ H / 3,
so its step has local error O(h^3) and global order 2. This module uses the exact weight (``_D2_WEIGHT = 2``);
k-diffusion's is the module constant ``K_DIFFUSION_D2_WEIGHT = 1``, and with ``_D2_WEIGHT`` set to it the sampler
equals k-diffusion's to 1e-12 in float64 (tests/test_k_diffusion_conformance.py). Measured with eta = 0 on Gaussian
data N(0, diag(0.05, 0.3, 2)) against the exact flow map, ``karras_sigmas(n + 1, 0.002, 80)[:-1]``: local slopes
3.54, 3.34, 3.08, 3.04, 3.01 over NFE 10 .. 320 (fit 3.15 over NFE 20 .. 160, the tested window [2.5, 3.5]); with
k-diffusion's weight 1.29 .. 1.92 (fit 1.52), on the exponential grid 2.6 .. 2.0.

Accuracy with the exact score (tests/test_samplers_ancestral_sde.py; 1-, 2-, 4-D mixtures, N = 20000, start
~ p(x; 80), ``karras_sigmas(n, 0.002, 80)`` ending at 0, ``compare_with_law`` at 1e-6, eta = 1): 2M midpoint fails
at 40 NFE (2-D p 6e-14), passes at 48 (min p 3.8e-5); 2M heun fails at 48 (4-D p 2e-15), passes at 64 (1.5e-5);
3M fails at 28 (2-D p 1.8e-40; 1-D 4.9e-18, 4-D 4.0e-28), passes at 32 (min p 9.6e-8, 2-D; 36: 4.6e-4). For the
SDE (eta = 1) the exact d2 weight costs accuracy in law (k-diffusion's weight 1, same seeds: fails at 28 with 2-D
p 1.6e-9, passes at 32 with min p 0.024); a likely reason is that the second difference of D along a noisy path
is mostly noise, which the larger weight passes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_real, check_state
from sdekit.diffusion.samplers.dpmpp_sde import brownian_for, brownian_source
from sdekit.diffusion.samplers.edm import check_sigma_grid
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["dpmpp_2m_sde_sample", "dpmpp_3m_sde_sample"]

ScoreFn = Callable[[State, float, float], State]
SOLVER_TYPES = ("midpoint", "heun")

# The 3M correction is phi_2(H) d1 - _D2_WEIGHT phi_3(H) d2 with phi_3(H) = phi_2(H) / H - _PHI3_HALF. The exact
# Taylor weight of d2 ~ h^2 D'' / 2 is 2 phi_3 (third order); k-diffusion's published sample_dpmpp_3m_sde uses
# K_DIFFUSION_D2_WEIGHT = 1 (second order) and diffusers' order-3 "sde-dpmsolver++" additionally _PHI3_HALF = -1/2.
# Module constants so the tests can reproduce either (and plant a wrong one).
_D2_WEIGHT = 2.0
K_DIFFUSION_D2_WEIGHT = 1.0
_PHI3_HALF = 0.5


def _noise_std(sigma_next: float, h: float, eta: float) -> float:
    """The noise standard deviation sigma_{i+1} sqrt(1 - e^{-2 eta h}) (a module function so the tests can plant a
    wrong one)."""
    return sigma_next * math.sqrt(-math.expm1(-2.0 * eta * h))


def _phi2(big_h: float) -> float:
    """phi_2(H) = expm1(-H) / H + 1 = (e^{-H} - 1 + H) / H."""
    return math.expm1(-big_h) / big_h + 1.0


def _multistep(score: ScoreFn, sigmas: ArrayLike, x_init: ArrayLike, eta: float, s_noise: float,
               brownian: bool | None, seed: int, path_offset: int, noise: NoiseFn | None, callback: Callable | None,
               return_trajectory: bool, correction: Callable) -> SampleResult:
    """The shared loop: D at (x, sigma_i), the exponential step, correction(h, H, D, history) from the previous
    outputs, then the noise."""
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    s = check_sigma_grid(sigmas)
    x = check_state(x_init, "x_init")
    eta = check_real(eta, "eta", lo=0.0)
    noise_scale = check_real(s_noise, "s_noise", lo=0.0)
    use_path = brownian_source(brownian, noise, default=False)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    noisy = eta > 0 and noise_scale > 0
    path = brownian_for(run, x, s) if use_path and noisy else None
    history: list[tuple[State, float]] = []  # (D, h) of the previous steps, newest first
    run.start(x, 1.0, float(s[0]))
    for i in range(s.size - 1):
        sig, sig_next = float(s[i]), float(s[i + 1])
        denoised = x + (sig * sig) * run.score(x, 1.0, sig, i)
        if sig_next == 0.0:
            x = denoised  # the final denoise
        else:
            t, t_next = -math.log(sig), -math.log(sig_next)
            h = t_next - t
            big_h = h * (1.0 + eta)
            x = (sig_next / sig * math.exp(-eta * h)) * x - math.expm1(-big_h) * denoised
            if history:
                x = x + correction(h, big_h, denoised, history)
            if noisy:
                z = path(t, t_next, x) if path is not None else run.noise(i, x)
                x = x + (noise_scale * _noise_std(sig_next, h, eta)) * z
            history.insert(0, (denoised, h))
            del history[2:]
        run.step_done(i, x, 1.0, sig_next, denoised)
    return run.finish(x)


def dpmpp_2m_sde_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *,
                        eta: float = 1.0, s_noise: float = 1.0, solver_type: str = "midpoint",
                        brownian: bool = False, seed: int = 0, path_offset: int = 0, noise: NoiseFn | None = None,
                        callback: Callable | None = None, return_trajectory: bool = False) -> SampleResult:
    """SDE-DPM-Solver++(2M) (k-diffusion ``sample_dpmpp_2m_sde``; diffusers DPMSolverMultistepScheduler with
    algorithm_type "sde-dpmsolver++", solver_order 2, for eta = 1) from x_init ~ p(x; sigmas[0]).

    Step i (h = log(sigma_i / sigma_{i+1}), H = (1 + eta) h, D1 = (D - D_prev) h / h_prev):
    x' = (sigma_{i+1} / sigma_i) e^{-eta h} x - expm1(-H) D + c D1 + s_noise sigma_{i+1} sqrt(-expm1(-2 eta h)) z_i
    with c = -expm1(-H) / 2 ("midpoint") or expm1(-H) / H + 1 ("heun"), c = 0 at the first step; x' = D onto
    sigma = 0. eta = 0: DPM-Solver++(2M), order 2. z_i: the noise source's draw i, or with ``brownian=True`` the
    normalised increment of a Brownian path in t = -log sigma (module docstring). NFE = N.
    """
    if solver_type not in SOLVER_TYPES:
        raise SDEKitError(f"solver_type must be one of {SOLVER_TYPES}; got {solver_type!r}")

    def correction(h: float, big_h: float, denoised: State, history: list) -> State:
        d_prev, h_prev = history[0]
        c = -0.5 * math.expm1(-big_h) if solver_type == "midpoint" else _phi2(big_h)
        return (c * h / h_prev) * (denoised - d_prev)

    return _multistep(score, sigmas, x_init, eta, s_noise, brownian, seed, path_offset, noise, callback,
                      return_trajectory, correction)


def dpmpp_3m_sde_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *,
                        eta: float = 1.0, s_noise: float = 1.0, brownian: bool = False, seed: int = 0,
                        path_offset: int = 0, noise: NoiseFn | None = None, callback: Callable | None = None,
                        return_trajectory: bool = False) -> SampleResult:
    """SDE-DPM-Solver++(3M) (k-diffusion ``sample_dpmpp_3m_sde``) from x_init ~ p(x; sigmas[0]).

    Step i (h, H as for 2M; r0 = h_1 / h, r1 = h_2 / h from the two previous steps):
    x' = e^{-H} x - expm1(-H) D + phi_2(H) d1 - 2 phi_3(H) d2 + s_noise sigma_{i+1} sqrt(-expm1(-2 eta h)) z_i with
    d1_0 = (D - D_1) / r0, d1_1 = (D_1 - D_2) / r1, d1 = d1_0 + r0 (d1_0 - d1_1) / (r0 + r1),
    d2 = (d1_0 - d1_1) / (r0 + r1), phi_2(H) = expm1(-H) / H + 1, phi_3(H) = phi_2(H) / H - 1/2; the second step
    adds phi_2(H) (D - D_1) / r0 only, the first nothing; x' = D onto sigma = 0. eta = 0: DPM-Solver++(3M), order 3
    (measured 3.0). The factor 2 on phi_3 d2 is the exact Taylor weight; k-diffusion (and diffusers'
    solver_order 3 "sde-dpmsolver++", with a further change) use 1, which is second order (module docstring).
    NFE = N.
    """

    def correction(h: float, big_h: float, denoised: State, history: list) -> State:
        phi2 = _phi2(big_h)
        d_1, h_1 = history[0]
        if len(history) == 1:
            return (phi2 * h / h_1) * (denoised - d_1)
        d_2, h_2 = history[1]
        r0, r1 = h_1 / h, h_2 / h
        d1_0 = (denoised - d_1) * (1.0 / r0)
        d1_1 = (d_1 - d_2) * (1.0 / r1)
        d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
        d2 = (d1_0 - d1_1) * (1.0 / (r0 + r1))
        phi3 = phi2 / big_h - _PHI3_HALF
        return phi2 * d1 - (_D2_WEIGHT * phi3) * d2

    return _multistep(score, sigmas, x_init, eta, s_noise, brownian, seed, path_offset, noise, callback,
                      return_trajectory, correction)
