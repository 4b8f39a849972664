"""Annealed Langevin dynamics (NCSN; Song & Ermon 2019, "Generative modeling by estimating gradients of the data
distribution", Algorithm 1), its denoising form, and the exact law it produces on Gaussian data.

Model interface: ``score(x, alpha, sigma) -> (n, d)``, the score grad log p of the noised law at noise level
x = alpha x_0 + sigma eps. NCSN levels are variance-exploding, so every call here uses alpha = 1; the exact model
for Gaussian-mixture data is ``MixtureMarginals(data).score``.

Convention (the half-drift form of the paper and of the tutorials): with noise levels sigma_1 > ... > sigma_L and
step eps_i = eps0 sigma_i^2 / sigma_L^2, each level runs M steps of

    x <- x + eps_i / 2 * s(x, 1, sigma_i) + sqrt(eps_i) z,      z ~ N(0, I),

the Euler-Maruyama step of dX = 1/2 grad log p dt + dW with time step eps_i. The full-drift form
x + h s + sqrt(2 h) z of other texts is the same step with h = eps_i / 2. An optional final denoising step
x <- x + sigma_L^2 s(x, 1, sigma_L) returns Tweedie's posterior mean E[x_0 | x] (Efron 2011), not a draw.

Denoising form. With Denoise(x; sigma^2) = x + sigma^2 s(x, 1, sigma) = E[x_0 | x_sigma = x] (Tweedie), the
iteration X <- Denoise(X; sigma^2) + sqrt(2) sigma W is *exactly* the full-drift Langevin step with h = sigma^2,
i.e. the half-drift step above with eps_i = 2 sigma_i^2 (eps0 = 2 sigma_L^2). It is not a p_sigma-invariant step:
its step is as large as the noise variance itself. For 1-D Gaussian data N(m, c) it is the AR(1) chain
x' - m = c / (c + sigma^2) (x - m) + sqrt(2) sigma z, whose fixed point is N(m, v) with
v = 2 (c + sigma^2)^2 / (2 c + sigma^2), neither c + sigma^2 (p_sigma) nor c (data):
v / c = 1 + 3 sigma^2 / (2 c) + O(sigma^4).
It samples p_0 only in the limit sigma_L -> 0. `annealed_langevin_denoising` implements it as that special case.

Noise: step k (0-based over all levels, k = i M + m) takes the noise source's draw k (by default sdekit's per-path
streams, `sdekit.diffusion.samplers.run`), so each path's output depends only on (seed, path index), never on
the batch size.

Backends: x_init may be a float64 NumPy array or a torch tensor (float32 / float64, any device); a tensor run stays
in torch on that device and dtype, calls the score on tensors, uses the same normals drawn on that device
(`run.sampler_normals`) and returns a tensor (equal to the NumPy run to rounding in float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.samplers.checks import (
    ScoreFn,
    check_callable,
    check_count,
    check_positive,
    check_state,
)
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError
from sdekit.targets import Gaussian

__all__ = [
    "annealed_langevin",
    "annealed_langevin_denoising",
    "gaussian_annealed_langevin_law",
    "geometric_sigmas",
]

def _sigmas(sigmas: Any) -> np.ndarray:
    s = real_array(sigmas, "sigmas")
    if s.ndim > 1:
        raise SDEKitError(f"sigmas must be a 1-D array of noise levels; got shape {s.shape}")
    s = s.reshape(-1)
    if s.size < 1 or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise SDEKitError("sigmas must be a non-empty 1-D array of positive finite noise levels")
    if s.size > 1 and not np.all(np.diff(s) < 0):
        raise SDEKitError("sigmas must be strictly decreasing (sigma_1 > ... > sigma_L)")
    return s


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------


def _covariance(v: Any, name: str, d: int, allow_singular: bool = False) -> np.ndarray:
    """v as a finite symmetric (d, d) matrix, positive definite (semi-definite when allow_singular)."""
    c = real_array(v, name)
    if c.shape != (d, d) or not np.all(np.isfinite(c)) or not np.allclose(c, c.T, rtol=1e-10, atol=1e-12):
        raise SDEKitError(f"{name} must be a finite symmetric ({d}, {d}) matrix; got shape {c.shape}")
    eig = np.linalg.eigvalsh(c)
    low = float(eig.min())
    if low < -1e-12 * max(1.0, float(np.abs(eig).max())) or (low <= 0 and not allow_singular):
        kind = "semi-definite" if allow_singular else "definite"
        raise SDEKitError(f"{name} must be positive {kind}; its smallest eigenvalue is {low:.3g}")
    return c


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> np.ndarray:
    """NCSN's geometric noise levels sigma_i = sigma_max (sigma_min / sigma_max)^((i-1)/(L-1)), i = 1..L.

    Song & Ermon 2019 use sigma_1 = 1, sigma_10 = 0.01 (L = 10); returns a decreasing array of length L.
    """
    hi, lo = check_positive(sigma_max, "sigma_max"), check_positive(sigma_min, "sigma_min")
    levels = check_count(levels, "levels", 2)
    if not hi > lo:
        raise SDEKitError(f"sigma_max must exceed sigma_min; got sigma_max = {hi}, sigma_min = {lo}")
    return hi * (lo / hi) ** (np.arange(levels) / (levels - 1))


def annealed_langevin(score: ScoreFn, sigmas: ArrayLike, x_init: ArrayLike, *, steps_per_level: int = 100,
                      eps0: float = 2e-5, seed: int = 0, final_denoise: bool = False, path_offset: int = 0,
                      noise: NoiseFn | None = None, callback: Callable | None = None,
                      return_trajectory: bool = False) -> SampleResult:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1), half-drift form; returns a `SampleResult`.

    For i = 1..L (sigmas decreasing), eps_i = eps0 sigma_i^2 / sigma_L^2, and M = steps_per_level times:

        x <- x + eps_i / 2 * s(x, 1, sigma_i) + sqrt(eps_i) z,     z = noise draw k = (i-1) M + m.

    final_denoise: finish with x <- x + sigma_L^2 s(x, 1, sigma_L) (Tweedie's E[x_0 | x]; not a draw of p_0).
    Biased at any finite eps0 and M: for Gaussian data `gaussian_annealed_langevin_law` gives the exact output law.
    Noise, seed, callback (after every Langevin step) and trajectory: `sdekit.diffusion.samplers.run`. A torch x_init
    runs in torch on its device and dtype and gives a tensor (module docstring).
    """
    check_callable(score, "score")
    sig = _sigmas(sigmas)
    x = check_state(x_init, "x_init")
    m_steps = check_count(steps_per_level, "steps_per_level")
    eps0 = check_positive(eps0, "eps0")
    if not isinstance(final_denoise, bool | np.bool_):
        raise SDEKitError(f"final_denoise must be a bool; got {final_denoise!r}")
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    run.start(x, 1.0, float(sig[0]))
    k = 0
    for sigma in sig:
        eps = float(eps0 * (sigma / sig[-1]) ** 2)
        root = math.sqrt(eps)
        for _ in range(m_steps):
            s = run.score(x, 1.0, float(sigma), k)
            x = x + 0.5 * eps * s
            x = x + root * run.noise(k, x)
            run.step_done(k, x, 1.0, float(sigma), None)
            k += 1
    if final_denoise:
        x = x + float(sig[-1] ** 2) * run.score(x, 1.0, float(sig[-1]), k)
        run.step_done(k, x, 1.0, 0.0, x)
    return run.finish(x)


