"""sdekit: simulate the SDEs and ODEs behind generative models, and prove the samplers right."""

from sdekit._version import __version__
from sdekit.errors import IncompatibleSolverError, NonFiniteError, SDEKitError, SDEKitWarning, StepSizeError
from sdekit.plan import SolvePlan, plan
from sdekit.sde import ODE, SDE
from sdekit.simulate import simulate
from sdekit.solution import Solution, SolveStats
from sdekit.solvers import ODE_SOLVERS, SDE_SOLVERS

__all__ = ["ODE", "ODE_SOLVERS", "SDE", "SDE_SOLVERS", "IncompatibleSolverError", "NonFiniteError",
           "SDEKitError", "SDEKitWarning", "Solution", "SolvePlan", "SolveStats", "StepSizeError", "plan",
           "simulate", "__version__"]
