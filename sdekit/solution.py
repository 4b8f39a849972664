"""What a solve returns: save times, states and statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError


@dataclass
class SolveStats:
    """Counts and timings of one solve.

    steps: accepted steps per path (max over paths for adaptive solves); rejected: rejected
    steps summed over paths; evals: drift (or field) evaluations per path (max over paths);
    path_steps: steps summed over paths; masked_paths: paths dropped as non-finite
    (on_nonfinite='mask'); compile_seconds: time spent compiling and preparing in this call (0 when the
    kernel was already compiled, and for a solve that `sdekit.simulate` remembered or a `sdekit.plan`);
    run_seconds: time in the kernel call (Numba's argument unboxing and the steps), so a call's wall time minus
    run_seconds is its Python share (checks, set-up, result assembly).
    """

    steps: int = 0
    rejected: int = 0
    evals: int = 0
    path_steps: int = 0
    masked_paths: int = 0
    compile_seconds: float = 0.0
    run_seconds: float = 0.0
    backend: str = ""
    solver: str = ""
    threads: int = 1
    extra: dict = field(default_factory=dict)


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass
class SolutionSummary:
    """Per save time and component: finite paths, mean, sd and quantiles (masked, NaN paths left out).

    ts: (n_saves,); n_finite: (n_saves,); mean, sd: (n_saves, dim); quantiles: (n_saves, len(levels), dim).
    """

    ts: np.ndarray
    n_finite: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    levels: tuple
    quantiles: np.ndarray

    def __str__(self) -> str:
        head = ["t", "dim", "paths", "mean", "sd"] + [f"q{100 * q:g}" for q in self.levels]
        rows = [head]
        for s, t in enumerate(self.ts):
            for i in range(self.mean.shape[1]):
                rows.append([f"{t:.6g}", str(i), str(int(self.n_finite[s])), f"{self.mean[s, i]:.6g}",
                             f"{self.sd[s, i]:.6g}"] + [f"{v:.6g}" for v in self.quantiles[s, :, i]])
        widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


@dataclass
class Solution:
    """ts: save times, shape (n_saves,); ys: states, shape (n_saves, n_paths, dim); ws: W(t_save) - W(t0), shape
    (n_saves, n_paths, m), when the solve was asked for it (``simulate(..., save_brownian=True)``), else None."""

    ts: np.ndarray
    ys: np.ndarray
    stats: SolveStats
    ws: np.ndarray | None = None

    @property
    def final(self) -> np.ndarray:
        """The states at the last save time, shape (n_paths, dim)."""
        return self.ys[-1]

    def at(self, t: float) -> np.ndarray:
        """The states at save time t, shape (n_paths, dim). t must be one of ``ts`` (to 1e-9 of the span): paths
        are saved, not interpolated (between saves an SDE path is a Brownian bridge, not a line)."""
        try:
            tf = float(t)
        except (TypeError, ValueError) as exc:
            raise SDEKitError(f"t must be a number, one of the save times; got {t!r}") from exc
        ts = np.asarray(self.ts, dtype=float)
        span = float(np.ptp(ts)) if ts.size > 1 else max(1.0, abs(float(ts[0])))
        k = int(np.argmin(np.abs(ts - tf)))
        if not abs(ts[k] - tf) <= 1e-9 * span:
            shown = ", ".join(f"{v:.6g}" for v in ts[:8]) + (", ..." if ts.size > 8 else "")
            raise SDEKitError(f"t = {t!r} is not a save time; saved at [{shown}] ({ts.size} times). "
                              "Pass save_at=[..., t, ...] (or 'steps') to simulate")
        return self.ys[k]

    def summary(self, levels: tuple = QUANTILES) -> SolutionSummary:
        """Mean, sd and quantiles per save time and component over the finite paths."""
        lv = tuple(float(q) for q in levels)
        if not lv or not all(0.0 <= q <= 1.0 for q in lv):
            raise SDEKitError(f"levels must be quantile levels in [0, 1]; got {levels!r}")
        ys = _numpy(self.ys)
        finite = np.all(np.isfinite(ys), axis=2)
        n_saves, _, dim = ys.shape
        mean = np.full((n_saves, dim), np.nan)
        sd = np.full((n_saves, dim), np.nan)
        qs = np.full((n_saves, len(lv), dim), np.nan)
        for s in range(n_saves):
            rows = ys[s][finite[s]]
            if rows.shape[0]:
                mean[s] = rows.mean(axis=0)
                sd[s] = rows.std(axis=0, ddof=1) if rows.shape[0] > 1 else np.nan
                qs[s] = np.quantile(rows, lv, axis=0)
        return SolutionSummary(np.asarray(_numpy(self.ts), dtype=float), finite.sum(axis=1), mean, sd, lv, qs)

    def plot(self, path: Any = None, *, n_paths: int = 20, dim: int = 0, bins: int = 60) -> Any:
        """Paths of component ``dim`` against the save times (the first ``n_paths``) and the marginal histogram
        at the last save time; saved to ``path`` when given. Needs matplotlib (``pip install 'sdekit[plots]'``)."""
        from sdekit.solution_plot import plot_solution

        return plot_solution(_numpy(self.ts), _numpy(self.ys), path, n_paths=n_paths, dim=dim, bins=bins)


def _numpy(a: Any) -> np.ndarray:
    """An array (or a torch tensor, detached and moved to the CPU) as a NumPy array."""
    if type(a).__module__.startswith("torch"):
        return a.detach().cpu().numpy()
    return np.asarray(a)