def annealed_langevin_denoising(score: ScoreFn, sigmas: ArrayLike, x_init: ArrayLike, *, steps_per_level: int = 1,
                                seed: int = 0, final_denoise: bool = False, path_offset: int = 0,
                                noise: NoiseFn | None = None, callback: Callable | None = None,
                                return_trajectory: bool = False) -> SampleResult:
    """The denoising form of annealed Langevin: X <- Denoise(X; sigma_i^2) + sqrt(2) sigma_i W.

    Denoise(x; sigma^2) = x + sigma^2 s(x, 1, sigma) (Tweedie, Efron 2011), so the update is the full-drift Langevin
    step with h = sigma_i^2, i.e. `annealed_langevin` with eps_i = 2 sigma_i^2 (eps0 = 2 sigma_L^2), which is how it
    is computed (same noise mapping). It is not p_sigma-invariant (module docstring: for Gaussian data N(m, c) its
    fixed point has variance 2 (c + sigma^2)^2 / (2 c + sigma^2)); it reaches p_0 only as sigma_L -> 0.
    """
    sig = _sigmas(sigmas)
    return annealed_langevin(score, sig, x_init, steps_per_level=steps_per_level, eps0=2.0 * sig[-1] ** 2,
                             seed=seed, final_denoise=final_denoise, path_offset=path_offset, noise=noise,
                             callback=callback, return_trajectory=return_trajectory)


def gaussian_annealed_langevin_law(mean: ArrayLike, cov: ArrayLike, sigmas: ArrayLike, init_mean: ArrayLike,
                                   init_cov: ArrayLike, *, steps_per_level: int = 100, eps0: float = 2e-5,
                                   final_denoise: bool = False) -> Gaussian:
    """Exact law of `annealed_langevin`'s output for Gaussian data N(mean, cov) and a N(init_mean, init_cov) start.

    With the exact score s(x, 1, sigma) = -S^{-1} (x - m), S = cov + sigma^2 I, each step is linear:
    x' - m = A (x - m) + sqrt(eps) z with A = I - eps / 2 S^{-1}; so the mean error e and covariance P follow
    e <- A e, P <- A P A^T + eps I (final denoise: A = I - sigma_L^2 S_L^{-1}, no noise). The bias oracle for
    annealed Langevin (and its denoising form, eps0 = 2 sigma_L^2) on Gaussian data.
    """
    sig = _sigmas(sigmas)
    m = real_array(mean, "mean").reshape(-1)
    d = m.shape[0]
    c = _covariance(cov, "cov", d)
    m0 = real_array(init_mean, "init_mean")
    if m0.size != d or not np.all(np.isfinite(m0)) or not np.all(np.isfinite(m)):
        raise SDEKitError(f"mean and init_mean must be finite vectors of one length d = {d}; got shapes {m.shape} "
                          f"and {m0.shape}")
    e = m0.reshape(d) - m
    p = _covariance(init_cov, "init_cov", d, allow_singular=True).copy()
    m_steps = check_count(steps_per_level, "steps_per_level")
    eps0 = check_positive(eps0, "eps0")
    eye = np.eye(d)
    for sigma in sig:
        eps = eps0 * (sigma / sig[-1]) ** 2
        a = eye - 0.5 * eps * np.linalg.inv(c + sigma**2 * eye)
        for _ in range(m_steps):
            e = a @ e
            p = a @ p @ a.T + eps * eye
    if final_denoise:
        a = eye - sig[-1] ** 2 * np.linalg.inv(c + sig[-1] ** 2 * eye)
        e, p = a @ e, a @ p @ a.T
    return Gaussian(m + e, 0.5 * (p + p.T))
