"""The float32 noise generator (`sdekit.noise.streams32`, noise_dtype="float32"): statistical soundness, a second
implementation bit for bit, and the kernel's float32 solve (bit-equal to the recursion on `path_normals32`,
independent of chunks, threads, progress segments and plan, the NumPy reference to rounding, the option's errors).

The statistical battery is that of tests/test_noise.py (same statistics, thresholds and false-alarm rate: each test
one battery at ALPHA = 1e-6, Bonferroni-split over its k statistics; fixed seeds), on 10^7 float32 draws, each with
planted bugs that it must reject. Float32 adds one: two normals come from each 64-bit draw, so a spare half used
twice (or the two halves correlated) must show in the lag-1 statistics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as ss
from test_noise import (
    ALPHA,
    TAIL_CUTS,
    chi2_bins,
    dkw_eps,
    ks_distance,
    moment_stats,
    product_stats,
    tail_pvalues,
    z_crit,
)

import sdekit
from sdekit.errors import SDEKitError
from sdekit.noise.streams import path_normals
from sdekit.noise.streams32 import STATE_WORDS_32, draw_block32, noise_tables32, path_normals32, seed_stream32
from sdekit.noise.ziggurat import TAIL_START, ZIG32_F, ZIG32_K, ZIG32_W, signed_tables32

SEED = 987654321
N_PATHS, N_DRAWS = 10_000, 1_000  # 10^7 draws


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    """Float32 stream 0 of paths 0..9999, first 1000 draws each, as float64 for the statistics: (10^4, 10^3)."""
    z = path_normals32(SEED, N_PATHS, N_DRAWS)
    assert z.dtype == np.float32
    return z.astype(np.float64)


# ------------------------------------------------------------------------------------------ statistical soundness


def test_moments(draws: np.ndarray) -> None:
    """Mean, variance, skewness and kurtosis z-tests on 10^7 draws (each at ALPHA / 4); planted bugs rejected."""
    crit = z_crit(4)
    stats = moment_stats(draws)
    assert all(abs(v) < crit for v in stats.values()), (stats, crit)
    sub = draws[:2000]
    assert abs(moment_stats(1.02 * sub)["variance"]) > crit  # 4% variance error
    assert abs(moment_stats(sub + 0.005)["mean"]) > crit  # mean shift of 0.005 sd
    assert abs(moment_stats(np.clip(sub, -3.0, 3.0))["kurtosis"]) > crit  # truncated tails


def test_stream1_and_seed_moments() -> None:
    """Stream 1 and another seed pass the same moment battery (10^7 draws each, 8 statistics at ALPHA / 8)."""
    s1 = moment_stats(path_normals32(SEED, N_PATHS, N_DRAWS, stream=1).astype(np.float64))
    s2 = moment_stats(path_normals32(12345, N_PATHS, N_DRAWS).astype(np.float64))
    assert all(abs(v) < z_crit(8) for v in [*s1.values(), *s2.values()]), (s1, s2)


def test_ks_against_normal(draws: np.ndarray) -> None:
    """KS distance of 2 * 10^6 draws below the DKW–Massart critical value at ALPHA; planted bugs above it."""
    z = draws[:, :200]
    eps = dkw_eps(z.size)
    assert ks_distance(z) < eps, (ks_distance(z), eps)
    assert ks_distance(1.414 * z) > eps
    assert ks_distance(z + 0.01) > eps


def test_chi2_equiprobable_bins(draws: np.ndarray) -> None:
    """X^2 over 100 equiprobable bins of 10^7 draws below chi2_{99} at ALPHA; planted bugs (2% variance error, wedges
    always accepted, mimicked by a 0.5% shift of mass towards 0 inside |z| < 1) above it."""
    crit = ss.chi2.isf(ALPHA, 99)
    assert chi2_bins(draws) < crit, (chi2_bins(draws), crit)
    sub = draws[:3000]
    assert chi2_bins(1.01 * sub) > crit
    assert chi2_bins(np.where(np.abs(sub) < 1.0, 0.99 * sub, sub)) > crit


def test_tail_frequencies(draws: np.ndarray) -> None:
    """#{|z| > c} for c in (3, r, 4, 5), r the tail start: exact binomial tests at ALPHA / 4; planted bugs (no tail
    algorithm, 5% too wide) rejected."""
    limit = ALPHA / len(TAIL_CUTS)
    pv = tail_pvalues(draws)
    assert all(p > limit for p in pv.values()), pv
    no_tail = np.where(np.abs(draws) > TAIL_START, np.sign(draws) * 0.5, draws)
    assert min(tail_pvalues(no_tail).values()) < limit
    assert min(tail_pvalues(1.05 * draws).values()) < limit


def test_autocorrelation_within_path(draws: np.ndarray) -> None:
    """Lag 1 (the two halves of one 64-bit draw, or of two) and lag 2: 4 statistics at ALPHA / 4. Planted bugs: a
    lag-1 correlation of 0.01, and a spare half used twice (every other draw a copy of the one before)."""
    s1 = product_stats(draws[:, :-1], draws[:, 1:])
    s2 = product_stats(draws[:, :-2], draws[:, 2:])
    stats = {**{f"lag1_{k}": v for k, v in s1.items()}, **{f"lag2_{k}": v for k, v in s2.items()}}
    assert all(abs(v) < z_crit(4) for v in stats.values()), stats
    bug = (draws[:, 1:] + 0.01 * draws[:, :-1]) / np.sqrt(1.0001)
    assert abs(product_stats(bug[:, :-1], bug[:, 1:])["linear"]) > z_crit(4)
    reused = draws[:1000].copy()
    reused[:, 1::2] = reused[:, 0::2]
    assert abs(product_stats(reused[:, :-1], reused[:, 1:])["linear"]) > z_crit(4)


def test_neighbouring_paths_uncorrelated(draws: np.ndarray) -> None:
    """Paths p and p + 1 at the same draw index (2 statistics), and no two paths share their first 4 draws (float32
    first draws alone tie by chance: ~2^32 values among 10^4). Planted bugs: correlated neighbours, a duplicated key."""
    stats = product_stats(draws[:-1], draws[1:])
    assert all(abs(v) < z_crit(2) for v in stats.values()), stats
    assert np.unique(draws[:, :4], axis=0).shape[0] == N_PATHS
    bug = draws.copy()
    bug[1:] = (draws[1:] + 0.01 * draws[:-1]) / np.sqrt(1.0001)
    assert abs(product_stats(bug[:-1], bug[1:])["linear"]) > z_crit(2)
    dup = draws[:100, :4].copy()
    dup[57] = dup[12]
    assert np.unique(dup, axis=0).shape[0] < 100


def test_streams_and_seeds_independent(draws: np.ndarray) -> None:
    """Stream 0 vs stream 1 of the same path, seed s vs s + 1, and the float32 stream vs the float64 one of the same
    key (6 statistics at ALPHA / 6). Planted bug: a key that ignores the stream id."""
    z1 = path_normals32(SEED, N_PATHS, N_DRAWS, stream=1).astype(np.float64)
    z_seed = path_normals32(SEED + 1, N_PATHS, N_DRAWS).astype(np.float64)
    z64 = path_normals(SEED, N_PATHS, N_DRAWS)
    stats = {**{f"stream_{k}": v for k, v in product_stats(draws, z1).items()},
             **{f"seed_{k}": v for k, v in product_stats(draws, z_seed).items()},
             **{f"f64_{k}": v for k, v in product_stats(draws, z64).items()}}
    assert all(abs(v) < z_crit(6) for v in stats.values()), stats
    assert abs(product_stats(draws, draws)["linear"]) > z_crit(6)


# ------------------------------------------------------------------------------------------ a second implementation

_M64 = (1 << 64) - 1


def _splitmix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class _PyStream32:
    """The float32 stream in plain Python integers (module docstring of streams32), counting its branches."""

    def __init__(self, seed: int, path: int, stream: int, hits: dict[str, int]):
        z = _splitmix(_splitmix(_splitmix(seed) ^ stream) ^ path)
        self.s = []
        for _ in range(4):
            z = _splitmix(z)
            self.s.append(z)
        self.spare = None
        self.hits = hits

    def u64(self) -> int:
        s0, s1, s2, s3 = self.s
        rot = lambda x, k: ((x << k) | (x >> (64 - k))) & _M64  # noqa: E731
        result = (rot((s0 + s3) & _M64, 23) + s0) & _M64
        t = (s1 << 17) & _M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        self.s = [s0, s1, s2, rot(s3, 45)]
        return result

    def uniform(self) -> float:
        return (self.u64() >> 11) * 2.0**-53

    def normal(self) -> np.float32:
        while True:
            if self.spare is not None:
                u, self.spare = self.spare, None
            else:
                r = self.u64()
                u, self.spare = r & 0xFFFFFFFF, r >> 32
            idx, neg, rabs = u & 0xFF, (u >> 8) & 1, u >> 9
            x = np.float32(rabs) * ZIG32_W[idx]
            if rabs < ZIG32_K[idx]:
                self.hits["rectangle"] += 1
                return -x if neg else x
            if idx == 0:
                self.hits["tail"] += 1
                while True:
                    xx = -math.log1p(-self.uniform()) / TAIL_START
                    yy = -math.log1p(-self.uniform())
                    if yy + yy > xx * xx:
                        z = np.float32(TAIL_START + xx)
                        return -z if neg else z
            if ZIG32_F[idx] + self.uniform() * (ZIG32_F[idx + 1] - ZIG32_F[idx]) < math.exp(-0.5 * float(x) ** 2):
                self.hits["wedge_accepted"] += 1
                return -x if neg else x
            self.hits["wedge_rejected"] += 1


def test_numba_equals_python_bit_for_bit_with_tails_and_wedges() -> None:
    """path_normals32 equals the plain-Python stream on 300 paths x 200 draws (another seed, stream 1, an offset
    near 2^40), and the sample went through every branch: rectangles, wedges accepted and rejected, tails."""
    hits = dict.fromkeys(("rectangle", "wedge_accepted", "wedge_rejected", "tail"), 0)
    for seed, stream, offset in ((SEED, 0, 0), (2**64 - 1, 1, 2**40)):
        a = path_normals32(seed, 150, 200, path_offset=offset, stream=stream)
        b = np.array([_row(seed, offset + p, stream, hits) for p in range(150)], dtype=np.float32)
        diff = a != b
        assert not diff.any(), f"{diff.sum()} of {a.size} draws differ"
    assert min(hits.values()) >= 3, hits
    # planted bug: the spare half dropped (a fresh 64-bit draw per normal) changes the numbers
    bug_hits = dict.fromkeys(hits, 0)
    s = _PyStream32(SEED, 0, 0, bug_hits)
    dropped = []
    for _ in range(20):
        dropped.append(s.normal())
        s.spare = None
    assert not np.array_equal(np.array(dropped, np.float32), path_normals32(SEED, 1, 20)[0])


def _row(seed: int, path: int, stream: int, hits: dict[str, int]) -> list[np.float32]:
    s = _PyStream32(seed, path, stream, hits)
    return [s.normal() for _ in range(200)]


def test_path_normals32_rows_and_prefixes() -> None:
    """Row p is path path_offset + p; the serial fill equals the parallel one; fewer draws are a prefix."""
    full = path_normals32(SEED, 300, 21)
    assert np.array_equal(path_normals32(SEED, 100, 21, path_offset=200), full[200:])
    assert np.array_equal(path_normals32(SEED, 300, 21, parallel=False), full)
    assert np.array_equal(path_normals32(SEED, 300, 7), full[:, :7])


def _blocks(block: int, n_paths: int, n_draws: int, keep_spare: bool = True, tables: tuple | None = None) -> np.ndarray:
    states = np.empty((n_paths, STATE_WORDS_32), dtype=np.uint64)
    for p in range(n_paths):
        seed_stream32(states, p, np.uint64(SEED), np.uint64(p), np.uint64(0))
    out = np.empty((n_paths, n_draws), dtype=np.float32)
    for j0 in range(0, n_draws, block):
        nd = min(block, n_draws - j0)
        buf = np.empty((n_paths, nd), dtype=np.float32)
        draw_block32(states, 0, n_paths, nd, buf, *(tables or noise_tables32()))
        out[:, j0:j0 + nd] = buf
        if not keep_spare:
            states[:, 4] = 0
    return out


def test_blocks_of_any_size_give_the_same_numbers() -> None:
    """Drawing in blocks of 1, 3, 7 or 64 normals per path (odd blocks end with a spare half kept in the state) gives
    path_normals32's numbers. Planted bug: a spare dropped between blocks."""
    ref = path_normals32(SEED, 40, 150)
    for block in (1, 3, 7, 32, 64):
        assert np.array_equal(_blocks(block, 40, 150), ref), block
    assert not np.array_equal(_blocks(7, 40, 150, keep_spare=False), ref)


