"""Clipping of the denoised estimate x0hat (for data known to lie in [-1, 1], e.g. images).

- Static clipping (Ho et al. 2020's sampling code; diffusers ``clip_sample``): x0hat <- clip(x0hat, -c, c).
- Dynamic thresholding (Saharia et al. 2022, "Photorealistic text-to-image diffusion models with deep language
  understanding", section 2.3; diffusers ``thresholding``): per example, s = the p-quantile of |x0hat| over its
  entries, s <- clip(s, 1, s_max), x0hat <- clip(x0hat, -s, s) / s.

After clipping, the noise estimate is made consistent with it, epshat = (x - a x0hat) / s (as diffusers' DDIM does),
so every sampler (which reads x0hat or epshat) sees the clipped prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.arrays import is_torch, per_row
from sdekit.diffusion.samplers.checks import check_real
from sdekit.errors import SDEKitError

__all__ = ["Threshold", "threshold_x0"]


@dataclass(frozen=True)
class Threshold:
    """kind "static" (clip at +-``clip``) or "dynamic" (``ratio`` the quantile p, ``max_value`` s_max)."""

    kind: str = "dynamic"
    clip: float = 1.0
    ratio: float = 0.995
    max_value: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("static", "dynamic"):
            raise SDEKitError(f"kind must be 'static' or 'dynamic'; got {self.kind!r}")
        check_real(self.clip, "clip", lo=0.0, strict=True)
        r = check_real(self.ratio, "ratio")
        if not 0 < r <= 1:
            raise SDEKitError(f"ratio must lie in (0, 1]; got {r}")
        check_real(self.max_value, "max_value", lo=1.0)


def threshold_x0(x0: Any, threshold: Threshold) -> Any:
    """x0hat clipped by ``threshold`` (module docstring), in x0's kind."""
    if threshold.kind == "static":
        if is_torch(x0):
            return x0.clamp(-threshold.clip, threshold.clip)
        return np.clip(x0, -threshold.clip, threshold.clip)
    flat = x0.reshape(x0.shape[0], -1)
    if is_torch(x0):
        import torch

        s = torch.quantile(flat.abs().to(torch.float32 if flat.dtype == torch.float16 else flat.dtype),
                           threshold.ratio, dim=1).to(x0.dtype)
        s = per_row(s.clamp(1.0, threshold.max_value), x0)
        return torch.maximum(torch.minimum(x0, s), -s) / s
    s = per_row(np.clip(np.quantile(np.abs(flat), threshold.ratio, axis=1), 1.0, threshold.max_value), x0)
    return np.clip(x0, -s, s) / s
