"""The multivariate normal target N(mu, S): njit batch score and log-density, exact moments and sampling.

The njit functions follow sdekit's batch signature f(x, t, p) (x of shape (n, d), t ignored,
p = ``Gaussian.params``), so they can be used as drifts (e.g. Langevin: f = score) and called
from inside other Numba kernels; new parameter values never recompile.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike
from scipy.special import ndtr

from sdekit.errors import SDEKitError
from sdekit.targets.row_blocks import BLOCK_ROWS, block_product, block_residuals

LOG_2PI = math.log(2.0 * math.pi)
WEIGHT_SUM_TOL = 1e-9
SYMMETRY_RTOL = 1e-10

Seed = int | np.random.Generator | np.random.SeedSequence | None


# --------------------------------------------------------------------------------------------
# njit batch functions; p = (mean (d,), precision (d, d), log_norm (1,), chol (d, d))
# --------------------------------------------------------------------------------------------

@nb.njit(cache=True)
def gaussian_rows(x, p, score, half_quad):
    """score[b] = -P (x_b - mu) and half_quad[b] = (x_b - mu)^T P (x_b - mu) / 2 for every row b of x (n, d).

    Per block of BLOCK_ROWS rows: R = X - mu, U = R P (one matrix product, `block_product`; P symmetric),
    score = -U, half_quad = 1/2 (row sums of R * U); log pi = log_norm - half_quad.
    """
    mu = p[0]
    prec = p[1].astype(np.float64)  # BLAS takes one dtype (float32 params: a float32 solve)
    n, d = x.shape
    r = np.empty((BLOCK_ROWS, d))
    u = np.empty((BLOCK_ROWS, d))
    for c0 in range(0, n, BLOCK_ROWS):
        nc = min(BLOCK_ROWS, n - c0)
        block_residuals(x, c0, nc, 1.0, mu, r)
        block_product(r, prec, u)
        for b in range(nc):
            quad = 0.0
            for i in range(d):
                score[c0 + b, i] = -u[b, i]
                quad += r[b, i] * u[b, i]
            half_quad[c0 + b] = 0.5 * quad


@nb.njit(cache=True)
def gaussian_score(x, t, p):
    """Score of N(mu, S) for each row: s(x) = -P (x - mu), P = S^{-1}; returns (n, d) float64 (`gaussian_rows`)."""
    n, d = x.shape
    out = np.empty((n, d))
    gaussian_rows(x, p, out, np.empty(n))
    return out


@nb.njit(cache=True)
def gaussian_log_prob(x, t, p):
    """Log-density of N(mu, S) for each row: -1/2 (x - mu)^T P (x - mu) - 1/2 log det(2 pi S); returns (n,)."""
    n, d = x.shape
    out = np.empty(n)
    gaussian_rows(x, p, np.empty((n, d)), out)
    log_norm = p[2][0]
    for b in range(n):
        out[b] = log_norm - out[b]
    return out


@nb.njit(cache=True)
def gaussian_batch_energy(x, p, grad):
    """Energy U = 1/2 (x - mu)^T P (x - mu) of every row of x (n, d), returned (n,); writes grad U = P (x - mu)
    into grad (n, d). The batch form of `gaussian_energy` (e.g. for AIS / SMC particles), by `gaussian_rows`."""
    u = np.empty(x.shape[0])
    gaussian_rows(x, p, grad, u)
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            grad[b, i] = -grad[b, i]
    return u


@nb.njit(cache=True)
def gaussian_energy(x, p, grad):
    """Energy of N(mu, S) at one point x (d,): U(x) = 1/2 (x - mu)^T P (x - mu); writes grad U = P (x - mu)."""
    mu = p[0]
    prec = p[1]
    d = x.shape[0]
    u = 0.0
    for i in range(d):
        s = 0.0
        for j in range(d):
            s += prec[i, j] * (x[j] - mu[j])
        grad[i] = s
        u += 0.5 * (x[i] - mu[i]) * s
    return u


# --------------------------------------------------------------------------------------------
# validation helpers (shared with mixture.py)
# --------------------------------------------------------------------------------------------

def float_array(v: Any, name: str) -> np.ndarray:
    """``v`` as a finite float64 array, or an SDEKitError naming ``name``."""
    try:
        arr = np.array(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"{name} must be numeric; got {v!r}") from exc
    if arr.ndim == 0 and not np.isfinite(arr):
        raise SDEKitError(f"{name} must be finite; got {arr.item()}")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise SDEKitError(f"{name} must be finite; {name}[{', '.join(map(str, idx))}] = {arr[idx]}")
    return arr


def spd_factors(c: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(C symmetrised, L lower Cholesky with C = L L^T, precision P = C^{-1}, log det C) for an SPD matrix.

    Raises SDEKitError naming ``name`` if C is not symmetric (to relative 1e-10) or not positive definite.
    """
    scale = float(np.max(np.abs(c)))
    asym = float(np.max(np.abs(c - c.T)))
    if asym > SYMMETRY_RTOL * scale:
        raise SDEKitError(f"{name} must be symmetric; max |C - C^T| = {asym:.3g} (max |C| = {scale:.3g})")
    c = 0.5 * (c + c.T)
    try:
        chol = np.linalg.cholesky(c)
    except np.linalg.LinAlgError as exc:
        raise SDEKitError(f"{name} must be positive definite (its Cholesky factorisation failed)") from exc
    diag = np.diag(chol)
    if not (np.all(np.isfinite(chol)) and np.all(diag > 0)):
        raise SDEKitError(f"{name} must be positive definite (its Cholesky factor has a zero pivot)")
    linv = scipy.linalg.solve_triangular(chol, np.eye(c.shape[0]), lower=True)
    prec = linv.T @ linv
    prec = 0.5 * (prec + prec.T)
    if not np.all(np.isfinite(prec)):
        raise SDEKitError(f"{name} is too close to singular: its inverse is not finite")
    return c, np.ascontiguousarray(chol), np.ascontiguousarray(prec), float(2.0 * np.sum(np.log(diag)))