def test_signed_tables_are_the_layers_with_a_sign() -> None:
    """The kernels' 512-entry tables: entry 256 s + i is (k_i, (-1)^s w_i) of the 256 layers, so one load gives the
    signed width and the normals equal the plain-Python stream's (test above). Planted bug: widths without the
    sign half negated give other numbers (every normal positive)."""
    k_s, w_s, f = noise_tables32()
    assert k_s.shape == w_s.shape == (512,) and w_s.dtype == np.float32
    assert np.array_equal(k_s[:256], ZIG32_K) and np.array_equal(k_s[256:], ZIG32_K)
    assert np.array_equal(w_s[:256], ZIG32_W) and np.array_equal(w_s[256:], -ZIG32_W)
    assert np.array_equal(signed_tables32(ZIG32_K, ZIG32_W)[1], w_s)
    unsigned = (k_s, np.concatenate([ZIG32_W, ZIG32_W]), f)
    bad = _blocks(32, 4, 64, tables=unsigned)
    assert not np.array_equal(bad, path_normals32(SEED, 4, 64)) and (bad >= 0).mean() > 0.9


# ------------------------------------------------------------------------------------------ the float32 solve


def _ou_drift(x, t, p):
    return -p[0] * x


def _sqrt2(x, t, p):
    return 2**0.5


