"""Milstein for matrix noise (dim, m): commutative noise from dW alone, any noise with the Lévy area.

Signature and conventions as in `steps`: step(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf) on a chunk x
of shape (n, dim); dw = dW of shape (n, m); drift terms use h, noise terms |h|. For a solver with
``levy_area=True`` the kernel passes the area matrix in dz, shape (n, m * m) with A_jk at column j m + k
(`sdekit.noise.levy_area`); otherwise dz is (n, m) and unused, so the area terms are absent (exact for commutative
noise, where they cancel).
"""

from __future__ import annotations

import math

import numba as nb

from sdekit.backends.numba.access import at2, at3, check_rows
from sdekit.backends.numba.evaluate import evaluate


@nb.njit
def _double_integral(dw, dz, r, j, k, m, habs, ito, has_area):
    """I_(j,k) over the step: (dW_j^2 - |h|)/2 (Itô) or dW_j^2/2 (Stratonovich) on the diagonal, and
    dW_j dW_k / 2 + A_jk off it (A = 0 without the area)."""
    if j == k:
        return 0.5 * (dw[r, j] * dw[r, j] - (habs if ito else 0.0))
    a = dz[r, j * m + k] if has_area else 0.0
    return 0.5 * dw[r, j] * dw[r, k] + a


@nb.njit
def step_milstein_matrix(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Derivative-free Milstein for a (dim, m) noise matrix; strong order 1 for commutative noise, or for any noise
    when the Lévy area is supplied.

        x' = x + f h + sum_j g_j dW_j + sum_{j,k} (L^j g_k) I_(j,k),   L^j g_k = sum_i g_ij d g_k / d x_i,

    with the directional derivative along column g_j by a difference of g (Kloeden & Platen 1992, §11.1 and
    eq. 11.1.5 per column; Milstein's scheme for systems, §10.3, eq. 10.3.3): Itô, x_j = x + f h + g_j sqrt|h|,
    L^j g_k ~ (g_k(x_j) - g_k(x)) / sqrt|h| (error O(sqrt h) times a mean-zero I_(j,k) = O(h), so O(h^1.5) local and
    mean zero: the strong order stays 1); Stratonovich (tab[0][0] == 0), central differences at x +- g_j sqrt|h|.
    work[0] / work[1]: the supporting states; work[2]: the accumulated update. Costs 1 + m (Itô) or 1 + 2m
    (Stratonovich) evaluations of g per step.
    """
    ito = tab[0][0] != 0.0
    n, d = x.shape
    m = dw.shape[1]
    has_area = m > 1 and dz.shape[1] == m * m
    habs = abs(h)
    sq = math.sqrt(habs)
    hf = h if ito else 0.0
    fx = evaluate(f, 0, x, t, p, fbuf)
    check_rows(fx, n)
    gx = evaluate(g, 0, x, t, p, gbuf)
    xa = work[0]
    xb = work[1]
    acc = work[2]
    for r in range(n):
        for i in range(d):
            s = at2(fx, r, i) * h
            for j in range(m):
                s += at3(gx, r, i, j) * dw[r, j]
            acc[r, i] = s
    for j in range(m):
        for r in range(n):
            for i in range(d):
                gij = at3(gx, r, i, j) * sq
                xa[r, i] = x[r, i] + at2(fx, r, i) * hf + gij
                xb[r, i] = x[r, i] - gij
        ga = evaluate(g, 1, xa, t, p, gbuf)
        if ito:
            for r in range(n):
                for i in range(d):
                    s = 0.0
                    for k in range(m):
                        s += (at3(ga, r, i, k) - at3(gx, r, i, k)) * _double_integral(dw, dz, r, j, k, m, habs,
                                                                                         ito, has_area)
                    acc[r, i] += s / sq
        else:
            gb = evaluate(g, 2, xb, t, p, gbuf)
            for r in range(n):
                for i in range(d):
                    s = 0.0
                    for k in range(m):
                        s += (at3(ga, r, i, k) - at3(gb, r, i, k)) * _double_integral(dw, dz, r, j, k, m, habs,
                                                                                         ito, has_area)
                    acc[r, i] += s / (2.0 * sq)
    for r in range(n):
        for i in range(d):
            x[r, i] += acc[r, i]
