"""Reversible Heun (Kidger, Foster, Li & Lyons 2021), one in-place step on a chunk of paths (see `steps`).

Stratonovich; the state is the pair (y, z) and the drift and diffusion are evaluated at z only, once per step:

    z' = 2 y - z + f(z, t) h + g(z, t) dW,
    y' = y + (f(z, t) + f(z', t + h)) h / 2 + (g(z, t) + g(z', t + h)) dW / 2,

started from z_0 = y_0. The map (y, z, f(z), g(z)) -> (y', z', f(z'), g(z')) is algebraically reversible
(`sdekit.backends.reference_reversible_heun.reverse_step`). Strong order 0.5 (1 for additive noise), weak order 1.
Kidger, Foster, Li & Lyons (2021), "Efficient and accurate gradients for neural SDEs", NeurIPS 34, §3.

Carried state. The kernel keeps a solver's work arrays only within one call (a chunk of paths, one segment of the
grid); this family's work arrays are all *carried*: the runner keeps them per path between calls
(`steps.CARRIED_FAMILIES`, `kernels.fixed_step`'s ``carry``), starting at zero. Layout:

    work[0] = z, work[1] = f(z, t), work[2] = started flag (1 once z and f, g at z are set),
    work[3] = g(z, t) element-wise (diagonal, scalar, additive noise), or
    work[3 + j] = column j of the (dim, m) matrix g(z, t) ("reversible_heun_matrix": general / matrix noise).

On the first step of a solve (flag 0) z = y and f, g are evaluated at z; afterwards each step evaluates f and g
once, at the new z.
"""

from __future__ import annotations

import numba as nb

from sdekit.backends.numba.access import at2, at3, check_rows
from sdekit.backends.numba.evaluate import evaluate

Z, FZ, STARTED, GZ = 0, 1, 2, 3  # work slots


@nb.njit
def _store_elem(work, fx, gx, r, i):
    work[FZ, r, i] = at2(fx, r, i)
    work[GZ, r, i] = at2(gx, r, i)


@nb.njit
def _advance_z(work, x, noise, h, r, i):
    """z' = 2 y - z + f(z) h + g(z) dW (the new z overwrites the old)."""
    work[Z, r, i] = 2.0 * x[r, i] - work[Z, r, i] + work[FZ, r, i] * h + noise


@nb.njit
def _advance_y(x, work, f1, noise0, noise1, h, r, i):
    x[r, i] += (work[FZ, r, i] + at2(f1, r, i)) * (0.5 * h) + 0.5 * (noise0 + noise1)


@nb.njit
def _mark_started(work, n):
    for r in range(n):
        work[STARTED, r, 0] = 1.0


@nb.njit
def step_reversible_heun(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Reversible Heun, element-wise noise (diagonal, scalar, additive): see the module docstring."""
    n, d = x.shape
    if work[STARTED, 0, 0] != 1.0:  # first step of the solve: z_0 = y_0, f and g at z_0
        for r in range(n):
            for i in range(d):
                work[Z, r, i] = x[r, i]
        f0 = evaluate(f, 0, work[Z], t, p, fbuf)
        check_rows(f0, n)
        g0 = evaluate(g, 0, work[Z], t, p, gbuf)
        for r in range(n):
            for i in range(d):
                _store_elem(work, f0, g0, r, i)
        _mark_started(work, n)
    gz = work[GZ]
    for r in range(n):
        for i in range(d):
            _advance_z(work, x, gdw(gz, dw, r, i), h, r, i)
    f1 = evaluate(f, 1, work[Z], t + h, p, fbuf)
    check_rows(f1, n)
    g1 = evaluate(g, 1, work[Z], t + h, p, gbuf)
    for r in range(n):
        for i in range(d):
            _advance_y(x, work, f1, gdw(gz, dw, r, i), gdw(g1, dw, r, i), h, r, i)
            _store_elem(work, f1, g1, r, i)


@nb.njit
def _matrix_gdw(work, dw, r, i):
    """sum_j g_ij(z) dW_j with the columns of g(z) in work[GZ + j]."""
    s = 0.0
    for j in range(dw.shape[1]):
        s += work[GZ + j, r, i] * dw[r, j]
    return s


@nb.njit
def _store_matrix(work, fx, gx, m, r, i):
    work[FZ, r, i] = at2(fx, r, i)
    for j in range(m):
        work[GZ + j, r, i] = at3(gx, r, i, j)


@nb.njit
def _new_matrix_gdw(g1, dw, r, i):
    s = 0.0
    for j in range(dw.shape[1]):
        s += at3(g1, r, i, j) * dw[r, j]
    return s


@nb.njit
def step_reversible_heun_matrix(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Reversible Heun, matrix noise (general, or additive given as a (dim, m) matrix): g(z) is kept by column."""
    n, d = x.shape
    m = dw.shape[1]
    if work[STARTED, 0, 0] != 1.0:
        for r in range(n):
            for i in range(d):
                work[Z, r, i] = x[r, i]
        f0 = evaluate(f, 0, work[Z], t, p, fbuf)
        check_rows(f0, n)
        g0 = evaluate(g, 0, work[Z], t, p, gbuf)
        for r in range(n):
            for i in range(d):
                _store_matrix(work, f0, g0, m, r, i)
        _mark_started(work, n)
    for r in range(n):
        for i in range(d):
            _advance_z(work, x, _matrix_gdw(work, dw, r, i), h, r, i)
    f1 = evaluate(f, 1, work[Z], t + h, p, fbuf)
    check_rows(f1, n)
    g1 = evaluate(g, 1, work[Z], t + h, p, gbuf)
    for r in range(n):
        for i in range(d):
            _advance_y(x, work, f1, _matrix_gdw(work, dw, r, i), _new_matrix_gdw(g1, dw, r, i), h, r, i)
            _store_matrix(work, f1, g1, m, r, i)