OU = sdekit.SDE(drift=_ou_drift, diffusion=_sqrt2, noise="additive", dim=1, params=np.array([1.0]), name="ou32")
F32 = dict(dtype="float32", noise_dtype="float32")


def _x0(n: int) -> np.ndarray:
    return np.linspace(-1.0, 2.0, n)[:, None]


def test_em_equals_float32_recursion_on_path_normals32() -> None:
    """EM on OU with noise_dtype="float32" equals, bit for bit at every step, the recursion in NumPy:
    dW = float32(sqrt(h) z) with z from path_normals32, f = float32(-theta x), and
    x' = float32((x + f h) + sqrt 2 dW) evaluated in float64 (the kernel's float32-state update). Planted bug: the
    float64 normals cast to float32 (the default noise) give other numbers."""
    n, steps, t1 = 500, 60, 1.5
    sol = sdekit.simulate(OU, _x0(n), (0.0, t1), steps=steps, n_paths=n, seed=SEED, save_at="steps", **F32)
    assert sol.ys.dtype == np.float32
    ts = sol.ts
    z = path_normals32(SEED, n, steps)
    x = _x0(n)[:, 0].astype(np.float32)
    theta = np.float32(1.0)
    ys = [x]
    for k in range(steps):
        h = ts[k + 1] - ts[k]
        dw = (math.sqrt(abs(h)) * z[:, k].astype(np.float64)).astype(np.float32)
        f = -theta * x
        x = ((x.astype(np.float64) + f.astype(np.float64) * h) + 2**0.5 * dw.astype(np.float64)).astype(np.float32)
        ys.append(x)
    assert np.array_equal(sol.ys[:, :, 0], np.array(ys))
    old = sdekit.simulate(OU, _x0(n), (0.0, t1), steps=steps, n_paths=n, seed=SEED, save_at="steps",
                          dtype="float32", backend="numpy")
    assert not np.array_equal(old.ys, sol.ys)


