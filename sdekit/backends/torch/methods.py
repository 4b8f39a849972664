"""Which torchsde and torchdiffeq methods the torch backend runs, and what each supports (data, not code).

torchsde's solvers (Li, Wong, Chen & Duvenaud 2020; Kidger et al. 2021 for reversible Heun) declare the SDE
type (Itô or Stratonovich calculus) and the noise types they integrate; the table below restates those
declarations (a test checks it against the installed torchsde) so that a mismatch is refused before anything
runs, with a message naming the method's property and the SDE's. sdekit's own solver names map to the
torchsde method with the same update formula (derivative-free Milstein on Itô SDEs, Heun, SRA1 = torchsde's additive
SRK, SRIW2 = torchsde's SRK on diagonal and scalar noise); the other sdekit solvers are refused on this backend. On a
Stratonovich SDE with multiplicative noise "milstein" runs torchsde's autograd Milstein (the exact g'g): torchsde's
derivative-free Stratonovich update differences g one-sidedly and falls to strong order 0.5 when g'' != 0, and sdekit's
own uses central differences, so there the paths agree with sdekit's to the method's order, not to rounding.

The fused methods (``solver="fused_euler_maruyama"`` or ``"fused_heun"``) bypass torchsde: `sdekit.backends.torch.
fused` runs the fixed-step loop itself, with counter-based noise drawn on the state's device.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdekit.errors import IncompatibleSolverError, SDEKitError

ALL_NOISE = frozenset({"diagonal", "scalar", "additive", "general"})
NON_GENERAL = frozenset({"diagonal", "scalar", "additive"})


@dataclass(frozen=True)
class TorchsdeMethod:
    """A torchsde method: the calculi and noise types it supports, the Lévy area it needs, its options."""

    name: str
    calculus: frozenset
    noise_types: frozenset
    levy_area: str = "none"
    options: tuple = ()


TORCHSDE_METHODS: dict[str, TorchsdeMethod] = {m.name: m for m in (
    TorchsdeMethod("euler", frozenset({"ito"}), ALL_NOISE),
    # derivative-free Milstein: the update sdekit's "milstein" uses on Itô SDEs (Kloeden & Platen 1992, eq. 11.1.5);
    # Stratonovich: the runner drops grad_free (module docstring)
    TorchsdeMethod("milstein", frozenset({"ito", "stratonovich"}), NON_GENERAL, options=(("grad_free", True),)),
    TorchsdeMethod("srk", frozenset({"ito"}), NON_GENERAL, levy_area="space-time"),
    TorchsdeMethod("midpoint", frozenset({"stratonovich"}), ALL_NOISE),
    TorchsdeMethod("heun", frozenset({"stratonovich"}), ALL_NOISE),
    TorchsdeMethod("euler_heun", frozenset({"stratonovich"}), ALL_NOISE),
    TorchsdeMethod("reversible_heun", frozenset({"stratonovich"}), ALL_NOISE),
)}

# sdekit solver name -> torchsde method with the same one-step map (tested: paths agree to rounding). torchsde's
# "srk" runs SRA1 on additive noise and the SRIW2 tableau (its srid2.py) on diagonal and scalar noise; sdekit's
# own noise-type declaration of the solver decides which one a name may reach (see `sde_method`).
SDEKIT_TO_TORCHSDE = {"euler_maruyama": "euler", "milstein": "milstein", "heun": "heun", "sra1": "srk",
                      "sriw2": "srk", "reversible_heun": "reversible_heun"}



@dataclass(frozen=True)
class FusedMethod:
    """A method of the fused loop (`sdekit.backends.torch.fused`): its step family, calculi, drift evaluations per
    step and the paper of its update formula."""

    name: str
    family: str
    calculus: frozenset
    evals: int
    reference: str


FUSED_METHODS: dict[str, FusedMethod] = {m.name: m for m in (
    FusedMethod("fused_euler_maruyama", "euler_maruyama", frozenset({"ito"}), 1,
                "Kloeden & Platen (1992), Numerical Solution of SDEs, §9.1"),
    FusedMethod("fused_heun", "heun", frozenset({"stratonovich"}), 2,
                "Rümelin (1982), SIAM J. Numer. Anal. 19(3); with zero noise the ODE's Heun method"),
)}

# torchdiffeq: fixed-grid and adaptive methods of the installed release; sdekit names mapped onto them
ODE_FIXED = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams")
ODE_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "tsit5")
SDEKIT_TO_TORCHDIFFEQ = {"heun": "heun2"}


def sde_method(name: str | None, sde: object) -> TorchsdeMethod:
    """The torchsde method for ``name`` (torchsde's or sdekit's name; default: euler for Itô, heun for
    Stratonovich), refused if it does not support the SDE's calculus or noise type."""
    calculus, noise = sde.calculus, "general" if sde.noise == "commutative" else sde.noise
    if name is None:
        name = "euler" if calculus == "ito" else "heun"
    _check_sdekit_solver(name, sde)
    key = SDEKIT_TO_TORCHSDE.get(name, name)
    if key not in TORCHSDE_METHODS:
        known = sorted(set(TORCHSDE_METHODS) | set(SDEKIT_TO_TORCHSDE) | set(FUSED_METHODS))
        hint = " (log_ode needs the space-space Lévy area, which sdekit's streams do not provide)" \
            if key == "log_ode" else ""
        raise SDEKitError(f"solver must be one of {known} for backend='torch'; got {name!r}{hint}")
    method = TORCHSDE_METHODS[key]
    if calculus not in method.calculus and noise != "additive":  # additive noise: Itô = Stratonovich
        raise IncompatibleSolverError(
            f"torchsde method {key!r} integrates {sorted(method.calculus)} SDEs but the SDE {sde.name!r} has "
            f"calculus={calculus!r}; choose one of "
            f"{sorted(k for k, m in TORCHSDE_METHODS.items() if calculus in m.calculus and noise in m.noise_types)}")
    if noise not in method.noise_types:
        raise IncompatibleSolverError(
            f"torchsde method {key!r} supports noise types {sorted(method.noise_types)} but the SDE {sde.name!r} "
            f"has noise={noise!r}; choose one of "
            f"{sorted(k for k, m in TORCHSDE_METHODS.items() if calculus in m.calculus and noise in m.noise_types)}")
    return method


