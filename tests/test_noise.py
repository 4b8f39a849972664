"""The noise generator: statistical soundness, bit-identity of the two implementations, reproducibility, coupling.

False-alarm budget. Every statistical test below is one battery gated at ALPHA = 1e-6, split by
Bonferroni over its k statistics (each statistic at ALPHA / k). The seeds are fixed, so a test can
only flip when the stream itself changes; then each test false-alarms with probability <= 1e-6.

Statistics (N draws z_i, under H0 i.i.d. N(0, 1)):
* moment z-tests: for a function phi with known E phi and Var phi under N(0, 1),
  Z = sqrt(N) (mean phi(z) - E phi) / sqrt(Var phi) -> N(0, 1). phi = z, z^2, z^3, z^4 with
  (E, Var) = (0, 1), (1, 2), (0, 15), (3, 96) (E z^6 = 15, E z^8 = 105). Two-sided critical value
  z_{1 - ALPHA / (2k)}. At N = 10^7 the CLT is accurate far into the tail: the skewness of mean z^4
  is 10.1 / sqrt(N) = 0.003, an Edgeworth correction of ~1% to the 1e-7 tail probability.
* products of draws that should be independent (lag-1 pairs, neighbouring paths, two streams):
  phi = z_a z_b has mean 0 and variance 1, and (z_a^2 - 1)(z_b^2 - 1) mean 0, variance 4; sums of
  such products along a chain are uncorrelated (E[z1 z2 z2 z3] = 0), so the same z-test applies.
* KS: D_N = sup |F_N - Phi|; the DKW–Massart bound P(D_N > eps) <= 2 exp(-2 N eps^2) gives the
  rigorous critical value eps = sqrt(ln(2 / ALPHA) / (2 N)).
* chi-square on B = 100 equiprobable bins: X^2 ~ chi2_{99} (N / B = 10^5 per bin, so the
  asymptotic law is exact to far below 1e-6); critical value chi2.isf(ALPHA, 99).
* tail counts: #{|z| > c} ~ Binomial(N, 2 Phi(-c)) exactly; two-sided exact binomial p-value.

Every battery is also run on a planted-bug generator (scaled, shifted, truncated, correlated) and
must reject it: the tests have power, not just a low false-alarm rate.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss
from scipy.special import ndtr

import sdekit
from sdekit.noise import PathStreams, path_normals
from sdekit.noise.ziggurat import TAIL_START
from sdekit.validate import brownian_problem, brownian_terminal, gbm_problem, s3_problem

ALPHA = 1e-6
SEED = 987654321
N_PATHS, N_DRAWS = 10_000, 1_000  # 10^7 draws


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    """Stream 0 of paths 0..9999, first 1000 draws each: shape (10^4, 10^3)."""
    return path_normals(SEED, N_PATHS, N_DRAWS)


def z_crit(k: int) -> float:
    """Two-sided normal critical value for one of k Bonferroni-split statistics at ALPHA."""
    return float(ss.norm.isf(ALPHA / (2 * k)))


# ------------------------------------------------------------------------------------------ statistics


def moment_stats(z: np.ndarray) -> dict[str, float]:
    """z-scores of the first four raw moments against N(0, 1)."""
    z = z.ravel()
    n = z.size
    z2 = z * z
    root = np.sqrt(n)
    return {
        "mean": root * z.mean(),
        "variance": root * (z2.mean() - 1.0) / np.sqrt(2.0),
        "skew": root * (z2 * z).mean() / np.sqrt(15.0),
        "kurtosis": root * ((z2 * z2).mean() - 3.0) / np.sqrt(96.0),
    }


def product_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """z-scores of sum a b and of sum (a^2 - 1)(b^2 - 1) for draws that should be independent."""
    n = a.size
    return {
        "linear": float((a * b).sum() / np.sqrt(n)),
        "squares": float(((a * a - 1.0) * (b * b - 1.0)).sum() / np.sqrt(4.0 * n)),
    }


def dkw_eps(n: int) -> float:
    """DKW–Massart critical value of the KS distance at ALPHA: sqrt(ln(2 / ALPHA) / (2 n))."""
    return float(np.sqrt(np.log(2.0 / ALPHA) / (2.0 * n)))


def ks_distance(z: np.ndarray) -> float:
    """sup_x |F_N(x) - Phi(x)|."""
    x = np.sort(z.ravel())
    n = x.size
    f = ndtr(x)
    i = np.arange(1, n + 1)
    return float(max((i / n - f).max(), (f - (i - 1) / n).max()))


def chi2_bins(z: np.ndarray, bins: int = 100) -> float:
    """Pearson X^2 of z over `bins` equiprobable N(0, 1) bins."""
    u = ndtr(z.ravel())
    idx = np.minimum((u * bins).astype(np.int64), bins - 1)
    counts = np.bincount(idx, minlength=bins)
    expected = z.size / bins
    return float(((counts - expected) ** 2 / expected).sum())


TAIL_CUTS = (3.0, TAIL_START, 4.0, 5.0)  # TAIL_START: where the ziggurat's tail algorithm takes over


def tail_pvalues(z: np.ndarray) -> dict[float, float]:
    """Exact two-sided binomial p-values of #{|z| > c} for each cut c."""
    a = np.abs(z.ravel())
    return {c: float(ss.binomtest(int((a > c).sum()), a.size, 2.0 * ss.norm.sf(c)).pvalue) for c in TAIL_CUTS}


