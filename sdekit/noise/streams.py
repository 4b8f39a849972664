"""Reproducible Gaussian noise for the Numba kernels: one stream per (seed, path, stream id).

Each path owns a xoshiro256++ generator (Blackman & Vigna 2021, "Scrambled linear
pseudorandom number generators", ACM TOMS 47(4)) whose 256-bit state is the SplitMix64
sequence started at key(seed, path, stream). Normals come from the 256-layer ziggurat
(`sdekit.noise.ziggurat`). A path's numbers therefore depend only on (seed, path, stream)
and on how many draws came before on that path: never on threads, chunking or batch size.

Stream 0 carries the Brownian increments, drawn in the order (step, substep, component);
stream 1 carries the auxiliary normals of iterated integrals (SRA's I_(1,0)), same order.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from sdekit.noise.ziggurat import TAIL_START, ZIG_F, ZIG_K, ZIG_W

U64 = nb.uint64
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9  # SplitMix64 finaliser multipliers (Steele, Lea & Flood 2014)
MIX2 = 0x94D049BB133111EB
STREAM_BROWNIAN = 0
STREAM_AUX = 1
INV_2_53 = 1.0 / 9007199254740992.0

NoiseTables = tuple[np.ndarray, np.ndarray, np.ndarray]


def noise_tables() -> NoiseTables:
    """The ziggurat tables, passed to kernels as arguments (faster than frozen globals)."""
    return ZIG_K, ZIG_W, ZIG_F


@nb.njit(inline="always")
def _rotl(x, k):
    return (x << U64(k)) | (x >> U64(64 - k))


@nb.njit(inline="always")
def splitmix64(z):
    """SplitMix64 finaliser of z + golden gamma (Steele, Lea & Flood 2014)."""
    z = z + U64(GOLDEN)
    z = (z ^ (z >> U64(30))) * U64(MIX1)
    z = (z ^ (z >> U64(27))) * U64(MIX2)
    return z ^ (z >> U64(31))


@nb.njit(inline="always")
def seed_stream(state, seed, path, stream):
    """Fill state (uint64[4]) from key = mix(mix(mix(seed) ^ stream) ^ path)."""
    z = splitmix64(splitmix64(splitmix64(U64(seed)) ^ U64(stream)) ^ U64(path))
    for i in range(4):
        z = splitmix64(z)
        state[i] = z


@nb.njit(inline="always")
def xoshiro_next(s0, s1, s2, s3):
    """One xoshiro256++ step on a state held in four scalars: (output, s0, s1, s2, s3) (Blackman & Vigna 2021)."""
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << U64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@nb.njit(inline="always")
def next_u64_row(states, row):
    """next_u64 on states[row] of a (n_paths, 4) state array, without making a view."""
    result, s0, s1, s2, s3 = xoshiro_next(states[row, 0], states[row, 1], states[row, 2], states[row, 3])
    states[row, 0] = s0
    states[row, 1] = s1
    states[row, 2] = s2
    states[row, 3] = s3
    return result


@nb.njit(inline="always")
def next_double_row(states, row):
    """Uniform on [0, 1) with 53 random bits from states[row]."""
    return nb.int64(next_u64_row(states, row) >> U64(11)) * INV_2_53


@nb.njit(inline="always")
def next_normal_row(states, row, k_tab, w_tab, f_tab):
    """Standard normal from states[row] of a (n_paths, 4) array, by the 256-layer ziggurat.

    Bits 0-7 of a 64-bit draw pick the layer, bit 8 the sign, bits 12-63 the abscissa.
    Inside the rectangle: accept (98.5%). Wedge: accept if f_i + U (f_{i+1} - f_i) < f(x),
    else start over. Base layer beyond r: Marsaglia's tail, x = r + xx with xx = -log(U1)/r,
    repeated until -2 log(U2) > xx^2. Written as one loop with a tail flag: nested loops here
    made Numba's serial code ten times slower.
    """
    in_tail = False
    neg = False
    while True:
        if in_tail:
            xx = -math.log1p(-next_double_row(states, row)) * (1.0 / TAIL_START)
            yy = -math.log1p(-next_double_row(states, row))
            if yy + yy > xx * xx:
                return -(TAIL_START + xx) if neg else TAIL_START + xx
            continue
        r = next_u64_row(states, row)
        idx = nb.int64(r & U64(0xFF))
        neg = ((r >> U64(8)) & U64(1)) != U64(0)
        rabs = nb.int64(r >> U64(12))
        x = rabs * w_tab[idx]
        if rabs < k_tab[idx]:
            return -x if neg else x
        if idx == 0:
            in_tail = True
            continue
        if f_tab[idx] + next_double_row(states, row) * (f_tab[idx + 1] - f_tab[idx]) < math.exp(-0.5 * x * x):
            return -x if neg else x


def _fill_normals(out, states, seed, path_offset, stream, k_tab, w_tab, f_tab):
    n_paths, n_draws = out.shape
    for p in nb.prange(n_paths):
        seed_stream(states[p], seed, path_offset + p, stream)
        for j in range(n_draws):
            out[p, j] = next_normal_row(states, p, k_tab, w_tab, f_tab)


_fill_normals_parallel = nb.njit(parallel=True, cache=True)(_fill_normals)
_fill_normals_serial = nb.njit(cache=True)(_fill_normals)


def path_normals(
    seed: int, n_paths: int, n_draws: int, *, path_offset: int = 0, stream: int = STREAM_BROWNIAN,
    parallel: bool = True,
) -> np.ndarray:
    """The first n_draws normals of each path's stream, shape (n_paths, n_draws).

    Row p holds z_{seed, path_offset + p, stream}[0:n_draws]: the numbers a kernel draws for
    that path, in draw order. Used by tests, the NumPy reference and the noise-floor benchmark.
    """
    out = np.empty((n_paths, n_draws))
    states = np.empty((n_paths, 4), dtype=np.uint64)
    fill = _fill_normals_parallel if parallel else _fill_normals_serial
    fill(out, states, np.uint64(seed), np.uint64(path_offset), np.uint64(stream), *noise_tables())
    return out
