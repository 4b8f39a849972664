"""Counter-based Gaussian noise: the j-th normal of a path is a pure function of (seed, stream, path, j).

Unlike the per-path xoshiro256++ streams (`sdekit.noise.streams`), nothing is carried from one draw to the next and
there is no rejection loop, so any block of draws can be produced independently, in any order, on any device. The
definition (all integer arithmetic on uint64, wrapping modulo 2^64):

    key(seed, stream, path) = splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ path)
                              (the key of `streams.seed_stream`),
    word(i)    = splitmix64(key + i * GOLDEN)       (the i-th output of the SplitMix64 sequence started at key;
                                                     splitmix64(z) finalises z + GOLDEN, Steele, Lea & Flood 2014),
    q(i)       = (2 (word(i) >> 12) + 1) 2^-53      (an odd multiple of 2^-53 in (0, 1): exact, never 0 or 1,
                                                     and symmetric about 1/2: 1 - q is exact and has q's law),
    N(seed, stream, path, i) = Phi^{-1}(q(i))       (Wichura's AS 241, PPND16, with a logarithm made of basic
                                                     IEEE operations: `sdekit.noise.inverse_normal`).

The uniform takes the top 52 bits of the word; Phi^{-1} by inversion maps equal uniforms to equal normals, so the
numbers depend on nothing else (threads, chunking, batch size, device). `sdekit.backends.torch.counter_noise`
computes the same numbers with torch operations on any device (bit-equal in float64 on the CPU, tested).

Distinct paths give distinct, well-mixed keys; two paths' sequences key + i GOLDEN can only overlap when their keys
lie within the number of draws of each other along the Weyl sequence (probability about n_paths^2 n_draws / 2^64,
1e-5 for 1e4 paths of 3e6 draws each). Stream ids separate independent uses (stream 0: Brownian increments of the
fused torch loop, drawn in the order (step, substep, component) like the Numba kernels' streams).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from sdekit.errors import SDEKitError
from sdekit.noise.inverse_normal import quantiles_block
from sdekit.noise.streams import GOLDEN, MIX1, MIX2, splitmix64

U64 = nb.uint64
INV_2_53 = 2.0**-53
U64_RANGE = 2**64
U64_MASK = U64_RANGE - 1
DRAW_BLOCK = 2048  # normals per parallel work item
PARALLEL_FROM = 1 << 14  # fewer normals than this: the serial kernel (no thread start-up)


@nb.njit(inline="always")
def counter_uniform(word):
    """q = (2 (word >> 12) + 1) 2^-53: an odd multiple of 2^-53 in (0, 1) from the top 52 bits of a uint64 word."""
    return nb.float64(((word >> U64(12)) << U64(1)) | U64(1)) * INV_2_53


def _fill(out, base, path_offset, draw_offset):
    """out[p, j] = Phi^{-1}(q(word(draw_offset + j))) on path path_offset + p; base = mix(mix(seed) ^ stream).

    Work items of about DRAW_BLOCK normals, each a contiguous stretch of out: a block of one path's draws when a
    path has DRAW_BLOCK draws or more, else whole rows (DRAW_BLOCK // n_draws of them). Per item: the uniforms,
    then `quantiles_block` (vectorised passes; each element sees the operations of the scalar `ppnd16`).
    """
    n, m = out.shape
    flat = out.reshape(n * m)
    if m >= DRAW_BLOCK:
        per_row = (m + DRAW_BLOCK - 1) // DRAW_BLOCK
        n_items = n * per_row
        rows_per_item = 1
    else:
        per_row = 1
        rows_per_item = DRAW_BLOCK // m
        n_items = (n + rows_per_item - 1) // rows_per_item
    for item in nb.prange(n_items):
        if m >= DRAW_BLOCK:
            p0 = item // per_row
            p1 = p0 + 1
            j0 = (item - p0 * per_row) * DRAW_BLOCK
            j1 = min(j0 + DRAW_BLOCK, m)
        else:
            p0 = item * rows_per_item
            p1 = min(p0 + rows_per_item, n)
            j0 = 0
            j1 = m
        start = p0 * m + j0
        size = (p1 - p0 - 1) * m + (j1 - j0)
        q = np.empty(size)
        rows, width = p1 - p0, j1 - j0
        start_words = np.empty(rows, dtype=np.uint64)  # key + (draw_offset + j0) GOLDEN of each row
        for r in range(rows):
            start_words[r] = splitmix64(base ^ (path_offset + U64(p0 + r))) + (draw_offset + U64(j0)) * U64(GOLDEN)
        if width >= rows:  # the longer loop innermost, so that it vectorises
            for r in range(rows):
                for j in range(width):
                    q[r * width + j] = counter_uniform(splitmix64(start_words[r] + U64(j) * U64(GOLDEN)))
        else:
            for j in range(width):
                step = U64(j) * U64(GOLDEN)
                for r in range(rows):
                    q[r * width + j] = counter_uniform(splitmix64(start_words[r] + step))
        quantiles_block(q, size, flat[start:start + size])


_fill_parallel = nb.njit(parallel=True, cache=True, error_model="numpy")(_fill)
_fill_serial = nb.njit(cache=True, error_model="numpy")(_fill)


def splitmix64_int(z: int) -> int:
    """`sdekit.noise.streams.splitmix64` on a Python int (mod 2^64)."""
    z = (z + GOLDEN) & U64_MASK
    z = ((z ^ (z >> 30)) * MIX1) & U64_MASK
    z = ((z ^ (z >> 27)) * MIX2) & U64_MASK
    return z ^ (z >> 31)


def stream_base(seed: int, stream: int) -> int:
    """splitmix64(splitmix64(seed) ^ stream) as a Python int: the part of the key shared by all paths."""
    return splitmix64_int(splitmix64_int(seed) ^ stream)


def u64_arg(value: object, name: str) -> int:
    """value as a Python int in [0, 2^64), or an SDEKitError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= int(value) < U64_RANGE:
        raise SDEKitError(f"{name} must be an integer in [0, 2**64); got {value!r}")
    return int(value)


def count_arg(value: object, name: str) -> int:
    """value as a Python int >= 0, or an SDEKitError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 0:
        raise SDEKitError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def check_counter_args(seed: object, n_paths: object, n_draws: object, path_offset: object, stream: object,
                       draw_offset: object) -> tuple[int, int, int, int, int, int]:
    """The arguments of `counter_normals` as Python ints, checked (paths and draws must stay below 2^64)."""
    seed, stream = u64_arg(seed, "seed"), u64_arg(stream, "stream")
    n_paths, n_draws = count_arg(n_paths, "n_paths"), count_arg(n_draws, "n_draws")
    path_offset, draw_offset = u64_arg(path_offset, "path_offset"), u64_arg(draw_offset, "draw_offset")
    if path_offset + n_paths > U64_RANGE:
        raise SDEKitError(f"path_offset + n_paths must be at most 2**64; got {path_offset} + {n_paths}")
    if draw_offset + n_draws > U64_RANGE:
        raise SDEKitError(f"draw_offset + n_draws must be at most 2**64; got {draw_offset} + {n_draws}")
    return seed, n_paths, n_draws, path_offset, stream, draw_offset


def counter_normals(seed: int, n_paths: int, n_draws: int, *, path_offset: int = 0, stream: int = 0,
                    draw_offset: int = 0) -> np.ndarray:
    """Standard normals N(seed, stream, path_offset + p, draw_offset + j) at [p, j], shape (n_paths, n_draws).

    N(s, c, p, i) = Phi^{-1}((2 (splitmix64(key(s, c, p) + i GOLDEN) >> 12) + 1) 2^-53) with the streams' key
    and Wichura's AS 241 quantile (module docstring). Parallel over paths and blocks of draws (Numba prange);
    the numbers do not depend on the thread count or on how a request is split.
    """
    seed, n_paths, n_draws, path_offset, stream, draw_offset = check_counter_args(
        seed, n_paths, n_draws, path_offset, stream, draw_offset)
    out = np.empty((n_paths, n_draws))
    fill_counter_normals(out, stream_base(seed, stream), path_offset, draw_offset)
    return out


def fill_counter_normals(out: np.ndarray, base: int, path_offset: int, draw_offset: int) -> None:
    """out[p, j] = N(.., path_offset + p, draw_offset + j) for out C-contiguous float64 (n_paths, n_draws), base =
    `stream_base(seed, stream)`; arguments not checked (for loops that checked them once)."""
    if out.size:
        fill = _fill_parallel if out.size >= PARALLEL_FROM else _fill_serial
        fill(out, np.uint64(base), np.uint64(path_offset), np.uint64(draw_offset))
