"""Noise-level grids usable by every sampler: EDM sigma grids (Karras, exponential, polyexponential) and their
conversion to the (alpha, sigma) pairs of a variance-preserving kernel.

An EDM grid lists noise levels s_0 > s_1 > ... > s_{n-1} > 0 of x = x_0 + s eps and appends s_n = 0, the data
(k-diffusion's ``append_zero``): the sampler's last step ends at the data with a final denoise. ``edm_sample`` takes
it as it is. The same level in variance-preserving form x = alpha x_0 + sigma eps (alpha^2 + sigma^2 = 1; x_vp =
alpha x_ve) is alpha = 1 / sqrt(1 + s^2), sigma = s alpha, the (m, 2) rows `vp_pairs` builds for DPM-Solver and the
discrete samplers; s = 0 gives (1, 0). For a `DiscreteSchedule`, s_k = ``sigmas_edm[k - 1]`` and its pairs at
chosen levels come from `pairs_from_schedule` directly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.samplers.checks import check_real
from sdekit.diffusion.samplers.discrete import DiscreteSchedule, as_levels
from sdekit.diffusion.samplers.edm import check_sigma_grid, karras_sigmas
from sdekit.errors import SDEKitError

__all__ = ["exponential_sigmas", "karras_sigmas", "pairs_from_schedule", "polyexponential_sigmas",
           "schedule_from_sigmas", "vp_pairs"]


def _sigma_range(n: Any, sigma_min: Any, sigma_max: Any) -> tuple[int, float, float]:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise SDEKitError(f"n must be an integer >= 2 (the number of noise levels); got {n!r}")
    lo = check_real(sigma_min, "sigma_min", lo=0.0, strict=True)
    hi = check_real(sigma_max, "sigma_max", lo=0.0, strict=True)
    if not hi > lo:
        raise SDEKitError(f"sigma_max must exceed sigma_min; got sigma_min = {lo}, sigma_max = {hi}")
    return int(n), lo, hi


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float) -> np.ndarray:
    """n noise levels evenly spaced in log sigma, with the final 0 appended; shape (n + 1,).

    s_i = exp(log sigma_max + i / (n - 1) (log sigma_min - log sigma_max)), i = 0..n-1, s_n = 0: k-diffusion's
    ``get_sigmas_exponential`` (Crowson, k-diffusion ``sampling.py``; diffusers' use_exponential_sigmas). A uniform
    grid in the log-SNR lambda = -log s, the grid DPM-Solver recommends (Lu et al. 2022, section 3.3 "logSNR").
    The ends are set to sigma_max and sigma_min exactly (exp(log s) may differ from s in the last bit).
    n >= 2, 0 < sigma_min < sigma_max.
    """
    n, lo, hi = _sigma_range(n, sigma_min, sigma_max)
    out = np.exp(np.linspace(math.log(hi), math.log(lo), n))
    out[0], out[-1] = hi, lo
    return np.append(out, 0.0)


def polyexponential_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> np.ndarray:
    """n noise levels polynomial in log sigma, with the final 0 appended; shape (n + 1,).

    r_i = (1 - i / (n - 1))^rho, s_i = exp(r_i (log sigma_max - log sigma_min) + log sigma_min), i = 0..n-1,
    s_n = 0: k-diffusion's ``get_sigmas_polyexponential`` (ramp = linspace(1, 0, n) ** rho). rho = 1 is
    `exponential_sigmas`; rho > 1 packs the levels towards sigma_min. Ends exact as in `exponential_sigmas`.
    n >= 2, 0 < sigma_min < sigma_max, rho > 0.
    """
    n, lo, hi = _sigma_range(n, sigma_min, sigma_max)
    rho = check_real(rho, "rho", lo=0.0, strict=True)
    ramp = np.linspace(1.0, 0.0, n) ** rho
    log_lo = math.log(lo)
    out = np.exp(ramp * (math.log(hi) - log_lo) + log_lo)
    out[0], out[-1] = hi, lo
    return np.append(out, 0.0)


def vp_pairs(sigmas_edm: ArrayLike) -> np.ndarray:
    """The (m, 2) rows (alpha, sigma) = (1 / sqrt(1 + s^2), s / sqrt(1 + s^2)) of an EDM sigma grid s (m,).

    x = x_0 + s eps and x_vp = alpha x = alpha x_0 + sigma eps are the same noise level (log-SNR -2 log s);
    the rows are what ``dpm_solver_sample`` accepts as a grid. s must be 1-D with m >= 2 entries, finite, strictly
    decreasing and > 0 except the last, which may be 0: the pair (1, 0), a grid that ends at the data with a final
    denoise (the samplers' final-step handling decides how that last step is taken). E.g.
    ``vp_pairs(karras_sigmas(10, 0.03, 14.6))``.
    """
    s = check_sigma_grid(sigmas_edm, "sigmas_edm")
    norm = np.hypot(1.0, s)
    return np.stack([1.0 / norm, s / norm], axis=1)


def pairs_from_schedule(schedule: DiscreteSchedule, levels: ArrayLike) -> np.ndarray:
    """The (m, 2) rows (alpha_k, sigma_k) of ``schedule`` at ``levels``, noisiest first: row i is
    ``schedule.level(levels[m - 1 - i])`` (alpha_k = sqrt(alphabar_k), sigma_k = sqrt(1 - alphabar_k), Ho et al.
    2020, eq. 4), the grid ``dpm_solver_sample`` accepts.

    levels: strictly increasing integers in 0..K, m >= 2 of them (e.g. `timestep_spacing.timestep_levels`); level 0
    is the data and gives the final pair (1, 0): the grid ends at the data with a final denoise
    (``np.r_[0, levels]``, diffusers' final_sigmas_type="zero"; starting at 1 instead is its "sigma_min").
    """
    if not isinstance(schedule, DiscreteSchedule):
        raise SDEKitError(f"schedule must be a DiscreteSchedule; got {type(schedule).__name__}")
    lv = as_levels(levels, schedule.n_steps, "levels", allow_data=True)
    if lv.shape[0] < 2:
        raise SDEKitError(f"levels must hold at least 2 levels (a grid of m >= 2 pairs); got {lv.tolist()}")
    alphas = np.concatenate([[1.0], schedule.alphas])[lv[::-1]]
    sigmas = np.concatenate([[0.0], schedule.sigmas])[lv[::-1]]
    return np.stack([alphas, sigmas], axis=1)


def schedule_from_sigmas(sigmas_edm: ArrayLike) -> DiscreteSchedule:
    """The `DiscreteSchedule` whose levels are the nonzero noise levels of an EDM grid (any order; a final 0 is the
    data, level 0): alphabar = 1 / (1 + sigma^2) at each level, increasing sigma with the level. DDPM and DDIM run on
    it exactly on the grid's levels (Karras et al. 2022, eq. 5 grids for the discrete samplers; DDIM's
    "subsequence" of Song et al. 2021 section 4.2 is then the whole grid: ``indices=range(1, K + 1)``)."""
    s = real_array(sigmas_edm, "sigmas_edm")
    if s.ndim != 1 or s.size < 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise SDEKitError(f"sigmas_edm must be a 1-D array of finite sigmas >= 0; got {sigmas_edm!r}"[:200])
    levels = np.sort(s[s > 0])
    if levels.size < 1 or np.any(np.diff(levels) <= 0):
        raise SDEKitError("sigmas_edm must hold at least one sigma > 0 and no repeated sigma")
    return DiscreteSchedule.from_alphas_cumprod(1.0 / (1.0 + levels ** 2))
