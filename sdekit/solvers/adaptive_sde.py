"""The adaptive SDE solvers' data: an embedded pair's stepper coefficients and the order of its error estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sdekit.solvers.base import Solver
from sdekit.solvers.tableaus import SRATableau, SRITableau


@dataclass(frozen=True)
class AdaptivePair:
    """An embedded pair of `sdekit.backends.numba.steps_adaptive_sde`: tableau (the higher-order method's SRA / SRI
    tableau, None for Milstein), error_order q (the estimate x_high - x_low is O(h^q) on a step of length h: the
    PI controller's exponents are 0.7 / q and 0.4 / q), stages (drift evaluations per try, as `Solver.evals`)."""

    tableau: SRATableau | SRITableau | None
    error_order: float
    stages: int

    def step_arrays(self) -> tuple:
        """The coefficients in the order the pair's step reads them."""
        tab: Any = self.tableau
        if tab is None:
            return (np.array([1.0]),)
        if isinstance(tab, SRITableau):
            return tab.step_arrays()
        return (tab.c0, tab.c1, tab.a0, tab.b0, tab.alpha, tab.beta1, tab.beta2)


def adaptive_pair(name: str, family: str, tableau: SRATableau | SRITableau | None, *, strong_order: float,
                  weak_order: float, error_order: float, noise_types: frozenset, calculus: frozenset,
                  reference: str) -> Solver:
    """A registry entry for an adaptive SDE solver of this family (adaptive=True, kind 'sde')."""
    stages = 1 if tableau is None else tableau.stages
    return Solver(name, "sde", family, strong_order=strong_order, weak_order=weak_order, calculus=calculus,
                  noise_types=noise_types, tableau=AdaptivePair(tableau, error_order, stages),
                  aux_noise=tableau is not None, adaptive=True, evals=stages,
                  reference=reference)
