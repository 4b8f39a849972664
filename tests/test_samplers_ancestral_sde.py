"""Tests of the ancestral samplers (sdekit.diffusion.samplers.ancestral), DPM++ SDE (dpmpp_sde) and the multistep
SDE-DPM-Solver++(2M) / (3M) (dpmpp_multistep_sde) with the exact score of Gaussian-mixture data.

Law checks (N = 20000, fixed seeds, ``compare_with_law`` at 1e-6): start from exact draws of p(x; 80) (VE, alpha = 1),
``karras_sigmas(n, 0.002, 80)`` ending at 0, compare with the data law. Step counts n are the smallest measured to
pass in 1-, 2- and 4-D (the next smaller measured count fails; min p over the dimensions):

    sampler                 fails at n (NFE): min p            passes at n (NFE): min p
    Euler ancestral         256 (256): 1.1e-12 (4-D)           384 (384): 1.7e-6
    DPM-2 ancestral          40 (79):  8.4e-10 (4-D)            48 (95):  4.5e-4
    DPM++ 2S ancestral       48 (95):  1.2e-8 (4-D)             56 (111): 1.3e-6
    DPM++ SDE                28 (55):  7.1e-12 (4-D)            32 (63):  2.8e-6
    SDE-DPM++(2M) midpoint   40 (40):  6.2e-14 (2-D)            48 (48):  3.8e-5
    SDE-DPM++(2M) heun       48 (48):  2.3e-15 (4-D)            64 (64):  1.5e-5
    SDE-DPM++(3M)            28 (28):  1.8e-40 (2-D)            32 (32):  9.6e-8 (2-D)

Orders with eta = 0 (the ODE solvers; Gaussian data N(0, diag(0.05, 0.3, 2)), error vs the exact linear flow map,
slope windows fixed in advance): Euler a -> Euler [0.8, 1.2], DPM-2 a [1.8, 2.4], DPM++ 2S a and DPM++ SDE (= the
same DPM-Solver++(2S) at eta = 0) [1.6, 2.3], 2M [1.8, 2.4] on the Karras grid, NFE 10 .. 80; 3M [2.5, 3.5] on the
Karras grid, NFE 20 .. 160 (measured 3.15). sdekit's 3M weights the second difference d2 by the exact Taylor weight
-2 phi_3 = int_0^h e^{-(h - u)} u^2 du / h^2; k-diffusion's published weight -phi_3 (half of it) is second order
(measured 1.52 there) and is a planted bug of the order test (its law still passes at 32 steps, min p 0.024).

Planted bugs (monkeypatched module hooks): the ancestral noise without its square root (law), sigma_up with eta^2 in
place of eta (the split checked against its formula: the law is invariant to eta), DPM++ SDE's first-stage noise at
the full level sigma_s and with no stage noise (law), the 2M/3M noise std without its square root (law), diffusers'
3M coefficient -phi_3 with phi_3 = phi_2 / H + 1/2 (law, and the order drops to ~1), k-diffusion's 3M d2 weight
(order only).
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import sdekit.diffusion.samplers.ancestral as anc
import sdekit.diffusion.samplers.dpmpp_multistep_sde as msde
import sdekit.diffusion.samplers.dpmpp_sde as dsde
from sdekit.diffusion.samplers.ancestral import (
    ancestral_step,
    dpm2_ancestral_sample,
    dpmpp_2s_ancestral_sample,
    euler_ancestral_sample,
)
from sdekit.diffusion.samplers.dpmpp_multistep_sde import dpmpp_2m_sde_sample, dpmpp_3m_sde_sample
from sdekit.diffusion.samplers.dpmpp_sde import BrownianNoise, dpmpp_sde_sample
from sdekit.diffusion.samplers.edm import karras_sigmas
from sdekit.diffusion.samplers.sigma_grids import exponential_sigmas
from sdekit.errors import SDEKitError
from sdekit.noise.brownian_path import BrownianPath
from sdekit.noise.counter import counter_normals
from sdekit.validate import compare_with_law
from sdekit.validate.compare import ALL_TESTS

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import ALPHA_TEST, FIXTURES, GAUSS, GAUSS_VARS, N_MC, exact_score  # noqa: E402

GATING_TESTS = tuple(t for t in ALL_TESTS if t != "mmd")
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def heun_2m(*args, **kw):
    return dpmpp_2m_sde_sample(*args, solver_type="heun", **kw)


SAMPLERS = {  # name: (sampler, steps measured to pass in 1-, 2- and 4-D, NFE there)
    "euler_ancestral": (euler_ancestral_sample, 384, 384),
    "dpm2_ancestral": (dpm2_ancestral_sample, 48, 95),
    "dpmpp_2s_ancestral": (dpmpp_2s_ancestral_sample, 56, 111),
    "dpmpp_sde": (dpmpp_sde_sample, 32, 63),
    "dpmpp_2m_sde": (dpmpp_2m_sde_sample, 48, 48),
    "dpmpp_2m_sde_heun": (heun_2m, 64, 64),
    "dpmpp_3m_sde": (dpmpp_3m_sde_sample, 32, 32),
}


@functools.cache
def exact_start(d: int) -> np.ndarray:
    """N_MC exact draws of p(x; SIGMA_MAX), shared by every law run in d dimensions (read-only)."""
    x0 = FIXTURES[d].sample(N_MC, 1.0, SIGMA_MAX, seed=1)
    x0.setflags(write=False)
    return x0


def run_law(name: str, d: int, steps: int | None = None, **kw):
    sampler, n, _ = SAMPLERS[name]
    mm = FIXTURES[d]
    return sampler(exact_score(mm), karras_sigmas(steps or n, SIGMA_MIN, SIGMA_MAX), exact_start(d), seed=3, **kw)


def law_report(x: np.ndarray, d: int, what: str):
    """The battery's gating tests (KS and CvM on the marginals and projections, moments, Stein); its MMD diagnostic
    never gates (``Report.passed`` ignores it), so it is left out to save time."""
    return compare_with_law(x, FIXTURES[d].data, alpha=ALPHA_TEST, tests=GATING_TESTS, name=what)


# --------------------------------------------------------------------------------------------
# exact laws at the smallest passing step count
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 4])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_reaches_the_data_law(name, d):
    res = run_law(name, d)
    assert res.nfe == SAMPLERS[name][2]
    rep = law_report(res.x, d, f"{name} d={d}")
    assert rep.passed, rep.to_text()


def assert_planted_fails(name: str, d: int, what: str) -> None:
    rep = law_report(run_law(name, d).x, d, what)
    assert not rep.passed, f"planted bug not caught: {what}, min p = {rep.min_pvalue:.3g}"


def test_planted_ancestral_noise_without_sqrt_is_caught(monkeypatch):
    monkeypatch.setattr(anc, "_noise_std", lambda variance: variance)
    assert_planted_fails("dpmpp_2s_ancestral", 2, "ancestral noise std = sigma_up^2")


def test_planted_dpmpp_sde_stage_noise_level_is_caught(monkeypatch):
    monkeypatch.setattr(dsde, "_stage_noise_level", lambda sig, sig_s, eta: (0.0, sig_s))  # x_2 = D + sigma_s z
    assert_planted_fails("dpmpp_sde", 1, "DPM++ SDE stage-1 noise at the full level sigma_s")


def test_planted_dpmpp_sde_without_stage_noise_is_caught(monkeypatch):
    monkeypatch.setattr(dsde, "_stage_noise_level", lambda sig, sig_s, eta: (sig_s, 0.0))
    assert_planted_fails("dpmpp_sde", 1, "DPM++ SDE without stage-1 noise")


def test_planted_multistep_noise_without_sqrt_is_caught(monkeypatch):
    monkeypatch.setattr(msde, "_noise_std", lambda sn, h, eta: sn * -math.expm1(-2.0 * eta * h))
    assert_planted_fails("dpmpp_2m_sde", 2, "2M SDE noise std without sqrt")


def plant_diffusers_3m(monkeypatch) -> None:
    """diffusers' sde-dpmsolver++ order-3 d2 weight: -phi_3 with phi_3 = phi_2 / H + 1/2."""
    monkeypatch.setattr(msde, "_D2_WEIGHT", msde.K_DIFFUSION_D2_WEIGHT)
    monkeypatch.setattr(msde, "_PHI3_HALF", -0.5)


