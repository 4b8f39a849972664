"""Platen's explicit weak order-2 scheme, one in-place step on a chunk of paths (see `steps`).

Itô, derivative-free (Kloeden & Platen 1992, Numerical Solution of SDEs, §15.1, eq. (15.1.1)), applied component
by component with the component's own increment dW_i (diagonal noise; scalar noise: the one dW):

    Y~  = x + f h + g dW,    Y+- = x + f h +- g sqrt|h|,
    x'  = x + (f(Y~, t + h) + f) h / 2 + (g(Y+, t + h) + g(Y-, t + h) + 2 g) dW / 4
            + (g(Y+, t + h) - g(Y-, t + h)) (dW^2 - |h|) / (4 sqrt|h|),

with f, g at (x, t). The increments are the Gaussian Brownian increments every sdekit solver reads (not the
three-point variables Kloeden & Platen allow), so the scheme also converges pathwise: its last term is the
derivative-free Milstein correction g g' (dW^2 - h) / 2, which makes it strong order 1 where Milstein is (scalar
noise, and diagonal noise with each g_i a function of x_i and t). Weak order 2 needs the same: with a g_i that
depends on other components the cross terms L^r g_i I_(r,i) of Kloeden & Platen's (15.1.3) are missing and the
weak order is 1. Matrix noise (additive noise given as a (dim, m) matrix) runs as stochastic Heun
(`solvers.step_family`): with g independent of x the scheme reduces to Heun's update exactly.

work[0] = Y~, work[1] = Y+, work[2] = Y-.
"""

from __future__ import annotations

import math

import numba as nb

from sdekit.backends.numba.access import at2, check_rows
from sdekit.backends.numba.evaluate import evaluate


@nb.njit
def _supports(work, x, fx, gx, dwi, h, sq, r, i):
    base = x[r, i] + at2(fx, r, i) * h
    gi = at2(gx, r, i)
    work[0, r, i] = base + gi * dwi
    work[1, r, i] = base + gi * sq
    work[2, r, i] = base - gi * sq


@nb.njit
def platen_weak2_increment(fi, f1i, gi, gpi, gmi, dwi, h, sq):
    """The update x' - x of one component from f, f(Y~), g, g(Y+), g(Y-) and the increment dW_i."""
    return (0.5 * (f1i + fi) * h + 0.25 * (gpi + gmi + 2.0 * gi) * dwi
            + 0.25 * (gpi - gmi) * (dwi * dwi - abs(h)) / sq)


@nb.njit
def step_platen_weak2(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Platen's weak order-2 scheme (Itô, element-wise noise): see the module docstring."""
    n, d = x.shape
    sq = math.sqrt(abs(h))
    fx = evaluate(f, 0, x, t, p, fbuf)
    check_rows(fx, n)
    gx = evaluate(g, 0, x, t, p, gbuf)
    for r in range(n):
        for i in range(d):
            _supports(work, x, fx, gx, gdw(1.0, dw, r, i), h, sq, r, i)
    f1 = evaluate(f, 1, work[0], t + h, p, fbuf)
    check_rows(f1, n)
    gp = evaluate(g, 1, work[1], t + h, p, gbuf)
    gm = evaluate(g, 2, work[2], t + h, p, gbuf)
    for r in range(n):
        for i in range(d):
            x[r, i] += platen_weak2_increment(at2(fx, r, i), at2(f1, r, i), at2(gx, r, i), at2(gp, r, i),
                                              at2(gm, r, i), gdw(1.0, dw, r, i), h, sq)