# ------------------------------------------------------------------------------------------ statistical soundness


def test_moments(draws: np.ndarray) -> None:
    """Mean, variance, skewness and kurtosis z-tests on 10^7 draws (4 statistics, each at ALPHA / 4)."""
    crit = z_crit(4)
    stats = moment_stats(draws)
    assert all(abs(v) < crit for v in stats.values()), (stats, crit)


def test_moments_reject_planted_bugs(draws: np.ndarray) -> None:
    crit = z_crit(4)
    sub = draws[:2000]  # 2 * 10^6 draws are plenty to catch these
    assert abs(moment_stats(1.414 * sub)["variance"]) > crit  # generator scaled by sqrt 2
    assert abs(moment_stats(1.02 * sub)["variance"]) > crit  # 4% variance error
    assert abs(moment_stats(sub + 0.005)["mean"]) > crit  # mean shift of 0.005 sd
    assert abs(moment_stats(np.clip(sub, -3.0, 3.0))["kurtosis"]) > crit  # truncated tails


def test_stream1_moments() -> None:
    """Stream 1 (SRA's auxiliary normals) passes the same moment battery on 10^7 draws."""
    stats = moment_stats(path_normals(SEED, N_PATHS, N_DRAWS, stream=1))
    assert all(abs(v) < z_crit(4) for v in stats.values()), stats


def test_ks_against_normal(draws: np.ndarray) -> None:
    """KS distance of 2 * 10^6 draws to Phi below the DKW–Massart critical value (rigorous at ALPHA);
    scipy's asymptotic KS p-value agrees (reported, and must exceed ALPHA as well)."""
    z = draws[:, :200]
    d = ks_distance(z)
    assert d < dkw_eps(z.size), (d, dkw_eps(z.size))
    p = ss.kstest(z.ravel(), "norm", method="asymp").pvalue
    assert p > ALPHA, p


def test_ks_rejects_planted_bugs(draws: np.ndarray) -> None:
    z = draws[:, :200]
    eps = dkw_eps(z.size)
    assert ks_distance(1.414 * z) > eps
    assert ks_distance(z + 0.01) > eps


def test_chi2_equiprobable_bins(draws: np.ndarray) -> None:
    """X^2 over 100 equiprobable bins of 10^7 draws below chi2_{99} critical value at ALPHA."""
    crit = ss.chi2.isf(ALPHA, 99)
    x2 = chi2_bins(draws)
    assert x2 < crit, (x2, crit)


def test_chi2_rejects_planted_bugs(draws: np.ndarray) -> None:
    crit = ss.chi2.isf(ALPHA, 99)
    draws = draws[:3000]  # 3 * 10^6 draws
    assert chi2_bins(1.414 * draws) > crit
    assert chi2_bins(1.01 * draws) > crit  # a 2% variance error
    # a ziggurat whose wedge is always accepted would put extra mass in the wedges; mimic with a
    # 0.5% shift of mass towards 0 inside |z| < 1
    bent = np.where(np.abs(draws) < 1.0, 0.99 * draws, draws)
    assert chi2_bins(bent) > crit


