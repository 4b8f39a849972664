"""Discrete diffusion schedules as data: the betas of DDPM and everything derived from them.

A schedule of K steps is given by its betas beta_1, ..., beta_K in (0, 1) (Ho, Jain & Abbeel 2020, "Denoising
diffusion probabilistic models"): the forward chain is q(x_k | x_{k-1}) = N(sqrt(1 - beta_k) x_{k-1}, beta_k I),
hence q(x_k | x_0) = N(alpha_k x_0, sigma_k^2 I) with

    alphabar_k = prod_{j <= k} (1 - beta_j),   alpha_k = sqrt(alphabar_k),   sigma_k = sqrt(1 - alphabar_k).

Levels are numbered as in the papers: k = 1, ..., K are the noisy levels and k = 0 is the data (alphabar_0 = 1,
alpha_0 = 1, sigma_0 = 0). The arrays are 0-based: ``betas[k - 1]`` is beta_k, ``alphas_bar[k - 1]`` is alphabar_k;
``level(k)`` returns (alpha_k, sigma_k) for any level 0 <= k <= K, which is what a model ``score(x, alpha, sigma)``
is called with.

A subsequence of levels 0 = tau_0 < tau_1 < ... < tau_S (DDIM, Song, Meng & Ermon 2021, section 4.2; fewer-step
DDPM, Nichol & Dhariwal 2021, section 4) is again a schedule: ``respaced(indices)`` keeps alphabar at the chosen
levels and sets beta'_i = 1 - alphabar_{tau_i} / alphabar_{tau_{i-1}}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sdekit.diffusion.inputs import real_array
from sdekit.diffusion.samplers.checks import check_count, check_real
from sdekit.errors import SDEKitError

__all__ = ["DiscreteSchedule", "as_levels"]


def as_levels(indices: Any, n_steps: int, name: str = "indices") -> np.ndarray:
    """indices as a strictly increasing int64 array of levels in {1, ..., n_steps}, or an SDEKitError naming it."""
    try:
        raw = np.asarray(indices)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be a 1-D sequence of integer levels; got {type(indices).__name__}") from exc
    if raw.ndim != 1 or raw.shape[0] < 1:
        raise SDEKitError(f"{name} must be a non-empty 1-D sequence of levels; got shape {raw.shape}")
    if raw.dtype == bool or not np.issubdtype(raw.dtype, np.integer):
        raise SDEKitError(f"{name} must hold integers (levels 1..{n_steps}); got dtype {raw.dtype}")
    lv = raw.astype(np.int64)
    if lv.min() < 1 or lv.max() > n_steps:
        raise SDEKitError(f"{name} must lie in 1..{n_steps} (level 0 is the data and is implied); "
                          f"got min {lv.min()}, max {lv.max()}")
    if np.any(np.diff(lv) <= 0):
        raise SDEKitError(f"{name} must be strictly increasing; got {lv.tolist()[:12]}")
    return lv


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class DiscreteSchedule:
    """A K-step discrete diffusion schedule given by betas (K,) in (0, 1) (Ho et al. 2020).

    Derived (read-only, shape (K,), entry k - 1 for level k): ``alphas_bar`` = cumprod(1 - beta),
    ``alphas`` = sqrt(alphas_bar) (the kernel's alpha_k), ``sigmas`` = sqrt(1 - alphas_bar) (its sigma_k), so that
    x_k = alpha_k x_0 + sigma_k eps. ``n_steps`` is K. ``level(k)`` gives (alpha_k, sigma_k) for 0 <= k <= K.
    """

    betas: np.ndarray
    alphas_bar: np.ndarray = field(init=False, repr=False)
    alphas: np.ndarray = field(init=False, repr=False)
    sigmas: np.ndarray = field(init=False, repr=False)

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
        object.__setattr__(self, "alphas_bar", _readonly(abar))
        object.__setattr__(self, "alphas", _readonly(np.sqrt(abar)))
        object.__setattr__(self, "sigmas", _readonly(np.sqrt(-np.expm1(np.log(abar)))))

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
        """
        n = check_count(K, "K")
        b1, bk = check_real(beta_1, "beta_1"), check_real(beta_K, "beta_K")
        for name, v in (("beta_1", b1), ("beta_K", bk)):
            if not 0 < v < 1:
                raise SDEKitError(f"{name} must lie in (0, 1); got {v!r}")
        return cls(np.linspace(b1, bk, n) if n > 1 else np.array([b1]))

    @classmethod
    def cosine(cls, K: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
        """The cosine schedule of Nichol & Dhariwal 2021 ("Improved DDPM", eq. 17).

        f(t) = cos^2((t / K + s) / (1 + s) * pi / 2), alphabar(t) = f(t) / f(0), and
        beta_k = min(1 - alphabar(k) / alphabar(k - 1), max_beta) for k = 1..K; alphas_bar is then recomputed as
        cumprod(1 - beta), so the clipping at max_beta (which keeps beta_K < 1) is reflected in it.
        """
        n = check_count(K, "K")
        off, cap = check_real(s, "s"), check_real(max_beta, "max_beta")
        if not off > 0:
            raise SDEKitError(f"s must be > 0 (it keeps beta_1 away from 0); got {off!r}")
        if not 0 < cap < 1:
            raise SDEKitError(f"max_beta must lie in (0, 1); got {cap!r}")
        t = np.arange(n + 1, dtype=np.float64) / n
        f = np.cos((t + off) / (1.0 + off) * (math.pi / 2.0)) ** 2
        betas = np.minimum(1.0 - f[1:] / f[:-1], cap)
        return cls(betas)

    def respaced(self, indices: ArrayLike) -> DiscreteSchedule:
        """The schedule on the levels tau_1 < ... < tau_S (``indices``, in 1..K; tau_0 = 0 is implied).

        beta'_i = 1 - alphabar_{tau_i} / alphabar_{tau_{i-1}} (alphabar_{tau_0} = 1), so level i of the new
        schedule has alphabar'_i = alphabar_{tau_i} exactly: the fewer-step DDPM of Nichol & Dhariwal 2021
        (section 4) and the subsequence tau of DDIM (Song, Meng & Ermon 2021, section 4.2).
        """
        lv = as_levels(indices, self.n_steps)
        abar = self.alphas_bar[lv - 1]
        prev = np.concatenate([[1.0], abar[:-1]])
        return DiscreteSchedule(-np.expm1(np.log(abar) - np.log(prev)))

    def spaced_levels(self, steps: int) -> np.ndarray:
        """``steps`` levels evenly spaced over 1..K, always containing K and 1: round(linspace(1, K, steps)).

        The linear ("uniform") skip of DDIM (Song, Meng & Ermon 2021, appendix D.2); steps is capped at K.
        """
        n = check_count(steps, "steps")
        if n > self.n_steps:
            raise SDEKitError(f"steps must be <= K = {self.n_steps}; got {n}")
        if n == 1:
            return np.array([self.n_steps], dtype=np.int64)
        return np.unique(np.round(np.linspace(1.0, self.n_steps, n)).astype(np.int64))