def test_planted_3m_coefficient_is_caught(monkeypatch):
    plant_diffusers_3m(monkeypatch)
    assert_planted_fails("dpmpp_3m_sde", 2, "3M with diffusers' d2 weight")


@pytest.mark.parametrize("eta", [0.0, 0.3, 0.5, 1.0, 2.0])
def test_ancestral_split_formula(eta):
    """sigma_up = min(sigma', eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2)), sigma_down^2 + sigma_up^2 =
    sigma'^2; for eta = 1 the step to sigma_down = sigma'^2 / sigma (the DDPM posterior mean level)."""
    for sig, nxt in ((80.0, 40.0), (1.0, 0.7), (0.01, 0.002), (3.0, 0.0)):
        down, up = ancestral_step(sig, nxt, eta)
        want = min(nxt, eta * nxt * math.sqrt(sig * sig - nxt * nxt) / sig)
        assert up == pytest.approx(want, rel=1e-13, abs=0.0)
        assert down * down + up * up == pytest.approx(nxt * nxt, rel=1e-12, abs=1e-300)
        if eta == 1.0:
            assert down == pytest.approx(nxt * nxt / sig, rel=1e-12, abs=1e-300)


def test_planted_eta_squared_breaks_the_split_formula(monkeypatch):
    """The law does not depend on eta (every split with sigma_down^2 + sigma_up^2 = sigma'^2 keeps it), so eta^2 in
    place of eta is caught by the split's formula, not by the law."""
    monkeypatch.setattr(anc, "_up_variance", lambda s, sn, eta: min(sn * sn, eta**4 * sn * sn * (s * s - sn * sn)
                                                                       / (s * s)))
    with pytest.raises(AssertionError):
        test_ancestral_split_formula(0.5)


