"""The solver registry: every SDE and ODE integrator sdekit ships, declared as data."""

from sdekit.solvers.adaptive_sde import AdaptivePair, adaptive_pair
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
from sdekit.solvers.tableaus import (
    DOPRI5,
    EULER,
    HEUN2,
    MIDPOINT,
    RK4,
    SOSRA,
    SOSRA2,
    SOSRI,
    SOSRI2,
    SRA1,
    SRA3,
    SRIW1,
    SRIW2,
    ButcherTableau,
    SRATableau,
    SRITableau,
)

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
_RN2018 = ("Rackauckas & Nie (2018), Stability-optimized high order methods and stiffness detection for pathwise "
           "stiff SDEs, arXiv:1804.04344")
for _tab, _ref in ((SRA3, "Rößler (2010), SIAM J. Numer. Anal. 48(3), 922-952"), (SOSRA, _RN2018),
                   (SOSRA2, _RN2018)):
    register(Solver(_tab.name, "sde", "sra", strong_order=1.5, weak_order=2.0,
                    calculus=frozenset({"ito", "stratonovich"}), noise_types=frozenset({"additive"}),
                    tableau=_tab, aux_noise=True, evals=_tab.stages, reference=_ref))
# SRI: strong 1.5 for Itô SDEs with scalar noise, or diagonal noise with g_k depending on x_k only (Kloeden & Platen
# 1992, §10.3); on a diagonal g_k that reads other components the noise is non-commutative and the order drops.
# Weak orders as measured exactly (Gauss–Hermite moments of GBM, tests/test_sri_sra.py): only SRIW1 reaches 2; E X^2
# of SRIW2, SOSRI and SOSRI2 converges at 1.5 (torchsde declares 1.5 for its srk = SRIW2 too).
for _tab, _weak, _ref in ((SRIW1, 2.0, "Rößler (2010), SIAM J. Numer. Anal. 48(3), 922-952"),
                          (SRIW2, 1.5, "Rößler (2010), SIAM J. Numer. Anal. 48(3), 922-952"), (SOSRI, 1.5, _RN2018),
                          (SOSRI2, 1.5, _RN2018)):
    register(Solver(_tab.name, "sde", "sri", strong_order=1.5, weak_order=_weak, calculus=frozenset({"ito"}),
                    noise_types=frozenset({"diagonal", "scalar"}), tableau=_tab, aux_noise=True,
                    evals=_tab.stages, reference=_ref))

register(Solver("reversible_heun", "sde", "reversible_heun", strong_order=0.5, weak_order=1.0,
                calculus=frozenset({"stratonovich"}), noise_types=_ALL, evals=1,
                reference="Kidger, Foster, Li & Lyons (2021), Efficient and accurate gradients for neural SDEs, "
                          "NeurIPS 34; algebraically reversible, one f and g evaluation per step; strong order 1 "
                          "for additive noise"))
register(Solver("platen_weak2", "sde", "platen_weak2", strong_order=1.0, weak_order=2.0,
                calculus=frozenset({"ito"}), noise_types=frozenset({"diagonal", "scalar", "additive"}), evals=2,
                reference="Kloeden & Platen (1992), §15.1, eq. (15.1.1) (derivative-free, Gaussian increments); "
                          "diagonal noise with g_i a function of x_i and t"))

register(Solver("milstein_commutative", "sde", "milstein_matrix", strong_order=1.0, weak_order=1.0,
                calculus=frozenset({"ito", "stratonovich"}), noise_types=frozenset({"commutative"}), evals=1,
                reference="Kloeden & Platen (1992), §10.3 (Milstein for commutative noise, eq. 10.3.15) with the "
                          "derivative-free column differences of §11.1; 1 + m (Itô) or 1 + 2m g-evaluations per step"))
register(Solver("milstein_levy", "sde", "milstein_matrix", strong_order=1.0, weak_order=1.0,
                calculus=frozenset({"ito", "stratonovich"}), noise_types=frozenset({"general", "commutative"}),
                levy_area=True, evals=1,
                reference="Kloeden & Platen (1992), §10.3, eq. 10.3.3 (Milstein with the double integrals I_(j,k)), "
                          "Lévy area by the Fourier series of Kloeden, Platen & Wright (1992) with p ~ 0.25/h terms "
                          "(sdekit.noise.levy_area); derivative-free as in §11.1"))

register(theta_method("implicit_euler_maruyama", theta=1.0))
register(theta_method("theta_maruyama", theta=0.5))
register(theta_method("implicit_milstein", theta=1.0, milstein=True))
register(skrock_method("skrock"))

# adaptive SDE solvers: embedded pairs, each path its own steps on its own queryable Brownian path (numba backend)
_RN2017 = ("Rackauckas & Nie (2017), Adaptive methods for stochastic differential equations via natural embeddings "
           "and rejection sampling with memory, DCDS-B 22(7)")
register(adaptive_pair("adaptive_milstein", "adaptive_milstein", None, strong_order=1.0, weak_order=1.0,
                       error_order=1.0, noise_types=frozenset({"diagonal", "scalar"}), calculus=frozenset({"ito"}),
                       reference="Kloeden & Platen (1992), eq. 11.1.5; error = the Milstein correction (EM's local "
                                 "error); " + _RN2017))
register(adaptive_pair("adaptive_sosra", "adaptive_sra", SOSRA, strong_order=1.5, weak_order=2.0, error_order=1.5,
                       noise_types=frozenset({"additive"}), calculus=frozenset({"ito", "stratonovich"}),
                       reference=_RN2018 + "; embedded Euler-Maruyama, " + _RN2017))
register(adaptive_pair("adaptive_sosri", "adaptive_sri", SOSRI, strong_order=1.5, weak_order=1.5, error_order=1.5,
                       noise_types=frozenset({"diagonal", "scalar"}), calculus=frozenset({"ito"}),
                       reference=_RN2018 + "; embedded order-1 part of the SRI step, " + _RN2017))

for _tab in (EULER, HEUN2, MIDPOINT, RK4):
    register(Solver(_tab.name, "ode", "rk", strong_order=_tab.order, weak_order=_tab.order,
                    tableau=_tab, evals=_tab.stages, reference="Hairer, Nørsett & Wanner, Solving ODEs I"))
register(Solver("dopri5", "ode", "rk_adaptive", strong_order=5, weak_order=5, tableau=DOPRI5,
                adaptive=True, evals=6, reference="Dormand & Prince (1980), J. Comput. Appl. Math. 6"))

__all__ = ["ODE_SOLVERS", "SDE_SOLVERS", "Solver", "check_compatible", "compatible_solvers", "get_solver",
           "incompatibility", "register", "step_family", "AdaptivePair", "adaptive_pair", "SKROCKParams",
           "ThetaParams", "skrock_method", "theta_method",
           "ButcherTableau", "SRATableau", "SRITableau", "DOPRI5", "EULER", "HEUN2", "MIDPOINT", "RK4", "SRA1", "SRA3",
           "SOSRA", "SOSRA2", "SRIW1", "SRIW2", "SOSRI", "SOSRI2"]