def _check_sdekit_solver(name: object, sde: object) -> None:
    """Refuse an sdekit solver name that torchsde has no update for, or one whose own noise types or calculus do not
    cover the SDE (torchsde's "srk" takes more noise types than sdekit's "sra1" or "sriw2" do)."""
    from sdekit.solvers import SDE_SOLVERS, incompatibility

    solver = SDE_SOLVERS.get(name) if isinstance(name, str) else None
    if solver is None:
        return
    options = sorted(k for k in SDEKIT_TO_TORCHSDE if incompatibility(SDE_SOLVERS[k], sde) is None)
    if name not in SDEKIT_TO_TORCHSDE:
        elsewhere = "backend='numba'" if solver.adaptive else "backend='numba' or backend='numpy'"
        raise IncompatibleSolverError(
            f"solver {name!r} has no torchsde counterpart, so backend='torch' cannot run it; run it with "
            f"{elsewhere}, or choose one of {options} for backend='torch'")
    reason = incompatibility(solver, sde)
    if reason is not None:
        raise IncompatibleSolverError(f"{reason}; for backend='torch' choose one of {options}")


def fused_method(name: str | None, sde: object) -> FusedMethod | None:
    """The fused method called ``name`` (None when ``name`` is not one), refused if it does not integrate the SDE's
    calculus (on additive noise Itô and Stratonovich coincide, so both methods take it)."""
    method = FUSED_METHODS.get(name) if isinstance(name, str) else None
    if method is not None and sde.calculus not in method.calculus and sde.noise != "additive":
        raise IncompatibleSolverError(
            f"solver {name!r} integrates {sorted(method.calculus)} SDEs but the SDE {sde.name!r} has "
            f"calculus={sde.calculus!r} and noise={sde.noise!r}; choose one of "
            f"{sorted(k for k, m in FUSED_METHODS.items() if sde.calculus in m.calculus)}")
    return method


def ode_method(name: str | None) -> tuple[str, bool]:
    """(torchdiffeq method, adaptive?) for ``name`` (torchdiffeq's or sdekit's name; default dopri5)."""
    from torchdiffeq._impl.odeint import SOLVERS

    key = SDEKIT_TO_TORCHDIFFEQ.get(name, name) if name is not None else "dopri5"
    if key == "scipy_solver" or key not in SOLVERS:
        known = sorted((set(SOLVERS) - {"scipy_solver"}) | set(SDEKIT_TO_TORCHDIFFEQ))
        raise SDEKitError(f"solver must be one of {known} for an ODE on backend='torch'; got {name!r}")
    return key, key not in ODE_FIXED


def run_calculus(method: TorchsdeMethod, sde: object) -> str:
    """The calculus torchsde is told: the SDE's own, or on additive noise (where Itô = Stratonovich) the method's
    when the method takes only the other one."""
    return sde.calculus if sde.calculus in method.calculus else sorted(method.calculus)[0]
