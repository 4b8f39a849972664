"""Tests of the EDM samplers (sdekit.diffusion.samplers.edm) and DPM-Solver / DPM-Solver++
(sdekit.diffusion.samplers.dpm_solver) with the exact score of Gaussian-mixture data.

Law checks (N = 20000, fixed seeds, ``compare_with_law`` at 1e-6): start from exact draws of the first noise level and
compare with the exact law at the end (the data law for EDM ending at sigma = 0; the exact marginal at t = eps of
ForwardSDE.vp() for DPM-Solver, logSNR grid). Step counts are where the discretisation bias is no longer detectable
at this N (measured; see the module docstrings): EDM Heun fails at 18 steps / 35 NFE (1-D min p 2e-24) and is tested
at 32 steps / 63 NFE; DPM-Solver++(2M) fails at 20 NFE in 2-D / 4-D and is tested at 30; DPM-Solver-2 fails at
40 NFE in 2-D / 4-D and is tested at 50; DPM-Solver-3 is tested at 21.

Orders (Gaussian data N(0, diag(0.05, 0.3, 2)), error vs the exact linear flow map, NFE ~ 10, 20, 40, 80, slope
windows fixed in advance): EDM Heun [1.7, 2.5], DPM-Solver-2 [1.7, 2.5], DPM-Solver-3 [2.6, 4.2],
DPM-Solver++(2M) [1.6, 2.4]; and one-step local orders p + 1 for every single-step solver.

EDM with churn (S_churn = 10, S_tmin = 0.05, S_tmax = 50) fails at 32 steps (moments, p 5e-20) and is tested at 64.
SDE-DPM-Solver++(2M) fails at 25 NFE and is tested at 100.

Planted bugs (monkeypatched module hooks): Heun using only the second slope (law and order), churn noise with the sqrt
dropped (law), DPM-Solver-2 with expm1(h) replaced by h (law).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import sdekit.diffusion.samplers.dpm_solver as dpm
import sdekit.diffusion.samplers.edm as edm
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample, lambda_grid, vp_alpha_sigma
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.errors import SDEKitError
from sdekit.targets import GaussianMixture

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import FIXTURES, GAUSS, N_MC, assert_law, assert_law_fails, exact_score, flow_map, slope  # noqa: E402

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
VP = ForwardSDE.vp()


def edm_start(d: int) -> np.ndarray:
    return FIXTURES[d].sample(N_MC, 1.0, SIGMA_MAX, seed=1)


def vp_start(d: int) -> np.ndarray:
    return FIXTURES[d].sample(N_MC, *VP.kernel(VP.T), seed=2)


# --------------------------------------------------------------------------------------------
# EDM
# --------------------------------------------------------------------------------------------


def test_karras_sigmas_formula():
    s = karras_sigmas(18, SIGMA_MIN, SIGMA_MAX)
    assert s.shape == (19,) and s[-1] == 0.0 and s[0] == SIGMA_MAX and s[-2] == pytest.approx(SIGMA_MIN, rel=1e-14)
    i = np.arange(18)
    ref = (SIGMA_MAX ** (1 / 7) + i / 17 * (SIGMA_MIN ** (1 / 7) - SIGMA_MAX ** (1 / 7))) ** 7
    np.testing.assert_allclose(s[:-1], ref, rtol=1e-13)
    assert np.all(np.diff(s) < 0)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_edm_heun_reaches_the_data_law(d):
    """Heun at 32 steps (63 NFE); at 18 steps (35 NFE) the bias is detectable (variance +6% in 1-D)."""
    mm = FIXTURES[d]
    res = edm_sample(exact_score(mm), karras_sigmas(32, SIGMA_MIN, SIGMA_MAX), edm_start(d))
    assert res.nfe == 63
    assert_law(res.x, mm.data, f"EDM Heun d={d}")


def test_edm_stochastic_churn_reaches_the_data_law():
    """Churn gamma = 10 / 64 on [0.05, 50] at 64 steps; at 32 steps (gamma 0.31 or 0.16) the bias is detectable."""
    mm = FIXTURES[2]
    res = edm_sample(exact_score(mm), karras_sigmas(64, SIGMA_MIN, SIGMA_MAX), edm_start(2), s_churn=10.0,
                     s_tmin=0.05, s_tmax=50.0, seed=7)
    assert res.nfe == 127
    assert_law(res.x, mm.data, "EDM Heun churn")


def test_edm_planted_heun_weights_bug_is_caught(monkeypatch):
    monkeypatch.setattr(edm, "_HEUN_WEIGHTS", (0.0, 1.0))
    mm = FIXTURES[2]
    res = edm_sample(exact_score(mm), karras_sigmas(32, SIGMA_MIN, SIGMA_MAX), edm_start(2))
    assert_law_fails(res.x, mm.data, "Heun with the second slope only")


def test_edm_planted_churn_sqrt_bug_is_caught(monkeypatch):
    monkeypatch.setattr(edm, "_churn_std", lambda s, sh: sh * sh - s * s)
    mm = FIXTURES[2]
    res = edm_sample(exact_score(mm), karras_sigmas(64, SIGMA_MIN, SIGMA_MAX), edm_start(2), s_churn=10.0,
                     s_tmin=0.05, s_tmax=50.0, seed=7)
    assert_law_fails(res.x, mm.data, "churn noise without sqrt")


def test_edm_stochastic_is_reproducible_and_batch_independent():
    mm = FIXTURES[2]
    x0 = mm.sample(2000, 1.0, SIGMA_MAX, seed=5)
    sig = karras_sigmas(8, SIGMA_MIN, SIGMA_MAX)
    kw = {"s_churn": 20.0, "seed": 11}
    a = edm_sample(exact_score(mm), sig, x0[:1000], **kw).x
    b = edm_sample(exact_score(mm), sig, x0[:1000], **kw).x
    c = edm_sample(exact_score(mm), sig, x0, **kw).x
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c[:1000])
    tail = edm_sample(exact_score(mm), sig, x0[1000:], path_offset=1000, **kw).x
    np.testing.assert_array_equal(tail, c[1000:])
    other = edm_sample(exact_score(mm), sig, x0[:1000], s_churn=20.0, seed=12).x
    assert not np.allclose(a, other)
    det = edm_sample(exact_score(mm), sig, x0[:1000]).x
    assert not np.allclose(a, det)


# --------------------------------------------------------------------------------------------
# orders on Gaussian data: the exact PF-ODE flow map is linear
# --------------------------------------------------------------------------------------------


def edm_order() -> tuple[float, list[int], list[float]]:
    x0 = GAUSS.sample(200, 1.0, SIGMA_MAX, seed=3)
    exact = flow_map(x0, (1.0, SIGMA_MAX), (1.0, SIGMA_MIN))
    nfes, errs = [], []
    for n in (6, 11, 21, 41):  # grid ending at sigma_min (all Heun steps): NFE 10, 20, 40, 80
        res = edm_sample(exact_score(GAUSS), karras_sigmas(n, SIGMA_MIN, SIGMA_MAX)[:-1], x0)
        nfes.append(res.nfe)
        errs.append(float(np.sqrt(np.mean((res.x - exact) ** 2))))
    return slope(nfes, errs), nfes, errs


def test_edm_heun_order_two():
    p, nfes, errs = edm_order()
    assert nfes == [10, 20, 40, 80]
    assert 1.7 <= p <= 2.5, f"EDM Heun order {p:.2f}; errors {errs}"


def test_edm_planted_heun_weights_bug_lowers_the_order(monkeypatch):
    monkeypatch.setattr(edm, "_HEUN_WEIGHTS", (0.0, 1.0))
    p, _, errs = edm_order()
    assert not 1.7 <= p <= 2.5, f"planted bug kept order {p:.2f}"


DPM_ORDER_CASES = {
    "dpm-solver-2": ({"order": 2, "method": "singlestep", "algorithm": "dpmsolver"}, (5, 10, 20, 40), (1.7, 2.5)),
    "dpm-solver-3": ({"order": 3, "method": "singlestep", "algorithm": "dpmsolver"}, (3, 7, 13, 27), (2.6, 4.2)),
    "dpm-solver++2m": ({"order": 2, "method": "multistep", "algorithm": "dpmsolver++"}, (10, 20, 40, 80), (1.6, 2.4)),
}


def dpm_order(kw: dict, steps_list) -> tuple[float, list[int], list[float]]:
    xT = GAUSS.sample(200, *VP.kernel(VP.T), seed=3)
    exact = flow_map(xT, VP.kernel(VP.T), VP.kernel(VP.eps))
    nfes, errs = [], []
    for steps in steps_list:
        res = dpm_solver_sample(exact_score(GAUSS), VP, xT, steps=steps, skip="logSNR", **kw)
        nfes.append(res.nfe)
        errs.append(float(np.sqrt(np.mean((res.x - exact) ** 2))))
    return slope(nfes, errs), nfes, errs


@pytest.mark.parametrize("name", list(DPM_ORDER_CASES))
def test_dpm_solver_global_order(name):
    kw, steps_list, (lo, hi) = DPM_ORDER_CASES[name]
    p, nfes, errs = dpm_order(kw, steps_list)
    assert lo <= p <= hi, f"{name}: order {p:.2f} at NFE {nfes}; errors {errs}"


@pytest.mark.parametrize("algorithm", ["dpmsolver", "dpmsolver++"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_single_step_local_order(order, algorithm):
    """One step of lambda-length h from lambda = 0: local error O(h^(order + 1)) (slopes measured 2.0 / 3.0 / 4.0)."""
    a0, s0 = vp_alpha_sigma(0.0)
    x = GAUSS.sample(50, a0, s0, seed=1)
    errs = []
    hs = (0.2, 0.1, 0.05)
    for h in hs:
        ab1 = vp_alpha_sigma(h)
        res = dpm_solver_sample(exact_score(GAUSS), np.array([[a0, s0], list(ab1)]), x, order=order,
                                algorithm=algorithm)
        assert res.nfe == order
        errs.append(float(np.sqrt(np.mean((res.x - flow_map(x, (a0, s0), ab1)) ** 2))))
    p = float(np.polyfit(np.log(hs), np.log(errs), 1)[0])
    assert abs(p - (order + 1)) < 0.3, f"local order {p:.2f}; errors {errs}"


# --------------------------------------------------------------------------------------------
# DPM-Solver laws
# --------------------------------------------------------------------------------------------


def vp_target(d: int) -> GaussianMixture:
    return FIXTURES[d].marginal(*VP.kernel(VP.eps))


@pytest.mark.parametrize("d", [1, 2, 4])
def test_dpm_solver_pp_2m_reaches_the_marginal(d):
    """DPM-Solver++(2M) at 30 NFE (logSNR); at 20 NFE the bias is detectable in 2-D (p 6e-16) and 4-D (p 9e-11)."""
    res = dpm_solver_sample(exact_score(FIXTURES[d]), VP, vp_start(d), order=2, steps=30, method="multistep",
                            algorithm="dpmsolver++", skip="logSNR")
    assert res.nfe == 30
    assert_law(res.x, vp_target(d), f"DPM-Solver++(2M) d={d}")


@pytest.mark.parametrize("d", [1, 4])
def test_dpm_solver_3_reaches_the_marginal(d):
    res = dpm_solver_sample(exact_score(FIXTURES[d]), VP, vp_start(d), order=3, steps=7, skip="logSNR")
    assert res.nfe == 21
    assert_law(res.x, vp_target(d), f"DPM-Solver-3 d={d}")


def test_dpm_solver_2_reaches_the_marginal():
    """DPM-Solver-2 at 50 NFE; at 40 NFE the bias is detectable in 4-D (p 1e-8)."""
    res = dpm_solver_sample(exact_score(FIXTURES[4]), VP, vp_start(4), order=2, steps=25, skip="logSNR")
    assert res.nfe == 50
    assert_law(res.x, vp_target(4), "DPM-Solver-2 d=4")


def test_dpm_solver_planted_expm1_bug_is_caught(monkeypatch):
    monkeypatch.setattr(dpm, "_expm1", lambda h: h)
    res = dpm_solver_sample(exact_score(FIXTURES[4]), VP, vp_start(4), order=2, steps=25, skip="logSNR")
    assert_law_fails(res.x, vp_target(4), "DPM-Solver-2 with expm1(h) -> h")


def test_sde_dpm_solver_pp_2m_reaches_the_marginal():
    """SDE-DPM-Solver++(2M) at 100 NFE (at 25 NFE the bias is detectable, p 7e-22 in 2-D)."""
    res = dpm_solver_sample(exact_score(FIXTURES[2]), VP, vp_start(2), order=2, steps=100, method="multistep",
                            algorithm="sde-dpmsolver++", skip="logSNR", seed=5)
    assert res.nfe == 100
    assert_law(res.x, vp_target(2), "SDE-DPM-Solver++(2M) d=2")


# --------------------------------------------------------------------------------------------
# schedules, inputs
# --------------------------------------------------------------------------------------------


def test_bisection_kernel_and_grid_agree_with_the_vp_closed_form():
    mm = FIXTURES[2]
    x = mm.sample(300, *VP.kernel(VP.T), seed=9)
    ref = dpm_solver_sample(exact_score(mm), VP, x, order=3, steps=6, skip="logSNR")
    via_kernel = dpm_solver_sample(exact_score(mm), VP.kernel, x, order=3, steps=6, skip="logSNR",
                                   t_span=(VP.T, VP.eps))
    np.testing.assert_allclose(via_kernel.x, ref.x, rtol=1e-9, atol=1e-9)
    a, s = lambda_grid(VP, 6, "logSNR")
    np.testing.assert_allclose(np.diff(np.log(a) - np.log(s)), np.diff(np.log(a) - np.log(s))[0], rtol=1e-12)
    via_grid = dpm_solver_sample(exact_score(mm), np.stack([a, s], axis=1), x, order=3)
    np.testing.assert_allclose(via_grid.x, ref.x, rtol=1e-12, atol=1e-12)
    t_uni = lambda_grid(VP, 4, "time_uniform")
    np.testing.assert_allclose(t_uni[0], [VP.kernel(t)[0] for t in np.linspace(1.0, VP.eps, 5)], rtol=1e-14)


def test_ddim_equals_dpm_solver_pp_1():
    """DPM-Solver-1 and DPM-Solver++1 are the same update (DDIM) in exact arithmetic."""
    mm = FIXTURES[2]
    x = mm.sample(300, *VP.kernel(VP.T), seed=9)
    a = dpm_solver_sample(exact_score(mm), VP, x, order=1, steps=10, algorithm="dpmsolver").x
    b = dpm_solver_sample(exact_score(mm), VP, x, order=1, steps=10, algorithm="dpmsolver++").x
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("call", "word"), [
    (lambda s, x: karras_sigmas(1, 0.1, 1.0), "n"),
    (lambda s, x: karras_sigmas(5, 2.0, 1.0), "sigma_max"),
    (lambda s, x: edm_sample(s, [1.0, 2.0, 0.0], x), "sigmas"),
    (lambda s, x: edm_sample(s, [2.0, 1.0, 0.0], x[0]), "x_init"),
    (lambda s, x: edm_sample(s, [2.0, 1.0, 0.0], x, method="rk4"), "method"),
    (lambda s, x: edm_sample(s, [2.0, 1.0, 0.0], x, s_churn=5.0, seed=-1), "seed"),
    (lambda s, x: edm_sample(s, [2.0, 1.0, 0.0], x, s_churn=-1.0), "s_churn"),
    (lambda s, x: edm_sample(lambda *a: np.zeros(3), [2.0, 1.0, 0.0], x), "score"),
    (lambda s, x: dpm_solver_sample(s, VP, x, order=4, method="multistep"), "order"),
    (lambda s, x: dpm_solver_sample(s, VP, x, algorithm="sde-dpmsolver++"), "multistep"),
    (lambda s, x: dpm_solver_sample(s, VP, x, method="multistep", algorithm="sde-dpmsolver++", seed=1.5), "seed"),
    (lambda s, x: dpm_solver_sample(s, VP, x, skip="quadratic"), "skip"),
    (lambda s, x: dpm_solver_sample(s, VP.kernel, x), "t_span"),
    (lambda s, x: dpm_solver_sample(s, np.array([[0.5, 0.5], [0.7, 0.6]]), x, order=2), "VP-type"),
    (lambda s, x: dpm_solver_sample(s, "vp", x), "forward"),
])
def test_bad_input_raises_naming_the_argument(call, word):
    mm = FIXTURES[2]
    x = mm.sample(5, 1.0, 2.0, seed=0)
    with pytest.raises(SDEKitError, match=word):
        call(exact_score(mm), x)


def test_nfe_counts():
    mm = FIXTURES[1]
    x = mm.sample(10, 1.0, SIGMA_MAX, seed=0)
    assert edm_sample(exact_score(mm), karras_sigmas(18, SIGMA_MIN, SIGMA_MAX), x).nfe == 35
    assert edm_sample(exact_score(mm), karras_sigmas(18, SIGMA_MIN, SIGMA_MAX), x, method="euler").nfe == 18
