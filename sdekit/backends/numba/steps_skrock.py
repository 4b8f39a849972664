"""The stabilised explicit step family "skrock" (SK-ROCK), in place on (n, dim).

Abdulle, Almuslimani & Vilmart (2018), SIAM/ASA J. Uncertain. Quantif. 6(2), eq. (2.6), Itô, any noise:

    ω_0 = 1 + η/s², ω_1 = T_s(ω_0)/T_s'(ω_0), Q = g(X, t) ΔW,
    K_0 = X, K_1 = X + μ_1 h f(X + ν_1 Q) + κ_1 Q,  μ_1 = ω_1/ω_0, ν_1 = s ω_1/2, κ_1 = s ω_1/ω_0,
    K_j = μ_j h f(K_{j-1}) + ν_j K_{j-1} + κ_j K_{j-2},  μ_j = 2ω_1 T_{j-1}/T_j, ν_j = 2ω_0 T_{j-1}/T_j,
    κ_j = -T_{j-2}/T_j (T_j = T_j(ω_0)),  X' = K_s.

s is the fewest stages with L_s = (1 + ω_0)/ω_1 >= |h| ρ, ρ the drift Jacobian's spectral radius: a bound given in
the parameters (`sdekit.solvers.stiff.SKROCKParams`), else a per-path estimate by the nonlinear power iteration
ρ ≈ |f(X + v) - f(X)| / |v| (|v| = sqrt(eps)(1 + |X|), v started from f(X) + |f(X)| w, w_i = sin(1 + 2.39996 i)),
times a safety factor. Each path
runs its own s (paths of a chunk share the drift evaluations; a finished path is left alone), so results do not
depend on the chunk. Every stage's drift is evaluated at time t (the method is first order; stage times would
differ per path). A path needing more than max_stages stages is set to NaN and reported by the runner.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.backends.numba.access import at2, check_rows
from sdekit.backends.numba.evaluate import evaluate


@nb.njit
def skrock_omegas_nb(s, eta):
    """(ω_0, ω_1) for s stages and damping η (the same arithmetic as `sdekit.solvers.stiff.skrock_omegas`)."""
    w0 = 1.0 + eta / (s * s)
    t_prev, t_cur, d_prev, d_cur = 1.0, w0, 0.0, 1.0
    for _ in range(1, s):
        t_prev, t_cur, d_prev, d_cur = t_cur, 2 * w0 * t_cur - t_prev, d_cur, 2 * t_cur + 2 * w0 * d_cur - d_prev
    return w0, t_cur / d_cur


@nb.njit
def _length(s, eta):
    w0, w1 = skrock_omegas_nb(s, eta)
    return (1.0 + w0) / w1


@nb.njit
def skrock_stages_nb(h_rho, eta, max_stages):
    """Fewest s with L_s >= h ρ; max_stages + 1 when none up to the cap is (or h ρ is not finite)."""
    if not abs(h_rho) < np.inf:
        return max_stages + 1
    s = max(1, int(math.sqrt(max(h_rho, 0.0) / (2.0 - 4.0 * eta / 3.0))))
    if s > max_stages:
        return max_stages + 1
    while s > 1 and _length(s - 1, eta) >= h_rho:
        s -= 1
    while s <= max_stages and _length(s, eta) < h_rho:
        s += 1
    return s


GOLDEN_ANGLE = 2.399963229728653


@nb.njit
def start_direction(i):
    """Component i of the fixed direction added to f(X) to start the power iteration: f(X) alone can be an
    eigenvector of the smallest eigenvalue (a heat equation's sine mode) and would never see the largest."""
    return math.sin(1.0 + GOLDEN_ANGLE * i)


@nb.njit
def _row_norm(a, r):
    acc = 0.0
    for i in range(a.shape[1]):
        acc += a[r, i] * a[r, i]
    return math.sqrt(acc)


@nb.njit
def step_skrock(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """SK-ROCK (Itô, weak order 1): an s-stage damped Chebyshev recursion with the noise injected in stage 1."""
    eta, rho_given, safety, power_iter = tab[0][0], tab[0][1], tab[0][2], int(tab[0][3])
    power_tol, max_stages = tab[0][4], int(tab[0][5])
    n, d = x.shape
    q = work[0]
    k1 = work[1]
    k2 = work[2]
    v = work[3]
    habs = abs(h)
    gx = evaluate(g, 0, x, t, p, gbuf)
    for r in range(n):
        for i in range(d):
            q[r, i] = gdw(gx, dw, r, i)
    rho = np.full(n, rho_given)
    if rho_given <= 0.0:
        fx = evaluate(f, 0, x, t, p, fbuf)
        check_rows(fx, n)
        done = np.zeros(n, dtype=np.bool_)
        scale = np.empty(n)
        for r in range(n):
            for i in range(d):
                v[r, i] = at2(fx, r, i)
            nf = _row_norm(v, r)
            for i in range(d):
                v[r, i] += (nf if nf > 0.0 else 1.0) * start_direction(i)
            nv = _row_norm(v, r)
            if nv == 0.0:
                for i in range(d):
                    v[r, i] = 1.0
                nv = math.sqrt(d)
            scale[r] = 1.5e-8 * (1.0 + _row_norm(x, r)) / nv
            rho[r] = 0.0
        n_done = 0
        it = 0
        while n_done < n and it < power_iter:
            it += 1
            for r in range(n):
                for i in range(d):
                    k1[r, i] = x[r, i] + v[r, i] * scale[r]
            fv = evaluate(f, 1, k1, t, p, fbuf)
            check_rows(fv, n)
            for r in range(n):
                if done[r]:
                    continue
                nv = 0.0
                for i in range(d):
                    v[r, i] = at2(fv, r, i) - at2(fx, r, i)
                    nv += v[r, i] * v[r, i]
                nv = math.sqrt(nv)
                step_len = 1.5e-8 * (1.0 + _row_norm(x, r))
                new = nv / step_len if step_len > 0.0 else 0.0
                if nv == 0.0 or (it > 1 and abs(new - rho[r]) <= power_tol * new):
                    done[r] = True
                    n_done += 1
                rho[r] = new
                scale[r] = step_len / nv if nv > 0.0 else 0.0
        for r in range(n):
            rho[r] *= safety
    stages = np.empty(n, dtype=np.int64)
    w0 = np.empty(n)
    w1 = np.empty(n)
    tm1 = np.empty(n)
    tm2 = np.empty(n)
    s_max = 1
    for r in range(n):
        s = skrock_stages_nb(habs * rho[r], eta, max_stages)
        stages[r] = s
        if s <= max_stages:
            w0[r], w1[r] = skrock_omegas_nb(s, eta)
            s_max = max(s_max, s)
        else:
            w0[r], w1[r] = 1.0, 1.0
        tm2[r] = 1.0
        tm1[r] = w0[r]
    for r in range(n):
        nu1 = 0.5 * stages[r] * w1[r]
        for i in range(d):
            v[r, i] = x[r, i] + nu1 * q[r, i]
    f1 = evaluate(f, 2, v, t, p, fbuf)
    check_rows(f1, n)
    for r in range(n):
        mu1 = w1[r] / w0[r]
        kappa1 = stages[r] * w1[r] / w0[r]
        for i in range(d):
            k2[r, i] = x[r, i]
            k1[r, i] = x[r, i] + mu1 * h * at2(f1, r, i) + kappa1 * q[r, i]
    for j in range(2, s_max + 1):
        fk = evaluate(f, 3, k1, t, p, fbuf)
        check_rows(fk, n)
        for r in range(n):
            if j > stages[r]:
                continue
            tj = 2.0 * w0[r] * tm1[r] - tm2[r]
            mu = 2.0 * w1[r] * tm1[r] / tj
            nu = 2.0 * w0[r] * tm1[r] / tj
            kappa = -tm2[r] / tj
            for i in range(d):
                new = mu * h * at2(fk, r, i) + nu * k1[r, i] + kappa * k2[r, i]
                k2[r, i] = k1[r, i]
                k1[r, i] = new
            tm2[r] = tm1[r]
            tm1[r] = tj
    for r in range(n):
        ok = stages[r] <= max_stages
        for i in range(d):
            x[r, i] = k1[r, i] if ok else np.nan