def test_float32_noise_is_opt_in() -> None:
    """dtype="float32" alone keeps the float64 normals (the same Brownian path as the float64 solve): equal to
    noise_dtype="float64" bit for bit, and to the float64 solve (NumPy reference) to float32 rounding."""
    kw = dict(steps=30, n_paths=200, seed=SEED, save_at="steps")
    a = sdekit.simulate(OU, _x0(200), (0.0, 1.0), dtype="float32", **kw).ys
    b = sdekit.simulate(OU, _x0(200), (0.0, 1.0), dtype="float32", noise_dtype="float64", **kw).ys
    c = sdekit.simulate(OU, _x0(200), (0.0, 1.0), backend="numpy", **kw).ys  # float64 (no third kernel to compile)
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=0, atol=1e-5)
    assert np.abs(sdekit.simulate(OU, _x0(200), (0.0, 1.0), **F32, **kw).ys - c).max() > 0.1


def test_chunks_threads_segments_and_plan_do_not_change_results() -> None:
    """3000 paths (above the serial cutoff): threads 1 and 2, chunk_size 1, 7 and 1024 (draw blocks of 64 and 16 steps),
    progress segments, a plan, and paths [1000, 3000) alone at path_offset=1000 give bit-identical ys."""
    n = 3000
    kw = dict(steps=70, n_paths=n, seed=SEED, save_at="steps", **F32)
    ref = sdekit.simulate(OU, _x0(n), (0.0, 1.0), threads=1, **kw)
    for threads in (1, 2):
        for chunk in (1, 7, 1024):
            sol = sdekit.simulate(OU, _x0(n), (0.0, 1.0), threads=threads, chunk_size=chunk, **kw)
            assert np.array_equal(sol.ys, ref.ys), (threads, chunk)
    seg = sdekit.simulate(OU, _x0(n), (0.0, 1.0), threads=1, progress=True, **kw)
    assert np.array_equal(seg.ys, ref.ys)
    planned = sdekit.plan(OU, _x0(n), (0.0, 1.0), steps=70, save_at="steps", **F32)
    assert np.array_equal(planned(seed=SEED).ys, ref.ys)
    part = sdekit.simulate(OU, _x0(n)[1000:], (0.0, 1.0), path_offset=1000, **{**kw, "n_paths": 2000})
    assert np.array_equal(part.ys, ref.ys[:, 1000:])
    assert not np.array_equal(sdekit.simulate(OU, _x0(n), (0.0, 1.0), **{**kw, "seed": SEED + 1}).ys, ref.ys)


