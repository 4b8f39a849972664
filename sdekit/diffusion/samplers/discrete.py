"""Discrete diffusion schedules as data: the betas of DDPM and everything derived from them.

A schedule of K steps is given by its betas beta_1, ..., beta_K in (0, 1) (Ho, Jain & Abbeel 2020, "Denoising
diffusion probabilistic models"): the forward chain is q(x_k | x_{k-1}) = N(sqrt(1 - beta_k) x_{k-1}, beta_k I),
hence q(x_k | x_0) = N(alpha_k x_0, sigma_k^2 I) with

    alphabar_k = prod_{j <= k} (1 - beta_j),   alpha_k = sqrt(alphabar_k),   sigma_k = sqrt(1 - alphabar_k).

Levels are numbered as in the papers: k = 1, ..., K are the noisy levels and k = 0 is the data (alphabar_0 = 1,
alpha_0 = 1, sigma_0 = 0). The arrays are 0-based: ``betas[k - 1]`` is beta_k, ``alphas_bar[k - 1]`` is alphabar_k;
``level(k)`` returns (alpha_k, sigma_k) for any level 0 <= k <= K, which is what a model ``score(x, alpha, sigma)``
is called with.

Index convention of the ecosystem: diffusers (and the DDPM / DDIM / improved-DDPM code bases) number the training
timesteps t = 0, ..., K - 1 with ``alphas_cumprod[t]``; that timestep is sdekit's level k = t + 1
(`levels_from_timesteps`, `timesteps_from_levels`). diffusers lists its inference timesteps in decreasing order;
sdekit's level grids are increasing.

A subsequence of levels 0 = tau_0 < tau_1 < ... < tau_S (DDIM, Song, Meng & Ermon 2021, section 4.2; fewer-step
DDPM, Nichol & Dhariwal 2021, section 4) is again a schedule: ``respaced(indices)`` keeps alphabar at the chosen
levels and sets beta'_i = 1 - alphabar_{tau_i} / alphabar_{tau_{i-1}}.

The EDM / k-diffusion view of the same chain: x_k / alpha_k = x_0 + s_k eps with s_k = sigma_k / alpha_k =
sqrt((1 - alphabar_k) / alphabar_k) (``sigmas_edm``, what diffusers' Euler / Heun / DPM-Solver schedulers call
``sigmas``); `DiscreteSchedule.timestep_of_sigma` maps such a sigma back to a (fractional) training timestep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.samplers.checks import check_count, check_real
from sdekit.diffusion.samplers.timestep_lookup import ROUNDINGS, SIGMA_INTERPOLATIONS, lookup_timestep
from sdekit.errors import SDEKitError

__all__ = ["DiscreteSchedule", "as_levels", "levels_from_timesteps", "timesteps_from_levels"]


def as_levels(indices: Any, n_steps: int, name: str = "indices", *, allow_data: bool = False) -> np.ndarray:
    """indices as a strictly increasing int64 array of levels in {1, ..., n_steps} ({0, ..., n_steps} with
    allow_data: level 0 is the data), or an SDEKitError naming it."""
    lowest = 0 if allow_data else 1
    try:
        raw = np.asarray(indices)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be a 1-D sequence of integer levels; got {type(indices).__name__}") from exc
    if raw.ndim != 1 or raw.shape[0] < 1:
        raise SDEKitError(f"{name} must be a non-empty 1-D sequence of levels; got shape {raw.shape}")
    if raw.dtype == bool or not np.issubdtype(raw.dtype, np.integer):
        raise SDEKitError(f"{name} must hold integers (levels {lowest}..{n_steps}); got dtype {raw.dtype}")
    lv = raw.astype(np.int64)
    if lv.min() < lowest or lv.max() > n_steps:
        implied = "" if allow_data else " (level 0 is the data and is implied)"
        raise SDEKitError(f"{name} must lie in {lowest}..{n_steps}{implied}; got min {lv.min()}, max {lv.max()}")
    if np.any(np.diff(lv) <= 0):
        raise SDEKitError(f"{name} must be strictly increasing; got {lv.tolist()[:12]}")
    return lv


def _integer_array(values: Any, name: str, lo: int, hi: int, meaning: str) -> np.ndarray:
    """values as an int64 array (any shape) with every entry in lo..hi, or an SDEKitError naming it."""
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be an array of integer {meaning}; got {type(values).__name__}") from exc
    if raw.dtype == bool or not np.issubdtype(raw.dtype, np.integer):
        raise SDEKitError(f"{name} must hold integer {meaning} in {lo}..{hi}; got dtype {raw.dtype}")
    out = raw.astype(np.int64)
    if out.size and (out.min() < lo or out.max() > hi):
        raise SDEKitError(f"{name} must lie in {lo}..{hi} ({meaning}); got min {out.min()}, max {out.max()}")
    return out


def levels_from_timesteps(timesteps: ArrayLike, n_steps: int) -> np.ndarray:
    """sdekit levels k = t + 1 of 0-based training timesteps t in 0..K-1 (diffusers' ``scheduler.timesteps``,
    ``alphas_cumprod[t]`` = alphabar_{t+1}); element-wise, order and shape kept (diffusers lists them decreasing:
    reverse the result for sdekit's increasing level grids)."""
    k = check_count(n_steps, "n_steps")
    return _integer_array(timesteps, "timesteps", 0, k - 1, "0-based training timesteps") + 1


def timesteps_from_levels(levels: ArrayLike, n_steps: int) -> np.ndarray:
    """0-based training timesteps t = k - 1 of sdekit levels k in 1..K (the inverse of `levels_from_timesteps`);
    element-wise, order and shape kept. Level 0 (the data) has no training timestep."""
    k = check_count(n_steps, "n_steps")
    return _integer_array(levels, "levels", 1, k, "levels; level 0 is the data and has no timestep") - 1


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _unit_interval(v: Any, name: str) -> float:
    f = check_real(v, name)
    if not 0 < f < 1:
        raise SDEKitError(f"{name} must lie in (0, 1); got {f!r}")
    return f


@dataclass(frozen=True, eq=False)
class DiscreteSchedule:
    """A K-step discrete diffusion schedule given by betas (K,) in (0, 1) (Ho et al. 2020).

    Derived (read-only, shape (K,), entry k - 1 for level k): ``alphas_bar`` = cumprod(1 - beta),
    ``alphas`` = sqrt(alphas_bar) (the kernel's alpha_k), ``sigmas`` = sqrt(1 - alphas_bar) (its sigma_k), so that
    x_k = alpha_k x_0 + sigma_k eps, and ``sigmas_edm`` = sigmas / alphas = sqrt((1 - alphabar) / alphabar), the
    noise level of x_k / alpha_k = x_0 + s_k eps (k-diffusion's and diffusers' Euler ``sigmas``, increasing in k).
    ``n_steps`` is K. ``level(k)`` gives (alpha_k, sigma_k) for 0 <= k <= K.

    Built from alphas_cumprod (`from_alphas_cumprod`, `respaced`, `rescaled_zero_terminal_snr`), ``alphas_bar`` is
    the given array exactly and the betas are derived from it.
    """

    betas: np.ndarray
    alphas_bar: np.ndarray = field(init=False, repr=False)
    alphas: np.ndarray = field(init=False, repr=False)
    sigmas: np.ndarray = field(init=False, repr=False)
    sigmas_edm: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        b = np.array(real_array(self.betas, "betas"), dtype=np.float64)
        if b.ndim != 1 or b.shape[0] < 1:
            raise SDEKitError(f"betas must have shape (K,) with K >= 1; got shape {b.shape}")
        if not np.all(np.isfinite(b)):
            raise SDEKitError("betas must be finite")
        bad = np.flatnonzero(~((b > 0) & (b < 1)))
        if bad.size:
            k = int(bad[0])
            raise SDEKitError(f"betas must lie in (0, 1); betas[{k}] (beta_{k + 1}) = {b[k]!r}")
        abar = np.cumprod(1.0 - b)
        if not abar[-1] > 0:
            raise SDEKitError("betas drive alphas_bar = cumprod(1 - beta) to 0 (underflow): alpha_K must be > 0")
        object.__setattr__(self, "betas", _readonly(b))
        self._set_alphas_bar(abar)
        object.__setattr__(self, "_torch_tables", {})

    def _set_alphas_bar(self, abar: np.ndarray) -> None:
        alphas, sigmas = np.sqrt(abar), np.sqrt(-np.expm1(np.log(abar)))
        object.__setattr__(self, "alphas_bar", _readonly(abar))
        object.__setattr__(self, "alphas", _readonly(alphas))
        object.__setattr__(self, "sigmas", _readonly(sigmas))
        object.__setattr__(self, "sigmas_edm", _readonly(sigmas / alphas))

    @classmethod
    def _with_alphas_bar(cls, abar: np.ndarray) -> DiscreteSchedule:
        """The schedule whose alphas_bar is exactly ``abar`` (strictly decreasing in (0, 1), checked by the caller):
        beta_k = 1 - abar_k / abar_{k-1} = -expm1(log abar_k - log abar_{k-1}) (abar_0 = 1)."""
        prev = np.concatenate([[1.0], abar[:-1]])
        out = cls(-np.expm1(np.log(abar) - np.log(prev)))
        out._set_alphas_bar(np.array(abar, dtype=np.float64))
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_torch_tables", None)  # per-device copies of sigmas_edm for timestep_of_sigma: rebuilt on demand
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({k: _readonly(v) if isinstance(v, np.ndarray) else v for k, v in state.items()})
        self.__dict__["_torch_tables"] = {}

    def __repr__(self) -> str:
        return (f"DiscreteSchedule(K={self.n_steps}, beta_1={self.betas[0]:.3g}, beta_K={self.betas[-1]:.3g}, "
                f"alphabar_K={self.alphas_bar[-1]:.3g})")

    @property
    def n_steps(self) -> int:
        """K, the number of steps (noisy levels)."""
        return int(self.betas.shape[0])

    def alpha_bar(self, k: int) -> float:
        """alphabar_k for a level 0 <= k <= K (alphabar_0 = 1)."""
        k = self._level(k)
        return 1.0 if k == 0 else float(self.alphas_bar[k - 1])

    def level(self, k: int) -> tuple[float, float]:
        """(alpha_k, sigma_k) = (sqrt(alphabar_k), sqrt(1 - alphabar_k)) for 0 <= k <= K; (1, 0) at the data k = 0."""
        k = self._level(k)
        if k == 0:
            return 1.0, 0.0
        return float(self.alphas[k - 1]), float(self.sigmas[k - 1])

    def _level(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= int(k) <= self.n_steps:
            raise SDEKitError(f"k must be an integer level in 0..{self.n_steps}; got {k!r}")
        return int(k)

    # ---------------------------------------------------------------- constructors

    @classmethod
    def linear(cls, K: int = 1000, beta_1: float = 1e-4, beta_K: float = 0.02) -> DiscreteSchedule:
        """beta_k = beta_1 + (k - 1) (beta_K - beta_1) / (K - 1): the linear schedule of Ho et al. 2020 (section 4).

        Ho et al. use K = 1000, beta_1 = 1e-4, beta_K = 0.02 (alphabar_K ~ 4e-5). For K = 1 the single beta is beta_1.
        diffusers calls it beta_schedule="linear" (beta_start = beta_1, beta_end = beta_K).
        """
        n = check_count(K, "K")
        b1, bk = _unit_interval(beta_1, "beta_1"), _unit_interval(beta_K, "beta_K")
        return cls(np.linspace(b1, bk, n) if n > 1 else np.array([b1]))

    @classmethod
    def scaled_linear(cls, K: int = 1000, beta_1: float = 0.00085, beta_K: float = 0.012) -> DiscreteSchedule:
        """beta_k = (sqrt(beta_1) + (k - 1) (sqrt(beta_K) - sqrt(beta_1)) / (K - 1))^2: linear in sqrt(beta).

        The schedule of latent diffusion / Stable Diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer 2022,
        "High-resolution image synthesis with latent diffusion models"; K = 1000, beta_1 = 0.00085,
        beta_K = 0.012, the defaults). diffusers calls it beta_schedule="scaled_linear" and evaluates
        torch.linspace(beta_start**0.5, beta_end**0.5, K)**2 in float32; this is the same expression in float64.
        """
        n = check_count(K, "K")
        b1, bk = _unit_interval(beta_1, "beta_1"), _unit_interval(beta_K, "beta_K")
        root = np.linspace(math.sqrt(b1), math.sqrt(bk), n) if n > 1 else np.array([math.sqrt(b1)])
        return cls(root**2)

    @classmethod
    def cosine(cls, K: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
        """The cosine schedule of Nichol & Dhariwal 2021 ("Improved DDPM", eq. 17).

        f(t) = cos^2((t / K + s) / (1 + s) * pi / 2), alphabar(t) = f(t) / f(0), and
        beta_k = min(1 - alphabar(k) / alphabar(k - 1), max_beta) for k = 1..K; alphas_bar is then recomputed as
        cumprod(1 - beta), so the clipping at max_beta (which keeps beta_K < 1) is reflected in it.
        With the defaults this is diffusers' "squaredcos_cap_v2" (`squaredcos_cap_v2`).
        """
        n = check_count(K, "K")
        off, cap = check_real(s, "s"), check_real(max_beta, "max_beta")
        if not off > 0:
            raise SDEKitError(f"s must be > 0 (it keeps beta_1 away from 0); got {off!r}")
        if not 0 < cap < 1:
            raise SDEKitError(f"max_beta must lie in (0, 1); got {cap!r}")
        # math.cos point by point: the same libm call as diffusers' betas_for_alpha_bar, so the betas agree to the
        # bit on every machine (a SIMD np.cos may differ in the last bit, which 1 - ratio amplifies ~1e4-fold)
        f = np.array([math.cos((i / n + off) / (1.0 + off) * (math.pi / 2.0)) ** 2 for i in range(n + 1)])
        betas = np.minimum(1.0 - f[1:] / f[:-1], cap)
        return cls(betas)

    @classmethod
    def squaredcos_cap_v2(cls, K: int = 1000) -> DiscreteSchedule:
        """diffusers' beta_schedule="squaredcos_cap_v2" (its ``betas_for_alpha_bar`` with the cosine alpha_bar):
        the Nichol & Dhariwal 2021 cosine schedule (eq. 17) with s = 0.008 and betas capped at 0.999, i.e.
        ``cosine(K, s=0.008, max_beta=0.999)``.

        beta_k = min(1 - f(k / K) / f((k - 1) / K), 0.999), f(t) = cos^2((t + 0.008) / 1.008 * pi / 2). The float64
        betas equal diffusers' formula evaluated in float64 bit for bit (diffusers then stores them in float32;
        rounded to float32 they equal its table exactly: tests/test_schedules_ecosystem.py).
        """
        return cls.cosine(K, s=0.008, max_beta=0.999)

    @classmethod
    def sigmoid(cls, K: int = 1000, beta_1: float = 1e-4, beta_K: float = 0.02) -> DiscreteSchedule:
        """beta_k = beta_1 + (beta_K - beta_1) / (1 + exp(-u_k)), u = linspace(-6, 6, K): diffusers'
        beta_schedule="sigmoid" (DDPMScheduler; the schedule of GeoDiff, Xu, Yu, Song, Shi, Ermon & Tang 2022,
        "GeoDiff: a geometric diffusion model for molecular conformation generation", which used beta_1 = 1e-7,
        beta_K = 2e-3). The defaults are diffusers' beta_start / beta_end defaults. beta_1 < beta_K is not required.
        """
        n = check_count(K, "K")
        b1, bk = _unit_interval(beta_1, "beta_1"), _unit_interval(beta_K, "beta_K")
        u = np.linspace(-6.0, 6.0, n)
        return cls(1.0 / (1.0 + np.exp(-u)) * (bk - b1) + b1)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: ArrayLike) -> DiscreteSchedule:
        """The schedule with alphabar_k = alphas_cumprod[k - 1] exactly (diffusers' ``scheduler.alphas_cumprod``,
        the DDPM code's ``alphas_cumprod``; Ho et al. 2020, eq. 4), betas derived as
        beta_k = 1 - alphabar_k / alphabar_{k-1} (alphabar_0 = 1).

        alphas_cumprod must be 1-D, finite and strictly decreasing in (0, 1). A schedule with alphabar_K = 0 (zero
        terminal SNR) is refused: build it with `rescaled_zero_terminal_snr`, which keeps alphabar_K > 0 explicitly.
        (diffusers' constructors take betas or ``trained_betas``; a float32 ``alphas_cumprod`` tensor on the CPU is
        accepted here and widened to float64 exactly.)
        """
        a = real_array(alphas_cumprod, "alphas_cumprod")
        if a.ndim != 1 or a.shape[0] < 1:
            raise SDEKitError(f"alphas_cumprod must have shape (K,) with K >= 1; got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise SDEKitError("alphas_cumprod must be finite")
        if not (a[0] < 1 and a[-1] > 0):
            raise SDEKitError(f"alphas_cumprod must lie in (0, 1) (alphabar_K = 0 is zero terminal SNR: use "
                              f"rescaled_zero_terminal_snr); got first {a[0]!r}, last {a[-1]!r}")
        if np.any(np.diff(a) >= 0):
            k = int(np.flatnonzero(np.diff(a) >= 0)[0])
            raise SDEKitError(f"alphas_cumprod must be strictly decreasing; alphas_cumprod[{k + 1}] = {a[k + 1]!r} >= "
                              f"alphas_cumprod[{k}] = {a[k]!r}")
        return cls._with_alphas_bar(a)

    def rescaled_zero_terminal_snr(self, terminal_alpha_bar: float = 2.0**-24) -> DiscreteSchedule:
        """This schedule rescaled to zero terminal SNR (Lin, Liu, Li & Yang 2024, "Common diffusion noise schedules
        and sampling steps are flawed", Algorithm 1), with alphabar_K set to ``terminal_alpha_bar`` > 0.

        Algorithm 1 shifts and scales sqrt(alphabar) so that the first level keeps its value and the last becomes 0:
        a'_k = (a_k - a_K) a_1 / (a_1 - a_K), alphabar'_k = a'_k^2 (k = 1..K). Its alphabar'_K = 0 makes
        x_K = eps exactly, but then x0 = (x - sigma eps) / alpha and every score-based update are undefined at
        level K (alpha_K = 0). diffusers' DDIMScheduler / DDPMScheduler keep alphas_cumprod[-1] = 0 (usable only with
        a v- or x0-predicting network); its DPMSolverMultistepScheduler and EulerDiscreteScheduler overwrite
        alphas_cumprod[-1] = 2**-24 ("close to 0 without being 0 so first sigma is not inf"). sdekit needs
        alpha_K > 0, so the terminal value is this explicit argument, default 2**-24 as in those diffusers schedulers;
        it must lie in (0, alphabar'_{K-1}). diffusers' rescale_betas_zero_snr=True.
        """
        if self.n_steps < 2:
            raise SDEKitError("rescaled_zero_terminal_snr needs K >= 2 levels")
        a = self.alphas
        a1, ak = float(a[0]), float(a[-1])
        abar = ((a - ak) * (a1 / (a1 - ak))) ** 2
        end = check_real(terminal_alpha_bar, "terminal_alpha_bar")
        if not 0 < end < abar[-2]:
            raise SDEKitError(f"terminal_alpha_bar must lie in (0, alphabar'_(K-1) = {abar[-2]:.6g}) so that "
                              f"alphas_bar stays > 0 and strictly decreasing; got {end!r}")
        abar[-1] = end
        return DiscreteSchedule._with_alphas_bar(abar)

    def respaced(self, indices: ArrayLike) -> DiscreteSchedule:
        """The schedule on the levels tau_1 < ... < tau_S (``indices``, in 1..K; tau_0 = 0 is implied).

        beta'_i = 1 - alphabar_{tau_i} / alphabar_{tau_{i-1}} (alphabar_{tau_0} = 1), so level i of the new
        schedule has alphabar'_i = alphabar_{tau_i} exactly: the fewer-step DDPM of Nichol & Dhariwal 2021
        (section 4) and the subsequence tau of DDIM (Song, Meng & Ermon 2021, section 4.2).
        """
        lv = as_levels(indices, self.n_steps)
        return DiscreteSchedule._with_alphas_bar(self.alphas_bar[lv - 1])

    def spaced_levels(self, steps: int) -> np.ndarray:
        """``steps`` levels evenly spaced over 1..K, always containing 1 and K: floor(linspace(1, K, steps) + 1/2).

        The "linear" (uniform) skip of DDIM (Song, Meng & Ermon 2021, appendix D.2: tau_i = floor(c i)) in the form
        that keeps both ends: levels tau_i = floor(1 + i (K - 1) / (steps - 1) + 1/2), i = 0..steps-1, rounded half
        up in exact integer arithmetic (1 + (2 i (K - 1) + steps - 1) // (2 (steps - 1))), so that a tie such as
        K = 4, steps = 3 (2.5 -> 3) does not depend on NumPy's round-half-to-even. For steps = 1 it is [K].
        Not the DDIM code's grid (range(0, K, K // steps) as 0-based timesteps, which lacks level K) nor diffusers'
        ('linspace' rounds half to even over 0..K-1): those are `timestep_spacing.timestep_levels`. steps <= K.
        """
        n = check_count(steps, "steps")
        k = self.n_steps
        if n > k:
            raise SDEKitError(f"steps must be <= K = {k}; got {n}")
        if n == 1:
            return np.array([k], dtype=np.int64)
        i = np.arange(n, dtype=np.int64)
        return 1 + (2 * i * (k - 1) + (n - 1)) // (2 * (n - 1))

    # ---------------------------------------------------------------- sigma -> timestep

    def timestep_of_sigma(self, sigma_edm: Any, rounding: str = "interpolate", interpolation: str = "log") -> Any:
        """The 0-based training timestep t of an EDM noise level s = sigma / alpha (``sigmas_edm``, level k = t + 1).

        rounding="interpolate": k-diffusion's ``DiscreteSchedule.sigma_to_t`` (and diffusers' ``_sigma_to_t``):
        with s_j = sigmas_edm[j] increasing in j, find j with s_j <= s < s_{j+1} and return
        t = j + (log s - log s_j) / (log s_{j+1} - log s_j), a fractional timestep, exactly the integer j when
        s = s_j. Clamped to [0, K - 1]: s <= sigmas_edm[0] (s = 0 included) gives 0, s >= sigmas_edm[-1] gives K - 1.
        rounding="nearest": the timestep j minimising |log s - log s_j| (ties to the lower j; k-diffusion's
        ``quantize=True``), as an integer.
        interpolation="linear" uses s instead of log s in both: the inverse of diffusers' Euler / Heun mapping
        t -> s (np.interp of ``sigmas`` at fractional timesteps, interpolation_type="linear").

        sigma_edm: a number or NumPy array (float64; finite and >= 0, checked; a float or int comes back for a
        scalar), or a torch tensor (computed on its device in its floating dtype against the table built there with
        the same torch operations, so a level's own sigma maps to its exact integer; no host synchronisation, hence
        no finiteness check: a NaN or, under "log", negative sigma gives NaN, or an arbitrary timestep under
        "nearest"). Returns the same shape; float timesteps, int64 under "nearest".
        """
        if rounding not in ROUNDINGS:
            raise SDEKitError(f"rounding must be one of {ROUNDINGS}; got {rounding!r}")
        if interpolation not in SIGMA_INTERPOLATIONS:
            raise SDEKitError(f"interpolation must be one of {SIGMA_INTERPOLATIONS}; got {interpolation!r}")
        return lookup_timestep(self.sigmas_edm, sigma_edm, rounding, interpolation, self._torch_tables)