def as_points(x: ArrayLike, dim: int, name: str = "x") -> tuple[np.ndarray, bool]:
    """(x as a C-contiguous (n, dim) float32/float64 array, whether a single point was given).

    A single point is an array of shape (dim,) (or a scalar when dim = 1); a batch has shape (n, dim).
    """
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise SDEKitError(f"{name} must be numeric; got {x!r}") from exc
    if arr.ndim == 0 and dim == 1:
        return arr.reshape(1, 1), True
    if arr.ndim == 1 and arr.shape[0] == dim:
        return np.ascontiguousarray(arr.reshape(1, dim)), True
    if arr.ndim == 2 and arr.shape[1] == dim:
        return np.ascontiguousarray(arr), False
    raise SDEKitError(f"{name} must have shape ({dim},) or (n, {dim}); got shape {arr.shape}")


def direction(u: ArrayLike, dim: int) -> np.ndarray:
    """A projection direction: a finite, nonzero float64 vector of shape (dim,)."""
    arr = float_array(u, "u")
    if arr.ndim == 0 and dim == 1:
        arr = arr.reshape(1)
    if arr.shape != (dim,):
        raise SDEKitError(f"u must have shape ({dim},); got shape {arr.shape}")
    if not np.any(arr != 0):
        raise SDEKitError("u must be nonzero (the law of u^T x would be a point mass)")
    return arr


def sample_count(n: Any) -> int:
    """n as a non-negative int, or an SDEKitError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise SDEKitError(f"n must be a non-negative integer; got {n!r}")
    return int(n)


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only copy of a."""
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# the target
# --------------------------------------------------------------------------------------------

