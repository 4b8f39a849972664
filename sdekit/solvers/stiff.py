"""Stiff-SDE solvers as data: the drift-implicit θ-methods and SK-ROCK, their parameters and their factories.

Two families:

* ``"theta"``: the stochastic θ-method (drift-implicit Euler–Maruyama; Kloeden & Platen 1992, §12.2; Higham 2000,
  SIAM J. Numer. Anal. 38(3)) and, with ``milstein=True``, the drift-implicit (derivative-free) Milstein scheme
  (Kloeden & Platen 1992, §12.2, Itô):

      X' = X + [(1 - θ) f(X, t) + θ f(X', t + h)] h + g(X, t) ΔW  [+ Milstein's correction, explicit],

  solved for X' by Newton's method (per path, dense d x d) with the SDE's ``drift_jacobian`` when it has one
  (checked against central differences at x0 before the solve) and a forward-difference Jacobian otherwise.
  θ >= 1/2 is mean-square stable on dX = λX dt + μX dW for every h where the SDE is (Higham 2000, Thm 4.2).
* ``"skrock"``: SK-ROCK (Abdulle, Almuslimani & Vilmart 2018, SIAM/ASA J. Uncertain. Quantif. 6(2), 937-964),
  an s-stage damped Chebyshev recursion, explicit, weak order 1 (strong 1/2), stable for h ρ <= L_s ≈ (2 - 4η/3) s²,
  ρ the spectral radius of the drift Jacobian: either given (``spectral_radius``) or estimated on every step and
  path by a nonlinear power iteration on the drift (as ROCK2 does).

Build a variant with `theta_method` / `skrock_method` and `sdekit.solvers.register` it under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.solvers.base import Solver


@dataclass(frozen=True)
class ThetaParams:
    """θ, the Newton tolerance (on the update: |Δ_i| <= tol (1 + |X'_i|)), the iteration cap, the relative
    finite-difference step of the Jacobian, and whether the explicit part carries Milstein's correction."""

    theta: float = 1.0
    newton_tol: float = 1e-10
    max_iter: int = 20
    fd_step: float = 1.5e-8
    milstein: bool = False
    stages: int = 1  # the runner's scratch count key; the step needs 4 scratch arrays

    def __post_init__(self) -> None:
        if not 0.0 <= self.theta <= 1.0:
            raise SDEKitError(f"theta must be in [0, 1]; got {self.theta!r}")
        if not self.newton_tol > 0.0 or not self.fd_step > 0.0:
            raise SDEKitError(f"newton_tol and fd_step must be > 0; got {self.newton_tol!r}, {self.fd_step!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise SDEKitError(f"max_iter must be a positive integer; got {self.max_iter!r}")

    def step_arrays(self) -> tuple:
        """The coefficients as the step function reads them: (array [θ, tol, max_iter, fd_step, milstein],)."""
        return (np.array([self.theta, self.newton_tol, float(self.max_iter), self.fd_step,
                          1.0 if self.milstein else 0.0]),)

    @property
    def failure_hint(self) -> str:
        """Appended to a NonFiniteError: a path is set to NaN when Newton does not converge."""
        return (f"; or Newton's iteration for the implicit drift did not converge in {self.max_iter} iterations to "
                f"tol {self.newton_tol:g} there (a smaller step helps)")


@dataclass(frozen=True)
class SKROCKParams:
    """Damping η, a spectral-radius bound ρ of the drift Jacobian (0: estimate it per step and path by a power
    iteration of at most ``power_iter`` drift evaluations to relative tolerance ``power_tol``, times ``safety``),
    and the stage cap (a path needing more is set to NaN and reported)."""

    damping: float = 0.05
    spectral_radius: float = 0.0
    safety: float = 1.2
    power_iter: int = 30
    power_tol: float = 0.01
    max_stages: int = 2000
    stages: int = 1  # the runner's scratch count key; the step needs 6 scratch arrays

    def __post_init__(self) -> None:
        if not 0.0 < self.damping < 1.0:
            raise SDEKitError(f"damping must be in (0, 1); got {self.damping!r}")
        if not self.spectral_radius >= 0.0:
            raise SDEKitError(f"spectral_radius must be >= 0 (0: estimate it); got {self.spectral_radius!r}")
        if not self.safety >= 1.0 or self.power_iter < 1 or self.max_stages < 1 or not self.power_tol > 0:
            raise SDEKitError("safety must be >= 1 and power_iter, max_stages, power_tol positive; got "
                              f"{self.safety!r}, {self.power_iter!r}, {self.max_stages!r}, {self.power_tol!r}")

    def step_arrays(self) -> tuple:
        """(array [η, ρ, safety, power_iter, power_tol, max_stages],)."""
        return (np.array([self.damping, self.spectral_radius, self.safety, float(self.power_iter), self.power_tol,
                          float(self.max_stages)]),)

    @property
    def failure_hint(self) -> str:
        return (f"; or SK-ROCK needed more than {self.max_stages} stages there (h times the drift's spectral radius "
                "is too large: a smaller step or a drift-implicit solver helps)")


def chebyshev_stability_length(s: int, damping: float) -> float:
    """L_s = (1 + ω_0) / ω_1: SK-ROCK with s stages is stable for h ρ in [0, L_s] (≈ (2 - 4η/3) s²)."""
    w0, w1 = skrock_omegas(s, damping)
    return (1.0 + w0) / w1


def skrock_omegas(s: int, damping: float) -> tuple[float, float]:
    """ω_0 = 1 + η / s², ω_1 = T_s(ω_0) / T_s'(ω_0) (Abdulle, Almuslimani & Vilmart 2018, eq. 2.6)."""
    w0 = 1.0 + damping / (s * s)
    t_prev, t_cur, d_prev, d_cur = 1.0, w0, 0.0, 1.0
    for _ in range(1, s):
        t_prev, t_cur, d_prev, d_cur = t_cur, 2 * w0 * t_cur - t_prev, d_cur, 2 * t_cur + 2 * w0 * d_cur - d_prev
    return w0, t_cur / d_cur


def skrock_stages(h_rho: float, damping: float = 0.05, max_stages: int = 2000) -> int:
    """The fewest stages s with L_s >= h ρ (max_stages + 1 when none up to the cap is enough)."""
    s = max(1, int(np.sqrt(max(h_rho, 0.0) / (2.0 - 4.0 * damping / 3.0))))
    while s > 1 and chebyshev_stability_length(s - 1, damping) >= h_rho:
        s -= 1
    while s <= max_stages and chebyshev_stability_length(s, damping) < h_rho:
        s += 1
    return s


def theta_method(name: str, theta: float = 0.5, *, milstein: bool = False, newton_tol: float = 1e-10,
                 max_iter: int = 20) -> Solver:
    """A stochastic θ-method (drift-implicit Milstein with ``milstein=True``) as a `Solver`, not yet registered.

    X' = X + [(1 - θ) f(X, t) + θ f(X', t + h)] h + g ΔW (Higham 2000; Kloeden & Platen 1992, §12.2): strong order
    1/2 (1 with Milstein's correction, diagonal or scalar Itô noise), weak order 1.
    """
    params = ThetaParams(theta=theta, newton_tol=newton_tol, max_iter=max_iter, milstein=milstein)
    noise = frozenset({"diagonal", "scalar"}) if milstein else frozenset({"diagonal", "scalar", "additive", "general"})
    ref = ("Kloeden & Platen (1992), §12.2 (drift-implicit Milstein, derivative-free)" if milstein else
           "Kloeden & Platen (1992), §12.2; Higham (2000), SIAM J. Numer. Anal. 38(3) (stochastic θ-method)")
    return Solver(name, "sde", "theta", strong_order=1.0 if milstein else 0.5, weak_order=1.0,
                  calculus=frozenset({"ito"}), noise_types=noise, tableau=params, evals=3 if milstein else 2,
                  reference=ref)


def skrock_method(name: str, spectral_radius: float = 0.0, damping: float = 0.05) -> Solver:
    """SK-ROCK as a `Solver`, not yet registered (``spectral_radius`` 0: estimated per step and path).

    K_0 = X, K_1 = X + μ_1 h f(X + ν_1 Q) + κ_1 Q, K_j = μ_j h f(K_{j-1}) + ν_j K_{j-1} + κ_j K_{j-2}, X' = K_s,
    Q = g(X) ΔW; μ_1 = ω_1/ω_0, ν_1 = s ω_1/2, κ_1 = s ω_1/ω_0, μ_j = 2ω_1 T_{j-1}/T_j, ν_j = 2ω_0 T_{j-1}/T_j,
    κ_j = -T_{j-2}/T_j, T_j = T_j(ω_0) (Abdulle, Almuslimani & Vilmart 2018, eq. 2.6). Itô, any noise type.
    """
    params = SKROCKParams(damping=damping, spectral_radius=spectral_radius)
    return Solver(name, "sde", "skrock", strong_order=0.5, weak_order=1.0, calculus=frozenset({"ito"}),
                  noise_types=frozenset({"diagonal", "scalar", "additive", "general"}), tableau=params, evals=2,
                  reference="Abdulle, Almuslimani & Vilmart (2018), SIAM/ASA JUQ 6(2), 937-964 (SK-ROCK)")
