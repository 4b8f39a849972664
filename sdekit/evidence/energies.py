"""Batch energies for AIS and SMC: the target's U and the normalised reference's -log q, for many particles.

Two kinds of target give (U (n,), grad U (n, d)) for particles x (n, d):

* an sdekit energy target (``dim``, ``params`` and an njit ``energy_fn(x, p, grad) -> U``, the protocol of
  `sdekit.targets.energy`): every particle is evaluated by the compiled ``energy_fn`` in a Numba ``prange``
  loop, one row per iteration, or, where the target has a ``batch_energy_fn`` (the built-in Gaussian and
  mixture), by matrix products over fixed blocks of rows; either way each row's numbers do not depend on the
  thread count or on the other rows;
* a plain callable ``energy_and_grad(x: (n, d) ndarray) -> (U (n,), grad U (n, d))`` with ``dim`` given
  (e.g. a torch energy network behind an adapter); its values are checked for shape once per call.

The reference q = N(m, C) is normalised: -log q(x) = 1/2 (x - m)^T C^{-1} (x - m) + 1/2 log det(2 pi C), so the
tempering path pi_beta ∝ exp(-beta U) q^(1 - beta) has Z_0 = 1 and Z_1 = Z = int exp(-U) (`sdekit.evidence.ais`).
Its rows are computed by njit loops too (no BLAS, whose blocking may depend on the number of rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError
from sdekit.noise.counter import counter_normals
from sdekit.targets.energy import check_energy_target, energy_function, probe_energy
from sdekit.targets.gaussian import LOG_2PI, Gaussian, float_array, spd_factors

__all__ = ["BatchEnergy", "GaussianReference", "as_batch_energy", "as_reference"]


def _batch_energy(energy, p, x, u, g):
    for i in nb.prange(x.shape[0]):
        u[i] = energy(x[i], p, g[i])


batch_energy_kernel = nb.njit(parallel=True)(_batch_energy)

ENERGY_BLOCK_ROWS = 64  # rows per call of a target's batch energy: a multiple of row_blocks.BLOCK_ROWS
# below this dimension the row loop is as fast or faster (benchmarks/particle_energies.py: the Gaussian's blocked
# energies ran 0.45x the row loop at d = 4 and 0.99x at d = 8, the mixture's 0.92x at d = 4 and 1.78x at d = 8)
ENERGY_BLOCK_MIN_DIM = 8


def _blocked_energy(batch_energy, p, x, u, g):
    n = x.shape[0]
    for b in nb.prange((n + ENERGY_BLOCK_ROWS - 1) // ENERGY_BLOCK_ROWS):
        s = b * ENERGY_BLOCK_ROWS
        e = min(n, s + ENERGY_BLOCK_ROWS)
        ub = batch_energy(x[s:e], p, g[s:e])
        for i in range(e - s):
            u[s + i] = ub[i]


blocked_energy_kernel = nb.njit(parallel=True)(_blocked_energy)


class BatchEnergy:
    """U and grad U of a target for a batch of particles: ``energy(x) -> (u (n,), g (n, d))``.

    Built by `as_batch_energy` from an sdekit energy target (compiled ``energy_fn`` per row, Numba prange) or
    from a callable ``energy_and_grad(x) -> (U, grad U)``. ``n_evaluations`` counts particle evaluations
    (each gives U and its gradient).
    """

    def __init__(self, fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], dim: int, name: str) -> None:
        self._fn = fn
        self.dim = dim
        self.name = name
        self.n_evaluations = 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.n_evaluations += x.shape[0]
        return self._fn(x)


def _compiled(target: Any) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Row by row with the target's ``energy_fn``; or, for a built-in target with a ``batch_energy_fn`` (Gaussian,
    GaussianMixture: matrix products on 8-row blocks, `sdekit.targets.row_blocks`) at d >= ENERGY_BLOCK_MIN_DIM, block
    block of ENERGY_BLOCK_ROWS rows (below that dimension the row loop stays: the same numbers as before). Blocks
    start at fixed multiples of that size, so a row's numbers do not depend on the thread count or the batch; they
    equal ``energy_fn``'s up to the rounding of reassociated sums."""
    energy = energy_function(target)
    params = target.params
    batch = getattr(target, "batch_energy_fn", None) if target.dim >= ENERGY_BLOCK_MIN_DIM else None

    def evaluate(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        u = np.empty(x.shape[0])
        g = np.empty_like(x)
        if batch is not None:
            blocked_energy_kernel(batch, params, x, u, g)
        else:
            batch_energy_kernel(energy, params, x, u, g)
        return u, g

    return evaluate


def _python(fn: Callable, dim: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def evaluate(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        try:
            out = fn(x.copy())
        except SDEKitError:
            raise
        except Exception as exc:
            raise SDEKitError(f"target (energy_and_grad) raised {type(exc).__name__} on x of shape {x.shape}: "
                              f"{exc}") from exc
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise SDEKitError(f"target (energy_and_grad) must return a pair (U (n,), grad U (n, d)); got "
                              f"{type(out).__name__}")
        try:
            u = np.ascontiguousarray(np.asarray(out[0], dtype=np.float64).reshape(-1))
            g = np.ascontiguousarray(np.asarray(out[1], dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise SDEKitError("target (energy_and_grad) must return real arrays (U (n,), grad U (n, d))") from exc
        if u.shape != (n,) or g.shape != (n, dim):
            raise SDEKitError(f"target (energy_and_grad) must return U of shape ({n},) and grad U of shape "
                              f"({n}, {dim}) for x of shape ({n}, {dim}); got {u.shape} and {g.shape}")
        return u, g

    return evaluate


def as_batch_energy(target: Any, dim: int | None = None) -> BatchEnergy:
    """A `BatchEnergy` from an sdekit energy target (``dim`` must then be None or equal target.dim) or from a
    callable ``energy_and_grad(x (n, d)) -> (U (n,), grad U (n, d))`` with ``dim`` (int >= 1) given."""
    if hasattr(target, "energy_fn"):
        check_energy_target(target)
        if dim is not None and dim != target.dim:
            raise SDEKitError(f"dim must be None or equal target.dim = {target.dim} for an energy target; got {dim!r}")
        d = int(target.dim)
        probe_energy(energy_function(target), target.params, np.full(d, 1e-3))
        return BatchEnergy(_compiled(target), d, type(target).__name__)
    if not callable(target):
        raise SDEKitError(f"target must be an sdekit energy target (dim, params, njit energy_fn) or a callable "
                          f"energy_and_grad(x) -> (U (n,), grad U (n, d)); got {type(target).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise SDEKitError(f"dim must be an integer >= 1 when target is a callable energy_and_grad; got {dim!r}")
    return BatchEnergy(_python(target, int(dim)), int(dim), getattr(target, "__name__", "energy_and_grad"))


# --------------------------------------------------------------------------------------------
# the reference q = N(m, C)
# --------------------------------------------------------------------------------------------

@nb.njit(parallel=True, cache=True)
def _reference_energy(x, m, prec, log_norm, u, g):
    """u_i = 1/2 r^T P r + log_norm, g_i = P r, r = x_i - m (row by row, sequential sums)."""
    n, d = x.shape
    for b in nb.prange(n):
        q = 0.0
        for i in range(d):
            s = 0.0
            for j in range(d):
                s += prec[i, j] * (x[b, j] - m[j])
            g[b, i] = s
            q += (x[b, i] - m[i]) * s
        u[b] = 0.5 * q + log_norm


@nb.njit(parallel=True, cache=True)
def _affine_rows(z, m, chol, out):
    """out_i = m + L z_i (row by row)."""
    n, d = z.shape
    for b in nb.prange(n):
        for i in range(d):
            s = m[i]
            for j in range(i + 1):
                s += chol[i, j] * z[b, j]
            out[b, i] = s


class GaussianReference:
    """The normalised reference q = N(mean, cov): ``energy(x)`` = (-log q(x), -grad log q(x)) per row,
    ``sample(seed, n, stream, offset)`` = mean + L z with z counter-based normals (row i from particle
    ``offset + i``'s stream only), ``scale`` = sqrt(trace(cov) / d) (the step-size heuristics' width)."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray) -> None:
        c, chol, prec, logdet = spd_factors(cov, "reference covariance")
        self.dim = mean.shape[0]
        self.mean = np.ascontiguousarray(mean, dtype=np.float64)
        self.cov = c
        self.chol = chol
        self.prec = prec
        self.log_norm = 0.5 * (self.dim * LOG_2PI + logdet)
        self.scale = math.sqrt(float(np.trace(c)) / self.dim)

    def energy(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(-log q(x) (n,), -grad log q(x) (n, d))."""
        u = np.empty(x.shape[0])
        g = np.empty_like(x)
        _reference_energy(x, self.mean, self.prec, self.log_norm, u, g)
        return u, g

    def sample(self, seed: int, n: int, stream: int, offset: int = 0) -> np.ndarray:
        """n draws from q; row i uses the counter normals of path ``offset + i`` (independent of n)."""
        z = counter_normals(seed, n, self.dim, path_offset=offset, stream=stream)
        out = np.empty((n, self.dim))
        _affine_rows(z, self.mean, self.chol, out)
        return out


def as_reference(reference: Any, dim: int) -> GaussianReference:
    """The reference q from None (N(0, I)), a pair (mean, sd) (N(mean, sd^2 I); mean a scalar or (d,)) or an
    sdekit.targets.Gaussian of dimension d (its mean and covariance)."""
    if reference is None:
        return GaussianReference(np.zeros(dim), np.eye(dim))
    if isinstance(reference, Gaussian):
        if reference.dim != dim:
            raise SDEKitError(f"reference must have dimension {dim} (the target's); got a Gaussian of dim "
                              f"{reference.dim}")
        return GaussianReference(np.array(reference.mean), np.array(reference.cov))
    if not isinstance(reference, tuple | list) or len(reference) != 2:
        raise SDEKitError(f"reference must be None, a pair (mean, sd) or an sdekit.targets.Gaussian; got "
                          f"{reference!r}")
    m = float_array(reference[0], "reference mean")
    if m.ndim == 0:
        m = np.full(dim, float(m))
    if m.shape != (dim,):
        raise SDEKitError(f"reference mean must be a scalar or have shape ({dim},); got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise SDEKitError("reference mean must be finite")
    sd = reference[1]
    if isinstance(sd, bool | str) or not isinstance(sd, int | float | np.integer | np.floating) \
            or not math.isfinite(float(sd)) or float(sd) <= 0:
        raise SDEKitError(f"reference sd must be a positive finite number; got {sd!r}")
    return GaussianReference(m, float(sd) ** 2 * np.eye(dim))
