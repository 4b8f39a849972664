"""The interleaved draw (`sdekit.noise.interleaved`) gives every path exactly the numbers of `next_normal_row`.

Bit-equality with `path_normals` (the scalar reference) for 1, 3, 4, 5 and 9 rows at several start offsets, in one
call and in two calls (the states written back must continue each stream), with the slow paths (wedges and the tail)
hit on several lanes; and a fixed-step EM solve whose final states equal, bit for bit, the EM recursion in NumPy on
`path_normals` (N not a multiple of 4, chunk sizes that leave remainders).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

import sdekit
from sdekit.backends.numba.kernels import seed_states
from sdekit.noise import path_normals
from sdekit.noise.interleaved import (
    LANES,
    draw_rows_interleaved,
    fill_normals_interleaved,
    path_normals_interleaved,
)
from sdekit.noise.streams import next_u64_row, noise_tables
from sdekit.noise.ziggurat import TAIL_START

SEED = 20261207
OFFSET = 1000  # path of state row 0
N_DRAWS = 4000  # per row: ~1.2 % wedge draws (~50 a row) and P(|z| > r) = 2.6e-4 (~1 a row)


@nb.njit(cache=True)
def _u64_consumed(before, after, limit):
    """How many 64-bit draws take each row of `before` to the same row of `after` (-1 if more than limit)."""
    n = before.shape[0]
    count = np.full(n, -1, dtype=np.int64)
    s = before.copy()
    for p in range(n):
        for k in range(limit + 1):
            if s[p, 0] == after[p, 0] and s[p, 1] == after[p, 1] and s[p, 2] == after[p, 2] and \
                    s[p, 3] == after[p, 3]:
                count[p] = k
                break
            next_u64_row(s, p)
    return count


def _states(n_rows: int) -> np.ndarray:
    states = np.empty((n_rows, 4), dtype=np.uint64)
    seed_states(states, np.uint64(SEED), np.uint64(0), OFFSET)
    return states


@pytest.mark.parametrize("start", [0, 3])
@pytest.mark.parametrize("nc", [1, 3, 4, 5, 9])
def test_rows_equal_next_normal_row(nc: int, start: int) -> None:
    """Rows start..start+nc, drawn in two calls (1237 + the rest): the path_normals rows of those paths, the other
    rows' states untouched, zbuf's columns beyond n_draws untouched; wedges and the tail were taken."""
    states = _states(start + nc + 2)
    before = states.copy()
    zbuf = np.full((nc, N_DRAWS + 3), 7.0)
    first = 1237
    draw_rows_interleaved(states, start, nc, first, zbuf, *noise_tables())
    mid = zbuf[:, :first].copy()
    draw_rows_interleaved(states, start, nc, N_DRAWS - first, zbuf, *noise_tables())
    got = np.concatenate([mid, zbuf[:, :N_DRAWS - first]], axis=1)
    ref = path_normals(SEED, nc, N_DRAWS, path_offset=OFFSET + start, parallel=False)
    assert np.array_equal(got, ref), f"{int((got != ref).sum())} of {ref.size} draws differ"
    assert np.all(zbuf[:, N_DRAWS - first:] == 7.0)
    rows = np.r_[0:start, start + nc:states.shape[0]]
    assert np.array_equal(states[rows], before[rows])
    # the slow paths were exercised: a tail draw takes 1 + 2 k 64-bit draws (k tail tries, ~1), a wedge draw 2 or more;
    # ~50 wedge draws a row are expected, so every row must show more extra draws than 3 tries per tail explain
    used = _u64_consumed(before[start:start + nc], states[start:start + nc], 2 * N_DRAWS)
    tails = (np.abs(ref) > TAIL_START).sum(axis=1)
    assert np.all(used - N_DRAWS > 6 * tails), (used, tails)
    if nc >= LANES:  # tail draws on interleaved lanes, not only on the leftover rows
        assert tails.sum() >= 2 and int((tails[:LANES] > 0).sum()) >= 1, tails


def test_tail_hit_on_several_lanes() -> None:
    """64 rows x 4000 draws: tail draws (|z| > r) on many rows of the interleaved groups, all bit-equal."""
    states = _states(64)
    out = np.empty((64, N_DRAWS))
    fill_normals_interleaved(out, states, *noise_tables())
    ref = path_normals(SEED, 64, N_DRAWS, path_offset=OFFSET, parallel=False)
    assert np.array_equal(out, ref)
    tails = (np.abs(ref) > TAIL_START).sum(axis=1)
    assert int((tails > 0).sum()) >= 20, tails  # expected ~40 of 64 rows


@pytest.mark.parametrize("parallel", [False, True])
def test_path_normals_interleaved_equals_path_normals(parallel: bool) -> None:
    """The seeded public fill (n_paths = 4k + 3, a path offset, stream 1) returns path_normals' array."""
    a = path_normals_interleaved(SEED, 203, 300, path_offset=5, stream=1, parallel=parallel)
    b = path_normals(SEED, 203, 300, path_offset=5, stream=1, parallel=False)
    assert np.array_equal(a, b)


def _ou_drift(x, t, p):
    return -p[0] * x


def _sqrt2(x, t, p):
    return 2**0.5


@pytest.mark.parametrize("chunk_size", [None, 7, 64])
def test_em_solve_equals_numpy_recursion(chunk_size: int | None) -> None:
    """EM on OU (N = 301, 37 steps: blocks of draws that end mid-grid), final states = the NumPy recursion
    x_{k+1} = x_k + (-theta x_k) h_k + g (sqrt(h_k) z_k) on path_normals, bit for bit."""
    n, steps, theta = 301, 37, 1.5
    sde = sdekit.SDE(drift=_ou_drift, diffusion=_sqrt2, noise="additive", dim=1, params=np.array([theta]))
    x0 = np.linspace(-1.0, 1.0, n)[:, None]
    sol = sdekit.simulate(sde, x0=x0, t=(0.0, 0.8), steps=steps, n_paths=n, seed=SEED, threads=1,
                          chunk_size=chunk_size)
    z = path_normals(SEED, n, steps, parallel=False)
    ts = 0.0 + 0.8 * (np.arange(steps + 1) / steps)  # sdekit.grid.fixed_grid
    ts[-1] = 0.8
    x = x0[:, 0].copy()
    g = 2**0.5
    for k in range(steps):
        h = ts[k + 1] - ts[k]
        x += (-theta * x) * h + g * (np.sqrt(abs(h)) * z[:, k])
    assert np.array_equal(np.asarray(sol.final)[:, 0], x)
