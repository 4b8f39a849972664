"""One in-place step per solver family, on a chunk of paths x of shape (n, dim).

Common signature: step(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf). f and g are the user's
compiled drift and diffusion (for ODEs f is the field, g unused), gdw the noise term of
`access`, dw / dz the Brownian increment and I_(1,0) of each path, shape (n, m), work a
(k, n, dim) scratch array, tab the solver's coefficients as a tuple of arrays. Time may
run backwards (h < 0): drift terms use h, noise terms |h| (the time-reversed variable).
f and g are called through `evaluate.evaluate(f, site, x, t, p, fbuf)`: the user's batch function itself, or a
per-path function evaluated row by row into slot `site` of the kernel's buffer fbuf / gbuf (each call site of a
step its own slot, below `evaluate.F_SITES` / `G_SITES`).

Loops over (row, component) have a separate row-only loop for dim 1: LLVM versions an
inner loop of unknown trip count for vectorisation, which cost 3 ns per row at dim 1,
more than the whole update. Element updates live in small helpers so each formula is
written once; they are plain jitted functions (LLVM inlines them), not Numba IR-inlined,
which measured slower. Helpers take the noise term's value, never the `gdw` function itself: a jitted
function passed on as an argument makes Numba refuse to cache the caller ("dynamic globals") when it
loops over a runtime length, as the matrix-noise term does.
"""

from __future__ import annotations

import math

import numba as nb

from sdekit.backends.numba.access import at2, check_rows
from sdekit.backends.numba.evaluate import evaluate
from sdekit.backends.numba.steps_implicit import step_theta
from sdekit.backends.numba.steps_milstein_matrix import step_milstein_matrix
from sdekit.backends.numba.steps_platen_weak2 import step_platen_weak2
from sdekit.backends.numba.steps_reversible_heun import step_reversible_heun, step_reversible_heun_matrix
from sdekit.backends.numba.steps_skrock import step_skrock
from sdekit.backends.numba.steps_sri import step_sri


@nb.njit
def _em_elem(x, fx, noise, h, r, i):
    x[r, i] += at2(fx, r, i) * h + noise


