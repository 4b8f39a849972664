"""NumPy reference of the stiff step families "theta" and "skrock" (the oracle of the Numba steps).

Written out plainly and vectorised over all paths; the formulas and conventions are those of
`sdekit.backends.numba.steps_implicit` and `sdekit.backends.numba.steps_skrock` (see there and
`sdekit.solvers.stiff`). Paths that stop converging are set to NaN, as in the kernels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sdekit.solvers.stiff import skrock_omegas, skrock_stages

GOLDEN_ANGLE = 2.399963229728653  # the power iteration's start direction, as in steps_skrock


def _vec(a: Any, n: int, d: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, dtype=float), (n, d))


def theta_step(f, g, noise, x, t, h, dw, dz, p, solver, calculus, jacobian=None):
    """X' solving X' = c + θ h f(X', t + h), c = X + (1 - θ) f h + g ΔW [+ Milstein], by Newton (forward-difference
    Jacobian, or the SDE's drift_jacobian)."""
    prm = solver.tableau
    n, d = x.shape
    fx, gx = _vec(f(x, t, p), n, d), g(x, t, p)
    c = x + (1.0 - prm.theta) * fx * h + noise.apply(gx, dw, n, d)
    if prm.milstein:
        sq = math.sqrt(abs(h))
        gv = _vec(gx, n, d)
        ga = _vec(g(x + fx * h + gv * sq, t, p), n, d)
        dwi = dw[:, :1] if noise.scalar else dw
        c = c + (ga - gv) * (dwi * dwi - abs(h)) / (2.0 * sq)
    th = prm.theta * h
    y = c.copy()
    done = np.full(n, th == 0.0)
    for _ in range(prm.max_iter):
        if done.all():
            break
        fy = _vec(f(y, t + h, p), n, d)
        if jacobian is not None:
            jac = -th * np.broadcast_to(np.asarray(jacobian(y, t + h, p), dtype=float), (n, d, d))
        else:
            jac = np.empty((n, d, d))
            for j in range(d):
                eps = prm.fd_step * np.maximum(1.0, np.abs(y[:, j]))
                yp = y.copy()
                yp[:, j] += eps
                jac[:, :, j] = -th * (_vec(f(yp, t + h, p), n, d) - fy) / eps[:, None]
        jac = jac + np.eye(d)
        live = ~done
        delta = np.linalg.solve(jac[live], -(y[live] - c[live] - th * fy[live])[:, :, None])[:, :, 0]
        y[live] += delta
        done[live] = np.all(np.abs(delta) <= prm.newton_tol * (1.0 + np.abs(y[live])), axis=1)
    y[~done] = np.nan
    return y


def _power_rho(f, x, t, p, prm) -> np.ndarray:
    """Per-path spectral-radius estimate: nonlinear power iteration on the drift, times the safety factor."""
    n, d = x.shape
    fx = _vec(f(x, t, p), n, d)
    nf = np.linalg.norm(fx, axis=1)
    v = fx + np.where(nf > 0.0, nf, 1.0)[:, None] * np.sin(1.0 + GOLDEN_ANGLE * np.arange(d))
    nv = np.linalg.norm(v, axis=1)
    v[nv == 0.0] = 1.0
    nv[nv == 0.0] = math.sqrt(d)
    step_len = 1.5e-8 * (1.0 + np.linalg.norm(x, axis=1))
    scale = step_len / nv
    rho = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    for it in range(1, prm.power_iter + 1):
        if done.all():
            break
        diff = _vec(f(x + v * scale[:, None], t, p), n, d) - fx
        nd = np.linalg.norm(diff, axis=1)
        new = nd / step_len
        live = ~done
        conv = (nd == 0.0) | ((it > 1) & (np.abs(new - rho) <= prm.power_tol * new))
        rho[live] = new[live]
        v[live] = diff[live]
        with np.errstate(divide="ignore"):
            scale[live] = np.where(nd[live] > 0.0, step_len[live] / nd[live], 0.0)
        done |= live & conv
    return rho * prm.safety


def skrock_step(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    """SK-ROCK (Abdulle, Almuslimani & Vilmart 2018, eq. 2.6), each path with its own number of stages."""
    prm = solver.tableau
    n, d = x.shape
    q = noise.apply(g(x, t, p), dw, n, d)
    rho = np.full(n, prm.spectral_radius) if prm.spectral_radius > 0.0 else _power_rho(f, x, t, p, prm)
    stages = np.array([skrock_stages(abs(h) * r, prm.damping, prm.max_stages) if np.isfinite(r)
                       else prm.max_stages + 1 for r in rho])
    ok = stages <= prm.max_stages
    w = np.array([skrock_omegas(int(s), prm.damping) if o else (1.0, 1.0) for s, o in zip(stages, ok)])
    w0, w1 = w[:, 0], w[:, 1]
    k2 = x.copy()
    k1 = x + (w1 / w0 * h)[:, None] * _vec(f(x + (0.5 * stages * w1)[:, None] * q, t, p), n, d) \
        + (stages * w1 / w0)[:, None] * q
    tm2, tm1 = np.ones(n), w0.copy()
    for j in range(2, int(stages[ok].max(initial=1)) + 1):
        fk = _vec(f(k1, t, p), n, d)
        live = j <= stages
        tj = 2.0 * w0 * tm1 - tm2
        mu, nu, kappa = 2.0 * w1 * tm1 / tj, 2.0 * w0 * tm1 / tj, -tm2 / tj
        new = (mu * h)[:, None] * fk + nu[:, None] * k1 + kappa[:, None] * k2
        k2 = np.where(live[:, None], k1, k2)
        k1 = np.where(live[:, None], new, k1)
        tm2, tm1 = np.where(live, tm1, tm2), np.where(live, tj, tm1)
    k1[~ok] = np.nan
    return k1


STEPS = {"theta": theta_step, "skrock": skrock_step}
