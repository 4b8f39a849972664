"""The drift-implicit step family "theta" (stochastic θ-method, drift-implicit Milstein), in place on (n, dim).

Signature and conventions as in `sdekit.backends.numba.steps`. Parameters: `sdekit.solvers.stiff.ThetaParams`.

    c  = X + (1 - θ) f(X, t) h + g(X, t) ΔW  [+ (g(X̄) - g)(ΔW² - |h|) / (2 sqrt|h|), X̄ = X + f h + g sqrt|h|]
    X' solves F(Y) = Y - c - θ h f(Y, t + h) = 0

by Newton's method from Y_0 = c, with the Jacobian I - θ h J_f(Y) built by forward differences (one drift
evaluation per column, all paths of the chunk at once), or from the SDE's ``drift_jacobian`` when it has one
(`theta_step_with_jacobian`), and solved per path by Gaussian elimination with partial
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

from sdekit.backends.numba.access import at2, at3, check_rows
from sdekit.backends.numba.evaluate import evaluate
from sdekit.backends.numba.kernels import copy_rows


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
def _explicit_part(x, fx, gx, gdw_values, h, theta, c):
    """c = X + (1 - θ) f(X) h + g(X) ΔW (gdw_values: g ΔW per row and component)."""
    n, d = x.shape
    for r in range(n):
        for i in range(d):
            c[r, i] = x[r, i] + (1.0 - theta) * at2(fx, r, i) * h + gdw_values[r, i]


@nb.njit
def _milstein_support(x, fx, gx, h, yp):
    """yp = X̄ = X + f h + g sqrt|h|, where the derivative-free Milstein correction evaluates g."""
    sq = math.sqrt(abs(h))
    n, d = x.shape
    for r in range(n):
        for i in range(d):
            yp[r, i] = x[r, i] + at2(fx, r, i) * h + diag_entry(gx, r, i) * sq


@nb.njit
def _add_milstein(c, ga, gx, dw, h):
    """c += (g(X̄) - g(X)) (ΔW² - |h|) / (2 sqrt|h|), componentwise (diagonal or scalar noise)."""
    sq = math.sqrt(abs(h))
    n, d = c.shape
    for r in range(n):
        for i in range(d):
            dwi = _dw_component(dw, r, i)
            c[r, i] += (diag_entry(ga, r, i) - diag_entry(gx, r, i)) * (dwi * dwi - abs(h)) / (2.0 * sq)


@nb.njit
def _newton_sweep(y, jac, fy, c, theta_h, done, rhs, tol):
    """One Newton update of every path not yet converged; returns how many converged in this sweep."""
    converged = 0
    for r in range(y.shape[0]):
        if not done[r] and _newton_update(y, jac, fy, c, theta_h, r, rhs, tol):
            done[r] = True
            converged += 1
    return converged


@nb.njit
def _accept(x, y, done):
    """X' = Y for converged paths, NaN for the others (reported by the runner with the Newton hint)."""
    for r in range(x.shape[0]):
        for i in range(x.shape[1]):
            x[r, i] = y[r, i] if done[r] else np.nan


