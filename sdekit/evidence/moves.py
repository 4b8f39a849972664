"""pi_beta-invariant moves of many particles at once, each particle at its own inverse temperature.

The tempered energy of a particle at beta (`sdekit.evidence.energies` for U and U_q = -log q):

    E_beta(x) = beta U(x) + (1 - beta) U_q(x),   grad E_beta = beta grad U + (1 - beta) grad U_q,

(E_0 = U_q exactly, even where U is infinite). Moves, vectorised over particles (rows), with the normals of row i
given by the caller (counter-based streams, so a row's numbers depend only on its own stream):

* MALA (Roberts & Tweedie 1996): y = x - h grad E(x) + sqrt(2 h) xi, accepted with probability min(1, r),
  log r = E(x) - E(y) + (|y - x + h grad E(x)|^2 - |x - y + h grad E(y)|^2) / (4 h);
* HMC (Duane et al. 1987; Neal 2011) with identity mass: p ~ N(0, I), L leapfrog steps of size eps,
  accepted with probability min(1, exp(H(x, p) - H(x', p'))), H = E + |p|^2 / 2.

Both use d + 1 normals per particle and move: d for the proposal (or momentum), the last one for the
uniform u = Phi(z) of the accept test. A proposal with a non-finite energy or gradient is rejected. The per-row
arithmetic after each energy evaluation runs in njit loops (sequential sums per row), so that a row's result
never depends on how many rows there are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from sdekit.evidence.energies import BatchEnergy, GaussianReference
from sdekit.noise.counter import counter_normals

__all__ = ["MOVES", "Particles", "evaluate", "hmc_move", "mala_move", "sweep"]

MOVES = ("mala", "hmc")
SQRT_HALF = math.sqrt(0.5)


@dataclass
class Particles:
    """Particles x (n, d) with U(x), grad U(x), U_q(x) = -log q(x) and grad U_q(x)."""

    x: np.ndarray
    u: np.ndarray
    g: np.ndarray
    uq: np.ndarray
    gq: np.ndarray

    def take(self, idx: np.ndarray) -> Particles:
        """The particles at rows ``idx`` (resampling), copied."""
        return Particles(self.x[idx], self.u[idx], self.g[idx], self.uq[idx], self.gq[idx])

    @property
    def log_ratio(self) -> np.ndarray:
        """V = U - U_q = -log(exp(-U) / q): the exponent of the path's density ratio (n,)."""
        return self.u - self.uq


def evaluate(energy: BatchEnergy, ref: GaussianReference, x: np.ndarray) -> Particles:
    """`Particles` at x: the target's U, grad U and the reference's U_q, grad U_q."""
    x = np.ascontiguousarray(x)
    u, g = energy(x)
    uq, gq = ref.energy(x)
    return Particles(x, u, g, uq, gq)


@nb.njit(inline="always")
def _mix(beta, u, uq):
    if beta == 0.0:
        return uq
    if beta == 1.0:
        return u
    return beta * u + (1.0 - beta) * uq


@nb.njit(parallel=True, cache=True)
def _mala_propose(beta, h, x, g, gq, z, y):
    n, d = x.shape
    for b in nb.prange(n):
        s = math.sqrt(2.0 * h[b])
        for i in range(d):
            y[b, i] = x[b, i] - h[b] * _mix(beta[b], g[b, i], gq[b, i]) + s * z[b, i]


@nb.njit(inline="always")
def _log_uniform(z):
    """log u with u = Phi(z) = erfc(-z / sqrt 2) / 2: a uniform from the row's last normal."""
    return math.log(0.5 * math.erfc(-z * SQRT_HALF))


@nb.njit(parallel=True, cache=True)
def _mala_accept(beta, h, x, u, g, uq, gq, y, uy, gy, uqy, gqy, z, acc):
    n, d = x.shape
    for b in nb.prange(n):
        bt = beta[b]
        hb = h[b]
        ex = _mix(bt, u[b], uq[b])
        ey = _mix(bt, uy[b], uqy[b])
        finite = math.isfinite(ey)
        fwd = 0.0
        back = 0.0
        for i in range(d):
            gex = _mix(bt, g[b, i], gq[b, i])
            gey = _mix(bt, gy[b, i], gqy[b, i])
            finite = finite and math.isfinite(gey)
            a = y[b, i] - x[b, i] + hb * gex
            c = x[b, i] - y[b, i] + hb * gey
            fwd += a * a
            back += c * c
        if not finite:
            acc[b] = 0.0
            continue
        log_r = ex - ey + (fwd - back) / (4.0 * hb)
        acc[b] = 1.0 if log_r >= 0.0 else math.exp(log_r)
        if _log_uniform(z[b, d]) < log_r:
            u[b] = uy[b]
            uq[b] = uqy[b]
            for i in range(d):
                x[b, i] = y[b, i]
                g[b, i] = gy[b, i]
                gq[b, i] = gqy[b, i]