def test_eta_changes_the_path_not_the_law():
    """eta = 0.5 (half the ancestral noise) with DPM-2 ancestral also reaches the data law at 48 steps (2-D)."""
    res = run_law("dpm2_ancestral", 2, eta=0.5)
    rep = law_report(res.x, 2, "DPM-2 ancestral eta = 0.5")
    assert rep.passed, rep.to_text()


# --------------------------------------------------------------------------------------------
# orders with eta = 0 on Gaussian data: the exact PF-ODE flow map is linear
# --------------------------------------------------------------------------------------------

GX0 = GAUSS.sample(200, 1.0, SIGMA_MAX, seed=3)
GEXACT = GX0 * np.sqrt((GAUSS_VARS + SIGMA_MIN**2) / (GAUSS_VARS + SIGMA_MAX**2))

ORDER_CASES = {  # name: (sampler, model calls per step, grid, NFEs, slope window)
    "euler_ancestral": (euler_ancestral_sample, 1, "karras", (10, 20, 40, 80), (0.8, 1.2)),
    "dpm2_ancestral": (dpm2_ancestral_sample, 2, "karras", (10, 20, 40, 80), (1.8, 2.4)),
    "dpmpp_2s_ancestral": (dpmpp_2s_ancestral_sample, 2, "karras", (10, 20, 40, 80), (1.6, 2.3)),
    "dpmpp_sde": (dpmpp_sde_sample, 2, "karras", (10, 20, 40, 80), (1.6, 2.3)),
    "dpmpp_2m_sde": (dpmpp_2m_sde_sample, 1, "karras", (10, 20, 40, 80), (1.8, 2.4)),
    "dpmpp_3m_sde": (dpmpp_3m_sde_sample, 1, "karras", (20, 40, 80, 160), (2.5, 3.5)),
}


def eta0_order(name: str) -> tuple[float, list[int], list[float]]:
    sampler, per_step, grid, nfes_wanted, _ = ORDER_CASES[name]
    nfes, errs = [], []
    for nfe in nfes_wanted:
        steps = nfe // per_step
        make = karras_sigmas if grid == "karras" else exponential_sigmas
        res = sampler(exact_score(GAUSS), make(steps + 1, SIGMA_MIN, SIGMA_MAX)[:-1], GX0, eta=0.0)
        nfes.append(res.nfe)
        errs.append(float(np.sqrt(np.mean((res.x - GEXACT) ** 2))))
    return float(-np.polyfit(np.log(nfes), np.log(errs), 1)[0]), nfes, errs


@pytest.mark.parametrize("name", list(ORDER_CASES))
def test_eta_zero_order(name):
    p, nfes, errs = eta0_order(name)
    lo, hi = ORDER_CASES[name][4]
    assert lo <= p <= hi, f"{name}: order {p:.2f} at NFE {nfes}; errors {errs}"


