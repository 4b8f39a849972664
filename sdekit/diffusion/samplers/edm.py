"""EDM samplers (Karras, Aittala, Aila & Laine 2022, "Elucidating the design space of diffusion-based generative
models", Algorithms 1 and 2) for a VE-type kernel x = x_0 + sigma n (alpha = 1).

The model is a score s(x, alpha, sigma) ~ grad log p(x; sigma), called with alpha = 1. The EDM denoiser is Tweedie's
D(x; sigma) = x + sigma^2 s(x, 1, sigma), and the probability-flow ODE in sigma is

    dx / dsigma = (x - D(x; sigma)) / sigma = -sigma s(x, 1, sigma)      (evaluated in the right-hand form).

Step i (sigma_i -> sigma_{i+1}, N = len(sigmas) - 1 steps):

    gamma_i   = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma_i <= S_tmax else 0
    sigma_hat = sigma_i (1 + gamma_i),   x_hat = x_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise z_i
    d_i       = -sigma_hat s(x_hat, 1, sigma_hat)
    x_{i+1}   = x_hat + (sigma_{i+1} - sigma_hat) d_i                                      (Euler)
    Heun, if sigma_{i+1} > 0:  d'_i = -sigma_{i+1} s(x_{i+1}, 1, sigma_{i+1}),
              x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) (d_i / 2 + d'_i / 2)

With S_churn = 0 this is the deterministic Algorithm 1. z_i is the noise source's draw i (by default sdekit's per-path
streams, `sdekit.diffusion.samplers.run`), so a path's output does not depend on the batch it runs in. NFE = N for
Euler, N + #{i : sigma_{i+1} > 0} for Heun (2N - 1 on a grid ending at 0).

diffusers (0.35.1; tests/test_diffusers_conformance.py): EulerDiscreteScheduler and HeunDiscreteScheduler are
Algorithm 1 (Euler / Heun) on sigma_edm = sqrt((1 - alphabar) / alphabar) of a discrete VP schedule with the network
called at x / sqrt(sigma^2 + 1); `sdekit.diffusion.networks.from_diffusers` answers score(x, 1, sigma) the same way,
and on diffusers' own sigma grid the results agree to float32 rounding (Heun to 1e-12 with float64 tables; Euler casts
its sample to float32). With S_churn > 0 EulerDiscreteScheduler differs from Algorithm 2: it evaluates the network at
the pre-churn state and noise level (x_i, sigma_i) and steps from x_hat with that output,
x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) eps(x_i; sigma_i); this sampler evaluates d_i at (x_hat, sigma_hat)
as Karras et al.'s Algorithm 2 does.

Accuracy with the exact score (tests/test_samplers_edm_dpm.py, data = 1-, 2- and 4-D anisotropic mixtures of scale
~2, N = 20000, ``compare_with_law`` at 1e-6 against the data law): the discretisation bias of Heun on
``karras_sigmas(18, 0.002, 80)`` (35 NFE, the paper's setting) IS detectable (1-D: variance 3.72 vs 3.50,
min p 2e-24; 4-D min p 2e-67); 24 steps still fail (min p 3e-8 .. 6e-18); from 32 steps (63 NFE) all pass
(min p >= 1.3e-4), which is what is tested. With churn (S_churn = 10, S_tmin = 0.05, S_tmax = 50) 32 steps fail
(moments) and 64 steps (127 NFE) pass. On Gaussian data the error against the exact flow map falls with order 2.1
in the NFE (10 .. 80).

Backends: x_init may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays
in torch on that device and dtype, calls the score on tensors, uses the same normals drawn on that device
(`run.sampler_normals`) and returns a tensor (equal to the NumPy run to rounding in float64). Each score output is
checked for kind, shape and finiteness (`score_calls.ScoreCalls`: on torch without a host synchronisation per call).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_real, check_state
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["EDMResult", "edm_sample", "karras_sigmas"]

ScoreFn = Callable[[State, float, float], State]

# Heun's averaging weights (d_i, d'_i); a module constant so the tests can plant a wrong rule.
_HEUN_WEIGHTS = (0.5, 0.5)


def _churn_std(sigma: float, sigma_hat: float) -> float:
    """Standard deviation of the churn noise lifting sigma to sigma_hat: sqrt(sigma_hat^2 - sigma^2)."""
    return math.sqrt(sigma_hat * sigma_hat - sigma * sigma)


EDMResult = SampleResult  # the one result type of every sampler (`sdekit.diffusion.samplers.run`)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> np.ndarray:
    """The EDM noise levels (Karras et al. 2022, eq. 5) with the final 0 appended; shape (n + 1,).

    sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i = 0..n-1, sigma_n = 0.
    n >= 2 noise levels (n sampler steps), 0 < sigma_min < sigma_max, rho > 0.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise SDEKitError(f"n must be an integer >= 2 (the number of noise levels); got {n!r}")
    lo = check_real(sigma_min, "sigma_min", lo=0.0, strict=True)
    hi = check_real(sigma_max, "sigma_max", lo=0.0, strict=True)
    if not hi > lo:
        raise SDEKitError(f"sigma_max must exceed sigma_min; got sigma_min = {lo}, sigma_max = {hi}")
    rho = check_real(rho, "rho", lo=0.0, strict=True)
    ramp = np.linspace(0.0, 1.0, int(n))
    a, b = hi ** (1.0 / rho), lo ** (1.0 / rho)
    out = (a + ramp * (b - a)) ** rho
    out[0], out[-1] = hi, lo
    return np.append(out, 0.0)


