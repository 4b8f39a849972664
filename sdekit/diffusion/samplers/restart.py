"""Restart sampling (Xu, Deng, Goodfellow, Liu, Tian & Jaakkola 2023, "Restart sampling for improving generative
processes", NeurIPS; Algorithm 1 and their EDM code) in the EDM convention of `sdekit.diffusion.samplers.edm`
(x = x_0 + sigma n, the score called as s(x, 1, sigma), d = -sigma s = (x - D) / sigma).

The main process is the EDM Heun ODE sampler on ``sigmas`` (Karras et al. 2022, Algorithm 1): step i,

    d_i = -sigma_i s(x_i, 1, sigma_i),   x' = x_i + (sigma_{i+1} - sigma_i) d_i,
    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (d_i + d'_i) / 2,   d'_i = -sigma_{i+1} s(x', 1, sigma_{i+1})

(Euler onto a last sigma of 0). Each restart interval (t_min, t_max, K, N_restart) is attached to the grid level
nearest to t_min (|sigma_j - t_min| smallest, as Xu et al.'s code does; that level is the t_min used, it must be > 0
and below t_max). When the main process reaches it, K times:

    x <- x + S_noise sqrt(t_max^2 - t_min^2) z          (the exact forward kernel from t_min to t_max),
    then N_restart Heun steps from t_max back to t_min on karras_sigmas(N_restart + 1, t_min, t_max, rho)

and the main process continues. With S_noise = 1 and x ~ p(x; t_min) the noised x is exactly ~ p(x; t_max): the
forward noise contracts the ODE's accumulated error (Xu et al., Theorem 2), the backward ODE adds its own.
z is the noise source's draw r (r = 0, 1, ... over all restarts in order; by default sdekit's per-path streams,
`sdekit.diffusion.samplers.run`), so a path's output depends only on (seed, path).

NFE = (2 N - 1) for a grid of N steps ending at 0 (the Heun main process, as `edm_sample`) plus 2 K N_restart per
interval. Without intervals this is `edm_sample(method="heun")` bit for bit (second order: fitted 2.16).

Accuracy with the exact score (tests/test_samplers_lms_pndm_restart.py; N = 20000, ``compare_with_law`` at 1e-6
against the data law, 1-, 2-, 4-D anisotropic mixtures): karras_sigmas(18, 0.002, 80) with restart
[(0.1, 2.0, 2, 8)] (67 NFE) passes (min p 0.14 / 0.011 / 8.7e-6); 12 main steps (55 NFE) fail in 4-D (p 1e-14).
Heun alone fails at 18 steps (35 NFE) and passes from 32 (63 NFE); a short restart (0.1, 2.0, 2, 3) at 47 NFE
fails (its 3-step backward ODE adds more error than the restart removes).

Every step (main, restart noise, restart Heun step) is reported to the callback and recorded in the result's sigmas
(the noise jump with denoised None). Backends: NumPy float64 or torch (any dtype / device, normals drawn on the
device; float64 equals the NumPy run to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.samplers.arrays import State
from sdekit.diffusion.samplers.checks import check_count, check_real, check_state
from sdekit.diffusion.samplers.edm import check_sigma_grid, karras_sigmas
from sdekit.diffusion.samplers.run import NoiseFn, SampleResult, SamplerRun
from sdekit.errors import SDEKitError

__all__ = ["RestartInterval", "restart_intervals", "restart_sample"]

ScoreFn = Callable[[State, float, float], State]
RestartInterval = tuple[int, float, float, int, int]  # (grid index of t_min, t_min, t_max, K, N_restart)


def _restart_std(t_min: float, t_max: float) -> float:
    """Standard deviation of the forward noise from t_min to t_max: sqrt(t_max^2 - t_min^2) (a module function so
    the tests can plant a wrong level)."""
    return math.sqrt(t_max * t_max - t_min * t_min)


def restart_intervals(sigmas: np.ndarray, restart: Any) -> dict[int, RestartInterval]:
    """The checked restart intervals keyed by the grid index j of their t_min (the grid level nearest to the given
    t_min; module docstring): restart is a sequence of (t_min, t_max, K, N_restart) with 0 < t_min < t_max,
    K >= 1 and N_restart >= 1 integers; the snapped t_min must be > 0, below t_max, and each index used once."""
    if isinstance(restart, str | bytes) or not isinstance(restart, Sequence | np.ndarray):
        raise SDEKitError(f"restart must be a sequence of (t_min, t_max, K, N_restart); got {restart!r}")
    out: dict[int, RestartInterval] = {}
    for spec in restart:
        if isinstance(spec, str | bytes) or not isinstance(spec, Sequence | np.ndarray) or len(spec) != 4:
            raise SDEKitError(f"restart entries must be (t_min, t_max, K, N_restart); got {spec!r}")
        t_min = check_real(spec[0], "restart t_min", lo=0.0, strict=True)
        t_max = check_real(spec[1], "restart t_max", lo=0.0, strict=True)
        k = check_count(spec[2], "restart K")
        n = check_count(spec[3], "restart N_restart")
        j = int(np.argmin(np.abs(sigmas - t_min)))
        level = float(sigmas[j])
        if not 0 < level < t_max:
            raise SDEKitError(f"restart t_min = {t_min} snaps to the grid level {level}, which must lie in "
                              f"(0, t_max = {t_max})")
        if j == 0:
            raise SDEKitError(f"restart t_min = {t_min} snaps to the first grid level {level}: no step reaches it")
        if j in out:
            raise SDEKitError(f"two restart intervals snap to the same grid level {level}")
        out[j] = (j, level, t_max, k, n)
    return out


def _heun(run: SamplerRun, x: State, sig: float, sig_next: float, step: int) -> tuple[State, State | None]:
    """One EDM Heun step sigma -> sigma_next (Euler when sigma_next = 0); returns the state and the denoised
    estimate at the start (only when a callback reads it)."""
    s1 = run.score(x, 1.0, sig, step)
    d1 = -sig * s1
    h = sig_next - sig
    x_next = x + h * d1
    if sig_next > 0:
        d2 = -sig_next * run.score(x_next, 1.0, sig_next, step)
        x_next = x + h * (0.5 * d1 + 0.5 * d2)
    return x_next, (x + (sig * sig) * s1 if run.wants_denoised else None)


def restart_sample(score: ScoreFn, sigmas: ArrayLike | Sequence[float], x_init: ArrayLike, *,
                   restart: Sequence[tuple[float, float, int, int]] = (), s_noise: float = 1.0, rho: float = 7.0,
                   seed: int = 0, path_offset: int = 0, noise: NoiseFn | None = None,
                   callback: Callable | None = None, return_trajectory: bool = False) -> SampleResult:
    """Restart sampling (Xu et al. 2023; module docstring) from x_init ~ p(x; sigmas[0]).

    score(x (n, *shape), 1.0, sigma) -> grad log p(x; sigma); sigmas: strictly decreasing, > 0 except possibly the
    last (e.g. `karras_sigmas`): the main Heun ODE steps. restart: (t_min, t_max, K, N_restart) per interval; at the
    grid level nearest t_min, K times: x += s_noise sqrt(t_max^2 - t_min^2) z, then N_restart Heun steps on
    karras_sigmas(N_restart + 1, t_min, t_max, rho) back to t_min. s_noise = 1 keeps the exact law. z: the noise
    source's draws 0, 1, ... in order (by default sdekit's per-path streams for (seed, path_offset + row)). NFE as
    in the module docstring. Returns a `SampleResult` (alphas all 1; sigmas every level visited, restarts included);
    a torch x_init gives a tensor.
    """
    s = check_sigma_grid(sigmas)
    x = check_state(x_init, "x_init")
    intervals = restart_intervals(s, restart)
    noise_scale = check_real(s_noise, "s_noise", lo=0.0)
    rho = check_real(rho, "rho", lo=0.0, strict=True)
    run = SamplerRun(score, seed=seed, path_offset=path_offset, noise=noise, callback=callback,
                     return_trajectory=return_trajectory)
    step, draw = 0, 0
    run.start(x, 1.0, float(s[0]))
    for i in range(s.size - 1):
        x, den = _heun(run, x, float(s[i]), float(s[i + 1]), step)
        run.step_done(step, x, 1.0, float(s[i + 1]), den)
        step += 1
        if i + 1 not in intervals:
            continue
        _, t_min, t_max, k_times, n_restart = intervals[i + 1]
        sub = karras_sigmas(n_restart + 1, t_min, t_max, rho)[:-1]
        for _ in range(k_times):
            x = x + (_restart_std(t_min, t_max) * noise_scale) * run.noise(draw, x)
            draw += 1
            run.step_done(step, x, 1.0, t_max, None)
            step += 1
            for j in range(n_restart):
                x, den = _heun(run, x, float(sub[j]), float(sub[j + 1]), step)
                run.step_done(step, x, 1.0, float(sub[j + 1]), den)
                step += 1
    return run.finish(x)