@nb.njit
def step_theta(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Stochastic θ-method / drift-implicit Milstein (Itô): X' = X + [(1-θ) f(X) + θ f(X')] h + g ΔW [+ Milstein],
    Newton's iteration with a forward-difference Jacobian (one drift evaluation per column, all paths at once)."""
    theta, tol, max_iter, fd_step, milstein = tab[0][0], tab[0][1], int(tab[0][2]), tab[0][3], tab[0][4] != 0.0
    n, d = x.shape
    c, y, yp = work[0], work[1], work[2]
    fx = evaluate(f, 0, x, t, p, fbuf)
    check_rows(fx, n)
    gx = evaluate(g, 0, x, t, p, gbuf)
    for r in range(n):
        for i in range(d):
            y[r, i] = gdw(gx, dw, r, i)
    _explicit_part(x, fx, gx, y, h, theta, c)
    if milstein:
        _milstein_support(x, fx, gx, h, yp)
        _add_milstein(c, evaluate(g, 1, yp, t, p, gbuf), gx, dw, h)
    copy_rows(y, c)
    theta_h = theta * h
    done = np.zeros(n, dtype=np.bool_)
    jac = np.empty((n, d, d))
    eps = np.empty(n)
    rhs = np.empty(d)
    n_done = n if theta_h == 0.0 else 0  # θ = 0 is explicit: Y = c
    it = 0
    while n_done < n and it < max_iter:
        it += 1
        t1 = t + h
        fy = evaluate(f, 1, y, t1, p, fbuf)
        check_rows(fy, n)
        for j in range(d):
            for r in range(n):
                for i in range(d):
                    yp[r, i] = y[r, i]
                eps[r] = fd_step * max(1.0, abs(y[r, j]))
                yp[r, j] += eps[r]
            fj = evaluate(f, 2, yp, t1, p, fbuf)
            check_rows(fj, n)
            for r in range(n):
                for i in range(d):
                    jac[r, i, j] = (1.0 if i == j else 0.0) - theta_h * (at2(fj, r, i) - at2(fy, r, i)) / eps[r]
        n_done += _newton_sweep(y, jac, fy, c, theta_h, done, rhs, tol)
    _accept(x, y, done)


_WITH_JACOBIAN: dict = {}


def theta_step_with_jacobian(jacobian):
    """The θ step whose Newton iteration uses the SDE's drift Jacobian J(x, t, p) (compiled, batch signature,
    (n, d, d) or (d, d)) in place of forward differences; made once per Jacobian function. Its kernel is compiled in
    the process (a step that closes over a user function cannot be cached on disk: `closes_over_user_function`)."""
    if jacobian in _WITH_JACOBIAN:
        return _WITH_JACOBIAN[jacobian]

    @nb.njit
    def step_theta_jacobian(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
        # the prologue repeats step_theta's: the disk-cached kernels inline a step's source, and a helper taking f
        # or g as an argument (a first-class function pointer there) would make them uncacheable
        theta, tol, max_iter, milstein = tab[0][0], tab[0][1], int(tab[0][2]), tab[0][4] != 0.0
        n, d = x.shape
        c, y, yp = work[0], work[1], work[2]
        fx = evaluate(f, 0, x, t, p, fbuf)
        check_rows(fx, n)
        gx = evaluate(g, 0, x, t, p, gbuf)
        for r in range(n):
            for i in range(d):
                y[r, i] = gdw(gx, dw, r, i)
        _explicit_part(x, fx, gx, y, h, theta, c)
        if milstein:
            _milstein_support(x, fx, gx, h, yp)
            _add_milstein(c, evaluate(g, 1, yp, t, p, gbuf), gx, dw, h)
        copy_rows(y, c)
        theta_h = theta * h
        done = np.zeros(n, dtype=np.bool_)
        jac = np.empty((n, d, d))
        rhs = np.empty(d)
        n_done = n if theta_h == 0.0 else 0
        it = 0
        while n_done < n and it < max_iter:
            it += 1
            fy = evaluate(f, 1, y, t + h, p, fbuf)
            check_rows(fy, n)
            jy = jacobian(y, t + h, p)
            for r in range(n):
                for i in range(d):
                    for j in range(d):
                        jac[r, i, j] = (1.0 if i == j else 0.0) - theta_h * at3(jy, r, i, j)
            n_done += _newton_sweep(y, jac, fy, c, theta_h, done, rhs, tol)
        _accept(x, y, done)

    _WITH_JACOBIAN[jacobian] = step_theta_jacobian
    return step_theta_jacobian


def closes_over_user_function(step) -> bool:
    """True for a step made by `theta_step_with_jacobian` (its kernel cannot be cached on disk)."""
    return any(step is s for s in _WITH_JACOBIAN.values())
