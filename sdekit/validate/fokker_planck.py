"""Fokker–Planck references: a 1-D finite-volume solver, a grid-error-aware histogram test, the pointwise identity.

For dX = b(X, t) dt + sigma(X, t) dW (Itô) with D = sigma sigma^T, the law p(x, t) of X_t solves

    d_t p = -div(b p) + 1/2 sum_ij d_i d_j (D_ij p).                                          (FP)

Three tools (VALIDATION.md §1b and §2 (ii)):

* `FokkerPlanck1D` / `solve_fokker_planck_1d` / `fokker_planck_reference`: the reference law at any time
  for a 1-D SDE, by the exponentially fitted finite-volume scheme of Chang & Cooper (J. Comput. Phys. 6, 1970)
  and Scharfetter & Gummel (IEEE Trans. Electron Devices 16, 1969), with zero-flux walls and implicit Euler.
  Mass is conserved to rounding, masses stay non-negative, and the discrete equilibrium is exact.
* `fokker_planck_chi2_test` / `chi2_histogram_test`: Pearson's chi-square of samples against that reference, with
  the reference's own error measured (grid doubled in space and time) and bounded through the non-centrality
  it would add to the statistic.
* `fokker_planck_residual` / `check_fokker_planck_identity`: (FP) divided by p, checked at points by central
  finite differences, for any (drift, diffusion, closed-form marginal) triple in any dimension.

Coefficient functions follow sdekit's batch signature f(x, t, p) with x of shape (n, d) (an `SDE`'s own drift
and diffusion, jitted or not, can be passed directly); a plain f(x, t) is accepted too (told apart by the
number of positional parameters). The drift returns (n, d), (d,) or a scalar. The diffusion's return depends on
``noise`` (as in `sdekit.SDE`): "diagonal" (also additive noise without brownian_dim) and "scalar": (n, d),
(d,) or a scalar; "general" (any (d, m) matrix noise, including additive noise with brownian_dim):
(n, d, m) or (d, m). Then D = g g^T: diag(g^2) for diagonal noise, g g^T for scalar and matrix noise.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st
from scipy.linalg import lapack

from sdekit.errors import SDEKitError
from sdekit.params import normalize_params
from sdekit.sde import SDE
from sdekit.validate.checks import real_array
from sdekit.validate.stats import CheckResult

__all__ = ["FPSolution", "FokkerPlanck1D", "PointMass", "bernoulli", "check_fokker_planck_identity",
           "check_sde_fokker_planck_identity", "chi2_histogram_test", "fokker_planck_chi2_test",
           "fokker_planck_reference", "fokker_planck_residual", "solve_fokker_planck_1d"]

NOISE_KINDS = ("diagonal", "scalar", "general")
CALCULI = ("ito", "stratonovich")
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(6)
_EPS = float(np.finfo(float).eps)

# --------------------------------------------------------------------------------------------
# evaluating user coefficients
# --------------------------------------------------------------------------------------------


def _takes_params(fn: Callable) -> bool:
    """True for the batch signature f(x, t, p), False for a plain f(x, t)."""
    target = getattr(fn, "py_func", fn)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return True
    positional = 0
    for prm in sig.parameters.values():
        if prm.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if prm.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 3


class _Coefficients:
    """Drift and diffusion of dX = b dt + g dW (or g o dW) evaluated in batches, with shapes normalised."""

    def __init__(self, drift: Callable, diffusion: Callable, dim: int, params: Any, noise: str, calculus: str):
        for role, fn in (("drift", drift), ("diffusion", diffusion)):
            if not callable(fn):
                raise SDEKitError(f"{role} must be callable f(x, t, p) or f(x, t); got {fn!r}")
        if noise == "additive":
            noise = "diagonal"
        if noise not in NOISE_KINDS:
            raise SDEKitError(f"noise must be one of {NOISE_KINDS} (or 'additive', read as 'diagonal'); "
                              f"got {noise!r}")
        if calculus not in CALCULI:
            raise SDEKitError(f"calculus must be one of {CALCULI}; got {calculus!r}")
        self.drift, self.diffusion, self.dim = drift, diffusion, int(dim)
        self.params = normalize_params(params)
        self.noise, self.calculus = noise, calculus
        self._drift_p = _takes_params(drift)
        self._diff_p = _takes_params(diffusion)

    @classmethod
    def from_sde(cls, sde: SDE) -> _Coefficients:
        noise = "general" if sde.matrix_noise else ("scalar" if sde.noise == "scalar" else "diagonal")
        return cls(sde.drift, sde.diffusion, sde.dim, sde.params, noise, sde.calculus)

    def _call(self, fn: Callable, with_p: bool, x: np.ndarray, t: float) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = fn(x, float(t), self.params) if with_p else fn(x, float(t))
        return real_array(out, f"{getattr(fn, '__name__', 'coefficient')}'s output")

    def b(self, x: np.ndarray, t: float) -> np.ndarray:
        """The drift as given (Itô or Stratonovich), shape (n, d)."""
        n, d = x.shape
        out = self._call(self.drift, self._drift_p, x, t)
        if d == 1 and out.ndim == 1 and out.shape[0] == n:
            out = out[:, None]
        try:
            return np.broadcast_to(out, (n, d))
        except ValueError:
            raise SDEKitError(f"drift returned shape {out.shape} for x of shape {x.shape}; expected ({n}, {d}), "
                              f"({d},) or a scalar") from None

    def g(self, x: np.ndarray, t: float) -> np.ndarray:
        """The noise matrix, shape (n, d, m)."""
        n, d = x.shape
        out = self._call(self.diffusion, self._diff_p, x, t)
        if self.noise == "general":
            if out.ndim == 2 and out.shape[0] == d:
                return np.broadcast_to(out, (n,) + out.shape)
            if out.ndim == 3 and out.shape[1] == d and out.shape[0] in (1, n):
                return np.broadcast_to(out, (n,) + out.shape[1:])
            raise SDEKitError(f"diffusion returned shape {out.shape} for x of shape {x.shape}; with "
                              f"noise='general' expected ({n}, {d}, m) or ({d}, m)")
        if d == 1 and out.ndim == 1 and out.shape[0] == n:
            out = out[:, None]
        try:
            vec = np.broadcast_to(out, (n, d))
        except ValueError:
            raise SDEKitError(f"diffusion returned shape {out.shape} for x of shape {x.shape}; with "
                              f"noise={self.noise!r} expected ({n}, {d}), ({d},) or a scalar (for matrix noise "
                              "pass noise='general')") from None
        if self.noise == "scalar":
            return vec[:, :, None]
        mat = np.zeros((n, d, d))
        idx = np.arange(d)
        mat[:, idx, idx] = vec
        return mat

    def D(self, x: np.ndarray, t: float) -> np.ndarray:
        """D = g g^T, shape (n, d, d)."""
        g = self.g(x, t)
        return np.einsum("nim,njm->nij", g, g)

    def ito_drift(self, x: np.ndarray, t: float, eps: np.ndarray) -> np.ndarray:
        """b for Itô; b_i + 1/2 sum_jk g_kj d_k g_ij (central differences of step eps) for Stratonovich."""
        b = np.array(self.b(x, t))
        if self.calculus == "ito":
            return b
        n, d = x.shape
        g0 = self.g(x, t)
        shifts = np.zeros((2 * d, 1, d))
        for k in range(d):
            shifts[2 * k, 0, k] = eps[k]
            shifts[2 * k + 1, 0, k] = -eps[k]
        gs = self.g((x[None] + shifts).reshape(2 * d * n, d), t).reshape((2 * d, n) + g0.shape[1:])
        for k in range(d):
            dg = (gs[2 * k] - gs[2 * k + 1]) / (2.0 * eps[k])  # d_k g, (n, d, m)
            b += 0.5 * np.einsum("nj,nij->ni", g0[:, k, :], dg)
        return b


def _finite(values: np.ndarray, role: str, x: np.ndarray, t: float) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.argwhere(bad)[0][0])
        raise SDEKitError(f"{role} is not finite at x = {x[k].tolist()}, t = {t:.6g}; check the coefficients "
                          "or narrow [x_min, x_max]")


# --------------------------------------------------------------------------------------------
# the 1-D finite-volume solver
# --------------------------------------------------------------------------------------------


def bernoulli(w: Any) -> np.ndarray:
    """The Bernoulli function B(w) = w / (e^w - 1), B(0) = 1, elementwise and without overflow.

    |w| < 1e-5 uses the series 1 - w/2 + w^2/12; otherwise w / expm1(w), which tends to 0 for w -> +inf and to
    -w for w -> -inf. B(-w) = B(w) + w.
    """
    w = np.asarray(w, dtype=np.float64)
    out = np.empty_like(w)
    small = np.abs(w) < 1e-5
    ws = w[small]
    out[small] = 1.0 - 0.5 * ws + ws * ws / 12.0
    wl = w[~small]
    with np.errstate(over="ignore"):
        out[~small] = wl / np.expm1(wl)
    return out


@dataclass(frozen=True)
class PointMass:
    """A start at a point x0, X_{t0} = x0, for the 1-D solver.

    A delta cannot live on a grid; it is replaced by the one-step (short-time) law of the SDE,
    p(., t0 + tau) ~ N(x0 + b_ito(x0, t0) tau, D(x0, t0) tau), whose mean and variance are right to O(tau^2),
    and the solver starts at t0 + tau. tau is chosen so that the standard deviation is ``width_cells`` cells
    (tau = (width_cells dx)^2 / D(x0, t0)), and at most ``max_fraction`` of t1 - t0.
    """

    x0: float
    width_cells: float = 4.0
    max_fraction: float = 0.05


@dataclass(frozen=True)
class FPSolution:
    """Cell masses of a 1-D Fokker–Planck solve.

    edges (cells + 1,): cell edges; masses (cells,): masses at the final time t; ts (n_saves,) and
    history (n_saves, cells): the saved times and masses (the last row is ``masses``); t_start: the time the
    grid solve started (t0, or t0 + tau for a `PointMass`); time_steps: implicit-Euler steps taken;
    initial_mass: the integral of the initial density over the domain before renormalisation to 1
    (1 - initial_mass is what the walls cut off).
    """

    edges: np.ndarray
    masses: np.ndarray
    t: float
    ts: np.ndarray
    history: np.ndarray
    t_start: float
    time_steps: int
    initial_mass: float = 1.0

    @property
    def cells(self) -> int:
        """Number of cells M."""
        return int(self.masses.shape[0])

    @property
    def dx(self) -> float:
        """Cell width (x_max - x_min) / M."""
        return float(self.edges[1] - self.edges[0])

    @property
    def centers(self) -> np.ndarray:
        """Cell centres, shape (M,)."""
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def density(self) -> np.ndarray:
        """Cell-average densities p_i = m_i / dx, shape (M,)."""
        return self.masses / self.dx

    def cdf(self, x: Any) -> np.ndarray:
        """F(x) = sum of the masses left of x, linear inside each cell: 0 below x_min, sum(m) above x_max."""
        cum = np.concatenate(([0.0], np.cumsum(self.masses)))
        return np.interp(np.asarray(x, dtype=np.float64), self.edges, cum)

    def bin_masses(self, edges: Any) -> np.ndarray:
        """Masses of the bins [e_j, e_{j+1}): F(e_{j+1}) - F(e_j) with `cdf` (edges increasing, +-inf allowed)."""
        e = real_array(edges, "edges")
        if e.ndim != 1 or e.shape[0] < 2 or np.any(np.isnan(e)) or np.any(np.diff(e) <= 0):
            raise SDEKitError(f"edges must be a strictly increasing 1-D array of at least 2 values; got {edges!r}")
        return np.diff(self.cdf(e))

    def mean(self) -> float:
        """sum_i m_i c_i (cell centres)."""
        return float(self.masses @ self.centers)


def _positive_int(v: Any, name: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise SDEKitError(f"{name} must be an integer >= {lo}; got {v!r}")
    return int(v)


def _finite_float(v: Any, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SDEKitError(f"{name} must be a finite number; got {v!r}") from None
    if not math.isfinite(f):
        raise SDEKitError(f"{name} must be a finite number; got {v!r}")
    return f


class FokkerPlanck1D:
    """Finite-volume Fokker–Planck solver for a 1-D SDE dX = b dt + sigma dW on [x_min, x_max].

    Flux form: d_t p = -d_x F, F = a p - K d_x p, with a = b_ito - D'/2, K = D/2, D = sigma^2 (summed over
    noise columns), b_ito = b for Itô and b + D'/4 (= b + sigma sigma'/2) for Stratonovich.
    On M cells of width dx, the Chang–Cooper / Scharfetter–Gummel flux across the face between cells i, i+1 is

        F_{i+1/2} = (K / dx) [B(-w) p_i - B(w) p_{i+1}],  w = a dx / K,  B = `bernoulli`,

    (the upwind flux a+ p_i - a- p_{i+1} where K = 0). a and K are taken at the face: b and D evaluated there,
    D' = (D(c_{i+1}) - D(c_i)) / dx from the cell centres (second order at the face). The walls carry no flux.
    Cell masses m_i = p_i dx then obey m' = L(t) m, whose columns sum to zero, and implicit Euler
    (I - dt L(t_{k+1})) m^{k+1} = m^k is solved by a tridiagonal LU (LAPACK gttrf/gttrs): I - dt L is a column
    diagonally dominant M-matrix, so no pivoting happens, every operation adds non-negative terms (masses stay
    >= 0 in floating point) and sum(m) is conserved to rounding. Where F = 0, p_{i+1} / p_i = e^{w}: the discrete
    equilibrium is exact (`stationary_masses`).

    autonomous: whether b and D are time-independent. None probes them at t0, two irrational fractions of the
    interval and t1, and factors I - dt L once if all agree exactly; pass False to re-evaluate every step.
    """

    def __init__(self, drift: Callable, diffusion: Callable, x_min: float, x_max: float, cells: int, *,
                 params: Any = None, noise: str = "diagonal", calculus: str = "ito",
                 autonomous: bool | None = None) -> None:
        self.x_min = _finite_float(x_min, "x_min")
        self.x_max = _finite_float(x_max, "x_max")
        if not self.x_min < self.x_max:
            raise SDEKitError(f"x_min must be < x_max; got x_min = {x_min!r}, x_max = {x_max!r}")
        self.cells = _positive_int(cells, "cells", 3)
        if autonomous not in (None, True, False):
            raise SDEKitError(f"autonomous must be None, True or False; got {autonomous!r}")
        self.autonomous = autonomous
        self.coefficients = _Coefficients(drift, diffusion, 1, params, noise, calculus)
        self.edges = np.linspace(self.x_min, self.x_max, self.cells + 1)
        self.dx = (self.x_max - self.x_min) / self.cells
        self.centers = 0.5 * (self.edges[:-1] + self.edges[1:])
        self.faces = self.edges[1:-1]

    @classmethod
    def from_sde(cls, sde: SDE, x_min: float, x_max: float, cells: int, *,
                 autonomous: bool | None = None) -> FokkerPlanck1D:
        """The solver for a 1-D `sdekit.SDE` (its drift, diffusion, params, noise type and calculus)."""
        _check_sde_1d(sde)
        c = _Coefficients.from_sde(sde)
        return cls(sde.drift, sde.diffusion, x_min, x_max, cells, params=sde.params, noise=c.noise,
                   calculus=sde.calculus, autonomous=autonomous)

    # ---- coefficients ----------------------------------------------------------------------------

    def _D(self, x: np.ndarray, t: float) -> np.ndarray:
        d = self.coefficients.D(x[:, None], t)[:, 0, 0]
        _finite(d, "diffusion", x[:, None], t)
        if np.any(d < 0):
            raise SDEKitError("diffusion gave D = sigma^2 < 0")  # cannot happen for real sigma
        return d

    def face_coefficients(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(a, K) at the M - 1 interior faces: a = b_ito - D'/2, K = D/2 (see the class docstring)."""
        b = np.array(self.coefficients.b(self.faces[:, None], t)[:, 0])
        _finite(b, "drift", self.faces[:, None], t)
        d_face = self._D(self.faces, t)
        d_cent = self._D(self.centers, t)
        d_prime = np.diff(d_cent) / self.dx
        corr = 0.25 * d_prime if self.coefficients.calculus == "stratonovich" else 0.0
        return b + corr - 0.5 * d_prime, 0.5 * d_face

    def rates(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(r, l): mass per unit time leaving cell i for i+1 is r_{i+1/2} m_i, from i+1 to i is l_{i+1/2} m_{i+1}.

        r = (K / dx^2) B(-w), l = (K / dx^2) B(w), w = a dx / K; where K = 0 (or w overflows), r = a+/dx, l = a-/dx.
        """
        a, k = self.face_coefficients(t)
        dx = self.dx
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            w = a * dx / k
        fitted = (k > 0) & np.isfinite(w)
        r = np.maximum(a, 0.0) / dx
        l = np.maximum(-a, 0.0) / dx
        wf, kf = w[fitted], k[fitted] / dx**2
        r[fitted] = kf * bernoulli(-wf)
        l[fitted] = kf * bernoulli(wf)
        return r, l

    def stationary_masses(self, t: float = 0.0) -> np.ndarray:
        """The discrete equilibrium at frozen time t: m_{i+1} / m_i = r_{i+1/2} / l_{i+1/2} (= e^{w}), summing to 1.

        It makes every face flux zero, so implicit Euler leaves it unchanged to rounding.
        """
        r, l = self.rates(t)
        if np.any(l <= 0):
            raise SDEKitError("no discrete equilibrium: some face has no backward rate (K = 0 and a > 0)")
        with np.errstate(divide="ignore"):
            logratio = np.log(r) - np.log(l)
        logm = np.concatenate(([0.0], np.cumsum(logratio)))
        m = np.exp(logm - logm.max())
        return m / m.sum()

    # ---- initial condition -----------------------------------------------------------------------

    def cell_masses(self, density: Callable[[np.ndarray], Any]) -> np.ndarray:
        """m_i = integral of density over cell i (6-point Gauss–Legendre per cell), not renormalised."""
        xq = self.centers[:, None] + 0.5 * self.dx * _GAUSS_NODES[None, :]
        vals = real_array(density(xq.ravel()), "p0's output (a density)")
        if vals.shape != (xq.size,):
            raise SDEKitError(f"p0 as a density must map points of shape ({xq.size},) to densities of the same "
                              f"shape; got shape {vals.shape}")
        if not np.all(np.isfinite(vals)) or np.any(vals < 0):
            raise SDEKitError("p0 as a density must be finite and >= 0 on [x_min, x_max]")
        return 0.5 * self.dx * (vals.reshape(xq.shape) @ _GAUSS_WEIGHTS)

    def initial_masses(self, p0: Any, t0: float, t1: float) -> tuple[np.ndarray, float, float]:
        """(masses summing to 1, start time, raw mass in the domain) for p0 (see `solve`)."""
        if isinstance(p0, (int, float, np.floating, np.integer)) and not isinstance(p0, bool):
            p0 = PointMass(float(p0))
        if isinstance(p0, PointMass):
            x0 = _finite_float(p0.x0, "p0.x0")
            if not self.x_min < x0 < self.x_max:
                raise SDEKitError(f"p0 (a point mass at {x0}) must lie inside (x_min, x_max) = "
                                  f"({self.x_min}, {self.x_max})")
            if not (p0.width_cells > 0 and 0 < p0.max_fraction < 1):
                raise SDEKitError(f"p0.width_cells must be > 0 and p0.max_fraction in (0, 1); got {p0!r}")
            xx = np.array([[x0]])
            d0 = float(self._D(xx[:, 0], t0)[0])
            if d0 <= 0:
                raise SDEKitError(f"p0 is a point mass at {x0} where D = 0: the one-step law is degenerate")
            tau = min((p0.width_cells * self.dx) ** 2 / d0, p0.max_fraction * (t1 - t0))
            eps = np.array([1e-5 * max(1.0, abs(x0))])
            mean = x0 + float(self.coefficients.ito_drift(xx, t0, eps)[0, 0]) * tau
            sd = math.sqrt(d0 * tau)
            upper = st.norm.cdf((self.edges - mean) / sd)
            lower = st.norm.sf((self.edges - mean) / sd)
            # cell masses from whichever tail is small, so no mass cancels away
            masses = np.where(self.edges[1:] <= mean, np.diff(upper), -np.diff(lower))
            masses = np.maximum(masses, 0.0)
            total = float(masses.sum())
            return masses / total, t0 + tau, total
        if callable(p0):
            masses = self.cell_masses(p0)
        else:
            try:
                kind = np.asarray(p0).dtype.kind
            except (TypeError, ValueError):
                kind = "O"
            if kind not in "iufc":
                raise SDEKitError("p0 must be a density callable, an array of cell masses, a number (a point "
                                  f"mass) or a PointMass; got {type(p0).__name__}")
            masses = np.array(real_array(p0, "p0 (cell masses)"))
            if masses.shape != (self.cells,):
                raise SDEKitError(f"p0 as cell masses must have shape ({self.cells},); got shape {masses.shape}")
            if not np.all(np.isfinite(masses)) or np.any(masses < 0):
                raise SDEKitError("p0 as cell masses must be finite and >= 0")
        total = float(masses.sum())
        if not total > 0:
            raise SDEKitError("p0 has no mass inside [x_min, x_max]")
        return masses / total, t0, total

    # ---- time stepping ---------------------------------------------------------------------------

    def _factor(self, t: float, dt: float) -> tuple:
        r, l = self.rates(t)
        diag = np.ones(self.cells)
        diag[:-1] += dt * r
        diag[1:] += dt * l
        dl, d, du, du2, ipiv, info = lapack.dgttrf(-dt * r, diag, -dt * l)
        if info != 0:
            raise SDEKitError(f"tridiagonal factorisation failed (info = {info})")
        return dl, d, du, du2, ipiv

    def _is_autonomous(self, t0: float, t1: float) -> bool:
        if self.autonomous is not None:
            return self.autonomous
        probes = [t0, t0 + (t1 - t0) / math.pi, t0 + (t1 - t0) / math.sqrt(2.0), t1]
        ref = self.rates(probes[0])
        return all(np.array_equal(ref[0], r[0]) and np.array_equal(ref[1], r[1])
                   for r in (self.rates(s) for s in probes[1:]))

    def solve(self, p0: Any, t0: float, t1: float, time_steps: int,
              save_at: Sequence[float] | None = None) -> FPSolution:
        """Masses at t1 (and at ``save_at``) from p0 at t0: (I - dt L(t_{k+1})) m^{k+1} = m^k, ``time_steps`` steps.

        p0: a density callable on a 1-D array of points (integrated over each cell and renormalised to mass 1;
        the raw integral is kept as ``initial_mass``), an array of M cell masses (renormalised), a number x0 or a
        `PointMass` (a start at x0, see `PointMass`). save_at: times in [t_start, t1]; the steps are split
        between the intervals in proportion to their lengths (at least one each), so every save time is hit.
        """
        t0 = _finite_float(t0, "t0")
        t1 = _finite_float(t1, "t1")
        if not t1 > t0:
            raise SDEKitError(f"t_span must have t1 > t0; got ({t0}, {t1})")
        steps = _positive_int(time_steps, "time_steps")
        masses, t_start, initial = self.initial_masses(p0, t0, t1)
        saves = [] if save_at is None else sorted(_finite_float(s, "save_at") for s in np.atleast_1d(save_at))
        if saves and (saves[0] < t_start or saves[-1] > t1):
            raise SDEKitError(f"save_at must lie in [{t_start}, {t1}] (the solve starts at t0, or t0 + tau for a "
                              f"point mass); got {saves}")
        marks = [s for s in saves if s < t1] + [t1]
        span = t1 - t_start
        autonomous = self._is_autonomous(t_start, t1)
        cache: dict[float, tuple] = {}
        history, ts = [], []
        t, taken = t_start, 0
        for mark in marks:
            n = max(1, round(steps * (mark - t) / span)) if mark > t else 0
            if mark == t1:
                n = max(1, steps - taken) if mark > t else 0
            dt = (mark - t) / n if n else 0.0
            for k in range(n):
                t_next = mark if k == n - 1 else t + dt
                if autonomous:
                    if dt not in cache:
                        cache[dt] = self._factor(t_next, dt)
                    lu = cache[dt]
                else:
                    lu = self._factor(t_next, dt)
                x, info = lapack.dgttrs(*lu, masses[:, None])
                if info != 0:
                    raise SDEKitError(f"tridiagonal solve failed (info = {info}) at t = {t_next:.6g}")
                masses = x[:, 0]
                t = t_next
            taken += n
            history.append(masses.copy())
            ts.append(mark)
        return FPSolution(self.edges.copy(), masses, float(t1), np.array(ts), np.array(history), float(t_start),
                          taken, initial)


def solve_fokker_planck_1d(drift: Callable, diffusion: Callable, p0: Any, x_min: float, x_max: float, t0: float,
                           t1: float, cells: int, time_steps: int, params: Any = None, *, noise: str = "diagonal",
                           calculus: str = "ito", save_at: Sequence[float] | None = None,
                           autonomous: bool | None = None) -> FPSolution:
    """Law at t1 of dX = b dt + sigma dW from p0 at t0: d_t p = -d_x (a p - K d_x p), a = b - D'/2, K = D/2.

    Chang–Cooper / Scharfetter–Gummel fluxes, zero-flux walls, implicit Euler (see `FokkerPlanck1D`); p0 as
    in `FokkerPlanck1D.solve`.
    """
    solver = FokkerPlanck1D(drift, diffusion, x_min, x_max, cells, params=params, noise=noise, calculus=calculus,
                            autonomous=autonomous)
    return solver.solve(p0, t0, t1, time_steps, save_at=save_at)


def _check_sde_1d(sde: Any) -> None:
    if not isinstance(sde, SDE):
        raise SDEKitError(f"sde must be an sdekit.SDE; got {type(sde).__name__}")
    if sde.dim != 1:
        raise SDEKitError(f"sde must be one-dimensional (sde.dim = 1) for the 1-D Fokker–Planck reference; "
                          f"got sde.dim = {sde.dim}")


def _t_span(t_span: Any) -> tuple[float, float]:
    try:
        t0, t1 = t_span
    except (TypeError, ValueError):
        raise SDEKitError(f"t_span must be a pair (t0, t1); got {t_span!r}") from None
    return _finite_float(t0, "t_span[0]"), _finite_float(t1, "t_span[1]")


def fokker_planck_reference(sde: SDE, p0: Any, t_span: tuple[float, float], x_min: float, x_max: float,
                            cells: int, time_steps: int, *, save_at: Sequence[float] | None = None,
                            autonomous: bool | None = None) -> FPSolution:
    """Law of X_{t1} for a 1-D `sdekit.SDE` (Itô or Stratonovich, any noise type) started from p0 at t0.

    d_t p = -d_x (a p - K d_x p), a = b_ito - D'/2, K = D/2, D = sum_j g_j^2; see `FokkerPlanck1D`.
    """
    _check_sde_1d(sde)
    t0, t1 = _t_span(t_span)
    return FokkerPlanck1D.from_sde(sde, x_min, x_max, cells, autonomous=autonomous).solve(
        p0, t0, t1, time_steps, save_at=save_at)


# --------------------------------------------------------------------------------------------
# histogram chi-square against the reference
# --------------------------------------------------------------------------------------------


def _samples_1d(samples: Any) -> np.ndarray:
    x = real_array(samples, "samples")
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise SDEKitError(f"samples must have shape (N,) or (N, 1); got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise SDEKitError(f"samples must be finite; samples[{bad[0]}] = {x[bad[0]]} ({bad.size} non-finite)")
    return x


def _bins(q_cells: np.ndarray, target: float) -> np.ndarray:
    """Indices of the cell edges that close bins: consecutive cells merged until each bin's mass >= target."""
    cuts, acc = [], 0.0
    for i, q in enumerate(q_cells[:-1]):
        acc += q
        if acc >= target:
            cuts.append(i + 1)
            acc = 0.0
    if cuts and acc + q_cells[-1] < target:  # the remainder joins the last closed bin
        cuts.pop()
    return np.array(cuts, dtype=int)


def chi2_histogram_test(samples: Any, solve: Callable[[int, int], FPSolution], cells: int, time_steps: int, *,
                        alpha: float = 1e-6, min_expected: float = 50.0, max_bins: int = 50,
                        max_lambda: float = 0.5, max_refinements: int = 2,
                        name: str = "fokker_planck") -> CheckResult:
    """Pearson's X^2 = sum_j (O_j - N q_j)^2 / (N q_j) ~ chi^2_{J-1} of samples against a grid reference.

    ``solve(cells, time_steps)`` returns the reference on the same domain for any grid (e.g. a closure over
    `fokker_planck_reference`). It is solved on (cells, time_steps) and on (2 cells, 2 time_steps); the fine
    solution is the reference. Bins are runs of coarse cells holding fine mass q_j >= max(1 / max_bins,
    min_expected / N) (so N q_j >= min_expected), the end bins reaching to -inf and +inf. The reference error is
    estimated as delta_j = |q_j(fine) - q_j(coarse)| (an over-estimate of the fine grid's error once the scheme
    is in its asymptotic range, error ratio >= 2), which would shift X^2 by the non-centrality
    lambda = N sum_j delta_j^2 / q_j. While lambda > max_lambda the grid is doubled again (coarse <- fine), at
    most ``max_refinements`` times; then a SDEKitError is raised. A non-centrality of 0.5 raises the false-alarm
    rate at alpha = 1e-6 to at most 2.6e-6 (J = 10; 1.4e-6 at J = 50), by the non-central chi-square tail.

    Gated on the statistic: passes when X^2 <= chi2.isf(alpha, J - 1); pvalue = chi2.sf(X^2, J - 1).
    bias holds the standardised bin residuals (O_j - N q_j) / sqrt(N q_j (1 - q_j)).
    """
    x = _samples_1d(samples)
    n = x.shape[0]
    alpha_f = _finite_float(alpha, "alpha")
    if not 0.0 < alpha_f < 1.0:
        raise SDEKitError(f"alpha must be in (0, 1); got {alpha!r}")
    if not (math.isfinite(min_expected) and min_expected > 0):
        raise SDEKitError(f"min_expected must be a positive number; got {min_expected!r}")
    max_bins = _positive_int(max_bins, "max_bins", 2)
    if not (math.isfinite(max_lambda) and max_lambda > 0):
        raise SDEKitError(f"max_lambda must be a positive number; got {max_lambda!r}")
    max_refinements = _positive_int(max_refinements, "max_refinements", 0)
    if n < 2 * min_expected:
        raise SDEKitError(f"samples: {n} are too few for 2 bins of N q_j >= {min_expected:g} expected counts; "
                          f"give at least {math.ceil(2 * min_expected)}")
    c, s = _positive_int(cells, "cells", 3), _positive_int(time_steps, "time_steps")
    target = max(1.0 / max_bins, min_expected / n)
    coarse = solve(c, s)
    for _ in range(max_refinements + 1):
        fine = solve(2 * c, 2 * s)
        if fine.cells != 2 * coarse.cells or not np.allclose(fine.edges[::2], coarse.edges):
            raise SDEKitError("solve(cells, time_steps) must return a solution on [x_min, x_max] with `cells` cells")
        qf_cells = fine.masses.reshape(-1, 2).sum(axis=1)
        cuts = _bins(qf_cells, target)
        if cuts.size == 0:
            raise SDEKitError(f"samples: {n} are too few (or the grid too coarse) for 2 bins of expected counts "
                              f">= {min_expected:g}")
        bounds = np.concatenate(([0], cuts, [coarse.cells]))
        cum_f = np.concatenate(([0.0], np.cumsum(qf_cells)))
        cum_c = np.concatenate(([0.0], np.cumsum(coarse.masses)))
        q = np.diff(cum_f[bounds])
        q = q / q.sum()
        qc = np.diff(cum_c[bounds])
        qc = qc / qc.sum()
        delta = np.abs(q - qc)
        lam = float(n * np.sum(delta**2 / q))
        if lam <= max_lambda:
            break
        coarse, c, s = fine, 2 * c, 2 * s
    else:
        raise SDEKitError(f"the reference is not accurate enough for N = {n}: non-centrality lambda = {lam:.3g} > "
                          f"max_lambda = {max_lambda:g} on a {2 * c} x {2 * s} grid after {max_refinements} "
                          "refinements; give more cells / time_steps, fewer samples or a narrower domain")
    interior = coarse.edges[cuts]
    counts = np.bincount(np.searchsorted(interior, x, side="right"), minlength=q.size).astype(float)
    expected = n * q
    stat = float(np.sum((counts - expected) ** 2 / expected))
    df = q.size - 1
    threshold = float(st.chi2.isf(alpha_f, df))
    bias = tuple(((counts - expected) / np.sqrt(expected * (1.0 - q))).tolist())
    outside = int(np.sum((x < fine.edges[0]) | (x > fine.edges[-1])))
    note = (f"J={q.size}, lambda={lam:.3g}, cells={fine.cells}, time_steps={fine.time_steps}, N={n}, "
            f"outside domain={outside}")
    return CheckResult(name, f"chi2 histogram vs Fokker-Planck (J={q.size})", stat, threshold,
                       float(st.chi2.sf(stat, df)), stat <= threshold, note, bias, True, alpha_f)


def fokker_planck_chi2_test(samples: Any, sde: SDE, p0: Any, t_span: tuple[float, float], x_min: float,
                            x_max: float, *, cells: int = 200, time_steps: int = 200, alpha: float = 1e-6,
                            min_expected: float = 50.0, max_bins: int = 50, max_lambda: float = 0.5,
                            max_refinements: int = 2, name: str | None = None) -> CheckResult:
    """Chi-square of samples of X_{t1} against `fokker_planck_reference` (see `chi2_histogram_test`).

    X^2 = sum_j (O_j - N q_j)^2 / (N q_j) ~ chi^2_{J-1}, with the grid refined until the reference's estimated
    error adds a non-centrality lambda = N sum_j delta_j^2 / q_j <= max_lambda.
    """
    _check_sde_1d(sde)
    t0, t1 = _t_span(t_span)
    x_min, x_max = _finite_float(x_min, "x_min"), _finite_float(x_max, "x_max")

    def solve(c: int, s: int) -> FPSolution:
        return FokkerPlanck1D.from_sde(sde, x_min, x_max, c).solve(p0, t0, t1, s)

    return chi2_histogram_test(samples, solve, cells, time_steps, alpha=alpha, min_expected=min_expected,
                               max_bins=max_bins, max_lambda=max_lambda, max_refinements=max_refinements,
                               name=name or sde.name)


# --------------------------------------------------------------------------------------------
# the pointwise identity
# --------------------------------------------------------------------------------------------


def _points(x: Any) -> np.ndarray:
    pts = np.array(real_array(x, "x"))
    if pts.ndim == 1:
        pts = pts[None, :]
    if pts.ndim != 2 or pts.shape[0] < 1 or pts.shape[1] < 1:
        raise SDEKitError(f"x must have shape (n, d) or (d,); got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise SDEKitError("x must be finite")
    return pts


def _stencil(d: int, eps: np.ndarray) -> np.ndarray:
    """Offsets: 0, then +-eps_i e_i, then (+-eps_i e_i) + (+-eps_j e_j) for i < j, as rows."""
    rows = [np.zeros(d)]
    for i in range(d):
        for sgn in (1.0, -1.0):
            v = np.zeros(d)
            v[i] = sgn * eps[i]
            rows.append(v)
    for i in range(d):
        for j in range(i + 1, d):
            for si, sj in ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)):
                v = np.zeros(d)
                v[i], v[j] = si * eps[i], sj * eps[j]
                rows.append(v)
    return np.array(rows)


