"""Time grids and save times: checked once, before anything compiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.memory import default_save_cap, human_size


@dataclass(frozen=True)
class Grid:
    """ts: the step grid (strictly monotone, either direction); save k is at ts[save_steps[k]] + save_offsets[k].

    An on-grid save has offset 0 and save_steps its grid index; a save strictly inside the step [t_k, t_{k+1}] has
    save_steps = k and the signed offset u = s - t_k (0 < |u| < |h|): the solvers reach it by a partial step from
    X_k whose Brownian increment is bridged from the step's own draws (`sdekit.backends.save_bridge`), so save times
    never change the step grid or the Brownian path.
    """

    ts: np.ndarray
    save_steps: np.ndarray
    save_offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.save_offsets is None:
            object.__setattr__(self, "save_offsets", np.zeros(self.save_steps.size))

    @property
    def save_ts(self) -> np.ndarray:
        return self.ts[self.save_steps] + self.save_offsets

    @property
    def off_grid(self) -> bool:
        """Whether some save lies strictly inside a step."""
        return bool(np.any(self.save_offsets != 0.0))


def _finite_float(v: Any, name: str) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be a number; got {v!r}") from exc
    if not np.isfinite(out):
        raise SDEKitError(f"{name} must be finite; got {v!r}")
    return out


def time_span(t: Any) -> tuple[float, float] | np.ndarray:
    """Either (t0, t1) or an explicit 1-D grid, validated."""
    try:
        arr = np.asarray(t, dtype=float) if not isinstance(t, tuple) or len(t) != 2 else None
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"t must be (t0, t1) or a 1-D grid of at least 2 times; got {t!r}") from exc
    if isinstance(t, tuple) and len(t) == 2:
        t0, t1 = _finite_float(t[0], "t[0]"), _finite_float(t[1], "t[1]")
        if t0 == t1:
            raise SDEKitError(f"t must span a non-empty interval; got t0 = t1 = {t0}")
        return t0, t1
    if arr is None or arr.ndim != 1 or arr.size < 2:
        raise SDEKitError(f"t must be (t0, t1) or a 1-D grid of at least 2 times; got {t!r}")
    if not np.all(np.isfinite(arr)):
        raise SDEKitError("t (grid) must contain only finite times")
    diffs = np.diff(arr)
    if not (np.all(diffs > 0) or np.all(diffs < 0)):
        k = int(np.flatnonzero(np.sign(diffs) != np.sign(diffs[0]))[0]) if np.any(diffs != 0) else 0
        raise SDEKitError(
            f"t (grid) must be strictly monotone (increasing, or decreasing for reverse time); "
            f"it breaks at index {k + 1}: t[{k}] = {arr[k]}, t[{k + 1}] = {arr[k + 1]}")
    return arr


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise SDEKitError(f"{name} must be a positive integer; got {v!r}")
    return int(v)


GRID_BYTES_PER_POINT = 16  # the time grid (float64) and its save/step bookkeeping


def fixed_grid(t: Any, steps: Any = None, dt: Any = None, save_at: Any = None, max_bytes: int | None = None) -> Grid:
    """The grid of a fixed-step solve, the same with or without saves; a save strictly inside a step is reached by
    a partial step from the step's start (`Grid`), never by inserting it into the grid.

    save_at: None (final time only), "steps" (every grid time), or times inside the span. max_bytes (default: the
    solve's memory cap, `sdekit.memory`): a grid needing more memory than this (GRID_BYTES_PER_POINT per point) is
    refused with its size, never a MemoryError.
    """
    span = time_span(t)
    if isinstance(span, tuple):
        t0, t1 = span
        if steps is not None and dt is not None:
            raise SDEKitError("give steps or dt, not both")
        if steps is None and dt is None:
            raise SDEKitError("a fixed-step solver needs steps=<int> or dt=<float> (or an explicit grid t)")
        if dt is not None:
            dt = _finite_float(dt, "dt")
            if dt <= 0:
                raise SDEKitError(f"dt must be positive (the direction comes from t); got {dt}")
            ratio = abs(t1 - t0) / dt
            if not np.isfinite(ratio) or ratio > 2**62:
                raise SDEKitError(f"dt = {dt!r} over [{t0}, {t1}] would take {ratio:.3g} steps; use a larger dt")
            steps = max(1, int(np.ceil(ratio - 1e-9)))
            _check_grid_size(steps, f"dt = {dt!r} over [{t0}, {t1}] gives {steps} steps", max_bytes)
        steps = _positive_int(steps, "steps")
        _check_grid_size(steps, f"steps = {steps}", max_bytes)
        ts = t0 + (t1 - t0) * (np.arange(steps + 1) / steps)
        ts[-1] = t1
    else:
        if steps is not None or dt is not None:
            raise SDEKitError("steps and dt are implied by an explicit grid t; leave them None")
        ts = span
    return Grid(ts, *_save_positions(ts, save_at))


def _check_grid_size(steps: int, what: str, max_bytes: int | None) -> None:
    max_bytes = default_save_cap() if max_bytes is None else max_bytes
    need = (steps + 1) * GRID_BYTES_PER_POINT
    if need > max_bytes:
        raise SDEKitError(f"{what}: a time grid of {steps + 1} points needs {human_size(need)}, above the memory "
                          f"cap of {human_size(max_bytes)} (max_save_bytes); use fewer steps or a larger dt")


def _save_positions(ts: np.ndarray, save_at: Any) -> tuple[np.ndarray, np.ndarray]:
    """(save_steps, save_offsets) of the saves on the step grid ts (see `Grid`); a save within 1e-10 of the span
    of a grid time is that grid time."""
    n = ts.size
    if save_at is None:
        return np.array([n - 1], dtype=np.int64), np.zeros(1)
    if isinstance(save_at, str):
        if save_at != "steps":
            raise SDEKitError(f"save_at must be None, 'steps' or a list of times; got {save_at!r}")
        return np.arange(n, dtype=np.int64), np.zeros(n)
    saves = np.atleast_1d(np.asarray(save_at, dtype=float))
    if saves.ndim != 1 or saves.size == 0 or not np.all(np.isfinite(saves)):
        raise SDEKitError(f"save_at must be a non-empty list of finite times; got {save_at!r}")
    direction = np.sign(ts[-1] - ts[0])
    lo, hi = min(ts[0], ts[-1]), max(ts[0], ts[-1])
    scale = hi - lo
    if np.any(saves < lo - 1e-12 * scale) or np.any(saves > hi + 1e-12 * scale):
        raise SDEKitError(f"save_at times must lie in [{lo}, {hi}]; got {saves.tolist()}")
    if np.any(np.diff(saves) * direction <= 0):
        raise SDEKitError("save_at must be strictly monotone in the direction of integration")
    tol = 1e-10 * scale
    steps = np.empty(saves.size, dtype=np.int64)
    offsets = np.zeros(saves.size)
    for j, s in enumerate(saves):
        near = int(np.argmin(np.abs(ts - s)))
        if abs(ts[near] - s) <= tol:
            steps[j] = near
            continue
        k = int(np.searchsorted(ts * direction, s * direction, side="right")) - 1  # t_k < s < t_{k+1}
        steps[j], offsets[j] = k, s - ts[k]
    return steps, offsets


def adaptive_saves(t: Any, save_at: Any) -> tuple[float, np.ndarray]:
    """(t0, save times) of an adaptive solve; the last save is t1."""
    span = time_span(t)
    if not isinstance(span, tuple):
        t0, t1 = float(span[0]), float(span[-1])
        if save_at is None:
            return t0, span[1:].copy()
    else:
        t0, t1 = span
    if save_at is None:
        return t0, np.array([t1])
    if isinstance(save_at, str):
        raise SDEKitError("save_at='steps' needs a fixed-step solver; give save times for an adaptive one")
    saves = np.atleast_1d(np.asarray(save_at, dtype=float))
    direction = np.sign(t1 - t0)
    if saves.ndim != 1 or not np.all(np.isfinite(saves)):
        raise SDEKitError(f"save_at must be a list of finite times; got {save_at!r}")
    if np.any((saves - t0) * direction < 0) or np.any((saves - t1) * direction > 0):
        raise SDEKitError(f"save_at times must lie between t0 = {t0} and t1 = {t1}; got {saves.tolist()}")
    if np.any(np.diff(saves) * direction <= 0):
        raise SDEKitError("save_at must be strictly monotone in the direction of integration")
    return t0, saves
