"""Classifier-free guidance (Ho & Salimans 2022, "Classifier-free diffusion guidance", eq. 6) with the optional
guidance rescale of Lin et al. 2024 ("Common diffusion noise schedules and sampling steps are flawed", eq. 15-16).

With the network's outputs under the condition, p_c, and without it, p_u (in the network's own prediction type, as
diffusers applies it), the guided output is

    p_w = p_u + w (p_c - p_u)                                  (w = 1: conditional, w = 0: unconditional)

and with rescale phi in [0, 1]:  p_w <- phi p_w std(p_c) / std(p_w) + (1 - phi) p_w, the standard deviations taken
per example over all of its entries. Since every prediction type is affine in the output at a fixed level, guiding
eps, x0, v or the velocity gives the same x0hat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.arrays import is_torch, per_row
from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError

__all__ = ["Guidance", "apply_guidance"]


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance settings: scale w, the network's keyword arguments with the condition (``cond``) and
    without it (``uncond``), the rescale phi (0: none), and whether both are run as one doubled batch (``batched``,
    diffusers' default: the keyword tensors are concatenated along their first dimension) or as two calls."""

    scale: float
    cond: dict[str, Any] = field(default_factory=dict)
    uncond: dict[str, Any] = field(default_factory=dict)
    rescale: float = 0.0
    batched: bool = True

    def __post_init__(self) -> None:
        check_real(self.scale, "scale")
        r = check_real(self.rescale, "rescale")
        if not 0.0 <= r <= 1.0:
            raise SDEKitError(f"rescale must lie in [0, 1]; got {r}")
        for name in ("cond", "uncond"):
            if not isinstance(getattr(self, name), dict):
                raise SDEKitError(f"{name} must be a dict of the network's keyword arguments; "
                                  f"got {type(getattr(self, name)).__name__}")
        if self.batched and set(self.cond) != set(self.uncond):
            raise SDEKitError(f"cond and uncond must have the same keys for batched guidance; got {sorted(self.cond)} "
                              f"and {sorted(self.uncond)}")


def _row_std(v: Any) -> Any:
    flat = v.reshape(v.shape[0], -1)
    if is_torch(v):
        return per_row(flat.std(dim=1), v)
    return per_row(np.std(flat, axis=1, ddof=1), v)


def apply_guidance(p_cond: Any, p_uncond: Any, guidance: Guidance) -> Any:
    """p_u + w (p_c - p_u), then the rescale of Lin et al. 2024 when phi > 0 (module docstring)."""
    guided = p_uncond + guidance.scale * (p_cond - p_uncond)
    if guidance.rescale > 0:
        rescaled = guided * (_row_std(p_cond) / _row_std(guided))
        guided = guidance.rescale * rescaled + (1.0 - guidance.rescale) * guided
    return guided