@nb.njit
def step_euler_maruyama(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """x' = x + f(x, t) h + g(x, t) dW  (Itô; strong 0.5, or 1 for additive noise; weak 1)."""
    n, d = x.shape
    fx = evaluate(f, 0, x, t, p, fbuf)
    check_rows(fx, n)
    gx = evaluate(g, 0, x, t, p, gbuf)
    if d == 1:
        for r in range(n):
            _em_elem(x, fx, gdw(gx, dw, r, 0), h, r, 0)
    else:
        for r in range(n):
            for i in range(d):
                _em_elem(x, fx, gdw(gx, dw, r, i), h, r, i)


@nb.njit
def _milstein_increment(fi, gi, gai, gbi, dwi, h, sq, ito):
    if ito:
        return fi * h + gi * dwi + (gai - gi) * (dwi * dwi - abs(h)) / (2.0 * sq)
    return fi * h + gi * dwi + (gai - gbi) * dwi * dwi / (4.0 * sq)


@nb.njit
def step_milstein(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Derivative-free Milstein for diagonal or scalar noise; strong order 1.

    Itô (Kloeden & Platen 1992, eq. 11.1.5): x_bar = x + f h + g sqrt|h|,
        x' = x + f h + g dW + (g(x_bar) - g) (dW^2 - |h|) / (2 sqrt|h|).
    Stratonovich (tab[0][0] == 0): x_pm = x +- g sqrt|h| (central difference, so the O(sqrt h) error of
    the one-sided difference does not meet the uncentred dW^2),
        x' = x + f h + g dW + (g(x_+) - g(x_-)) dW^2 / (4 sqrt|h|).
    """
    ito = tab[0][0] != 0.0
    n, d = x.shape
    sq = math.sqrt(abs(h))
    fx = evaluate(f, 0, x, t, p, fbuf)
    check_rows(fx, n)
    gx = evaluate(g, 0, x, t, p, gbuf)
    xa = work[0]
    xb = work[1]
    hf = h if ito else 0.0
    if d == 1:
        for r in range(n):
            xa[r, 0] = x[r, 0] + at2(fx, r, 0) * hf + at2(gx, r, 0) * sq
            xb[r, 0] = x[r, 0] - at2(gx, r, 0) * sq
    else:
        for r in range(n):
            for i in range(d):
                xa[r, i] = x[r, i] + at2(fx, r, i) * hf + at2(gx, r, i) * sq
                xb[r, i] = x[r, i] - at2(gx, r, i) * sq
    ga = evaluate(g, 1, xa, t, p, gbuf)
    gb = ga if ito else evaluate(g, 2, xb, t, p, gbuf)
    if d == 1:
        for r in range(n):
            x[r, 0] += _milstein_increment(at2(fx, r, 0), at2(gx, r, 0), at2(ga, r, 0), at2(gb, r, 0),
                                           gdw(1.0, dw, r, 0), h, sq, ito)
    else:
        for r in range(n):
            for i in range(d):
                x[r, i] += _milstein_increment(at2(fx, r, i), at2(gx, r, i), at2(ga, r, i), at2(gb, r, i),
                                               gdw(1.0, dw, r, i), h, sq, ito)


@nb.njit
def _heun_predict(xt, drift0, noise0, x, fx, noise, h, r, i):
    drift0[r, i] = at2(fx, r, i)
    noise0[r, i] = noise
    xt[r, i] = x[r, i] + drift0[r, i] * h + noise0[r, i]


@nb.njit
def _heun_correct(x, drift0, noise0, f1, noise, h, r, i):
    x[r, i] += 0.5 * (drift0[r, i] + at2(f1, r, i)) * h + 0.5 * (noise0[r, i] + noise)


@nb.njit
def step_heun(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Stochastic Heun (Stratonovich): x~ = x + f h + g dW, x' = x + (f + f~) h/2 + (g + g~) dW / 2."""
    n, d = x.shape
    fx = evaluate(f, 0, x, t, p, fbuf)
    check_rows(fx, n)
    gx = evaluate(g, 0, x, t, p, gbuf)
    xt = work[0]
    drift0 = work[1]
    noise0 = work[2]
    if d == 1:
        for r in range(n):
            _heun_predict(xt, drift0, noise0, x, fx, gdw(gx, dw, r, 0), h, r, 0)
    else:
        for r in range(n):
            for i in range(d):
                _heun_predict(xt, drift0, noise0, x, fx, gdw(gx, dw, r, i), h, r, i)
    f1 = evaluate(f, 1, xt, t + h, p, fbuf)
    check_rows(f1, n)
    g1 = evaluate(g, 1, xt, t + h, p, gbuf)
    if d == 1:
        for r in range(n):
            _heun_correct(x, drift0, noise0, f1, gdw(g1, dw, r, 0), h, r, 0)
    else:
        for r in range(n):
            for i in range(d):
                _heun_correct(x, drift0, noise0, f1, gdw(g1, dw, r, i), h, r, i)


@nb.njit
def step_sra(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Rößler SRA for additive noise (see `SRATableau`); tab = (c0, c1, A0, B0, alpha, beta1, beta2)."""
    c0, c1, a0, b0, alpha, beta1, beta2 = tab
    n_st = alpha.shape[0]
    habs = abs(h)
    hz = work[0]
    n, d = x.shape
    # work[1 + s]: f at stage s; work[1 + S + s]: g_s dW; work[1 + 2S + s]: g_s I10 / |h|
    for s in range(n_st):
        gs = evaluate(g, 0, x, t + c1[s] * h, p, gbuf)
        for r in range(n):
            for i in range(d):
                work[1 + n_st + s, r, i] = gdw(gs, dw, r, i)
                work[1 + 2 * n_st + s, r, i] = gdw(gs, dz, r, i) / habs
    for s in range(n_st):
        for r in range(n):
            for i in range(d):
                acc = x[r, i]
                for j in range(s):
                    acc += h * a0[s, j] * work[1 + j, r, i] + b0[s, j] * work[1 + 2 * n_st + j, r, i]
                hz[r, i] = acc
        fs = evaluate(f, 0, hz, t + c0[s] * h, p, fbuf)
        check_rows(fs, n)
        for r in range(n):
            for i in range(d):
                work[1 + s, r, i] = at2(fs, r, i)
    for r in range(n):
        for i in range(d):
            acc = 0.0
            for s in range(n_st):
                acc += (h * alpha[s] * work[1 + s, r, i] + beta1[s] * work[1 + n_st + s, r, i]
                        + beta2[s] * work[1 + 2 * n_st + s, r, i])
            x[r, i] += acc


@nb.njit
def step_rk(f, g, gdw, x, t, h, dw, dz, p, work, tab, fbuf, gbuf):
    """Explicit Runge–Kutta: k_s = v(x + h sum_{j<s} a_sj k_j, t + c_s h), x' = x + h sum b_s k_s."""
    a, b, c = tab[0], tab[1], tab[2]
    n_st = b.shape[0]
    xs = work[n_st]
    n, d = x.shape
    for s in range(n_st):
        for r in range(n):
            for i in range(d):
                acc = x[r, i]
                for j in range(s):
                    acc += h * a[s, j] * work[j, r, i]
                xs[r, i] = acc
        ks = evaluate(f, 0, xs, t + c[s] * h, p, fbuf)
        check_rows(ks, n)
        for r in range(n):
            for i in range(d):
                work[s, r, i] = at2(ks, r, i)
    for r in range(n):
        for i in range(d):
            acc = 0.0
            for s in range(n_st):
                acc += b[s] * work[s, r, i]
            x[r, i] += h * acc


STEPS = {
    "euler_maruyama": step_euler_maruyama,
    "milstein": step_milstein,
    "heun": step_heun,
    "sra": step_sra,
    "rk": step_rk,
    "reversible_heun": step_reversible_heun,
    "reversible_heun_matrix": step_reversible_heun_matrix,
    "platen_weak2": step_platen_weak2,
    "sri": step_sri,
    "theta": step_theta,
    "skrock": step_skrock,
    "milstein_matrix": step_milstein_matrix,
}

# families whose step carries state from one step to the next in all its work arrays (kept per path by the runner)
CARRIED_FAMILIES = frozenset({"reversible_heun", "reversible_heun_matrix"})


def work_arrays(family: str, stages: int, m: int = 1) -> int:
    """How many (n, dim) scratch arrays a family's step needs (m: Brownian components)."""
    return {"euler_maruyama": 1, "milstein": 2, "heun": 3, "sra": 1 + 3 * stages, "rk": stages + 1,
            "reversible_heun": 4, "reversible_heun_matrix": 3 + m, "platen_weak2": 3, "sri": 2 + 2 * stages,
            "theta": 3, "skrock": 4, "milstein_matrix": 3}[family]
