"""Eight SDE test problems from the literature, as data, for `benchmarks/sde_work_precision.py`.

Each `BenchProblem` holds the SDE (coefficients written as plain batch functions f(x, t, p), x of shape (n, d), at
module level so that sdekit caches their compiled kernels on disk across processes), x0, T, the step ladder, the
number of paths, the literature source, and either a closed form X(T) = exact(x0, W_T) or a reference solve
(solver, steps) on the same Brownian path. Coefficients with several components are explicit Numba loops with a torch
twin (`register_torch`) so that the torch backend (torchsde) runs the same equations; the others use `sdekit.math`,
which runs on both backends as written.

Problems (error reference: the closed form at W_T, or a reference solve on the same Brownian path):

* kp_linear: dX = a X dt + b X dW, a = 1.01, b = 0.87, X0 = 1/2, T = 1; scalar noise, Itô;
  X(T) = X0 exp((a - b^2/2) T + b W_T). Kloeden & Platen (1992) §4.4 (linear SDEs); SciML prob_sde_linear.
* kp_arctan: dX = -a^2 sin X cos^3 X dt + a cos^2 X dW, a = 1, X0 = 1/2, T = 1; scalar, Itô;
  X(T) = arctan(a W_T + tan X0). Kloeden & Platen (1992) §4.4 (reducible SDEs); SciML prob_sde_wave (a = 0.1).
* kp_sinh: dX = sqrt(1 + X^2) (mu dt + a o dW), mu = 1/2, a = 1, X0 = 0, T = 1; scalar, Stratonovich;
  X(T) = sinh(asinh X0 + mu T + a W_T). Kloeden & Platen (1992) §4.4 (reducible SDEs, X = sinh Y).
* lorenz: Lorenz drift (s, r, b) = (10, 28, 8/3), noise 0.3 x_i dW_i, x0 = (1, 0, 0), T = 1; diagonal, Itô;
  reference sriw1 with 2^14 steps. Lorenz (1963); SciML's SDE Lorenz example with multiplicative noise.
* robertson: Robertson kinetics (k1, k2, k3) = (0.04, 3e7, 1e4), noise 0.1 y_i dW_i, y0 = (1, 0, 0), T = 1;
  diagonal, Itô, stiff (drift Jacobian spectral radius ~ 2e3); reference sriw1, 2^14 steps. Robertson (1966);
  Hairer & Wanner (1996), ROBER.
* heat100: dX = nu Lap X dt + sigma dW, 100 interior points, zero Dirichlet, nu = 0.1, sigma = 1, X0 = sin(pi xi),
  T = 0.1; additive, stiff (rho = 4 nu / dxi^2 ~ 4.1e3); reference sra1, 2^13 steps. Method of lines for the
  stochastic heat equation (Lord, Powell & Shardlow 2014, An Introduction to Computational Stochastic PDEs, ch. 10).
* langevin: dq = p dt, dp = (-U'(q) - gamma p) dt + sqrt(2 gamma / beta) dW, U = (q^2 - 1)^2, gamma = beta = 1,
  (q, p)(0) = (-1, 0), T = 2; additive; reference sra1, 2^13 steps. Leimkuhler & Matthews (2015), ch. 6.
* heston: dS = mu S dt + sqrt(v+) S dW1, dv = kappa (theta - v) dt + xi sqrt(v+) (rho dW1 + sqrt(1 - rho^2) dW2),
  (mu, kappa, theta, xi, rho) = (0.05, 2, 0.09, 0.5, -0.7), (S, v)(0) = (1, 0.09), T = 1; general 2 x 2 noise,
  Itô, non-commutative; reference euler_maruyama, 2^15 steps. Heston (1993), Rev. Financ. Stud. 6(2); full
  truncation v+ = max(v, 0) (Lord, Koekkoek & van Dijk 2010).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import sdekit.math as sm
from sdekit import SDE
from sdekit.backends.torch import register_torch  # does not import torch

try:
    import torch
except ImportError:  # torch is optional: the twins are registered but only called on the torch backend
    torch = None

HEAT_DIM = 100
HEAT_DXI = 1.0 / (HEAT_DIM + 1)


@dataclass(frozen=True)
class BenchProblem:
    """One benchmark problem: the SDE, its start and horizon, how its strong error is measured, its source.

    exact: X(T) = exact(x0, W_T, T) (x0 of shape (n, dim), W_T of shape (n, m)), or None; then reference =
    (solver, steps) is a fine solve on the same Brownian path. steps: the ladder of step counts (powers of two).
    paths: paths per solve. source: the literature reference.
    """

    name: str
    sde: SDE
    x0: np.ndarray
    t1: float
    steps: tuple[int, ...]
    paths: int
    source: str
    exact: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None
    reference: tuple[str, int] | None = None

    @property
    def fine_steps(self) -> int:
        """Steps of the finest Brownian grid every solve is coupled to: the reference's, or the ladder's finest."""
        return self.reference[1] if self.reference is not None else max(self.steps)


# ---------------------------------------------------------------------------------------------------------------
# Scalar Kloeden–Platen equations (sdekit.math: the same definition runs on Numba and torch)


def linear_drift(x, t, p):
    return p[0] * x


def linear_noise(x, t, p):
    return p[1] * x


def arctan_drift(x, t, p):
    c = sm.cos(x)
    return -p[0] * p[0] * sm.sin(x) * c * c * c


def arctan_noise(x, t, p):
    c = sm.cos(x)
    return p[0] * c * c


def sinh_drift(x, t, p):
    return p[0] * sm.sqrt(1.0 + x * x)


def sinh_noise(x, t, p):
    return p[1] * sm.sqrt(1.0 + x * x)


# ---------------------------------------------------------------------------------------------------------------
# Systems: Numba loops with torch twins


def lorenz_drift(x, t, p):
    """(s (y - x), x (r - z) - y, x y - b z), p = (s, r, b, noise)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i, 0] = p[0] * (x[i, 1] - x[i, 0])
        out[i, 1] = x[i, 0] * (p[1] - x[i, 2]) - x[i, 1]
        out[i, 2] = x[i, 0] * x[i, 1] - p[2] * x[i, 2]
    return out