def test_tail_frequencies(draws: np.ndarray) -> None:
    """#{|z| > c} for c in (3, r, 4, 5), r = 3.654 the ziggurat's tail start: exact binomial
    tests, each at ALPHA / 4. Expected counts at N = 10^7: 26998, 2583, 633, 5.7."""
    pv = tail_pvalues(draws)
    assert all(p > ALPHA / len(TAIL_CUTS) for p in pv.values()), pv


def test_tails_reject_planted_bugs(draws: np.ndarray) -> None:
    limit = ALPHA / len(TAIL_CUTS)
    no_tail = np.where(np.abs(draws) > TAIL_START, np.sign(draws) * 0.5, draws)  # tail algorithm missing
    assert min(tail_pvalues(no_tail).values()) < limit
    assert min(tail_pvalues(1.05 * draws).values()) < limit  # 5% too wide: |z| > 4 is 40% too frequent


def test_lag1_autocorrelation_within_path(draws: np.ndarray) -> None:
    """Consecutive draws of a path: z_j z_{j+1} and (z_j^2 - 1)(z_{j+1}^2 - 1), and lag 2 (4 statistics)."""
    s1 = product_stats(draws[:, :-1], draws[:, 1:])
    s2 = product_stats(draws[:, :-2], draws[:, 2:])
    stats = {**{f"lag1_{k}": v for k, v in s1.items()}, **{f"lag2_{k}": v for k, v in s2.items()}}
    assert all(abs(v) < z_crit(4) for v in stats.values()), stats


def test_autocorrelation_rejects_planted_bug(draws: np.ndarray) -> None:
    bug = (draws[:, 1:] + 0.01 * draws[:, :-1]) / np.sqrt(1.0001)  # lag-1 correlation 0.01
    assert abs(product_stats(bug[:, :-1], bug[:, 1:])["linear"]) > z_crit(4)


def test_neighbouring_paths_uncorrelated(draws: np.ndarray) -> None:
    """Paths p and p + 1 at the same draw index (2 statistics), and no two paths share a first draw
    (a keying collision would duplicate a whole row; under H0 a tie among 10^4 doubles has
    probability ~ 10^8 / 2^53 ~ 1e-8)."""
    stats = product_stats(draws[:-1], draws[1:])
    assert all(abs(v) < z_crit(2) for v in stats.values()), stats
    assert np.unique(draws[:, 0]).size == N_PATHS


def test_neighbouring_paths_reject_planted_bug(draws: np.ndarray) -> None:
    bug = draws.copy()
    bug[1:] = (draws[1:] + 0.01 * draws[:-1]) / np.sqrt(1.0001)
    assert abs(product_stats(bug[:-1], bug[1:])["linear"]) > z_crit(2)
    dup = draws[:100].copy()
    dup[57] = dup[12]  # path 57 keyed like path 12
    assert np.unique(dup[:, 0]).size < 100


def test_streams_and_seeds_independent(draws: np.ndarray) -> None:
    """Stream 0 vs stream 1 of the same path, and seed s vs seed s + 1 on the same path and stream
    (4 statistics). Planted bug: a key that ignores the stream id makes stream 1 = stream 0."""
    z1 = path_normals(SEED, N_PATHS, N_DRAWS, stream=1)
    z_next_seed = path_normals(SEED + 1, N_PATHS, N_DRAWS)
    stats = {**{f"stream_{k}": v for k, v in product_stats(draws, z1).items()},
             **{f"seed_{k}": v for k, v in product_stats(draws, z_next_seed).items()}}
    assert all(abs(v) < z_crit(4) for v in stats.values()), stats
    assert abs(product_stats(draws, draws)["linear"]) > z_crit(4)


# ------------------------------------------------------------------------------------------ two implementations


