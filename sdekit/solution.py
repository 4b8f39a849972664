"""What a solve returns: save times, states and statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SolveStats:
    """Counts and timings of one solve.

    steps: accepted steps per path (max over paths for adaptive solves); rejected: rejected
    steps summed over paths; evals: drift (or field) evaluations per path (max over paths);
    path_steps: steps summed over paths; masked_paths: paths dropped as non-finite
    (on_nonfinite='mask'); compile_seconds: time spent compiling in this call (0 when the
    kernel was already compiled); run_seconds: time in the kernel.
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


@dataclass
class Solution:
    """ts: save times, shape (n_saves,); ys: states, shape (n_saves, n_paths, dim)."""

    ts: np.ndarray
    ys: np.ndarray
    stats: SolveStats

    @property
    def final(self) -> np.ndarray:
        """The states at the last save time, shape (n_paths, dim)."""
        return self.ys[-1]