def lorenz_drift_torch(x, t, p):
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    return torch.stack((p[0] * (b - a), a * (p[1] - c) - b, a * b - p[2] * c), dim=1)


def scaled_noise(x, t, p):
    """g_i = p[-1] x_i (diagonal multiplicative noise; g_i depends on x_i only, so the noise commutes)."""
    return p[-1] * x


def robertson_drift(x, t, p):
    """Robertson's kinetics, p = (k1, k2, k3, noise): A -> B (k1), 2B -> B + C (k2), B + C -> A + C (k3)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        a, b, c = x[i, 0], x[i, 1], x[i, 2]
        r1, r2, r3 = p[0] * a, p[1] * b * b, p[2] * b * c
        out[i, 0] = -r1 + r3
        out[i, 1] = r1 - r2 - r3
        out[i, 2] = r2
    return out


def robertson_drift_torch(x, t, p):
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    r1, r2, r3 = p[0] * a, p[1] * b * b, p[2] * b * c
    return torch.stack((-r1 + r3, r1 - r2 - r3, r2), dim=1)


def heat_drift(x, t, p):
    """nu (x_{i-1} - 2 x_i + x_{i+1}) / dxi^2 with zero Dirichlet boundaries, p = (nu, sigma)."""
    n, d = x.shape
    out = np.empty_like(x)
    c = p[0] / (HEAT_DXI * HEAT_DXI)
    for r in range(n):
        for i in range(d):
            left = x[r, i - 1] if i > 0 else 0.0
            right = x[r, i + 1] if i < d - 1 else 0.0
            out[r, i] = c * (left - 2.0 * x[r, i] + right)
    return out


def heat_drift_torch(x, t, p):
    pad = torch.nn.functional.pad(x, (1, 1))
    return p[0] / (HEAT_DXI * HEAT_DXI) * (pad[:, :-2] - 2.0 * x + pad[:, 2:])


def heat_noise(x, t, p):
    return p[1]


def langevin_drift(x, t, p):
    """(p, -U'(q) - gamma p) with U(q) = (q^2 - 1)^2, state (q, p), params (gamma, sigma)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        q, v = x[i, 0], x[i, 1]
        out[i, 0] = v
        out[i, 1] = -4.0 * q * (q * q - 1.0) - p[0] * v
    return out


def langevin_drift_torch(x, t, p):
    q, v = x[:, 0], x[:, 1]
    return torch.stack((v, -4.0 * q * (q * q - 1.0) - p[0] * v), dim=1)


def langevin_noise(x, t, p):
    """(0, sigma): noise on the momentum only."""
    out = np.zeros(2)
    out[1] = p[1]
    return out


def langevin_noise_torch(x, t, p):
    return torch.stack((torch.zeros_like(x[0, 0]), torch.as_tensor(p[1], dtype=x.dtype, device=x.device)))


def heston_drift(x, t, p):
    """(mu S, kappa (theta - v)), p = (mu, kappa, theta, xi, rho)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i, 0] = p[0] * x[i, 0]
        out[i, 1] = p[1] * (p[2] - x[i, 1])
    return out


def heston_drift_torch(x, t, p):
    return torch.stack((p[0] * x[:, 0], p[1] * (p[2] - x[:, 1])), dim=1)


def heston_noise(x, t, p):
    """[[sqrt(v+) S, 0], [xi rho sqrt(v+), xi sqrt(1 - rho^2) sqrt(v+)]], v+ = max(v, 0) (full truncation)."""
    n = x.shape[0]
    out = np.zeros((n, 2, 2))
    c = math.sqrt(1.0 - p[4] * p[4])
    for i in range(n):
        sv = math.sqrt(max(x[i, 1], 0.0))
        out[i, 0, 0] = sv * x[i, 0]
        out[i, 1, 0] = p[3] * p[4] * sv
        out[i, 1, 1] = p[3] * c * sv
    return out


def heston_noise_torch(x, t, p):
    sv = torch.sqrt(torch.clamp(x[:, 1], min=0.0))
    c = (1.0 - p[4] * p[4]) ** 0.5
    zero = torch.zeros_like(sv)
    return torch.stack((torch.stack((sv * x[:, 0], zero), dim=1),
                        torch.stack((p[3] * p[4] * sv, p[3] * c * sv), dim=1)), dim=1)


for _fn, _twin in ((lorenz_drift, lorenz_drift_torch), (robertson_drift, robertson_drift_torch),
                   (heat_drift, heat_drift_torch), (langevin_drift, langevin_drift_torch),
                   (langevin_noise, langevin_noise_torch), (heston_drift, heston_drift_torch),
                   (heston_noise, heston_noise_torch)):
    register_torch(_fn, _twin)


# ---------------------------------------------------------------------------------------------------------------
# Closed forms


def linear_exact(a: float, b: float) -> Callable:
    """GBM: X(T) = X0 exp((a - b^2 / 2) T + b W_T)."""
    return lambda x0, w, t: x0 * np.exp((a - 0.5 * b * b) * t + b * w)


def arctan_exact(a: float) -> Callable:
    """X(T) = arctan(a W_T + tan X0) (Itô's formula: d arctan-form gives the drift -a^2 sin cos^3)."""
    return lambda x0, w, t: np.arctan(a * w + np.tan(x0))


def sinh_exact(mu: float, a: float) -> Callable:
    """X = sinh(Y), dY = mu dt + a o dW (Stratonovich chain rule): X(T) = sinh(asinh X0 + mu T + a W_T)."""
    return lambda x0, w, t: np.sinh(np.arcsinh(x0) + mu * t + a * w)


def ladder(lo: int, hi: int) -> tuple[int, ...]:
    """Step counts 2^lo .. 2^hi."""
    return tuple(2**k for k in range(lo, hi + 1))


def problems(quick: bool = False) -> dict[str, BenchProblem]:
    """The eight problems (module docstring); quick=True: short ladders and few paths (a smoke run)."""
    def lad(lo: int, hi: int) -> tuple[int, ...]:
        return ladder(lo, min(hi, lo + 2)) if quick else ladder(lo, hi)

    def paths(n: int) -> int:
        return min(n, 32) if quick else n

    def ref(solver: str, k: int) -> tuple[str, int]:
        return (solver, 2 ** (k - 3 if quick else k))

    xi = np.arange(1, HEAT_DIM + 1) * HEAT_DXI
    kp = "Kloeden & Platen (1992), Numerical Solution of SDEs, §4.4"
    out = [
        BenchProblem("kp_linear", SDE(linear_drift, linear_noise, 1, noise="scalar", params=np.array([1.01, 0.87]),
                                      name="kp_linear"), np.array([0.5]), 1.0, lad(3, 9), paths(500),
                     f"{kp} (linear SDE); SciML DiffEqProblemLibrary prob_sde_linear", exact=linear_exact(1.01, 0.87)),
        BenchProblem("kp_arctan", SDE(arctan_drift, arctan_noise, 1, noise="scalar", params=np.array([1.0]),
                                      name="kp_arctan"), np.array([0.5]), 1.0, lad(3, 9), paths(500),
                     f"{kp} (reducible SDEs); SciML prob_sde_wave with a = 1", exact=arctan_exact(1.0)),
        BenchProblem("kp_sinh", SDE(sinh_drift, sinh_noise, 1, noise="scalar", calculus="stratonovich",
                                    params=np.array([0.5, 1.0]), name="kp_sinh"), np.array([0.0]), 1.0, lad(3, 9),
                     paths(500), f"{kp} (reducible SDEs, X = sinh Y), Stratonovich form", exact=sinh_exact(0.5, 1.0)),
        BenchProblem("lorenz", SDE(lorenz_drift, scaled_noise, 3, noise="diagonal",
                                   params=np.array([10.0, 28.0, 8.0 / 3.0, 0.3]), name="lorenz"),
                     np.array([1.0, 0.0, 0.0]), 1.0, lad(6, 10), paths(200),
                     "Lorenz (1963) with multiplicative noise 0.3 x_i: SciML's SDE Lorenz example "
                     "(DifferentialEquations.jl / diffeqr docs)", reference=ref("sriw1", 14)),
        BenchProblem("robertson", SDE(robertson_drift, scaled_noise, 3, noise="diagonal",
                                      params=np.array([0.04, 3e7, 1e4, 0.1]), name="robertson"),
                     np.array([1.0, 0.0, 0.0]), 1.0, lad(4, 11), paths(200),
                     "Robertson (1966) kinetics (Hairer & Wanner 1996, ROBER) with multiplicative noise 0.1 y_i",
                     reference=ref("sriw1", 14)),
        BenchProblem("heat100", SDE(heat_drift, heat_noise, HEAT_DIM, noise="additive", params=np.array([0.1, 1.0]),
                                    name="heat100"), np.sin(np.pi * xi), 0.1, lad(3, 10), paths(32),
                     "stochastic heat equation by finite differences (Lord, Powell & Shardlow 2014, An Introduction "
                     "to Computational Stochastic PDEs, ch. 10)", reference=ref("sra1", 13)),
        BenchProblem("langevin", SDE(langevin_drift, langevin_noise, 2, noise="additive",
                                     params=np.array([1.0, math.sqrt(2.0)]), name="langevin"),
                     np.array([-1.0, 0.0]), 2.0, lad(4, 10), paths(500),
                     "underdamped Langevin in a double well (Leimkuhler & Matthews 2015, Molecular Dynamics, ch. 6)",
                     reference=ref("sra1", 13)),
        BenchProblem("heston", SDE(heston_drift, heston_noise, 2, noise="general", brownian_dim=2,
                                   params=np.array([0.05, 2.0, 0.09, 0.5, -0.7]), name="heston"),
                     np.array([1.0, 0.09]), 1.0, lad(4, 10), paths(500),
                     "Heston (1993), Rev. Financ. Stud. 6(2), 327-343; full truncation (Lord, Koekkoek & van Dijk "
                     "2010)", reference=ref("euler_maruyama", 15)),
    ]
    return {p.name: p for p in out}