@pytest.mark.parametrize("seed, stream, offset", [(SEED, 0, 0), (12345, 1, 0), (2**64 - 1, 0, 10**6)])
def test_numba_equals_numpy_bit_for_bit(seed: int, stream: int, offset: int) -> None:
    """path_normals (Numba) and PathStreams (NumPy) give identical doubles on 10^3 paths x 200 draws,
    tail draws (log1p in both) included; the sample holds ~50 draws beyond the tail start."""
    a = path_normals(seed, 1000, 200, path_offset=offset, stream=stream)
    b = PathStreams(seed, 1000, stream=stream, offset=offset).normals(200)
    n_tail = int((np.abs(a) > TAIL_START).sum())
    assert n_tail > 10
    diff = a != b
    assert not diff.any(), (f"{diff.sum()} of {a.size} draws differ (max |diff| {np.abs(a - b).max():.3g}); "
                            f"{(diff & (np.abs(a) > TAIL_START)).sum()} of them in the tail")


def test_path_offset_selects_rows() -> None:
    full = path_normals(SEED, 300, 20)
    assert np.array_equal(path_normals(SEED, 100, 20, path_offset=200), full[200:])
    assert np.array_equal(path_normals(SEED, 300, 20, parallel=False), full)
    assert np.array_equal(path_normals(SEED, 300, 7), full[:, :7])


# ------------------------------------------------------------------------------------------ reproducibility

GBM = gbm_problem(0.5, 1.0)
S3 = s3_problem(1.0, 1.0)
REPRO = [("euler_maruyama", GBM.sde), ("sra1", S3.sde)]  # sra1: the auxiliary stream too


def _x0(n: int) -> np.ndarray:
    return np.linspace(0.5, 2.0, n)[:, None]


@pytest.mark.parametrize("solver, sde", REPRO, ids=[r[0] for r in REPRO])
def test_threads_and_chunks_do_not_change_results(solver: str, sde: sdekit.SDE) -> None:
    """3000 paths (above the serial cutoff, so threads=2 really runs in parallel): threads 1 vs 2 and
    chunk_size 1, 7, 256 give bit-identical ys at every step."""
    n = 3000
    kw = dict(steps=40, n_paths=n, seed=SEED, solver=solver, save_at="steps", noise_substeps=2)
    ref = sdekit.simulate(sde, _x0(n), (0.0, 1.0), threads=1, **kw)
    for threads in (1, 2):
        for chunk in (1, 7, 256):
            sol = sdekit.simulate(sde, _x0(n), (0.0, 1.0), threads=threads, chunk_size=chunk, **kw)
            assert np.array_equal(sol.ys, ref.ys), (threads, chunk)
    assert sdekit.simulate(sde, _x0(n), (0.0, 1.0), threads=2, **kw).stats.threads == 2


@pytest.mark.parametrize("solver, sde", REPRO, ids=[r[0] for r in REPRO])
def test_batch_size_does_not_change_paths(solver: str, sde: sdekit.SDE) -> None:
    """Path p's result depends on (seed, p) only: the first 1000 rows of a 1500-path solve equal a
    1000-path solve; a different seed changes every path."""
    x0 = _x0(1500)
    kw = dict(steps=25, seed=SEED, solver=solver, save_at="steps")
    big = sdekit.simulate(sde, x0, (0.0, 1.0), n_paths=1500, **kw)
    small = sdekit.simulate(sde, x0[:1000], (0.0, 1.0), n_paths=1000, **kw)
    assert np.array_equal(big.ys[:, :1000], small.ys)
    other = sdekit.simulate(sde, x0[:1000], (0.0, 1.0), n_paths=1000, **{**kw, "seed": SEED + 1})
    assert np.all(other.ys[-1] != small.ys[-1])


@pytest.mark.parametrize("solver, sde", REPRO, ids=[r[0] for r in REPRO])
def test_numba_matches_numpy_reference(solver: str, sde: sdekit.SDE) -> None:
    """The Numba kernel and the NumPy reference backend draw the same noise: same paths to rounding."""
    kw = dict(steps=20, n_paths=64, seed=SEED, solver=solver, noise_substeps=3)
    a = sdekit.simulate(sde, _x0(64), (0.0, 1.0), backend="numba", **kw).ys
    b = sdekit.simulate(sde, _x0(64), (0.0, 1.0), backend="numpy", **kw).ys
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ coupling


