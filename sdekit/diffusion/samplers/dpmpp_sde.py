"""DPM++ SDE (k-diffusion's ``sample_dpmpp_sde``, Crowson 2022, after Lu et al. 2022b's DPM-Solver++ with
ancestral noise) in sigma form for a VE-type kernel x = x_0 + sigma n (alpha = 1; the convention of
`sdekit.diffusion.samplers.edm`), and the Brownian-path noise it draws.

The model is a score s(x, 1, sigma); D(x; sigma) = x + sigma^2 s. With t = -log sigma, a step sigma_i -> sigma_{i+1}
(h = t_{i+1} - t_i > 0) has two stages at s = t_i + r h (r = 1/2 by default, fac = 1 / (2 r)); `ancestral_step` is
the ancestral split of `sdekit.diffusion.samplers.ancestral` with eta:

    stage 1:  (sd, su) = ancestral_step(sigma_i, e^{-s}, eta),
              x_2 = (sd / sigma_i) x - expm1(t_i + log sd) D(x; sigma_i) + s_noise su z_1
    stage 2:  (sd, su) = ancestral_step(sigma_i, sigma_{i+1}, eta),  D_r = (1 - fac) D(x; sigma_i) + fac D(x_2; e^{-s}),
              x' = (sd / sigma_i) x - expm1(t_i + log sd) D_r + s_noise su z_2

(the DPM-Solver++(2S) step with ancestral noise on each stage; both stages start from x). The step onto sigma = 0
is the Euler step x' = D(x; sigma_i). Order: 2 for eta = 0 (DPM-Solver++(2S)); with noise a weak first-order
scheme. NFE = 2 N - 1 on a grid ending at 0 (N = len(sigmas) - 1).

**Noise.** z_1 and z_2 are normalised increments of ONE Brownian path W in t: z_1 = (W(s) - W(t_i)) / sqrt(s - t_i),
z_2 = (W(t_{i+1}) - W(t_i)) / sqrt(h) (both stages start at t_i, so z_1 and z_2 are correlated: corr = sqrt(r)),
as in k-diffusion's BrownianTreeNoiseSampler. The path is sdekit's virtual Brownian tree `sdekit.noise.BrownianPath`
keyed by (seed, path_offset + row), over [-log sigma_max, -log sigma_min_positive], exact at any time (k-diffusion
uses torchsde's tree in sigma itself, which has the same law for every increment used here), so a path's noise does
not depend on the batch or on which grid asked: two grids sharing levels see the same increments there.
``noise=`` replaces the path: z_1 = noise(2 i, like), z_2 = noise(2 i + 1, like) (for feeding another library's
normals; independent draws there give a slightly different joint law from the Brownian one). ``brownian=False``
draws z_1, z_2 from sdekit's per-path streams 2 i, 2 i + 1 (independent). A torch run draws the path on the host
and moves it to the state's device and dtype (so the float64 torch run equals the NumPy run).

diffusers (0.35.1; tests/test_samplers_ancestral_sde_conformance.py): DPMSolverSDEScheduler is this sampler with
eta = 1, r = 1/2 on its sigma grid; with its Brownian noise sampler replaced by one feeding the same normals the two
agree to 1e-12 in float64 tables and to float32 rounding otherwise.

Accuracy with the exact score (tests/test_samplers_ancestral_sde.py; 1-, 2-, 4-D mixtures, N = 20000, start
~ p(x; 80), ``karras_sigmas(n, 0.002, 80)`` ending at 0, ``compare_with_law`` at 1e-6): fails at 28 steps (55 NFE,
4-D p 7e-12), passes at 32 steps (63 NFE, min p 2.8e-6). eta = 0: order 1.8 (NFE 10 .. 80).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.model import FIRST_SAMPLER_STREAM
from sdekit.diffusion.samplers.ancestral import ancestral_step
from sdekit.diffusion.samplers.arrays import State, dims, is_torch
from sdekit.diffusion.samplers.checks import check_real, check_state
from sdekit.diffusion.samplers.edm import check_sigma_grid
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError
from sdekit.noise.brownian_path import MAX_COMPONENTS, BrownianPath

__all__ = ["BrownianNoise", "dpmpp_sde_sample"]

ScoreFn = Callable[[State, float, float], State]


class BrownianNoise:
    """Normalised increments (W(b) - W(a)) / sqrt(|b - a|) of one Brownian path per row, in the time t = -log sigma,
    for the states ``like`` (n, *shape): W is `sdekit.noise.BrownianPath` keyed by (seed, path_offset + row) with
    one component per entry of a row (C order; rows of more than 2048 entries use one path per block of 2048 on
    the streams 2, 3, ...), over [t_lo, t_hi]. Values are cached per time, so a step reuses W at its start."""

    def __init__(self, seed: int, path_offset: int, n: int, d: int, t_lo: float, t_hi: float) -> None:
        self.blocks = []
        for k, start in enumerate(range(0, d, MAX_COMPONENTS)):
            m = min(MAX_COMPONENTS, d - start)
            self.blocks.append(BrownianPath(seed, n, m, t0=t_lo, t1=t_hi, path_offset=path_offset,
                                            stream=FIRST_SAMPLER_STREAM + k))
        self.cache: dict[float, np.ndarray] = {}

    def at(self, t: float) -> np.ndarray:
        """W(t), shape (n, d)."""
        if t not in self.cache:
            if len(self.cache) >= 4:
                del self.cache[next(iter(self.cache))]  # the oldest: a step's start stays cached for its stages
            self.cache[t] = np.concatenate([b(t) for b in self.blocks], axis=1)
        return self.cache[t]

    def __call__(self, a: float, b: float, like: State) -> State:
        """(W(b) - W(a)) / sqrt(|b - a|) in like's shape, kind, dtype and device."""
        z = (self.at(b) - self.at(a)) / math.sqrt(abs(b - a))
        z = z.reshape(tuple(like.shape))
        if is_torch(like):
            import torch

            return torch.from_numpy(z).to(device=like.device, dtype=like.dtype)
        return z


