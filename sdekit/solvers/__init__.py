"""The solver registry: every SDE and ODE integrator sdekit ships, declared as data."""

from sdekit.solvers.base import (
    ODE_SOLVERS,
    SDE_SOLVERS,
    Solver,
    check_compatible,
    compatible_solvers,
    get_solver,
    incompatibility,
    register,
    step_family,
)
from sdekit.solvers.stiff import SKROCKParams, ThetaParams, skrock_method, theta_method
from sdekit.solvers.tableaus import DOPRI5, EULER, HEUN2, MIDPOINT, RK4, SRA1, ButcherTableau, SRATableau

_ALL = frozenset({"diagonal", "scalar", "additive", "general"})

register(Solver("euler_maruyama", "sde", "euler_maruyama", strong_order=0.5, weak_order=1.0,
                calculus=frozenset({"ito"}), noise_types=_ALL, evals=1,
                reference="Kloeden & Platen (1992), Numerical Solution of SDEs, §9.1"))
register(Solver("milstein", "sde", "milstein", strong_order=1.0, weak_order=1.0,
                calculus=frozenset({"ito", "stratonovich"}),
                noise_types=frozenset({"diagonal", "scalar", "additive"}), evals=1,
                reference="Kloeden & Platen (1992), §11.1 (derivative-free Milstein)"))
register(Solver("heun", "sde", "heun", strong_order=0.5, weak_order=1.0,
                calculus=frozenset({"stratonovich"}), noise_types=_ALL, evals=2,
                reference="Rümelin (1982), SIAM J. Numer. Anal. 19(3); strong order 1 for commutative noise; "
                          "on additive noise it solves the Itô equation too (they coincide)"))
register(Solver("sra1", "sde", "sra", strong_order=1.5, weak_order=2.0,
                calculus=frozenset({"ito", "stratonovich"}), noise_types=frozenset({"additive"}),
                tableau=SRA1, aux_noise=True, evals=2,
                reference="Rößler (2010), SIAM J. Numer. Anal. 48(3), 922-952"))
register(theta_method("implicit_euler_maruyama", theta=1.0))
register(theta_method("theta_maruyama", theta=0.5))
register(theta_method("implicit_milstein", theta=1.0, milstein=True))
register(skrock_method("skrock"))

for _tab in (EULER, HEUN2, MIDPOINT, RK4):
    register(Solver(_tab.name, "ode", "rk", strong_order=_tab.order, weak_order=_tab.order,
                    tableau=_tab, evals=_tab.stages, reference="Hairer, Nørsett & Wanner, Solving ODEs I"))
register(Solver("dopri5", "ode", "rk_adaptive", strong_order=5, weak_order=5, tableau=DOPRI5,
                adaptive=True, evals=6, reference="Dormand & Prince (1980), J. Comput. Appl. Math. 6"))

__all__ = ["ODE_SOLVERS", "SDE_SOLVERS", "Solver", "check_compatible", "compatible_solvers", "get_solver",
           "incompatibility", "register", "step_family", "SKROCKParams", "ThetaParams", "skrock_method",
           "theta_method",
           "ButcherTableau", "SRATableau", "DOPRI5", "EULER", "HEUN2", "MIDPOINT", "RK4", "SRA1"]
