"""Memory caps of a solve: what it may allocate for saved states and its time grid, checked before allocating."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError


def human_size(nbytes: float) -> str:
    """A byte count in the largest unit that keeps it at least 1 (B, KiB, MiB, GiB, TiB)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} B"


def default_save_cap() -> int:
    """Largest save request accepted by default: a quarter of physical memory, at most 16 GiB."""
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        phys = 8 * 2**30
    return int(min(16 * 2**30, phys // 4))


def save_cap(cap: Any) -> int:
    """The memory cap of a solve in bytes: ``max_save_bytes`` checked (a non-negative integer), or the default."""
    if cap is None:
        return default_save_cap()
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 0:
        raise SDEKitError(f"max_save_bytes must be None (a quarter of RAM, at most 16 GiB) or a non-negative "
                          f"integer number of bytes; got {cap!r}")
    return int(cap)


def check_save_size(n_saves: int, shape: tuple, dtype: type, cap: int | None) -> None:
    """Refuse a solve whose saves (plus the working state and noise streams) exceed the memory cap."""
    cap = save_cap(cap)
    item = np.dtype(dtype).itemsize
    saves = n_saves * shape[0] * shape[1] * item
    need = saves + shape[0] * (shape[1] * item + 64)
    if need > cap:
        raise SDEKitError(
            f"save_at asks for {n_saves} saves x {shape[0]} paths x {shape[1]} dims of {np.dtype(dtype).name} = "
            f"{human_size(saves)} ({human_size(need)} with the working state), above the cap of "
            f"{human_size(cap)} (max_save_bytes); save fewer times or fewer paths, or raise max_save_bytes")
