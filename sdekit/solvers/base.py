"""Solver declarations and the registries the tests iterate over.

Rules for whoever adds a solver:
1. A solver is data: its family (the stepper that runs it), its tableau if any, and its
   declared capabilities (calculus, noise types, strong and weak order).
2. A solver never knows the backend: each backend implements every family once.
3. Register it with `register`; duplicates are refused; the test suite picks it up.
4. Incompatible problems are refused by `check_compatible` before anything compiles,
   with a message naming the solver's property and the problem's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdekit.errors import IncompatibleSolverError, SDEKitError


@dataclass(frozen=True)
class Solver:
    """A named integrator with its declared capabilities.

    kind: "sde" or "ode". family: the stepper ("euler_maruyama", "milstein", "heun", "sra",
    "rk", "rk_adaptive"). strong_order / weak_order: the orders it is tested against (for
    ODE solvers strong_order is the classical order). calculus: the calculi it converges
    in. noise_types: SDE noise types it supports. aux_noise: it needs I_(1,0) (a second
    normal per Brownian component and step). evals: function evaluations per step.
    """

    name: str
    kind: str
    family: str
    strong_order: float
    weak_order: float
    calculus: frozenset = frozenset({"ito"})
    noise_types: frozenset = frozenset({"diagonal", "scalar", "additive", "general"})
    tableau: Any = None
    aux_noise: bool = False
    adaptive: bool = False
    evals: int = 1
    reference: str = ""


SDE_SOLVERS: dict[str, Solver] = {}
ODE_SOLVERS: dict[str, Solver] = {}


def register(solver: Solver) -> Solver:
    """Add a solver to its registry; a second solver of the same name is an error."""
    registry = SDE_SOLVERS if solver.kind == "sde" else ODE_SOLVERS
    if solver.name in registry:
        raise ValueError(f"solver {solver.name!r} is already registered")
    registry[solver.name] = solver
    return solver


def get_solver(name: str, kind: str) -> Solver:
    """Look a solver up by name, with an error that lists the known names."""
    registry = SDE_SOLVERS if kind == "sde" else ODE_SOLVERS
    if not isinstance(name, str) or name not in registry:
        other = ODE_SOLVERS if kind == "sde" else SDE_SOLVERS
        hint = f" ({name!r} is an {'ODE' if kind == 'sde' else 'SDE'} solver)" if name in other else ""
        raise SDEKitError(f"solver must be one of {sorted(registry)} for an {kind.upper()}; got {name!r}{hint}")
    return registry[name]


def check_compatible(solver: Solver, sde: Any) -> None:
    """Refuse (solver, SDE) pairs the solver does not support, naming both sides."""
    if sde.calculus not in solver.calculus:
        raise IncompatibleSolverError(
            f"solver {solver.name!r} converges in {sorted(solver.calculus)} calculus but the SDE "
            f"{sde.name!r} has calculus={sde.calculus!r}; choose "
            f"{'heun or milstein' if sde.calculus == 'stratonovich' else 'euler_maruyama, milstein or sra1'}")
    if sde.noise not in solver.noise_types:
        raise IncompatibleSolverError(
            f"solver {solver.name!r} supports noise types {sorted(solver.noise_types)} but the SDE "
            f"{sde.name!r} has noise={sde.noise!r}")
    if solver.family == "milstein" and sde.noise == "additive" and sde.matrix_noise:
        raise IncompatibleSolverError(
            f"solver {solver.name!r} needs diagonal or scalar noise but the SDE {sde.name!r} has "
            f"additive noise with a (dim, m) matrix (brownian_dim={sde.brownian_dim})")