@pytest.mark.parametrize("plant", ["k-diffusion", "diffusers"])
def test_planted_3m_weight_lowers_the_order(plant, monkeypatch):
    """k-diffusion's published d2 weight (half the Taylor weight: order 2) and diffusers' (order ~1) leave the
    order window of 3M."""
    if plant == "k-diffusion":
        monkeypatch.setattr(msde, "_D2_WEIGHT", msde.K_DIFFUSION_D2_WEIGHT)
    else:
        plant_diffusers_3m(monkeypatch)
    p, _, errs = eta0_order("dpmpp_3m_sde")
    lo, hi = ORDER_CASES["dpmpp_3m_sde"][4]
    assert not lo <= p <= hi, f"planted bug kept order {p:.2f}; errors {errs}"


def test_eta_zero_is_deterministic_and_the_2s_samplers_agree():
    """eta = 0 draws no noise (the seed is ignored), and DPM++ SDE with eta = 0 is DPM++ 2S with eta = 0."""
    sig = karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    sc = exact_score(GAUSS)
    for sampler in (euler_ancestral_sample, dpm2_ancestral_sample, dpmpp_2s_ancestral_sample, dpmpp_sde_sample,
                    dpmpp_2m_sde_sample, dpmpp_3m_sde_sample):
        a = sampler(sc, sig, GX0, eta=0.0, seed=1, noise=lambda i, like: pytest.fail("noise drawn")).x
        np.testing.assert_array_equal(a, sampler(sc, sig, GX0, eta=0.0, seed=2).x)
    np.testing.assert_allclose(dpmpp_sde_sample(sc, sig, GX0, eta=0.0).x,
                               dpmpp_2s_ancestral_sample(sc, sig, GX0, eta=0.0).x, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# noise: streams, Brownian path, batch independence
# --------------------------------------------------------------------------------------------


def test_brownian_noise_increments_are_standard_and_correlated_as_one_path():
    """z_1 = (W(s) - W(t)) / sqrt(s - t) and z_2 = (W(u) - W(t)) / sqrt(u - t) are N(0, 1) with correlation
    sqrt((s - t) / (u - t)) (= sqrt(r) for DPM++ SDE's two stages); chi-square and Fisher-z bounds at 1e-6."""
    from scipy import stats

    n, d = 20000, 2
    path = BrownianNoise(seed=4, path_offset=0, n=n, d=d, t_lo=-4.0, t_hi=6.0)
    like = np.zeros((n, d))
    t, s, u = 0.3, 0.55, 0.8
    z1, z2 = path(t, s, like), path(t, u, like)
    for z in (z1, z2):
        q = float(np.sum(z * z))
        assert stats.chi2.sf(q, n * d) > 1e-6 and stats.chi2.cdf(q, n * d) > 1e-6
    rho = float(np.corrcoef(z1.ravel(), z2.ravel())[0, 1])
    want = math.sqrt((s - t) / (u - t))
    zstat = (math.atanh(rho) - math.atanh(want)) * math.sqrt(n * d - 3)
    assert abs(zstat) < stats.norm.isf(0.5e-6)
    np.testing.assert_array_equal(path(t, u, like), z2)  # a pure function of the times


def plain_descent(path, t: float) -> np.ndarray:
    """W(t) by Levy's midpoint construction from the root, in plain NumPy (the definition in
    `sdekit.noise.brownian_path`), for checking the path's reuse of cells and its fused arithmetic."""
    def normals(node: int) -> np.ndarray:
        return counter_normals(path.seed, path.n_paths, path.m, path_offset=path.path_offset, stream=path.stream,
                               draw_offset=node * path.m)

    a, b, node = path.t0, path.t1, 1
    wa, wb = np.zeros((path.n_paths, path.m)), math.sqrt(b - a) * normals(0)
    if t in (a, b):
        return wa if t == a else wb
    for _ in range(path.depth):
        mid = 0.5 * (a + b)
        wm = 0.5 * (wa + wb) + math.sqrt((b - a) / 4.0) * normals(node)
        if t == mid:
            return wm
        a, b, wa, wb, node = (a, mid, wa, wm, 2 * node) if t < mid else (mid, b, wm, wb, 2 * node + 1)
    return wa + (t - a) / (b - a) * (wb - wa)


def test_brownian_path_queries_equal_the_plain_descent_bit_for_bit():
    """Queries in any order (nearby times reuse the previous descent's cells; dyadic points stop early) give the
    numbers of the plain construction exactly, also when the kept cells are fewer than the levels."""
    rng = np.random.default_rng(3)
    for n, m, depth in ((7, 3, 52), (60, 1000, 20)):  # the second keeps 17 cells of 20 levels
        path = BrownianPath(5, n, m, t0=-4.4, t1=6.2, path_offset=11, stream=3, depth=depth)
        times = [0.3, 0.3 + 1e-9, 0.30000000000000004, 0.9, -4.4 + 10.6 * 0.375, 6.2, -4.4, *rng.uniform(-4.4, 6.2, 4)]
        for t in times:
            np.testing.assert_array_equal(path(float(t)), plain_descent(path, float(t)))


def test_dpmpp_sde_default_noise_is_the_brownian_path():
    """The default run equals a run fed the path's normalised increments through noise= (stage draws 2 i, 2 i + 1),
    differs from brownian=False (independent stream draws), and is batch independent with path_offset."""
    mm = FIXTURES[2]
    x0 = mm.sample(300, 1.0, SIGMA_MAX, seed=5)
    sig = karras_sigmas(5, SIGMA_MIN, SIGMA_MAX)
    sc = exact_score(mm)
    default = dpmpp_sde_sample(sc, sig, x0, seed=7).x
    path = BrownianNoise(7, 0, 300, 2, -math.log(SIGMA_MAX), -math.log(SIGMA_MIN))
    ts = -np.log(sig[:-1])

    def fed(k, like):
        i = k // 2
        end = ts[i] + 0.5 * (ts[i + 1] - ts[i]) if k % 2 == 0 else ts[i + 1]
        return path(float(ts[i]), float(end), like)

    np.testing.assert_allclose(dpmpp_sde_sample(sc, sig, x0, noise=fed).x, default, rtol=0, atol=1e-12)
    assert not np.allclose(dpmpp_sde_sample(sc, sig, x0, seed=7, brownian=False).x, default)
    tail = dpmpp_sde_sample(sc, sig, x0[100:], seed=7, path_offset=100).x
    np.testing.assert_array_equal(tail, default[100:])


@pytest.mark.parametrize("sampler", [euler_ancestral_sample, dpmpp_2m_sde_sample, dpmpp_3m_sde_sample])
def test_stream_noise_is_reproducible_and_batch_independent(sampler):
    mm = FIXTURES[2]
    x0 = mm.sample(400, 1.0, SIGMA_MAX, seed=5)
    sig = karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    sc = exact_score(mm)
    a = sampler(sc, sig, x0, seed=11).x
    np.testing.assert_array_equal(a, sampler(sc, sig, x0, seed=11).x)
    np.testing.assert_array_equal(a[150:], sampler(sc, sig, x0[150:], seed=11, path_offset=150).x)
    assert not np.allclose(a, sampler(sc, sig, x0, seed=12).x)


def test_multistep_brownian_option_couples_grids():
    """brownian=True: the noise of a step is the path's increment, so the fine grid's two noises over a coarse step
    add up to the coarse step's noise (z_c sqrt(h) = z_1 sqrt(h_1) + z_2 sqrt(h_2))."""
    seen = {}
    mm = FIXTURES[1]
    x0 = mm.sample(50, 1.0, SIGMA_MAX, seed=5)

    class Spy(BrownianNoise):
        def __call__(self, a, b, like):
            z = super().__call__(a, b, like)
            seen[(round(a, 12), round(b, 12))] = z
            return z

    orig = msde.brownian_for
    try:
        msde.brownian_for = lambda run, x, s: Spy(run.seed, run.path_offset, x.shape[0], 1, -math.log(s[0]),
                                                  -math.log(s[s > 0].min()))
        fine = np.array([SIGMA_MAX, 10.0, 1.0, 0.1])
        dpmpp_2m_sde_sample(exact_score(mm), fine, x0, brownian=True, seed=3)
        dpmpp_2m_sde_sample(exact_score(mm), fine[[0, 2, 3]], x0, brownian=True, seed=3)
    finally:
        msde.brownian_for = orig
    t = [round(-math.log(v), 12) for v in fine]
    coarse = seen[(t[0], t[2])] * math.sqrt(t[2] - t[0])
    parts = seen[(t[0], t[1])] * math.sqrt(t[1] - t[0]) + seen[(t[1], t[2])] * math.sqrt(t[2] - t[1])
    np.testing.assert_allclose(coarse, parts, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------------------------
# torch = NumPy, results, bad input
# --------------------------------------------------------------------------------------------

ALL = [euler_ancestral_sample, dpm2_ancestral_sample, dpmpp_2s_ancestral_sample, dpmpp_sde_sample,
       dpmpp_2m_sde_sample, heun_2m, dpmpp_3m_sde_sample]


@pytest.mark.parametrize("sampler", ALL)
def test_torch_float64_equals_numpy(sampler):
    torch = pytest.importorskip("torch")
    mm = FIXTURES[2]
    x0 = mm.sample(64, 1.0, SIGMA_MAX, seed=5)
    sig = karras_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    sc = exact_score(mm)

    def tscore(x, a, s):
        return torch.from_numpy(sc(x.numpy(), a, s))

    ref = sampler(sc, sig, x0, seed=4, return_trajectory=True)
    out = sampler(tscore, sig, torch.from_numpy(x0), seed=4, return_trajectory=True)
    assert isinstance(out.x, torch.Tensor) and out.x.dtype == torch.float64
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.trajectory.numpy(), ref.trajectory, rtol=1e-12, atol=1e-12)
    assert out.nfe == ref.nfe and ref.trajectory.shape == (7, 64, 2)
    np.testing.assert_array_equal(ref.sigmas, sig)


@pytest.mark.parametrize("sampler", ALL)
def test_callback_sees_every_step(sampler):
    mm = FIXTURES[1]
    x0 = mm.sample(10, 1.0, SIGMA_MAX, seed=5)
    sig = karras_sigmas(4, SIGMA_MIN, SIGMA_MAX)
    infos = []
    res = sampler(exact_score(mm), sig, x0, callback=infos.append)
    assert [i.step for i in infos] == [0, 1, 2, 3]
    assert [i.sigma for i in infos] == sig[1:].tolist()
    np.testing.assert_array_equal(infos[-1].x, res.x)
    np.testing.assert_array_equal(infos[-1].denoised, res.x)  # the last step onto 0 is the denoise


BAD_INPUTS = [
    ({"sigmas": [1.0, 2.0]}, "sigmas"),
    ({"sigmas": [1.0]}, "sigmas"),
    ({"x_init": np.array([1.0, np.nan])[:, None]}, "x_init"),
    ({"score": 3}, "score"),
    ({"eta": -0.1}, "eta"),
    ({"eta": float("nan")}, "eta"),
    ({"s_noise": -1.0}, "s_noise"),
    ({"seed": -1}, "seed"),
    ({"noise": 5}, "noise"),
]


@pytest.mark.parametrize("sampler", ALL)
@pytest.mark.parametrize("bad,word", BAD_INPUTS)
def test_bad_inputs(sampler, bad, word):
    kw = {"score": exact_score(FIXTURES[1]), "sigmas": [2.0, 1.0, 0.0], "x_init": np.zeros((3, 1))}
    kw.update(bad)
    with pytest.raises(SDEKitError, match=word):
        sampler(kw.pop("score"), kw.pop("sigmas"), kw.pop("x_init"), **kw)


@pytest.mark.parametrize("bad,word", [({"r": 0.0}, "r"), ({"r": 1.5}, "r"), ({"brownian": 1}, "brownian"),
                                      ({"brownian": True, "noise": lambda i, like: like}, "noise")])
def test_dpmpp_sde_bad_inputs(bad, word):
    with pytest.raises(SDEKitError, match=word):
        dpmpp_sde_sample(exact_score(FIXTURES[1]), [2.0, 1.0, 0.0], np.zeros((3, 1)), **bad)


def test_multistep_bad_inputs():
    sc, sig, x = exact_score(FIXTURES[1]), [2.0, 1.0, 0.0], np.zeros((3, 1))
    with pytest.raises(SDEKitError, match="solver_type"):
        dpmpp_2m_sde_sample(sc, sig, x, solver_type="euler")
    with pytest.raises(SDEKitError, match="brownian"):
        dpmpp_3m_sde_sample(sc, sig, x, brownian="yes")
    with pytest.raises(SDEKitError, match="noise"):
        dpmpp_2m_sde_sample(sc, sig, x, brownian=True, noise=lambda i, like: like)
