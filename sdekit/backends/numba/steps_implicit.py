"""The drift-implicit step family "theta" (stochastic θ-method, drift-implicit Milstein), in place on (n, dim).

Signature and conventions as in `sdekit.backends.numba.steps`. Parameters: `sdekit.solvers.stiff.ThetaParams`.

    c  = X + (1 - θ) f(X, t) h + g(X, t) ΔW  [+ (g(X̄) - g)(ΔW² - |h|) / (2 sqrt|h|), X̄ = X + f h + g sqrt|h|]
    X' solves F(Y) = Y - c - θ h f(Y, t + h) = 0

by Newton's method from Y_0 = c, with the Jacobian I - θ h J_f(Y) built by forward differences (one drift
evaluation per column, all paths of the chunk at once) and solved per path by Gaussian elimination with partial
pivoting. A path stops iterating once |Δ_i| <= tol (1 + |Y_i|) for all i, so its result depends on its own values
only (not on the chunk it shares); a path that has not converged after max_iter iterations is set to NaN, which the
runner reports as a NonFiniteError naming path, step and time, with the Newton hint of `ThetaParams`.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from sdekit.backends.numba.access import at2, check_rows


def diag_entry(a, b, i):
    """g's entry (b, i) for diagonal or scalar noise (as `at2`); NaN for a (.., dim, m) matrix, which the Milstein
    variant refuses before a solve: the matrix-noise kernel compiles the Milstein branch but never runs it."""
    a = np.asarray(a)
    return np.nan if a.ndim == 3 else at2(a, b, i)


@overload(diag_entry)
def _diag_entry_impl(a, b, i):
    if isinstance(a, types.Array) and a.ndim == 3:
        return lambda a, b, i: np.nan
    return lambda a, b, i: at2(a, b, i)


@nb.njit
def _dw_component(dw, r, i):
    """ΔW driving component i: ΔW_i (diagonal noise, m = dim) or ΔW_0 (scalar noise, m = 1)."""
    return dw[r, 0] if dw.shape[1] == 1 else dw[r, i]


@nb.njit
def _solve_row(a, b):
    """Solve a y = b in place (b becomes y) for one dense (d, d) matrix, partial pivoting; a is overwritten."""
    d = b.shape[0]
    for k in range(d):
        piv = k
        for i in range(k + 1, d):
            if abs(a[i, k]) > abs(a[piv, k]):
                piv = i
        if piv != k:
            for j in range(d):
                a[k, j], a[piv, j] = a[piv, j], a[k, j]
            b[k], b[piv] = b[piv], b[k]
        for i in range(k + 1, d):
            m = a[i, k] / a[k, k]
            for j in range(k, d):
                a[i, j] -= m * a[k, j]
            b[i] -= m * b[k]
    for k in range(d - 1, -1, -1):
        acc = b[k]
        for j in range(k + 1, d):
            acc -= a[k, j] * b[j]
        b[k] = acc / a[k, k]


@nb.njit
def _newton_update(y, jac, fy, c, theta_h, r, rhs, tol):
    """One Newton update of path r (Δ = -J_F^{-1} F(Y)); True when the update is below tolerance."""
    d = y.shape[1]
    for i in range(d):
        rhs[i] = -(y[r, i] - c[r, i] - theta_h * at2(fy, r, i))
    _solve_row(jac[r], rhs)
    small = True
    for i in range(d):
        y[r, i] += rhs[i]
        small &= abs(rhs[i]) <= tol * (1.0 + abs(y[r, i]))
    return small


@nb.njit
def step_theta(f, g, gdw, x, t, h, dw, dz, p, work, tab):
    """Stochastic θ-method / drift-implicit Milstein (Itô): X' = X + [(1-θ) f(X) + θ f(X')] h + g ΔW [+ Milstein]."""
    theta, tol, max_iter, fd_step, milstein = tab[0][0], tab[0][1], int(tab[0][2]), tab[0][3], tab[0][4] != 0.0
    n, d = x.shape
    c = work[0]
    y = work[1]
    yp = work[2]
    fx = f(x, t, p)
    check_rows(fx, n)
    gx = g(x, t, p)
    for r in range(n):
        for i in range(d):
            c[r, i] = x[r, i] + (1.0 - theta) * at2(fx, r, i) * h + gdw(gx, dw, r, i)
    if milstein:
        sq = math.sqrt(abs(h))
        for r in range(n):
            for i in range(d):
                yp[r, i] = x[r, i] + at2(fx, r, i) * h + diag_entry(gx, r, i) * sq
        ga = g(yp, t, p)
        for r in range(n):
            for i in range(d):
                dwi = _dw_component(dw, r, i)
                c[r, i] += (diag_entry(ga, r, i) - diag_entry(gx, r, i)) * (dwi * dwi - abs(h)) / (2.0 * sq)
    for r in range(n):
        for i in range(d):
            y[r, i] = c[r, i]
    theta_h = theta * h
    done = np.zeros(n, dtype=np.bool_)
    jac = np.empty((n, d, d))
    eps = np.empty(n)
    rhs = np.empty(d)
    n_done = 0
    if theta_h == 0.0:
        n_done = n  # explicit: Y = c
    it = 0
    while n_done < n and it < max_iter:
        it += 1
        t1 = t + h
        fy = f(y, t1, p)
        check_rows(fy, n)
        for j in range(d):
            for r in range(n):
                for i in range(d):
                    yp[r, i] = y[r, i]
                eps[r] = fd_step * max(1.0, abs(y[r, j]))
                yp[r, j] += eps[r]
            fj = f(yp, t1, p)
            check_rows(fj, n)
            for r in range(n):
                for i in range(d):
                    jac[r, i, j] = (1.0 if i == j else 0.0) - theta_h * (at2(fj, r, i) - at2(fy, r, i)) / eps[r]
        for r in range(n):
            if not done[r] and _newton_update(y, jac, fy, c, theta_h, r, rhs, tol):
                done[r] = True
                n_done += 1
    for r in range(n):
        for i in range(d):
            x[r, i] = y[r, i] if done[r] else np.nan