def _log_prob_values(log_prob: Callable, x: np.ndarray, t: float) -> np.ndarray:
    out = real_array(log_prob(np.ascontiguousarray(x), float(t)), "log_prob's output").reshape(-1)
    if out.shape != (x.shape[0],):
        raise SDEKitError(f"log_prob(x, t) must return shape ({x.shape[0]},) for x of shape {x.shape}; "
                          f"got {out.shape}")
    return out


def _derivatives(vals: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient (n, d, ...) and Hessian (n, d, d, ...) at the stencil centre of `_stencil`."""
    d = eps.shape[0]
    n = vals.shape[1]
    grad = np.empty((n, d) + vals.shape[2:])
    hess = np.empty((n, d, d) + vals.shape[2:])
    for i in range(d):
        plus, minus = vals[1 + 2 * i], vals[2 + 2 * i]
        grad[:, i] = (plus - minus) / (2.0 * eps[i])
        hess[:, i, i] = (plus - 2.0 * vals[0] + minus) / eps[i] ** 2
    k = 1 + 2 * d
    for i in range(d):
        for j in range(i + 1, d):
            hess[:, i, j] = (vals[k] - vals[k + 1] - vals[k + 2] + vals[k + 3]) / (4.0 * eps[i] * eps[j])
            hess[:, j, i] = hess[:, i, j]
            k += 4
    return grad, hess


def _residual_terms(coef: _Coefficients, log_prob: Callable, x: np.ndarray, t: float, eps: np.ndarray,
                    eps_t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residual, largest term, rounding estimate) per point, for steps eps (space) and eps_t (time).

    R = d_t l + div b + b.grad l - 1/2 sum_ij [d_ij D_ij + 2 d_i D_ij d_j l + D_ij (d_ij l + d_i l d_j l)],
    l = log p: (FP) divided by p, with D symmetric.
    """
    n, d = x.shape
    offs = _stencil(d, eps)
    s = offs.shape[0]
    pts = (offs[:, None, :] + x[None, :, :]).reshape(s * n, d)
    ell = _log_prob_values(log_prob, pts, t).reshape(s, n)
    if not np.all(np.isfinite(ell)):
        raise SDEKitError("log_prob is not finite at some stencil point; check x, t and eps")
    b = coef.ito_drift(pts, t, eps).reshape(s, n, d)
    dmat = coef.D(pts, t).reshape(s, n, d, d)
    _finite(b.reshape(s * n, d), "drift", pts, t)
    _finite(dmat.reshape(s * n, d * d), "diffusion", pts, t)
    dmat = 0.5 * (dmat + np.swapaxes(dmat, -1, -2))
    gl, hl = _derivatives(ell, eps)  # (n, d), (n, d, d)
    gb, _ = _derivatives(b, eps)  # gb[:, i, k] = d_i b_k
    gd, hd = _derivatives(dmat, eps)  # gd[:, k, i, j] = d_k D_ij; hd[:, k, l, i, j] = d_kl D_ij
    b0, d0 = b[0], dmat[0]
    idx = np.arange(d)
    div_b = gb[:, idx, idx].sum(axis=1)
    transport = np.einsum("ni,ni->n", b0, gl)
    dd_d = hd[:, idx[:, None], idx[None, :], idx[:, None], idx[None, :]].sum(axis=(1, 2))  # sum_ij d_ij D_ij
    cross = 2.0 * np.einsum("niij,nj->n", gd, gl)  # 2 sum_ij d_i D_ij d_j l
    curv = np.einsum("nij,nij->n", d0, hl + gl[:, :, None] * gl[:, None, :])
    dt_ell = (_log_prob_values(log_prob, x, t + eps_t) - _log_prob_values(log_prob, x, t - eps_t)) / (2.0 * eps_t)
    terms = np.stack([dt_ell, div_b, transport, 0.5 * dd_d, 0.5 * cross, 0.5 * curv])
    residual = dt_ell + div_b + transport - 0.5 * (dd_d + cross + curv)
    e = float(np.min(eps))
    size_l = 1.0 + np.abs(ell[0])
    size_b = 1.0 + np.abs(b0).sum(axis=1)
    size_d = 1.0 + np.abs(d0).sum(axis=(1, 2))
    size_g = 1.0 + np.abs(gl).sum(axis=1)
    rounding = 16.0 * _EPS * (size_l * (size_d * (4.0 / e**2 + 2.0 * size_g / e) + size_b / e + 1.0 / eps_t)
                              + size_b * d / e + size_d * (2.0 * size_g / e + 4.0 * d * d / e**2))
    return residual, np.abs(terms).max(axis=0), rounding


def fokker_planck_residual(drift: Callable, diffusion: Callable, log_prob: Callable, x: Any, t: float, *,
                           params: Any = None, noise: str = "diagonal", calculus: str = "ito",
                           eps: Any = None, eps_t: float | None = None) -> np.ndarray:
    """R = d_t log p + [div(b p) - 1/2 sum_ij d_ij (D_ij p)] / p at the points x (n, d), time t; 0 for the true law.

    In terms of l = log p (and D symmetric) R = d_t l + div b + b.grad l - 1/2 sum_ij [d_ij D_ij
    + 2 d_i D_ij d_j l + D_ij (d_ij l + d_i l d_j l)]; every derivative of l, b and D is a central difference of
    step eps (a number or one per coordinate; default 1e-3, for p varying on length scales ~1: take about
    1e-3 times p's length scale), d_t l one of step eps_t (default 1e-3 min(1, |t|),
    1e-3 at t = 0). Working with l keeps the differences exact for Gaussians (l quadratic) and well scaled in the
    tails, where p itself underflows. b is converted to
    Itô for calculus='stratonovich' (b_i + 1/2 sum_jk g_kj d_k g_ij, by central differences). For scalar g(t) and
    b = f(t) x this is d_t log p - [-d f - f x.s + 1/2 g^2 (lap log p + |s|^2)], s = grad log p.
    log_prob(x, t) takes (m, d) points and returns (m,).
    """
    coef = _Coefficients(drift, diffusion, _points(x).shape[1], params, noise, calculus)
    pts = _points(x)
    e, et = _fd_steps(pts, t, eps, eps_t)
    return _residual_terms(coef, log_prob, pts, float(t), e, et)[0]


def _fd_steps(pts: np.ndarray, t: Any, eps: Any, eps_t: Any) -> tuple[np.ndarray, float]:
    d = pts.shape[1]
    t = _finite_float(t, "t")
    if eps is None:
        e = np.full(d, 1e-3)
    else:
        e = real_array(eps, "eps")
        if e.shape not in ((), (1,), (d,)):
            raise SDEKitError(f"eps must be a number or one step per coordinate, shape ({d},); got shape {e.shape}")
        e = np.broadcast_to(e, (d,)).copy()
        if not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise SDEKitError(f"eps must be positive and finite (a number or one per coordinate); got {eps!r}")
    if eps_t is None:
        et = 1e-3 * min(1.0, abs(t)) if t != 0 else 1e-3
    else:
        et = _finite_float(eps_t, "eps_t")
        if et <= 0:
            raise SDEKitError(f"eps_t must be positive; got {eps_t!r}")
    return e, et


def check_fokker_planck_identity(drift: Callable, diffusion: Callable, log_prob: Callable, x: Any,
                                 t: float | Sequence[float], *, params: Any = None, noise: str = "diagonal",
                                 calculus: str = "ito", eps: Any = None, eps_t: float | None = None,
                                 safety: float = 4.0, max_relative_error: float = 1e-3,
                                 name: str = "fokker_planck") -> tuple[np.ndarray, CheckResult]:
    """Check d_t p = -div(b p) + 1/2 sum_ij d_ij (D_ij p) (divided by p) at points x and time(s) t.

    The residual R (see `fokker_planck_residual`) is computed with steps (eps, eps_t) and (eps/2, eps_t/2);
    the reported residual is the finer one. For smooth functions the truncation error is C eps^2, so
    |R(eps) - R(eps/2)| ~ 3/4 C eps^2 is three times the error of R(eps/2). The tolerance is
    safety * max |R(eps) - R(eps/2)| + max rounding (below). Passes when max |R| <= tolerance. If the tolerance
    exceeds max_relative_error times the largest term of the equation (at least 1), the differences do not resolve
    p (eps too large for its length scale) and the check fails with a note saying so, rather than passing on a
    loose tolerance.
    The rounding bound is 16 u [(1 + |l|) ((1 + |D|) (4 / e^2 + 2 (1 + |grad l|) / e) + (1 + |b|) / e + 1 / e_t)
    + (1 + |b|) d / e + (1 + |D|) (2 (1 + |grad l|) / e + 4 d^2 / e^2)] (1-norms, e = min eps, u = machine
    epsilon), evaluated at the finer steps: the size of a difference quotient's cancellation error.

    Returns (residual of shape (n,) for a scalar t, (len(t), n) for a sequence of times; the CheckResult).
    """
    pts = _points(x)
    coef = _Coefficients(drift, diffusion, pts.shape[1], params, noise, calculus)
    times = np.atleast_1d(real_array(t, "t"))
    if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
        raise SDEKitError(f"t must be a finite time or a 1-D sequence of them; got {t!r}")
    if not (math.isfinite(safety) and safety >= 1):
        raise SDEKitError(f"safety must be a number >= 1; got {safety!r}")
    res, diffs, scales, roundings = [], [], [], []
    for ti in times:
        e, et = _fd_steps(pts, ti, eps, eps_t)
        r1, _, _ = _residual_terms(coef, log_prob, pts, float(ti), e, et)
        r2, scale, rnd = _residual_terms(coef, log_prob, pts, float(ti), 0.5 * e, 0.5 * et)
        res.append(r2)
        diffs.append(np.abs(r1 - r2))
        scales.append(scale)
        roundings.append(rnd)
    residual = np.array(res)
    fd_error = float(np.max(diffs))
    rounding = float(np.max(roundings))
    tol = safety * fd_error + rounding
    stat = float(np.max(np.abs(residual)))
    top = float(np.max(scales))
    resolved = tol <= max_relative_error * max(top, 1.0)
    passed = bool(stat <= tol and resolved)
    note = (f"points={pts.shape[0]}, times={times.size}, dim={pts.shape[1]}, max|R(eps)-R(eps/2)|={fd_error:.3g}, "
            f"rounding bound={rounding:.3g}, largest term={top:.3g}")
    if not resolved:
        note += "; finite differences do not resolve p: lower eps / eps_t"
    if np.ndim(t) == 0:
        residual = residual[0]
    return residual, CheckResult(name, "Fokker-Planck identity", stat, tol, float("nan"), passed, note)


def check_sde_fokker_planck_identity(sde: SDE, log_prob: Callable, x: Any, t: float | Sequence[float],
                                     **kwargs: Any) -> tuple[np.ndarray, CheckResult]:
    """`check_fokker_planck_identity` with the drift, diffusion, params, noise type and calculus of an `SDE`."""
    if not isinstance(sde, SDE):
        raise SDEKitError(f"sde must be an sdekit.SDE; got {type(sde).__name__}")
    coef = _Coefficients.from_sde(sde)
    kwargs.setdefault("name", sde.name)
    if _points(x).shape[1] != sde.dim:
        raise SDEKitError(f"x must have sde.dim = {sde.dim} columns; got shape {_points(x).shape}")
    return check_fokker_planck_identity(sde.drift, sde.diffusion, log_prob, x, t, params=sde.params,
                                        noise=coef.noise, calculus=sde.calculus, **kwargs)
