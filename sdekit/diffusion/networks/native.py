"""The network's own kernel and what it is conditioned on.

A sampler asks for the model at a level (alpha, sigma) of its own kernel x = alpha x_0 + sigma eps; the network was
trained on one family of kernels x* = a* x_0 + s* eps. Two levels with the same signal-to-noise ratio alpha / sigma
differ only by a scale m: if (a*, s*) = m (alpha, sigma) then m x has the network's law at (a*, s*) (Kingma et al.
2021, "Variational diffusion models", section 3; Karras et al. 2022, section 2, for the VE / VP pair). So the
network is evaluated at x* = m x, and its x0hat / epshat (which do not change under the scale) answer the sampler.

Kernel families (``kernel=``):

    "vp"      a*^2 + s*^2 = 1 (DDPM / diffusers schedules, VP SDE):  m = 1 / sqrt(alpha^2 + sigma^2)
    "ve"      a* = 1 (k-diffusion denoisers, EDM, VE SDE):           m = 1 / alpha,   s* = sigma / alpha
    "flow"    a* + s* = 1, t = s* (rectified flow / flow matching):  m = 1 / (alpha + sigma)
    a `DiscreteSchedule`  the vp family, with the training timestep of the level (``conditioning="timestep"``)
    a `ForwardSDE`        its own kernel (a*, s*) = (alpha_t*, sigma_t*) at the time t* of the same log-SNR
                          (bisection of the decreasing lambda(t) = log(alpha_t / sigma_t)), m = a* / alpha.

Conditionings (``conditioning=``), computed from the native level:

    "sigma"     s* / a*, the noise level of Karras et al. 2022 (k-diffusion's sigma)
    "logsnr"    lambda = log(a* / s*): half the log-SNR of Kingma et al. 2021; the convention of `sdekit.learn`
    "t"         the continuous time t* (a ForwardSDE, or the flow's t = s*)
    "timestep"  the fractional 0-based training timestep of a DiscreteSchedule (diffusers' t = k - 1 at level k):
                linear interpolation in log sigma between neighbouring levels (k-diffusion's ``sigma_to_t``), exact
                at the levels (`DiscreteSchedule.timestep_of_sigma`, from the sampler's sigma / alpha; values
                within 1e-9 of an integer are snapped to it, so a level's sigma computed by another formula, an ulp
                away, still gives the integer), clamped to [0, K - 1];
                ``timestep_rounding="nearest"`` rounds to the nearest level instead (k-diffusion's quantize=True);
                ``timestep_interpolation="linear"`` interpolates sigma itself, the inverse of diffusers'
                Euler / Heun schedulers' fractional timesteps (their 'linspace' grids)
    "edm"       c_noise = ln(sigma) / 4 of EDM's preconditioning (Karras et al. 2022, Table 1), sigma = s* / a*
    a callable  fn(a*, s*) -> c, for any other convention (e.g. 1000 t for a flow model).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.arrays import is_torch, log, sqrt
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.errors import SDEKitError

__all__ = ["CONDITIONINGS", "KERNEL_FAMILIES", "TIMESTEP_ROUNDINGS", "Native"]

KERNEL_FAMILIES = ("vp", "ve", "flow")
CONDITIONINGS = ("sigma", "logsnr", "t", "timestep", "edm")
TIMESTEP_ROUNDINGS = ("interpolate", "nearest")
TIMESTEP_INTERPOLATIONS = ("log", "linear")
SNAP = 1e-9  # a timestep this close to an integer is that level (sigma tables computed by another formula differ
#              from sdekit's by an ulp: diffusers' ((1 - abar) / abar) ** 0.5 against sqrt(1 - abar) / sqrt(abar))
BISECTION_STEPS = 64


class Native:
    """A network's kernel family and conditioning (module docstring): maps a sampler's (alpha, sigma) to
    (m, a*, s*, c)."""

    def __init__(self, kernel: Any, conditioning: Any, timestep_rounding: str = "interpolate",
                 timestep_interpolation: str = "log") -> None:
        if isinstance(kernel, str):
            if kernel not in KERNEL_FAMILIES:
                raise SDEKitError(f"kernel must be one of {KERNEL_FAMILIES}, a DiscreteSchedule or a ForwardSDE; "
                                  f"got {kernel!r}")
        elif not isinstance(kernel, DiscreteSchedule | ForwardSDE):
            raise SDEKitError(f"kernel must be one of {KERNEL_FAMILIES}, a DiscreteSchedule or a ForwardSDE; "
                              f"got {type(kernel).__name__}")
        if not callable(conditioning) and conditioning not in CONDITIONINGS:
            raise SDEKitError(f"conditioning must be one of {CONDITIONINGS} or a callable fn(a, s) -> c; "
                              f"got {conditioning!r}")
        if conditioning == "t" and not (isinstance(kernel, ForwardSDE) or kernel == "flow"):
            raise SDEKitError("conditioning 't' needs kernel='flow' or a ForwardSDE (a continuous time); for a "
                              "DiscreteSchedule use 'timestep'")
        if conditioning == "timestep" and not isinstance(kernel, DiscreteSchedule):
            raise SDEKitError("conditioning 'timestep' needs kernel=DiscreteSchedule(...) (the training schedule)")
        if timestep_rounding not in TIMESTEP_ROUNDINGS:
            raise SDEKitError(f"timestep_rounding must be one of {TIMESTEP_ROUNDINGS}; got {timestep_rounding!r}")
        if timestep_interpolation not in TIMESTEP_INTERPOLATIONS:
            raise SDEKitError(f"timestep_interpolation must be one of {TIMESTEP_INTERPOLATIONS}; "
                              f"got {timestep_interpolation!r}")
        self.kernel, self.conditioning, self.rounding = kernel, conditioning, timestep_rounding
        self.interpolation = timestep_interpolation

    @property
    def family(self) -> str:
        """'vp', 've', 'flow' or 'forward'."""
        if isinstance(self.kernel, DiscreteSchedule):
            return "vp"
        if isinstance(self.kernel, ForwardSDE):
            return "forward"
        return self.kernel

    def level(self, alpha: Any, sigma: Any) -> tuple[Any, Any, Any, Any]:
        """(m, a*, s*, c): the scale onto the network's kernel, its level, and the conditioning value."""
        fam = self.family
        t_star = None
        if fam == "vp":
            m = 1.0 / sqrt(alpha * alpha + sigma * sigma)
        elif fam == "ve":
            m = 1.0 / alpha
        elif fam == "flow":
            m = 1.0 / (alpha + sigma)
        else:
            t_star, a_star, s_star = self._forward_level(alpha, sigma)
            return a_star / alpha, a_star, s_star, self._condition(a_star, s_star, t_star)
        a_star, s_star = m * alpha, m * sigma
        if fam == "ve":
            a_star = 1.0 if not is_torch(alpha) and not isinstance(alpha, np.ndarray) else alpha * m
        if fam == "flow":
            t_star = s_star
        return m, a_star, s_star, self._condition(a_star, s_star, t_star, sigma / alpha)

    def _condition(self, a: Any, s: Any, t: Any, ratio: Any = None) -> Any:
        """The conditioning value at the native level (a, s); ``ratio`` = sigma / alpha of the caller, equal to
        s / a but computed without the scale m, so a schedule's own level gives its table's sigma to the bit."""
        c = self.conditioning
        ratio = s / a if ratio is None else ratio
        if callable(c):
            return c(a, s)
        if c == "sigma":
            return ratio
        if c == "logsnr":
            return log(a) - log(s)
        if c == "edm":
            return 0.25 * log(ratio)
        if c == "t":
            return t
        return self.timestep(ratio)

    def timestep(self, sigma_edm: Any) -> Any:
        """The fractional 0-based training timestep of the noise level sigma_edm = s* / a* (module docstring;
        `DiscreteSchedule.timestep_of_sigma`)."""
        t = self.kernel.timestep_of_sigma(sigma_edm, rounding=self.rounding, interpolation=self.interpolation)
        if self.rounding == "nearest":
            return t
        if is_torch(t):
            import torch

            near = torch.round(t)
            return torch.where((t - near).abs() < SNAP, near, t)
        near = np.round(t)
        out = np.where(np.abs(t - near) < SNAP, near, t)
        return float(out) if np.ndim(out) == 0 else out

    # ------------------------------------------------------------------ a ForwardSDE's own kernel

    def _forward_level(self, alpha: Any, sigma: Any) -> tuple[Any, Any, Any]:
        """(t*, a*, s*) with log(a* / s*) = log(alpha / sigma) on the ForwardSDE's kernel."""
        fw = self.kernel
        lam = log(alpha) - log(sigma)
        if is_torch(lam):
            from sdekit.diffusion.torch_schedule import torch_kernel
            from sdekit.learn.wrappers import time_from_logsnr

            t_star = time_from_logsnr(fw, lam).to(lam.dtype)
            a_star, s_star = torch_kernel(fw, t_star)
            return t_star, a_star, s_star
        lams = np.atleast_1d(np.asarray(lam, dtype=np.float64))
        ts = np.array([_bisect_time(fw, float(v)) for v in lams.reshape(-1)]).reshape(lams.shape)
        pairs = np.array([fw.kernel(float(t)) for t in ts.reshape(-1)], dtype=np.float64).reshape(ts.shape + (2,))
        if np.ndim(lam) == 0:
            return float(ts[0]), float(pairs[0, 0]), float(pairs[0, 1])
        return ts, pairs[..., 0], pairs[..., 1]


def _bisect_time(forward: ForwardSDE, lam: float) -> float:
    """t in [0, T] with log(alpha_t / sigma_t) = lam (decreasing in t); T for lam below lambda(T)."""
    lo, hi = 0.0, float(forward.T)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        a, s = forward.kernel(mid)
        if math.log(a) - math.log(s) > lam:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)