def check_sigma_grid(sigmas: ArrayLike, name: str = "sigmas") -> np.ndarray:
    """A noise-level grid as float64: 1-D, at least 2 levels, finite, > 0 except possibly the last (0: the data),
    strictly decreasing (noisiest first); an SDEKitError naming ``name`` otherwise."""
    try:
        s = np.asarray(sigmas, dtype=np.float64)
    except (TypeError, ValueError):
        raise SDEKitError(f"{name} must be a 1-D array of numbers") from None
    if s.ndim != 1 or s.size < 2:
        raise SDEKitError(f"{name} must be a 1-D array of at least 2 noise levels; got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise SDEKitError(f"{name} must be finite")
    if not (np.all(s[:-1] > 0) and s[-1] >= 0):
        raise SDEKitError(f"{name} must be > 0 (only the last may be 0, the data)")
    if not np.all(np.diff(s) < 0):
        raise SDEKitError(f"{name} must be strictly decreasing (noisiest first)")
    return s


def edm_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *, method: str = "heun",
               s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0,
               seed: int = 0, path_offset: int = 0, noise: NoiseFn | None = None, callback: Callable | None = None,
               return_trajectory: bool = False) -> SampleResult:
    """Karras et al. 2022 Algorithm 2 (Algorithm 1 when s_churn = 0) from x_init ~ p(x; sigmas[0]).

    score(x (n, *shape), 1.0, sigma) -> (n, *shape) ~ grad log p(x; sigma); sigmas: strictly decreasing, > 0 except
    possibly the last (e.g. `karras_sigmas`; a last 0 is the final step to the data, taken by Euler); method "heun"
    (2nd order) or "euler". For each step i: gamma = min(s_churn / N, sqrt(2) - 1) when s_tmin <= sigma_i <= s_tmax
    (else 0), sigma_hat = sigma_i (1 + gamma), x_hat = x + sqrt(sigma_hat^2 - sigma_i^2) s_noise z_i,
    d = -sigma_hat s(x_hat), x' = x_hat + (sigma_{i+1} - sigma_hat) d; Heun then re-evaluates
    d' = -sigma_{i+1} s(x') and takes x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) (d + d') / 2. z_i: the noise
    source's draw i (`sdekit.diffusion.samplers.run`; by default sdekit's per-path streams for (seed, path_offset +
    row); the seed is ignored when no step churns). s_noise = 1 keeps the exact law; Karras et al. use s_noise
    slightly above 1 to offset a learned denoiser's bias. Returns a `SampleResult` (alphas all 1); a torch x_init
    runs in torch on its device and dtype and gives a tensor x (module docstring).
    """
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    s = check_sigma_grid(sigmas)
    x = check_state(x_init, "x_init")
    if method not in ("heun", "euler"):
        raise SDEKitError(f"method must be 'heun' or 'euler'; got {method!r}")
    churn = check_real(s_churn, "s_churn", lo=0.0)
    tmin = check_real(s_tmin, "s_tmin", lo=0.0, allow_inf=True)
    tmax = check_real(s_tmax, "s_tmax", lo=0.0, allow_inf=True)
    if tmax < tmin:
        raise SDEKitError(f"s_tmax must be >= s_tmin; got s_tmin = {tmin}, s_tmax = {tmax}")
    noise_scale = check_real(s_noise, "s_noise", lo=0.0)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    n_steps = s.size - 1
    gamma_max = min(churn / n_steps, math.sqrt(2.0) - 1.0)
    gammas = np.where((s[:-1] >= tmin) & (s[:-1] <= tmax), gamma_max, 0.0)
    w1, w2 = _HEUN_WEIGHTS
    run.start(x, 1.0, float(s[0]))
    for i in range(n_steps):
        sig, sig_next = float(s[i]), float(s[i + 1])
        sig_hat = sig * (1.0 + float(gammas[i]))
        if sig_hat > sig and noise_scale > 0:
            x = x + (_churn_std(sig, sig_hat) * noise_scale) * run.noise(i, x)
        s1 = run.score(x, 1.0, sig_hat, i)
        d1 = -sig_hat * s1
        denoised = x + (sig_hat * sig_hat) * s1 if run.wants_denoised else None
        h = sig_next - sig_hat
        x_next = x + h * d1
        if method == "heun" and sig_next > 0:
            d2 = -sig_next * run.score(x_next, 1.0, sig_next, i)
            x_next = x + h * (w1 * d1 + w2 * d2)
        x = x_next
        run.step_done(i, x, 1.0, sig_next, denoised)
    return run.finish(x)
