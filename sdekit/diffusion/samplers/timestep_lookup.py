"""Map a noise level back to a training timestep by interpolating in a monotone table, on NumPy or torch.

The table is a schedule's EDM noise levels s_0 < s_1 < ... < s_{K-1} (``DiscreteSchedule.sigmas_edm``, 0-based
timestep j = level j + 1). For a query s, with x = log s (interpolation "log", k-diffusion's
``DiscreteSchedule.sigma_to_t``, Crowson 2022) or x = s ("linear", the inverse of diffusers' np.interp of sigmas at
fractional timesteps) and x_j the table in the same space:

    interpolate:  j = max{i <= K - 2 : x_i <= x} (0 if none),  w = clip((x - x_j) / (x_{j+1} - x_j), 0, 1),  t = j + w
    nearest:      t = argmin_j |x - x_j| (the lower j on a tie)

so t is clamped to [0, K - 1] and equals j exactly at x = x_j. torch is imported only for tensor input.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError

__all__ = ["ROUNDINGS", "SIGMA_INTERPOLATIONS", "lookup_timestep"]

ROUNDINGS = ("interpolate", "nearest")
SIGMA_INTERPOLATIONS = ("log", "linear")


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "device") and hasattr(x, "dtype")


def lookup_timestep(sigmas: np.ndarray, sigma: Any, rounding: str, interpolation: str,
                    torch_tables: dict | None = None) -> Any:
    """The fractional (or nearest) 0-based timestep of ``sigma`` in the increasing table ``sigmas`` (K,), see the
    module docstring. NumPy input: checked finite and >= 0, float64 result (int64 for "nearest"), a Python float /
    int for a scalar. Tensor input: computed on its device in its floating dtype, no host synchronisation.
    torch_tables: a dict used to keep the table on each (device, dtype) between calls."""
    if _is_tensor(sigma):
        return _lookup_torch(sigmas, sigma, rounding, interpolation, {} if torch_tables is None else torch_tables)
    if (type(sigma) is float and rounding == "interpolate" and torch_tables is not None and math.isfinite(sigma)
            and sigma > 0 and sigmas.shape[0] > 1):
        return _lookup_float(sigmas, sigma, interpolation, torch_tables)
    return _lookup_numpy(sigmas, sigma, rounding, interpolation)


def _lookup_float(sigmas: np.ndarray, sigma: float, interpolation: str, cache: dict) -> float:
    """The "interpolate" lookup of one Python float (a sampler's level), with the table kept as a Python list in
    ``cache``: the same floating-point operations as `_lookup_numpy`, without its array overhead (~30 us a call)."""
    key = ("float-table", interpolation)
    table = cache.get(key)
    if table is None:
        table = (np.log(sigmas) if interpolation == "log" else sigmas).tolist()
        cache[key] = table
    x = float(np.log(sigma)) if interpolation == "log" else sigma
    k = len(table)
    j = min(max(bisect.bisect_right(table, x) - 1, 0), k - 2)
    w = min(max((x - table[j]) / (table[j + 1] - table[j]), 0.0), 1.0)
    return j + w


def _lookup_numpy(sigmas: np.ndarray, sigma: Any, rounding: str, interpolation: str) -> Any:
    if isinstance(sigma, bool | np.bool_ | str) or np.iscomplexobj(sigma):
        raise SDEKitError(f"sigma_edm must be a real number or array >= 0; got {sigma!r}")
    try:
        s = np.asarray(sigma, dtype=np.float64)
    except (TypeError, ValueError):
        raise SDEKitError(f"sigma_edm must be a real number or array >= 0; got {type(sigma).__name__}") from None
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        bad = s[~(np.isfinite(s) & (s >= 0))].ravel()[0]
        raise SDEKitError(f"sigma_edm must be finite and >= 0; got {bad!r}")
    if interpolation == "log":
        with np.errstate(divide="ignore"):  # log 0 = -inf clamps to timestep 0
            x, table = np.log(s), np.log(sigmas)
    else:
        x, table = s, sigmas
    k = table.shape[0]
    if rounding == "nearest":
        out = _nearest_numpy(table, x)
    elif k == 1:
        out = np.zeros_like(x)
    else:
        lo = np.clip(np.searchsorted(table, x, side="right") - 1, 0, k - 2)
        x_lo = table[lo]
        with np.errstate(invalid="ignore"):  # -inf - x_lo is -inf, clipped to 0
            w = np.clip((x - x_lo) / (table[lo + 1] - x_lo), 0.0, 1.0)
        out = lo + w
    return out.item() if out.ndim == 0 else out


def _nearest_numpy(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    k = table.shape[0]
    if k == 1:
        return np.zeros(x.shape, dtype=np.int64)
    hi = np.clip(np.searchsorted(table, x, side="left"), 1, k - 1)
    lo = hi - 1
    return np.where(x - table[lo] <= table[hi] - x, lo, hi).astype(np.int64)


def _lookup_torch(sigmas: np.ndarray, sigma: Any, rounding: str, interpolation: str, cache: dict) -> Any:
    import torch

    if not sigma.is_floating_point():
        raise SDEKitError(f"sigma_edm must be a floating-point tensor; got dtype {sigma.dtype}")
    key = (sigma.device, sigma.dtype, interpolation)
    table = cache.get(key)
    if table is None:
        table = torch.tensor(np.array(sigmas), dtype=sigma.dtype, device=sigma.device)  # a writable copy
        table = torch.log(table) if interpolation == "log" else table
        cache[key] = table
    x = torch.log(sigma) if interpolation == "log" else sigma
    k = table.shape[0]
    flat = x.reshape(-1).contiguous()
    if k == 1:
        zeros = torch.zeros_like(flat, dtype=torch.int64 if rounding == "nearest" else flat.dtype)
        return zeros.reshape(sigma.shape)
    if rounding == "nearest":
        hi = torch.searchsorted(table, flat, right=False).clamp(1, k - 1)
        lo = hi - 1
        out = torch.where(flat - table[lo] <= table[hi] - flat, lo, hi)
    else:
        lo = (torch.searchsorted(table, flat, right=True) - 1).clamp(0, k - 2)
        x_lo = table[lo]
        w = ((flat - x_lo) / (table[lo + 1] - x_lo)).clamp(0.0, 1.0)
        out = lo.to(flat.dtype) + w
    return out.reshape(sigma.shape)