class Gaussian:
    """The normal law N(mean, cov) on R^d: pi(x) = exp(-1/2 (x - mu)^T S^{-1} (x - mu)) / sqrt(det(2 pi S)).

    Attributes:
      dim: d.
      params: (mean (d,), precision S^{-1} (d, d), log_norm (1,) = -1/2 log det(2 pi S), chol L (d, d)
        with S = L L^T), contiguous float64 arrays: the ``p`` of the njit functions.
      score_fn(x, t, p) -> (n, d): njit, s(x) = -S^{-1} (x - mu).
      log_prob_fn(x, t, p) -> (n,): njit, log pi(x).
      energy_fn(x, p, grad) -> U: njit, one point, U = -log pi + log_norm (the MCMC energy protocol).
      batch_energy_fn(x, p, grad) -> U (n,): njit, the same for every row of x (n, d), grad (n, d).
      log_normalizer: log Z = -log_norm with pi = exp(-U) / Z.
    """

    def __init__(self, mean: ArrayLike, cov: ArrayLike) -> None:
        mu = float_array(mean, "mean")
        if mu.ndim == 0:
            mu = mu.reshape(1)
        if mu.ndim != 1 or mu.shape[0] < 1:
            raise SDEKitError(f"mean must have shape (d,) with d >= 1; got shape {mu.shape}")
        d = mu.shape[0]
        c = float_array(cov, "cov")
        if c.ndim == 0 and d == 1:
            c = c.reshape(1, 1)
        if c.shape != (d, d):
            raise SDEKitError(f"cov must have shape ({d}, {d}) to match mean of shape ({d},); got shape {c.shape}")
        c, chol, prec, logdet = spd_factors(c, "cov")
        self.dim: int = d
        self._mean = readonly(mu)
        self._cov = readonly(c)
        self.params: tuple[np.ndarray, ...] = (
            np.ascontiguousarray(mu), prec, np.array([-0.5 * (d * LOG_2PI + logdet)]), chol)
        self.score_fn = gaussian_score
        self.log_prob_fn = gaussian_log_prob
        self.energy_fn = gaussian_energy
        self.batch_energy_fn = gaussian_batch_energy
        self.log_normalizer: float = 0.5 * (d * LOG_2PI + logdet)

    def __repr__(self) -> str:
        return f"Gaussian(dim={self.dim}, mean={self._mean.tolist()})"

    @property
    def mean(self) -> np.ndarray:
        """E[X] = mu, shape (d,)."""
        return self._mean

    @property
    def cov(self) -> np.ndarray:
        """Cov[X] = S, shape (d, d)."""
        return self._cov

    @property
    def chol(self) -> np.ndarray:
        """Lower Cholesky factor L, S = L L^T."""
        return self.params[3]

    def log_prob(self, x: ArrayLike) -> np.ndarray | float:
        """log pi(x) for x of shape (d,) (a float) or (n, d) (shape (n,))."""
        pts, single = as_points(x, self.dim)
        out = self.log_prob_fn(pts, 0.0, self.params)
        return float(out[0]) if single else out

    def score(self, x: ArrayLike) -> np.ndarray:
        """grad log pi(x) = -S^{-1} (x - mu) for x of shape (d,) or (n, d) (same shape back)."""
        pts, single = as_points(x, self.dim)
        out = self.score_fn(pts, 0.0, self.params)
        return out[0] if single else out

    def sample(self, n: int, seed: Seed = None) -> np.ndarray:
        """n independent draws mu + L z, z ~ N(0, I), from np.random.default_rng(seed); shape (n, d)."""
        n = sample_count(n)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.dim))
        return self._mean + z @ self.chol.T

    def project(self, u: ArrayLike) -> Gaussian:
        """The exact law of u^T X: the 1-D normal N(u^T mu, u^T S u)."""
        u = direction(u, self.dim)
        return Gaussian(np.array([u @ self._mean]), np.array([[u @ self._cov @ u]]))

    def cdf_1d(self, z: ArrayLike) -> np.ndarray | float:
        """CDF of a 1-D target, Phi((z - mu) / sigma), elementwise over z (via scipy.special.ndtr)."""
        if self.dim != 1:
            raise SDEKitError(f"cdf_1d needs a 1-D target (dim = 1); this one has dim = {self.dim}; use project(u)")
        z = np.asarray(z, dtype=np.float64)
        out = ndtr((z - self._mean[0]) / math.sqrt(self._cov[0, 0]))
        return float(out) if out.ndim == 0 else out
