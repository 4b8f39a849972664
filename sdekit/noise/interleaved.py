"""Several paths' normals drawn at once: the numbers of `next_normal_row`, with the generators interleaved.

One path's xoshiro256++ + ziggurat draw (`sdekit.noise.streams`) is a chain of dependent integer steps: the state
update (Blackman & Vigna 2021, ACM TOMS 47(4)), then the layer index, a table load and the rectangle test (Marsaglia &
Tsang 2000, J. Stat. Softw. 5(8)). Here LANES = 2 paths' states live in local scalar variables and each loop
iteration draws one normal from each: two independent chains that an out-of-order core overlaps (instruction-level
parallelism). Measured on the 2-core Xeon (AVX-512) of issue 18, draws into the kernel's (256, 8) buffer: 2 lanes
8 % faster than one path at a time; 4 and 8 lanes no faster (16 and 32 state words do not fit the 15 free integer
registers: LLVM spills them around the slow-path call). One path's loop is already throughput-bound there: the
xoshiro state chain is ~3 cycles a step and the ziggurat's output is off it, so the core overlaps iterations anyway.
Only the rectangle accept (98.5 % of draws) runs interleaved; a lane whose 64-bit draw lands in a wedge or
the base layer's tail writes its state back, finishes that normal with the scalar code (`_finish_after_miss`, the
same steps as `next_normal_row` from that draw on) and reloads. Each path therefore gets exactly the numbers, in
exactly the order, of `next_normal_row` on its own stream: results never change.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.noise.streams import (
    STREAM_BROWNIAN,
    U64,
    next_double_row,
    next_normal_row,
    noise_tables,
    seed_stream,
    xoshiro_next,
)
from sdekit.noise.ziggurat import TAIL_START

LANES = 2  # paths drawn at once (see above: 4 and 8 measured no faster)


@nb.njit(inline="always")
def _rectangle(u, k_tab, w_tab):
    """The ziggurat's fast case for the 64-bit draw u: (inside the layer's rectangle, the signed normal if so)."""
    idx = nb.int64(u & U64(0xFF))
    rabs = nb.int64(u >> U64(12))
    x = rabs * w_tab[idx]
    z = -x if ((u >> U64(8)) & U64(1)) != U64(0) else x
    return rabs < k_tab[idx], z


@nb.njit(cache=True)
def _finish_after_miss(states, row, u, k_tab, w_tab, f_tab):
    """The normal of `next_normal_row` whose first 64-bit draw u missed its rectangle; states[row] is the state after u.

    Base layer (idx 0): Marsaglia's tail, x = r + xx with xx = -log(U1)/r until -2 log(U2) > xx^2. Wedge: accept x if
    f_i + U (f_{i+1} - f_i) < exp(-x^2/2), else start over with `next_normal_row`.
    """
    idx = nb.int64(u & U64(0xFF))
    neg = ((u >> U64(8)) & U64(1)) != U64(0)
    x = nb.int64(u >> U64(12)) * w_tab[idx]
    if idx == 0:
        while True:
            xx = -math.log1p(-next_double_row(states, row)) * (1.0 / TAIL_START)
            yy = -math.log1p(-next_double_row(states, row))
            if yy + yy > xx * xx:
                return -(TAIL_START + xx) if neg else TAIL_START + xx
    if f_tab[idx] + next_double_row(states, row) * (f_tab[idx + 1] - f_tab[idx]) < math.exp(-0.5 * x * x):
        return -x if neg else x
    return next_normal_row(states, row, k_tab, w_tab, f_tab)


@nb.njit(cache=True)
def draw_rows_interleaved(states, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
    """zbuf[r, :n_draws] = the next n_draws standard normals of path start + r, for r < nc (states advanced).

    Paths are taken LANES = 2 at a time, their xoshiro256++ states in local variables, one draw of each per
    iteration: two independent dependency chains that the core overlaps. A lane whose draw misses its ziggurat
    rectangle stores its state, finishes that normal with `_finish_after_miss` and reloads. A leftover row (nc odd)
    use `next_normal_row`. Every path's numbers and their order equal `next_normal_row`'s, bit for bit.
    """
    r = 0
    while r + 2 <= nc:
        pa = start + r + 0
        pb = start + r + 1
        a0, a1, a2, a3 = states[pa, 0], states[pa, 1], states[pa, 2], states[pa, 3]
        b0, b1, b2, b3 = states[pb, 0], states[pb, 1], states[pb, 2], states[pb, 3]
        for j in range(n_draws):
            ua, a0, a1, a2, a3 = xoshiro_next(a0, a1, a2, a3)
            ub, b0, b1, b2, b3 = xoshiro_next(b0, b1, b2, b3)
            oka, za = _rectangle(ua, k_tab, w_tab)
            if not oka:
                states[pa, 0], states[pa, 1], states[pa, 2], states[pa, 3] = a0, a1, a2, a3
                za = _finish_after_miss(states, pa, ua, k_tab, w_tab, f_tab)
                a0, a1, a2, a3 = states[pa, 0], states[pa, 1], states[pa, 2], states[pa, 3]
            zbuf[r + 0, j] = za
            okb, zb = _rectangle(ub, k_tab, w_tab)
            if not okb:
                states[pb, 0], states[pb, 1], states[pb, 2], states[pb, 3] = b0, b1, b2, b3
                zb = _finish_after_miss(states, pb, ub, k_tab, w_tab, f_tab)
                b0, b1, b2, b3 = states[pb, 0], states[pb, 1], states[pb, 2], states[pb, 3]
            zbuf[r + 1, j] = zb
        states[pa, 0], states[pa, 1], states[pa, 2], states[pa, 3] = a0, a1, a2, a3
        states[pb, 0], states[pb, 1], states[pb, 2], states[pb, 3] = b0, b1, b2, b3
        r += 2
    for q in range(r, nc):
        for j in range(n_draws):
            zbuf[q, j] = next_normal_row(states, start + q, k_tab, w_tab, f_tab)


@nb.njit(cache=True)
def fill_normals_interleaved(out, states, k_tab, w_tab, f_tab):
    """out[p, :] = the next out.shape[1] standard normals of states[p] (a (n_paths, 4) uint64 xoshiro256++ state
    array, advanced), for every p: the numbers of `next_normal_row` drawn LANES paths at a time
    (`draw_rows_interleaved`). The fastest way to draw the same normals as the kernels: the throughput floor.

    Seed states with `sdekit.backends.numba.kernels.seed_states`; pass `noise_tables()` as (k_tab, w_tab, f_tab).
    """
    draw_rows_interleaved(states, 0, out.shape[0], out.shape[1], out, k_tab, w_tab, f_tab)


def _seeded_fill(out, states, seed, path_offset, stream, k_tab, w_tab, f_tab):
    n_paths, n_draws = out.shape
    n_groups = (n_paths + LANES - 1) // LANES
    for g in nb.prange(n_groups):
        start = g * LANES
        nc = min(LANES, n_paths - start)
        for r in range(nc):
            seed_stream(states[start + r], seed, path_offset + U64(start + r), stream)
        draw_rows_interleaved(states, start, nc, n_draws, out[start:start + nc], k_tab, w_tab, f_tab)


_seeded_fill_parallel = nb.njit(parallel=True, cache=True)(_seeded_fill)
_seeded_fill_serial = nb.njit(cache=True)(_seeded_fill)


def path_normals_interleaved(
    seed: int, n_paths: int, n_draws: int, *, path_offset: int = 0, stream: int = STREAM_BROWNIAN,
    parallel: bool = True,
) -> np.ndarray:
    """`sdekit.noise.path_normals` (the same array, bit for bit) with LANES paths' generators interleaved.

    Row p holds z_{seed, path_offset + p, stream}[0:n_draws], drawn by `draw_rows_interleaved`.
    """
    out = np.empty((n_paths, n_draws))
    states = np.empty((n_paths, 4), dtype=np.uint64)
    fill = _seeded_fill_parallel if parallel else _seeded_fill_serial
    fill(out, states, np.uint64(seed), np.uint64(path_offset), np.uint64(stream), *noise_tables())
    return out
