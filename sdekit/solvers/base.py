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

    kind: "sde" or "ode". family: the stepper ("euler_maruyama", "milstein", "milstein_matrix", "heun", "sra",
    "sri", "rk", "rk_adaptive"). strong_order / weak_order: the orders it is tested against (for
    ODE solvers strong_order is the classical order). calculus: the calculi it converges
    in. noise_types: SDE noise types it supports. aux_noise: it needs I_(1,0) (a second
    normal per Brownian component and step). levy_area: it needs the space-space Lévy area A_jk of the
    Brownian components (`sdekit.noise.levy_area`). evals: function evaluations per step.
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
    levy_area: bool = False
    adaptive: bool = False
    evals: int = 1
    reference: str = ""


SDE_SOLVERS: dict[str, Solver] = {}
# noise type -> the wider type it is a case of: a solver of general noise takes commutative noise too
NOISE_REFINES = {"commutative": "general"}
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


def incompatibility(solver: Solver, sde: Any) -> str | None:
    """Why ``solver`` cannot integrate ``sde`` (naming the solver's and the problem's property), or None.

    Additive noise makes Itô and Stratonovich the same equation (the correction 1/2 g g' vanishes), so any calculus
    goes there; and Milstein's correction g'g (dW^2 - h)/2 vanishes, so Milstein takes additive noise in any form,
    a (dim, m) matrix included (it is then Euler–Maruyama, see `step_family`).
    """
    if sde.calculus not in solver.calculus and sde.noise != "additive":
        return (f"solver {solver.name!r} converges in {sorted(solver.calculus)} calculus but the SDE {sde.name!r} has "
                f"calculus={sde.calculus!r} and noise={sde.noise!r} (Itô and Stratonovich differ unless the noise "
                "is additive)")
    if sde.noise not in solver.noise_types and NOISE_REFINES.get(sde.noise) not in solver.noise_types:
        return (f"solver {solver.name!r} supports noise types {sorted(solver.noise_types)} but the SDE {sde.name!r} "
                f"has noise={sde.noise!r}")
    return None


def compatible_solvers(sde: Any) -> list[str]:
    """Names of the registered SDE solvers that can integrate ``sde``."""
    return [name for name, solver in SDE_SOLVERS.items() if incompatibility(solver, sde) is None]


def check_compatible(solver: Solver, sde: Any) -> None:
    """Refuse (solver, SDE) pairs the solver does not support, naming both sides and the solvers that fit."""
    reason = incompatibility(solver, sde)
    if reason is not None:
        raise IncompatibleSolverError(f"{reason}; choose one of {compatible_solvers(sde)}")


# family -> the stepper that runs it on matrix noise (general, or additive given as a (dim, m) matrix)
MATRIX_NOISE_FAMILY = {
    "reversible_heun": "reversible_heun_matrix",  # keeps g(z) by column between steps
    "platen_weak2": "heun",  # on additive matrix noise Platen's weak order-2 update is Heun's
}


def step_family(solver: Solver, sde: Any) -> str:
    """The stepper that runs ``solver`` on ``sde``: Milstein on additive noise is Euler–Maruyama (its correction
    term is zero), run as such so that a (dim, m) noise matrix works and g is not evaluated twice for nothing;
    on matrix noise a family may have its own stepper (`MATRIX_NOISE_FAMILY`)."""
    if solver.family == "milstein" and getattr(sde, "noise", None) == "additive":
        return "euler_maruyama"
    if getattr(sde, "matrix_noise", False) and solver.family in MATRIX_NOISE_FAMILY:
        return MATRIX_NOISE_FAMILY[solver.family]
    return solver.family