@pytest.mark.parametrize("solver", ["euler_maruyama"])
def test_numpy_reference_agrees(solver: str) -> None:
    """The NumPy reference with noise_dtype="float32" (dW from path_normals32) gives the kernel's numbers to float32
    rounding: within 4 float32 ulps of max(|x|, 1) after 20 steps (the state is O(1); the two sum the update terms in
    another order: the reference x + (f h + g dW), the kernel (x + f h) + g dW, each rounded to float32)."""
    kw = dict(steps=20, n_paths=64, seed=SEED, solver=solver, save_at="steps", **F32)
    a = sdekit.simulate(OU, _x0(64), (0.0, 1.0), **kw).ys
    b = sdekit.simulate(OU, _x0(64), (0.0, 1.0), backend="numpy", **kw).ys
    assert a.dtype == b.dtype == np.float32
    ulps = np.abs(a.astype(np.float64) - b) / np.spacing(np.maximum(np.abs(b), np.float32(1.0)))
    assert ulps.max() <= 4, ulps.max()
    other = sdekit.simulate(OU, _x0(64), (0.0, 1.0), backend="numpy", **{**kw, "noise_dtype": "float64"}).ys
    assert np.abs(other - b).max() > 0.1


def test_option_errors() -> None:
    """noise_dtype: a bad value, a float64 solve, the torch backend, an adaptive solver, noise substeps, auxiliary
    noise and saves inside steps each give an SDEKitError naming the option."""
    kw = dict(steps=4, n_paths=3)
    x0 = np.zeros(1)
    cases = [
        (dict(noise_dtype="float16", dtype="float32"), "noise_dtype must be"),
        (dict(noise_dtype="float32"), "dtype='float32'"),
        (dict(noise_dtype="float32", dtype="float64"), "dtype='float32'"),
        (dict(noise_dtype="float32", dtype="float32", noise_substeps=2), "noise_substeps"),
        (dict(noise_dtype="float32", dtype="float32", solver="sra1"), "auxiliary"),
        (dict(noise_dtype="float32", dtype="float32", save_at=[0.55]), "inside steps"),
        (dict(noise_dtype="float32", dtype="float32", noise_substeps=2, backend="numpy"), "noise_substeps"),
    ]
    for extra, msg in cases:
        with pytest.raises(SDEKitError, match=msg) as info:
            sdekit.simulate(OU, x0, (0.0, 1.0), **{**kw, **extra})
        assert "noise_dtype" in str(info.value)
    with pytest.raises(SDEKitError, match="noise_dtype='float32' is not supported on backend='torch'"):
        sdekit.simulate(OU, x0, (0.0, 1.0), backend="torch", dtype="float32", noise_dtype="float32", **kw)
    with pytest.raises(SDEKitError, match="noise_dtype.*adaptive"):
        sdekit.simulate(OU, x0, (0.0, 1.0), solver="adaptive_sosra", dtype="float32", noise_dtype="float32")
    with pytest.raises(SDEKitError, match="noise_dtype='float32' needs dtype='float32'"):
        sdekit.plan(OU, x0, (0.0, 1.0), noise_dtype="float32", **kw)