def brownian_source(brownian: Any, noise: NoiseFn | None, default: bool) -> bool:
    """Whether a run draws its noise from the Brownian path: ``brownian`` (None: ``default`` unless noise= is
    given), checked against ``noise``."""
    if brownian is None:
        return default and noise is None
    if not isinstance(brownian, bool | np.bool_):
        raise SDEKitError(f"brownian must be None or a bool; got {brownian!r}")
    if brownian and noise is not None:
        raise SDEKitError("give noise= or brownian=True, not both (noise= replaces the Brownian path)")
    return bool(brownian)


def brownian_for(run: SamplerRun, x: State, s: np.ndarray) -> BrownianNoise:
    """The Brownian path of a run on the grid s, over t in [-log max(s), -log min(s > 0)]."""
    positive = s[s > 0]
    t_lo, t_hi = -math.log(float(positive.max())), -math.log(float(positive.min()))
    if not t_hi > t_lo:
        t_hi = t_lo + 1.0  # a single positive level: no increment is ever asked for
    return BrownianNoise(run.seed, run.path_offset, int(x.shape[0]), dims(x), t_lo, t_hi)


def _stage(x: State, sigma: float, sigma_down: float, denoised: State) -> State:
    """(sd / sigma) x - expm1(t + log sd) D: the DPM-Solver++ first-order step from sigma to sd (D when sd = 0)."""
    if sigma_down == 0.0:
        return denoised
    return (sigma_down / sigma) * x - math.expm1(math.log(sigma_down) - math.log(sigma)) * denoised


def _stage_noise_level(sigma: float, sigma_stage: float, eta: float) -> tuple[float, float]:
    """The ancestral split of stage 1 (sigma -> e^{-s}); a module function so the tests can plant a wrong level."""
    return ancestral_step(sigma, sigma_stage, eta)


def dpmpp_sde_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *, eta: float = 1.0,
                     s_noise: float = 1.0, r: float = 0.5, brownian: bool | None = None, seed: int = 0,
                     path_offset: int = 0, noise: NoiseFn | None = None, callback: Callable | None = None,
                     return_trajectory: bool = False) -> SampleResult:
    """DPM++ SDE (k-diffusion ``sample_dpmpp_sde``; diffusers DPMSolverSDEScheduler for eta = 1, r = 1/2) from
    x_init ~ p(x; sigmas[0]); the update equations are in the module docstring.

    score(x, 1.0, sigma) -> grad log p(x; sigma); sigmas strictly decreasing, > 0 except possibly the last (e.g.
    `karras_sigmas`); eta >= 0 (0: DPM-Solver++(2S), deterministic); s_noise >= 0; r in (0, 1] the stage point
    s = t + r h. Noise: by default the normalised increments of one Brownian path per row in t = -log sigma
    (`BrownianNoise`, keyed by (seed, path_offset + row)); ``noise=`` gives z_1 = noise(2 i, like),
    z_2 = noise(2 i + 1, like) instead; ``brownian=False`` takes them from sdekit's per-path streams 2 i, 2 i + 1.
    Returns a `SampleResult` (alphas all 1; NFE 2 N - 1 on a grid ending at 0); a torch x_init runs in torch.
    """
    if not callable(score):
        raise SDEKitError(f"score must be a callable score(x, alpha, sigma); got {type(score).__name__}")
    s = check_sigma_grid(sigmas)
    x = check_state(x_init, "x_init")
    eta = check_real(eta, "eta", lo=0.0)
    noise_scale = check_real(s_noise, "s_noise", lo=0.0)
    r = check_real(r, "r", lo=0.0, strict=True)
    if r > 1.0:
        raise SDEKitError(f"r must be in (0, 1] (the stage point t + r h); got {r}")
    use_path = brownian_source(brownian, noise, default=True)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    path = brownian_for(run, x, s) if use_path and eta > 0 and noise_scale > 0 else None

    def draw(k: int, t_a: float, t_b: float, like: State) -> State:
        return path(t_a, t_b, like) if path is not None else run.noise(k, like)

    fac = 1.0 / (2.0 * r)
    run.start(x, 1.0, float(s[0]))
    for i in range(s.size - 1):
        sig, sig_next = float(s[i]), float(s[i + 1])
        denoised = x + (sig * sig) * run.score(x, 1.0, sig, i)
        if sig_next == 0.0:
            x = denoised  # the Euler step to 0
        else:
            t, t_next = -math.log(sig), -math.log(sig_next)
            t_s = t + r * (t_next - t)
            sig_s = math.exp(-t_s)
            sd, su = _stage_noise_level(sig, sig_s, eta)
            x2 = _stage(x, sig, sd, denoised)
            if su > 0.0 and noise_scale > 0.0:
                x2 = x2 + (noise_scale * su) * draw(2 * i, t, t_s, x)
            denoised2 = x2 + (sig_s * sig_s) * run.score(x2, 1.0, sig_s, i)
            sd, su = ancestral_step(sig, sig_next, eta)
            mixed = denoised2 if fac == 1.0 else (1.0 - fac) * denoised + fac * denoised2
            x_new = _stage(x, sig, sd, mixed)
            if su > 0.0 and noise_scale > 0.0:
                x_new = x_new + (noise_scale * su) * draw(2 * i + 1, t, t_next, x)
            x = x_new
        run.step_done(i, x, 1.0, sig_next, denoised)
    return run.finish(x)