def mala_move(energy: BatchEnergy, ref: GaussianReference, parts: Particles, beta: np.ndarray, h: np.ndarray,
              z: np.ndarray) -> np.ndarray:
    """One MALA step of every particle (row i at beta[i] with step h[i], normals z[i] of length d + 1), in place;
    returns the acceptance probabilities (n,)."""
    y = np.empty_like(parts.x)
    _mala_propose(beta, h, parts.x, parts.g, parts.gq, z, y)
    prop = evaluate(energy, ref, y)
    acc = np.empty(y.shape[0])
    _mala_accept(beta, h, parts.x, parts.u, parts.g, parts.uq, parts.gq, prop.x, prop.u, prop.g, prop.uq, prop.gq,
                 z, acc)
    return acc


@nb.njit(parallel=True, cache=True)
def _kick(beta, eps, g, gq, p, scale):
    """p_i -= scale eps_i grad E_beta(x_i)."""
    n, d = p.shape
    for b in nb.prange(n):
        for i in range(d):
            p[b, i] -= scale * eps[b] * _mix(beta[b], g[b, i], gq[b, i])


@nb.njit(parallel=True, cache=True)
def _drift(eps, p, x):
    n, d = p.shape
    for b in nb.prange(n):
        for i in range(d):
            x[b, i] += eps[b] * p[b, i]


@nb.njit(parallel=True, cache=True)
def _hmc_accept(beta, x, u, g, uq, gq, y, uy, gy, uqy, gqy, z, p, acc):
    n, d = x.shape
    for b in nb.prange(n):
        bt = beta[b]
        k0 = 0.0
        k1 = 0.0
        finite = True
        for i in range(d):
            k0 += z[b, i] * z[b, i]
            k1 += p[b, i] * p[b, i]
            finite = finite and math.isfinite(gy[b, i]) and math.isfinite(y[b, i])
        log_r = (_mix(bt, u[b], uq[b]) + 0.5 * k0) - (_mix(bt, uy[b], uqy[b]) + 0.5 * k1)
        if not (finite and math.isfinite(log_r)):
            acc[b] = 0.0
            continue
        acc[b] = 1.0 if log_r >= 0.0 else math.exp(log_r)
        if _log_uniform(z[b, d]) < log_r:
            u[b] = uy[b]
            uq[b] = uqy[b]
            for i in range(d):
                x[b, i] = y[b, i]
                g[b, i] = gy[b, i]
                gq[b, i] = gqy[b, i]


def hmc_move(energy: BatchEnergy, ref: GaussianReference, parts: Particles, beta: np.ndarray, eps: np.ndarray,
             z: np.ndarray, n_leapfrog: int) -> np.ndarray:
    """One HMC transition of every particle (identity mass, momentum z[i, :d], ``n_leapfrog`` leapfrog steps of
    size eps[i] at beta[i]), in place; returns the acceptance probabilities (n,)."""
    d = parts.x.shape[1]
    p = np.ascontiguousarray(z[:, :d])
    prop = Particles(parts.x.copy(), parts.u, parts.g, parts.uq, parts.gq)
    _kick(beta, eps, prop.g, prop.gq, p, 0.5)
    for step in range(n_leapfrog):
        _drift(eps, p, prop.x)
        prop = evaluate(energy, ref, prop.x)
        _kick(beta, eps, prop.g, prop.gq, p, 1.0 if step < n_leapfrog - 1 else 0.5)
    acc = np.empty(p.shape[0])
    _hmc_accept(beta, parts.x, parts.u, parts.g, parts.uq, parts.gq, prop.x, prop.u, prop.g, prop.uq, prop.gq, z, p,
                acc)
    return acc


def sweep(move: str, energy: BatchEnergy, ref: GaussianReference, parts: Particles, beta: np.ndarray,
          step: np.ndarray, n_moves: int, n_leapfrog: int, seed: int, stream: int, rows: np.ndarray,
          counter: int) -> tuple[np.ndarray, int]:
    """``n_moves`` moves (``move`` = "mala" or "hmc") of every particle, in place; the normals of row i of move t are
    the counter normals (`sdekit.noise.counter.counter_normals`) of path rows[i] (the particle's global index), draws
    [(counter + t)(d + 1), (counter + t + 1)(d + 1)). Returns (mean acceptance probability per row,
    counter + n_moves)."""
    n, d = parts.x.shape
    acc = np.zeros(n)
    lo, hi = int(rows.min()), int(rows.max()) + 1
    for t in range(n_moves):
        z_all = counter_normals(seed, hi - lo, d + 1, path_offset=lo, stream=stream,
                                draw_offset=(counter + t) * (d + 1))
        z = z_all if (hi - lo == n and rows[0] == lo) else np.ascontiguousarray(z_all[rows - lo])
        if move == "mala":
            acc += mala_move(energy, ref, parts, beta, step, z)
        else:
            acc += hmc_move(energy, ref, parts, beta, step, z, n_leapfrog)
    return acc / n_moves, counter + n_moves
