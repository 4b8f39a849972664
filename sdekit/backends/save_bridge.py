"""Saves strictly inside a step: the Brownian bridge from the step's own draws, shared by the Numba and NumPy backends.

A save at s = t_k + u inside the step [t_k, t_k + h] is reached by a partial step of the same solver from X_k over u,
driven by (W_u, J_u) (J_u = int_0^u W, I_(1,0) of the partial step) drawn from their law *conditioned on* the step's
own (W_h, J_h) (dW and dz of `kernels.draw_increments`; W alone for solvers without auxiliary noise). With
x = (W_u, J_u), y = (W_h, J_h), all Gaussian with mean 0 and (times measured from t_k, |u| and |h| for either
direction of time)

    Var W_u = u,  Cov(W_u, J_u) = u^2/2,  Var J_u = u^3/3,
    Cov(W_u, W_h) = u,  Cov(W_u, J_h) = u h - u^2/2,  Cov(J_u, W_h) = u^2/2,  Cov(J_u, J_h) = u^2 h/2 - u^3/6,
    Var W_h = h,  Cov(W_h, J_h) = h^2/2,  Var J_h = h^3/3,

the conditional law is x | y ~ N(A y, C) with A = S_xy S_yy^-1 and C = S_xx - A S_xy^T (Gaussian conditioning);
x = A y + L z with L the Cholesky factor of C and z two standard normals per Brownian component. Without auxiliary
noise, conditioning on W_h alone: W_u = (u/h) W_h + sqrt(u (h - u) / h) z (the Brownian bridge), and J_u is not used.

The normals z are the counter-based normals of `sdekit.noise.counter` on stream STREAM_SAVE_BRIDGE, a pure function of
(seed, path, index) with index (save number * m + component) * 2 + (0 for W, 1 for J): they never touch the per-path
generator streams of the steps, so the step grid, every step's increments, and hence X at every grid time are
bit-identical to the solve without the save.

With noise_substeps = S > 1 a step's increments are sums of S sub-increments (xi_q, and zeta_q = I_(1,0) of
sub-interval q) of width h_f = h / S, and the bridge is conditioned on them (exact path coupling): with q0 the
sub-interval holding u (u = q0 h_f + u', 0 <= u' < h_f; u' within 1e-10 of the span of a substep boundary is
that boundary, u' = 0), W_pre = sum_{q < q0} xi_q and J_pre the I_(1,0) of the first
q0 sub-intervals (the recurrence of `kernels.draw_increments`), (W', J') is bridged over u' from (xi_q0, zeta_q0), and

    W_u = W_pre + W',   J_u = J_pre + W_pre u' + J';

so a save on the fine grid sees exactly the Brownian path of the solve with S times more steps.
"""

from __future__ import annotations

import math

import numpy as np

from sdekit.noise.counter import counter_normals

STREAM_SAVE_BRIDGE = 0x53415645  # "SAVE": the bridge normals of off-grid saves; no other solve uses this stream
N_COEF = 9  # (a_ww, a_wj, a_jw, a_jj, l_ww, l_jw, l_jj, q0, u'): 7 bridge coefficients, the sub-interval, u' in it


def bridge_coefficients(h: float, u: float, aux: bool) -> np.ndarray:
    """(a_ww, a_wj, a_jw, a_jj, l_ww, l_jw, l_jj): W_u = a_ww W_h + a_wj J_h + l_ww z_1 and
    J_u = a_jw W_h + a_jj J_h + l_jw z_1 + l_jj z_2 (module docstring); h, u > 0 with u < h."""
    if not aux:
        return np.array([u / h, 0.0, 0.0, 0.0, math.sqrt(u * (h - u) / h), 0.0, 0.0])
    v = u / h  # the covariances in units h = 1; W scales with h^(1/2), J with h^(3/2)
    s_xx = np.array([[v, v**2 / 2], [v**2 / 2, v**3 / 3]])
    s_xy = np.array([[v, v - v**2 / 2], [v**2 / 2, v**2 / 2 - v**3 / 6]])
    s_yy = np.array([[1.0, 0.5], [0.5, 1.0 / 3.0]])
    a = np.linalg.solve(s_yy, s_xy.T).T
    c = s_xx - a @ s_xy.T
    l_ww = math.sqrt(max(c[0, 0], 0.0))
    l_jw = c[0, 1] / l_ww if l_ww > 0 else 0.0
    l_jj = math.sqrt(max(c[1, 1] - l_jw**2, 0.0))
    sh = math.sqrt(h)
    return np.array([a[0, 0], a[0, 1] / h, a[1, 0] * h, a[1, 1], l_ww * sh, l_jw * h * sh, l_jj * h * sh])


def save_bridges(grid: object, seed: int, n_paths: int, m: int, aux: bool,
                 substeps: int = 1, path_offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coef (n_saves, N_COEF), row (n_saves,), z (n_off, n_paths, 2m)) of a solve's saves on `grid` (`Grid`):
    for each save strictly inside a step the bridge coefficients over u' within its sub-interval q0 (of `substeps`),
    q0 and u' (zeros for on-grid saves), the row of its normals in z (-1 for on-grid saves), and the normals (row p
    of z: path path_offset + p)."""
    n_saves = grid.save_steps.size
    coef = np.zeros((n_saves, N_COEF))
    row = np.full(n_saves, -1, dtype=np.int64)
    off = np.flatnonzero(grid.save_offsets != 0.0)
    mm = max(m, 1)
    snap = 1e-10 * abs(grid.ts[-1] - grid.ts[0])
    z = np.empty((off.size, n_paths, 2 * mm))
    for r, s in enumerate(off):
        k = int(grid.save_steps[s])
        h_sub = abs(grid.ts[k + 1] - grid.ts[k]) / substeps
        u = abs(grid.save_offsets[s])
        q0 = min(int(u / h_sub), substeps - 1)
        u_in = u - q0 * h_sub
        if u_in > h_sub - snap and q0 + 1 < substeps:  # on a substep boundary, as `fixed_grid` snaps to grid times
            q0, u_in = q0 + 1, 0.0
        elif u_in < snap:
            u_in = 0.0
        coef[s, :7] = bridge_coefficients(h_sub, u_in, aux) if u_in > 0.0 else 0.0
        coef[s, 7:] = q0, u_in
        row[s] = r
        if m > 0:
            z[r] = counter_normals(seed, n_paths, 2 * m, path_offset=path_offset, stream=STREAM_SAVE_BRIDGE,
                                   draw_offset=int(s) * 2 * m)
    return coef, row, z
