"""Float32 Gaussian noise drawn directly: two normals per 64-bit xoshiro256++ draw, one stream per (seed, path, stream).

The generator is that of `sdekit.noise.streams` (xoshiro256++, Blackman & Vigna 2021, seeded by SplitMix64 from
key(seed, path, stream)); its state gains a 5th word that keeps the unused upper half of the last 64-bit draw:
SPARE_FLAG | bits (flag set: 32 spare bits to use next) or 0 (empty; seeding sets it empty). A normal takes the spare
32 bits if there are any, else a fresh 64-bit draw whose low half it uses and whose high half it keeps. From 32 bits
u the 256-layer ziggurat of `sdekit.noise.ziggurat.build_tables32` (Marsaglia & Tsang 2000) makes the normal: bits
0-7 pick the layer, bit 8 the sign, bits 9-31 the 23-bit abscissa, x = float32(u >> 9) * w_i. The rare wedge test
and the tail (Marsaglia 1964) take their uniforms from fresh 64-bit draws (53 bits each, the spare untouched) and run
in float64 on the float32 value returned, so they are exact for it.

So a path's numbers depend only on (seed, path, stream) and on how many were drawn before on that path: never on
block size, segments, chunks or threads (the spare travels with the path's state).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.noise.streams import INV_2_53, STREAM_BROWNIAN, seed_stream, xoshiro_next
from sdekit.noise.ziggurat import TAIL_START, ZIG32_F, ZIG32_KS, ZIG32_WS

U64 = nb.uint64
SPARE_FLAG = 1 << 32  # set in state word 4 while it holds 32 unused random bits
LOW32 = 0xFFFFFFFF
STATE_WORDS_32 = 5

NoiseTables32 = tuple[np.ndarray, np.ndarray, np.ndarray]


def noise_tables32() -> NoiseTables32:
    """The float32 ziggurat tables passed to kernels as arguments: (k int64, w float32) in their signed form (512
    entries, `sdekit.noise.ziggurat.signed_tables32`; entries 0-255 are the layers' own) and f float64."""
    return ZIG32_KS, ZIG32_WS, ZIG32_F


@nb.njit(cache=True)
def normal32(s0, s1, s2, s3, spare):
    """One float32 standard normal from a state in locals (module docstring): (z, s0, s1, s2, s3, spare).

    A called function, not inlined: the blocks' fast path handles 97.6% of the draws, and inlining this loop (with its
    table arguments) into a caller's loop left reference-count operations in that loop. It
    reads the module's tables (`noise_tables32`, compiled in as constants): three array arguments made each call
    cost more than the loop it serves."""
    k_tab, w_tab, f_tab = ZIG32_KS, ZIG32_WS, ZIG32_F
    in_tail = False
    neg = False
    while True:
        if in_tail:
            r1, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
            r2, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
            xx = -math.log1p(-nb.int64(r1 >> U64(11)) * INV_2_53) * (1.0 / TAIL_START)
            yy = -math.log1p(-nb.int64(r2 >> U64(11)) * INV_2_53)
            if yy + yy > xx * xx:
                z = nb.float32(TAIL_START + xx)
                return (-z if neg else z), s0, s1, s2, s3, spare
            continue
        if spare != U64(0):
            u = spare & U64(LOW32)
            spare = U64(0)
        else:
            r, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
            u = r & U64(LOW32)
            spare = (r >> U64(32)) | U64(SPARE_FLAG)
        idx = nb.int64(u & U64(0xFF))
        neg = ((u >> U64(8)) & U64(1)) != U64(0)
        rabs = nb.int64(u >> U64(9))
        x = nb.float32(rabs) * w_tab[idx]
        if rabs < k_tab[idx]:
            return (-x if neg else x), s0, s1, s2, s3, spare
        if idx == 0:
            in_tail = True
            continue
        r, s0, s1, s2, s3 = xoshiro_next(s0, s1, s2, s3)
        xd = nb.float64(x)
        if f_tab[idx] + nb.int64(r >> U64(11)) * INV_2_53 * (f_tab[idx + 1] - f_tab[idx]) < math.exp(-0.5 * xd * xd):
            return (-x if neg else x), s0, s1, s2, s3, spare


@nb.njit(cache=True)
def draw_block32(states, start, nc, n_draws, zbuf, k_tab, w_tab, f_tab):
    """zbuf[r, :n_draws] = the next n_draws float32 normals of path start + r: the numbers of n_draws successive
    `normal32` calls, with each path's state in registers for the row. Fast loop: with no spare bits, one 64-bit draw
    whose two halves both fall inside their rectangles (97.6%) gives two normals, each from one load of the signed
    tables (`sdekit.noise.ziggurat.signed_tables32`: the 9 low bits of a half pick layer and sign); when one does
    not, the loop leaves and `normal32` runs from the state before that draw (it draws the same 64 bits again), so
    order and values are those of one normal at a time. (k_tab, w_tab) must be those of `noise_tables32()`, which
    `normal32` reads; f_tab is unused here."""
    for r in range(nc):
        row = start + r
        s0 = states[row, 0]
        s1 = states[row, 1]
        s2 = states[row, 2]
        s3 = states[row, 3]
        spare = states[row, 4]
        j = 0
        while j < n_draws:
            if spare == U64(0):
                for _ in range((n_draws - j) >> 1):
                    out, t0, t1, t2, t3 = xoshiro_next(s0, s1, s2, s3)
                    i_lo = out & U64(0x1FF)
                    i_hi = (out >> U64(32)) & U64(0x1FF)
                    rabs_lo = nb.int64((out & U64(LOW32)) >> U64(9))
                    rabs_hi = nb.int64(out >> U64(41))
                    if (rabs_lo >= k_tab[i_lo]) | (rabs_hi >= k_tab[i_hi]):
                        break
                    zbuf[r, U64(j)] = nb.float32(rabs_lo) * w_tab[i_lo]
                    zbuf[r, U64(j + 1)] = nb.float32(rabs_hi) * w_tab[i_hi]
                    s0, s1, s2, s3 = t0, t1, t2, t3
                    j += 2
                if j == n_draws:
                    break
            v, s0, s1, s2, s3, spare = normal32(s0, s1, s2, s3, spare)
            zbuf[r, j] = v
            j += 1
        states[row, 0] = s0
        states[row, 1] = s1
        states[row, 2] = s2
        states[row, 3] = s3
        states[row, 4] = spare


@nb.njit(inline="always")
def seed_stream32(states, row, seed, path, stream):
    """states[row] = the initial 5-word state of (seed, path, stream): xoshiro words as `seed_stream`, no spare."""
    seed_stream(states[row], seed, path, stream)
    states[row, 4] = U64(0)


def _fill_normals32(out, states, seed, path_offset, stream, k_tab, w_tab, f_tab):
    n_paths, n_draws = out.shape
    for p in nb.prange(n_paths):
        seed_stream32(states, p, seed, path_offset + p, stream)
        draw_block32(states, p, 1, n_draws, out[p:p + 1], k_tab, w_tab, f_tab)


_fill_normals32_parallel = nb.njit(parallel=True, cache=True)(_fill_normals32)
_fill_normals32_serial = nb.njit(cache=True)(_fill_normals32)


def path_normals32(seed: int, n_paths: int, n_draws: int, *, path_offset: int = 0, stream: int = STREAM_BROWNIAN,
                   parallel: bool = True) -> np.ndarray:
    """The first n_draws float32 normals of each path's float32 stream, shape (n_paths, n_draws), dtype float32.

    Row p holds z32_{seed, path_offset + p, stream}[0:n_draws] (module docstring: 256-layer ziggurat on 32 random
    bits, Marsaglia & Tsang 2000; two per xoshiro256++ draw): the numbers a kernel solving with noise_dtype="float32"
    draws for that path, in draw order. Used by tests and the NumPy reference.
    """
    out = np.empty((n_paths, n_draws), dtype=np.float32)
    states = np.empty((n_paths, STATE_WORDS_32), dtype=np.uint64)
    fill = _fill_normals32_parallel if parallel else _fill_normals32_serial
    fill(out, states, np.uint64(seed), np.uint64(path_offset), np.uint64(stream), *noise_tables32())
    return out
