"""The product double well pi(x) = exp(-U(x)) / Z, U(x) = sum_i [(x_i^2 - 1)^2 / eps_i + tilt_i x_i], on R^d.

The coordinates are independent 1-D wells. Per distinct (eps_i, tilt_i) a `Well1D` holds the
normaliser (adaptive quadrature), an exact CDF (Gauss–Legendre cumulative sums on a fine grid plus
a Gauss–Legendre partial cell), moments by quadrature and an inverse-CDF sampler (safeguarded
Newton on that CDF); they are cached, so equal wells share the quadratures.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numba as nb
import numpy as np
import scipy.integrate
from numpy.typing import ArrayLike

from sdekit.errors import SDEKitError
from sdekit.targets.energy import EnergyTarget, energy_and_grad
from sdekit.targets.gaussian import Seed, as_points, float_array, readonly, sample_count
from sdekit.targets.law1d import Law1D

# the grid covers {x : U(x) - min U <= MASS_CUT}; the mass outside is below exp(-MASS_CUT) / |U'| ~ 1e-26
MASS_CUT = 60.0
MIN_CELLS = 20_000
MAX_CELLS = 400_000
CELLS_PER_WIDTH = 100  # cells per well width 1 / sqrt(U'') at the sharpest local minimum
GL_NODES, GL_WEIGHTS = np.polynomial.legendre.leggauss(10)
NEWTON_STEPS = 60
CHUNK = 50_000


@nb.njit(cache=True)
def double_well_energy(x, p, grad):
    """U(x) = sum_i [(x_i^2 - 1)^2 / eps_i + tilt_i x_i]; grad_i U = 4 x_i (x_i^2 - 1) / eps_i + tilt_i.

    p = (1 / eps (d,), tilt (d,)).
    """
    inv_eps = p[0]
    tilt = p[1]
    u = 0.0
    for i in range(x.shape[0]):
        xi = x[i]
        r = xi * xi - 1.0
        u += r * r * inv_eps[i] + tilt[i] * xi
        grad[i] = 4.0 * xi * r * inv_eps[i] + tilt[i]
    return u


class Well1D:
    """The 1-D law f(x) = exp(-u(x)) / Z, u(x) = (x^2 - 1)^2 / eps + tilt x, with everything by quadrature.

    Attributes: eps, tilt; log_normalizer = log Z (scipy quad); lo, hi: the support used (mass outside
    below 1e-25); grid (M + 1,) and cum (M + 1,) = int_lo^grid f (10-point Gauss–Legendre per cell);
    moments = (E X, E X^2, E X^3, E X^4); var = E (X - E X)^2.
    """

    def __init__(self, eps: float, tilt: float) -> None:
        self.eps, self.tilt = float(eps), float(tilt)
        # local extrema: u'(x) = 4 x (x^2 - 1) / eps + tilt = 0  <=>  x^3 - x + tilt eps / 4 = 0
        crit = np.roots([1.0, 0.0, -1.0, self.tilt * self.eps / 4.0])
        crit = np.real(crit[np.abs(np.imag(crit)) < 1e-9])
        crit = np.array([_newton_polish(self._du, self._d2u, c) for c in crit])
        minima = crit[self._d2u(crit) > 0]
        self._umin = float(np.min(self.u(minima)))
        # support: the outermost real roots of u(x) - umin - MASS_CUT (a quartic), polished
        level = self._umin + MASS_CUT
        roots = np.roots([1.0, 0.0, -2.0, self.eps * self.tilt, 1.0 - self.eps * level])
        roots = np.real(roots[np.abs(np.imag(roots)) < 1e-6 * (1.0 + np.abs(roots))])
        self.lo = float(np.min(roots)) - 1e-3
        self.hi = float(np.max(roots)) + 1e-3
        width = 1.0 / math.sqrt(float(np.max(self._d2u(minima))))
        cells = int(min(MAX_CELLS, max(MIN_CELLS, math.ceil(CELLS_PER_WIDTH * (self.hi - self.lo) / width))))
        self.grid = np.linspace(self.lo, self.hi, cells + 1)
        self._h = (self.hi - self.lo) / cells
        # normaliser by adaptive quadrature of exp(-(u - umin)), with breakpoints at the minima
        pts = sorted(float(m) for m in minima if self.lo < m < self.hi)
        scaled, _ = scipy.integrate.quad(lambda t: math.exp(-(self.u(t) - self._umin)), self.lo, self.hi,
                                         points=pts, limit=500, epsabs=0.0, epsrel=1e-13)
        self._log_zs = math.log(scaled)
        self.log_normalizer: float = self._log_zs - self._umin
        # cumulative integral of f on the grid, and the moments, by Gauss–Legendre per cell
        mid = 0.5 * (self.grid[:-1] + self.grid[1:])
        nodes = mid[:, None] + 0.5 * self._h * GL_NODES[None, :]
        wf = 0.5 * self._h * GL_WEIGHTS[None, :] * self.pdf(nodes)
        self.cum = np.concatenate([[0.0], np.cumsum(np.sum(wf, axis=1))])
        self._total = float(self.cum[-1])
        self.moments: tuple[float, ...] = tuple(float(np.sum(wf * nodes**k) / self._total) for k in range(1, 5))
        self.var = float(np.sum(wf * (nodes - self.moments[0]) ** 2) / self._total)

    def u(self, x: Any) -> Any:
        """u(x) = (x^2 - 1)^2 / eps + tilt x."""
        return (x * x - 1.0) ** 2 / self.eps + self.tilt * x

    def _du(self, x: Any) -> Any:
        return 4.0 * x * (x * x - 1.0) / self.eps + self.tilt

    def _d2u(self, x: Any) -> Any:
        return (12.0 * x * x - 4.0) / self.eps

    def pdf(self, z: ArrayLike) -> np.ndarray:
        """f(z) = exp(-u(z)) / Z (exact up to the quadrature of Z), elementwise."""
        z = np.asarray(z, dtype=np.float64)
        return np.exp(-(self.u(z) - self._umin) - self._log_zs)

    def _partial(self, k: np.ndarray, z: np.ndarray) -> np.ndarray:
        """int_{grid[k]}^{z} f by 10-point Gauss–Legendre (z within cell k)."""
        a = self.grid[k]
        half = 0.5 * (z - a)
        nodes = (a + half)[:, None] + half[:, None] * GL_NODES[None, :]
        return half * (self.pdf(nodes) @ GL_WEIGHTS)

    def cdf(self, z: ArrayLike) -> np.ndarray | float:
        """F(z) = int_{-inf}^z f = (cum[k] + int_{grid[k]}^z f) / cum[-1], z in cell k; 0 / 1 outside the
        support; elementwise, accurate to ~1e-13."""
        z = np.asarray(z, dtype=np.float64)
        flat = z.reshape(-1)
        out = np.empty(flat.shape)
        for s in range(0, flat.size, CHUNK):
            zz = np.clip(flat[s:s + CHUNK], self.lo, self.hi)
            k = np.clip(((zz - self.lo) / self._h).astype(np.int64), 0, self.grid.size - 2)
            out[s:s + CHUNK] = (self.cum[k] + self._partial(k, zz)) / self._total
        out = np.clip(out, 0.0, 1.0).reshape(z.shape)
        return float(out) if out.ndim == 0 else out

    def ppf(self, q: ArrayLike) -> np.ndarray:
        """F^{-1}(q) for q in [0, 1]: the grid cell by search, then Newton on F within the cell, bisecting
        whenever a Newton step leaves the bracket; accurate to ~1e-13 in z."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        out = np.empty(q.shape)
        for s in range(0, q.size, CHUNK):
            target = np.clip(q[s:s + CHUNK], 0.0, 1.0) * self._total
            k = np.clip(np.searchsorted(self.cum, target, side="right") - 1, 0, self.grid.size - 2)
            lo, hi = self.grid[k].copy(), self.grid[k + 1].copy()
            c0, c1 = self.cum[k], self.cum[k + 1]
            frac = np.where(c1 > c0, (target - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.5)
            z = lo + np.clip(frac, 0.0, 1.0) * (hi - lo)
            active = np.arange(z.size)
            for _ in range(NEWTON_STEPS):
                ka, za, la, ha = k[active], z[active], lo[active], hi[active]
                g = c0[active] + self._partial(ka, za) - target[active]
                la = np.where(g < 0, za, la)
                ha = np.where(g < 0, ha, za)
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    step = za - g / self.pdf(za)
                inside = np.isfinite(step) & (step > la) & (step < ha)
                converged = np.abs(g) <= 1e-15
                new = np.where(converged, za, np.where(inside, step, 0.5 * (la + ha)))
                z[active], lo[active], hi[active] = new, la, ha
                tol = 1e-13 * (1.0 + np.abs(za))
                moving = ~converged & (np.abs(new - za) > tol) & (ha - la > tol)
                active = active[moving]
                if active.size == 0:
                    break
            out[s:s + CHUNK] = z
        return out


def _newton_polish(f: Any, df: Any, x: float, steps: int = 3) -> float:
    """A few Newton steps on f(x) = 0 from x (to clean up np.roots)."""
    for _ in range(steps):
        d = df(x)
        if d == 0:
            break
        x = x - f(x) / d
    return float(x)


@functools.lru_cache(maxsize=256)
def well_1d(eps: float, tilt: float) -> Well1D:
    """The cached `Well1D` for u(x) = (x^2 - 1)^2 / eps + tilt x (one set of quadratures per distinct pair)."""
    return Well1D(eps, tilt)


def check_dim(dim: Any, minimum: int = 1) -> int:
    """dim as an int >= minimum, or an SDEKitError naming dim."""
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < minimum:
        raise SDEKitError(f"dim must be an integer >= {minimum}; got {dim!r}")
    return int(dim)


def per_coordinate(v: Any, dim: int, name: str) -> np.ndarray:
    """A scalar broadcast to shape (dim,), or a finite (dim,) array, as float64; else an SDEKitError naming name."""
    arr = float_array(v, name)
    if arr.ndim == 0:
        arr = float_array(np.full(dim, float(arr)), name)  # (float_array skips the finiteness check on scalars)
    if arr.shape != (dim,):
        raise SDEKitError(f"{name} must be a scalar or have shape (dim,) = ({dim},); got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def finite_scalar(v: Any, name: str) -> float:
    """v as a finite float, or an SDEKitError naming name."""
    arr = float_array(v, name)
    if arr.ndim != 0:
        raise SDEKitError(f"{name} must be a scalar; got shape {arr.shape}")
    if not np.isfinite(arr):
        raise SDEKitError(f"{name} must be finite; got {float(arr)}")
    return float(arr)


def check_index(i: Any, dim: int) -> int:
    """A coordinate index i in [0, dim), or an SDEKitError naming i."""
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < dim:
        raise SDEKitError(f"i must be a coordinate index in [0, {dim - 1}]; got {i!r}")
    return int(i)


class ClosedFormTarget(EnergyTarget):
    """An `EnergyTarget` whose normaliser is known (``log_normalizer`` = log Z): the shared methods of
    `DoubleWell`, `Rosenbrock` and `NealFunnel`. A single point x of shape (d,) gives a float energy /
    log-density and a (d,) gradient; a batch (n, d) gives shapes (n,) and (n, d).
    """

    log_normalizer: float

    def energy(self, x: ArrayLike) -> np.ndarray | float:
        """U(x) = -log pi(x) - log Z; shape (n,) for x (n, d), a float for x (d,)."""
        _, single = as_points(x, self.dim)
        u = energy_and_grad(self, x)[0]
        return float(u[0]) if single else u

    def grad_energy(self, x: ArrayLike) -> np.ndarray:
        """grad U(x); shape (n, d) for x (n, d), (d,) for x (d,)."""
        _, single = as_points(x, self.dim)
        g = energy_and_grad(self, x)[1]
        return g[0] if single else g

    def score(self, x: ArrayLike) -> np.ndarray:
        """grad log pi(x) = -grad U(x); same shape as `grad_energy`."""
        return -self.grad_energy(x)

    def log_prob(self, x: ArrayLike) -> np.ndarray | float:
        """log pi(x) = -U(x) - log Z (normalised); shape (n,) for x (n, d), a float for x (d,)."""
        return -self.energy(x) - self.log_normalizer

    def check_gradient(self, x: ArrayLike, rel_step: float = 1e-6, rtol: float = 1e-4) -> float:
        """Max relative error of grad U against central differences (U(x + e_i h) - U(x - e_i h)) / (2 h) at the
        rows of x (`EnergyTarget.check_gradient` on this target's energy_fn); SDEKitError above rtol."""
        return EnergyTarget(self.energy_fn, self.dim, self.params).check_gradient(x, rel_step, rtol)


class DoubleWell(ClosedFormTarget):
    """pi(x) = prod_i exp(-(x_i^2 - 1)^2 / eps_i - tilt_i x_i) / Z_i on R^d: independent 1-D double wells.

    eps (> 0) and tilt are scalars or (d,) arrays; small eps deepens the barrier (height 1 / eps at
    tilt 0), tilt > 0 favours the left well.

    Attributes:
      dim: d; eps, tilt: (d,) read-only arrays.
      params: (1 / eps (d,), tilt (d,)), contiguous float64: the ``p`` of ``energy_fn``.
      energy_fn(x, p, grad) -> U: njit, one point (`double_well_energy`).
      log_normalizer: log Z = sum_i log Z_i (scipy quad per distinct (eps_i, tilt_i)).
    """

    def __init__(self, dim: int = 1, eps: ArrayLike = 0.5, tilt: ArrayLike = 0.0) -> None:
        d = check_dim(dim)
        e = per_coordinate(eps, d, "eps")
        if not np.all(e > 0):
            k = int(np.flatnonzero(~(e > 0))[0])
            raise SDEKitError(f"eps must be positive; eps[{k}] = {e[k]}")
        t = per_coordinate(tilt, d, "tilt")
        self.eps = readonly(e)
        self.tilt = readonly(t)
        super().__init__(double_well_energy, d, (np.ascontiguousarray(1.0 / e), np.ascontiguousarray(t)),
                         name="double_well")
        self._wells = [well_1d(float(e[i]), float(t[i])) for i in range(d)]
        self.log_normalizer: float = float(sum(w.log_normalizer for w in self._wells))

    def __repr__(self) -> str:
        return f"DoubleWell(dim={self.dim}, eps={self.eps.tolist()}, tilt={self.tilt.tolist()})"

    def sample(self, n: int, seed: Seed = None) -> np.ndarray:
        """n exact i.i.d. draws, shape (n, d): x_i = F_i^{-1}(u_i), u ~ U(0, 1)^(n, d) from
        np.random.default_rng(seed), F_i the exact marginal CDF (inverted by safeguarded Newton)."""
        n = sample_count(n)
        rng = np.random.default_rng(seed)
        u = rng.random((n, self.dim))
        out = np.empty((n, self.dim))
        for i, well in enumerate(self._wells):
            out[:, i] = well.ppf(u[:, i])
        return out

    def marginal_law(self, i: int) -> Law1D:
        """The exact law of x_i (a `sdekit.targets.law1d.Law1D`): f_i(z) = exp(-(z^2 - 1)^2 / eps_i - tilt_i z) / Z_i,
        F_i by Gauss–Legendre quadrature (~1e-13), E X^k, k = 1..4, by quadrature."""
        i = check_index(i, self.dim)
        w = self._wells[i]
        return Law1D(w.cdf, w.pdf, w.moments, f"DoubleWell x[{i}] (eps={w.eps:g}, tilt={w.tilt:g})")

    @property
    def mean(self) -> np.ndarray:
        """E[X]_i = int z f_i(z) dz (quadrature), shape (d,)."""
        return readonly(np.array([w.moments[0] for w in self._wells]))

    @property
    def cov(self) -> np.ndarray:
        """Cov[X] = diag(E x_i^2 - (E x_i)^2) (independent coordinates; central moments by quadrature)."""
        return readonly(np.diag([w.var for w in self._wells]))