@pytest.mark.parametrize("dim", [1, 2])
def test_noise_substeps_couple_to_the_fine_path(dim: int) -> None:
    """dX = dW with steps=10, noise_substeps=4 equals steps=40 at the coarse times (to 1e-12), and
    both equal the running sums of path_normals (order: step, substep, component)."""
    bm = brownian_problem(dim)
    n, t1 = 500, 2.0
    coarse = sdekit.simulate(bm, np.zeros(dim), (0.0, t1), steps=10, noise_substeps=4, n_paths=n, seed=SEED,
                             save_at="steps")
    fine = sdekit.simulate(bm, np.zeros(dim), (0.0, t1), steps=40, n_paths=n, seed=SEED, save_at="steps")
    np.testing.assert_allclose(coarse.ts, fine.ts[::4], rtol=0, atol=1e-15)
    np.testing.assert_allclose(coarse.ys, fine.ys[::4], rtol=0, atol=1e-12)
    z = path_normals(SEED, n, 40 * dim).reshape(n, 40, dim)
    w = np.concatenate([np.zeros((n, 1, dim)), np.cumsum(np.sqrt(t1 / 40) * z, axis=1)], axis=1)
    np.testing.assert_allclose(fine.ys, w.transpose(1, 0, 2), rtol=0, atol=1e-12)
    # planted bug: without noise_substeps the coarse solve reads the first 10 draws instead
    plain = sdekit.simulate(bm, np.zeros(dim), (0.0, t1), steps=10, n_paths=n, seed=SEED, save_at="steps")
    assert np.abs(plain.ys[-1] - fine.ys[-1]).max() > 0.1


def test_brownian_terminal_methods_agree() -> None:
    """W_T from summed path_normals equals X_T of the simulated dX = dW (m = 3)."""
    a = brownian_terminal(SEED, 700, 3, 0.0, 1.5, 64, method="normals", max_block=5000)
    b = brownian_terminal(SEED, 700, 3, 0.0, 1.5, 64, method="simulate")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert abs(a.var() / 1.5 - 1.0) < 0.1


def _integrated_bm_f(x, t, p):
    out = np.zeros_like(x)
    for r in range(x.shape[0]):  # a loop: slice assignment costs Numba seconds more to compile
        out[r, 1] = x[r, 0]
    return out


def _integrated_bm_g(x, t, p):
    return np.array([1.0, 0.0])


INTEGRATED_BM = sdekit.SDE(_integrated_bm_f, _integrated_bm_g, 2, noise="additive", name="integrated_bm")


def test_sra_iterated_integral_couples_to_the_fine_path() -> None:
    """dX1 = dW, dX2 = X1 dt (X2 = int W ds): one SRA1 step gives x2' = x2 + h x1 + I_(1,0) exactly,
    so SRA1 is exact here and the coarse solve (steps=10, noise_substeps=4), whose I_(1,0) is
    assembled from the fine increments, must equal the fine solve (steps=40) at the coarse times."""
    n = 400
    kw = dict(n_paths=n, seed=SEED, solver="sra1", save_at="steps")
    coarse = sdekit.simulate(INTEGRATED_BM, np.zeros(2), (0.0, 1.0), steps=10, noise_substeps=4, **kw)
    fine = sdekit.simulate(INTEGRATED_BM, np.zeros(2), (0.0, 1.0), steps=40, **kw)
    np.testing.assert_allclose(coarse.ys, fine.ys[::4], rtol=0, atol=1e-12)
    # and the law is right: Var int_0^1 W ds = 1/3, Cov(W_1, int W) = 1/2 (tolerance 0.02: over 6
    # standard errors of each entry at 2 * 10^5 paths)
    big = sdekit.simulate(INTEGRATED_BM, np.zeros(2), (0.0, 1.0), steps=1, n_paths=200_000, seed=SEED,
                          solver="sra1").ys[-1]
    cov = np.cov(big.T)
    np.testing.assert_allclose(cov, [[1.0, 0.5], [0.5, 1.0 / 3.0]], atol=0.02)
