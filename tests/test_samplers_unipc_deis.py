"""Tests of UniPC (sdekit.diffusion.samplers.unipc), DEIS (sdekit.diffusion.samplers.deis) and the third-order
multistep DPM-Solver(++)(3M) (sdekit.diffusion.samplers.dpm_solver) with the exact score of Gaussian-mixture data.

Law checks (N = 20000, fixed seeds, ``compare_with_law`` at 1e-6): exact draws at t = T of ForwardSDE.vp(), the
logSNR grid down to t = eps = 1e-3, compared with the exact marginal at eps (1-, 2- and 4-D anisotropic mixtures).
Step counts are the smallest measured to pass in all three dimensions; one step fewer fails (min p over the battery):

* UniPC-2 (bh2, data, corrector): passes at 20 NFE (min p 0.013), fails at 15 (2-D 5.6e-9, 4-D 3.2e-10);
* UniPC-3: passes at 15 (min p 1.6e-4), fails at 12 (2-D 4e-47);
* DEIS tAB-2: passes at 25 (min p 9e-6), fails at 20 (2-D 1.2e-10);
* DEIS tAB-3: passes at 12 (min p 1.8e-6); DPM-Solver(3M) passes at 12 (min p 2e-6), fails at 10 (2-D 5.2e-13);
* DPM-Solver++(3M): passes at 18 (min p 7.1e-4), fails at 15 (2-D 1.1e-12).

Orders (Gaussian data N(0, diag(0.05, 0.3, 2)), error vs the exact linear flow map, lower_order_final=False, slope
windows fixed in advance): UniPC-p with corrector p + 1, UniP-p alone p, DEIS tAB-p p, DPM-Solver(++)(3M) 3 (measured
above 3 on this data: 3.7 / 4.0).

Planted bugs (monkeypatched module hooks): UniPC's B(h) with the wrong sign (law), DEIS's antiderivative with the
wrong sign of P' (law), the 3M update without its D1 term (law) and with diffusers' D2 weight (order).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import sdekit.diffusion.samplers.deis as deis_mod
import sdekit.diffusion.samplers.dpm_solver as dpm
import sdekit.diffusion.samplers.unipc as unipc_mod
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.deis import deis_coefficients, deis_sample
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample, vp_alpha_sigma
from sdekit.diffusion.samplers.multistep_grid import multistep_orders
from sdekit.diffusion.samplers.unipc import unipc_sample
from sdekit.errors import SDEKitError
from sdekit.targets import GaussianMixture
from sdekit.validate import compare_with_law

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import ALPHA_TEST, FIXTURES, GAUSS, N_MC, exact_score, flow_map  # noqa: E402

VP = ForwardSDE.vp()
DPMPP3M_NFE = 18


def vp_start(d: int) -> np.ndarray:
    return FIXTURES[d].sample(N_MC, *VP.kernel(VP.T), seed=2)


def vp_target(d: int) -> GaussianMixture:
    return FIXTURES[d].marginal(*VP.kernel(VP.eps))


def law_report(x: np.ndarray, d: int, what: str):
    return compare_with_law(x, vp_target(d), alpha=ALPHA_TEST, name=what)


SAMPLERS = {  # name -> (run(score, x, steps), NFE that passes)
    "unipc-2": (lambda s, x, n: unipc_sample(s, VP, x, order=2, steps=n), 20),
    "deis-2": (lambda s, x, n: deis_sample(s, VP, x, order=2, steps=n), 25),
    "dpm-solver++3m": (lambda s, x, n: dpm_solver_sample(s, VP, x, order=3, steps=n, method="multistep",
                                                         algorithm="dpmsolver++", skip="logSNR"), DPMPP3M_NFE),
}


@pytest.mark.parametrize("d", [1, 2, 4])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_reaches_the_marginal(name, d):
    run, nfe = SAMPLERS[name]
    res = run(exact_score(FIXTURES[d]), vp_start(d), nfe)
    assert res.nfe == nfe
    rep = law_report(res.x, d, f"{name} d={d}")
    assert rep.passed, rep.to_text()


@pytest.mark.parametrize(("name", "nfe"), [("unipc-3", 15), ("deis-3", 12)])
def test_third_order_variants_reach_the_marginal(name, nfe):
    """The third-order variants at their smallest passing NFE, in 4-D (1- and 2-D measured, see the docstring)."""
    order_3 = {"unipc-3": lambda s, x: unipc_sample(s, VP, x, order=3, steps=nfe),
               "deis-3": lambda s, x: deis_sample(s, VP, x, order=3, steps=nfe)}[name]
    res = order_3(exact_score(FIXTURES[4]), vp_start(4))
    rep = law_report(res.x, 4, f"{name} d=4")
    assert rep.passed, rep.to_text()


PLANTED = {  # name -> (module, hook, planted value, sampler name)
    "unipc B(h) sign": (unipc_mod, "B_FUNCTIONS", {"bh1": lambda hh: hh, "bh2": lambda hh: -math.expm1(hh)},
                        "unipc-2"),
    "deis P' sign": (deis_mod, "_ANTIDERIVATIVE_SIGNS", (1.0, 1.0, 1.0), "deis-2"),
    "3M without D1": (dpm, "_THIRD_ORDER_WEIGHTS", (1.0, 0.0, 2.0), "dpm-solver++3m"),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_planted_bug_is_caught(bug, monkeypatch):
    module, hook, value, name = PLANTED[bug]
    monkeypatch.setattr(module, hook, value)
    run, nfe = SAMPLERS[name]
    rep = law_report(run(exact_score(FIXTURES[2]), vp_start(2), nfe).x, 2, bug)
    assert not rep.passed, f"planted bug not caught: {bug}, min p = {rep.min_pvalue:.3g}"


# --------------------------------------------------------------------------------------------
# orders on Gaussian data: the exact PF-ODE flow map is linear
# --------------------------------------------------------------------------------------------

X_T = GAUSS.sample(200, *VP.kernel(VP.T), seed=3)


EXACT = flow_map(X_T, VP.kernel(VP.T), VP.kernel(VP.eps))


def _dpm3m(algorithm: str):
    return lambda n: dpm_solver_sample(exact_score(GAUSS), VP, X_T, order=3, steps=n, method="multistep",
                                       algorithm=algorithm, skip="logSNR", lower_order_final=False)


def _unipc(**kw):
    return lambda n: unipc_sample(exact_score(GAUSS), VP, X_T, steps=n, lower_order_final=False, **kw)


def _deis(order: int):
    return lambda n: deis_sample(exact_score(GAUSS), VP, X_T, order=order, steps=n, lower_order_final=False)


ORDER_NFE = (10, 20, 40, 80)
ORDER_CASES = {  # name -> (run(steps), NFE list, slope window); measured slopes in the comments
    "unipc-1": (_unipc(order=1), ORDER_NFE, (1.7, 2.5)),  # 1.88
    "unipc-2": (_unipc(order=2), ORDER_NFE, (2.6, 3.6)),  # 2.77
    "unipc-2-bh1": (_unipc(order=2, variant="bh1"), ORDER_NFE, (2.6, 3.6)),  # 3.13
    "unipc-2-noise": (_unipc(order=2, prediction="noise"), ORDER_NFE, (2.6, 3.6)),  # 2.88
    "unipc-3": (_unipc(order=3), (40, 80, 160, 320), (3.3, 4.6)),  # 3.69 (pre-asymptotic below 40 NFE)
    "unip-2": (_unipc(order=2, corrector=False), ORDER_NFE, (1.6, 2.4)),  # 1.80
    "unip-3": (_unipc(order=3, corrector=False), ORDER_NFE, (2.7, 4.5)),  # 3.93
    "deis-2": (_deis(2), ORDER_NFE, (1.6, 2.4)),  # 1.89
    "deis-3": (_deis(3), ORDER_NFE, (2.7, 4.5)),  # 3.66
    "dpm-solver++3m": (_dpm3m("dpmsolver++"), ORDER_NFE, (2.7, 4.5)),  # 3.93
    "dpm-solver3m": (_dpm3m("dpmsolver"), ORDER_NFE, (2.7, 4.5)),  # 3.66
}


def fitted_order(run, nfes) -> tuple[float, list[float]]:
    errs = [float(np.sqrt(np.mean((run(n).x - EXACT) ** 2))) for n in nfes]
    return float(-np.polyfit(np.log(nfes), np.log(errs), 1)[0]), errs


@pytest.mark.parametrize("name", list(ORDER_CASES))
def test_global_order(name):
    run, nfes, (lo, hi) = ORDER_CASES[name]
    p, errs = fitted_order(run, nfes)
    assert lo <= p <= hi, f"{name}: order {p:.2f} at NFE {nfes}; errors {errs}"


@pytest.mark.parametrize(("module", "hook", "value", "name"), [
    (dpm, "_THIRD_ORDER_WEIGHTS", (1.0, 1.0, 1.0), "dpm-solver++3m"),  # diffusers' D2 weight: second order
    (unipc_mod, "_SIMPLE_WEIGHT", 1.0, "unipc-2"),  # UniP-2 / UniC-1 with a_1 = 1
])
def test_planted_weight_bug_leaves_the_order_window(module, hook, value, name, monkeypatch):
    monkeypatch.setattr(module, hook, value)
    run, nfes, (lo, hi) = ORDER_CASES[name]
    p, errs = fitted_order(run, nfes)
    assert not lo <= p <= hi, f"planted {hook} = {value} kept order {p:.2f}"


# --------------------------------------------------------------------------------------------
# identities between the solvers, coefficients, schedules
# --------------------------------------------------------------------------------------------


def test_third_order_multistep_solvers_agree():
    """Three implementations of the exact integral of the quadratic interpolant in lambda: UniP-3 (order conditions
    solved for a; its UniP-2 warm-up is DPM-Solver++(2M)) = DPM-Solver++(3M) over a whole run; one DEIS tAB-3 step
    (Lagrange in log rho = -lambda, integrated in rho) = one DPM-Solver(3M) step (their warm-ups differ: tAB-2
    integrates the linear interpolant exactly, DPM-Solver(2M) does not); at order 1 all are DDIM."""
    mm = FIXTURES[2]
    x = mm.sample(500, *VP.kernel(VP.T), seed=9)
    sc = exact_score(mm)
    np.testing.assert_allclose(unipc_sample(sc, VP, x, order=3, steps=12, corrector=False).x,
                               dpm_solver_sample(sc, VP, x, order=3, steps=12, algorithm="dpmsolver++",
                                                 method="multistep", skip="logSNR").x, rtol=1e-10, atol=1e-10)
    lams = [-1.3, -0.9, -0.2, 0.4]  # lambda of m2, m1, m0 and the target
    (a2, s2), (a1, s1), (a0, s0), (at, st) = (vp_alpha_sigma(v) for v in lams)
    unit = np.eye(3)
    dpm_coefs = dpm._third_order_multistep(np.zeros(3), (a0, s0), (at, st), unit[0], unit[1], unit[2],
                                           lams[3] - lams[2], lams[2] - lams[1], lams[1] - lams[0], False)
    deis_coefs = at * np.array(deis_coefficients([s0 / a0, s1 / a1, s2 / a2], st / at))
    np.testing.assert_allclose(dpm_coefs, deis_coefs, rtol=1e-12, atol=1e-14)
    ddim = dpm_solver_sample(sc, VP, x, order=1, steps=12, skip="logSNR").x
    for one in (deis_sample(sc, VP, x, order=1, steps=12).x,
                unipc_sample(sc, VP, x, order=1, steps=12, corrector=False).x,
                unipc_sample(sc, VP, x, order=1, steps=12, corrector=False, prediction="noise").x):
        np.testing.assert_allclose(one, ddim, rtol=1e-10, atol=1e-10)


def test_deis_coefficients_integrate_polynomials_in_log_rho_exactly():
    """sum_j c_j f(log rho_j) = int_{rho_0}^{rho_t} f(log rho) drho for f of degree < len(nodes) (quadrature)."""
    from scipy.integrate import quad

    rhos, rho_t = [0.8, 1.3, 2.1], 0.45
    for n in (1, 2, 3):
        c = deis_coefficients(rhos[:n], rho_t)
        for deg in range(n):
            exact = quad(lambda r, k=deg: (math.log(r) + 0.3) ** k, rhos[0], rho_t, epsabs=1e-14, epsrel=1e-14)[0]
            got = sum(cj * (math.log(r) + 0.3) ** deg for cj, r in zip(c, rhos[:n]))
            assert abs(got - exact) <= 1e-12 * max(1.0, abs(exact)), (n, deg, got, exact)


@pytest.mark.parametrize(("n_steps", "order", "lof", "zero", "rule", "expected"), [
    (6, 3, None, False, "dpm", [1, 2, 3, 3, 2, 1]),
    (16, 3, None, False, "dpm", [1, 2] + [3] * 14),
    (16, 3, None, True, "dpm", [1, 2] + [3] * 13 + [1]),
    (6, 3, False, False, "dpm", [1, 2, 3, 3, 3, 3]),
    (16, 3, True, False, "dpm", [1, 2] + [3] * 12 + [2, 1]),
    (6, 3, None, False, "unipc", [1, 2, 3, 3, 2, 1]),
    (20, 3, None, False, "unipc", [1, 2] + [3] * 16 + [2, 1]),
    (6, 2, False, False, "unipc", [1, 2, 2, 2, 2, 2]),
])
def test_multistep_orders(n_steps, order, lof, zero, rule, expected):
    assert multistep_orders(n_steps, order, lof, zero, rule) == expected


def test_nfe_trajectory_and_callback():
    mm = FIXTURES[1]
    x = mm.sample(50, *VP.kernel(VP.T), seed=0)
    for run in (lambda **kw: unipc_sample(exact_score(mm), VP, x, order=3, steps=7, to_zero=True, **kw),
                lambda **kw: deis_sample(exact_score(mm), VP, x, order=3, steps=7, to_zero=True, **kw)):
        seen = []
        res = run(return_trajectory=True, callback=lambda info: seen.append((info.step, info.sigma, info.x)))
        assert res.nfe == 8 and res.trajectory.shape == (9, 50, 1) and res.sigmas[-1] == 0.0
        assert [s for s, _, _ in seen] == list(range(8))
        np.testing.assert_array_equal(res.trajectory[-1], res.x)
        for (step, sigma, xs) in seen:
            assert sigma == res.sigmas[step + 1]
            np.testing.assert_array_equal(xs, res.trajectory[step + 1])


def test_unipc_corrector_changes_the_state_not_the_nfe():
    mm = FIXTURES[2]
    x = mm.sample(100, *VP.kernel(VP.T), seed=0)
    a = unipc_sample(exact_score(mm), VP, x, steps=8)
    b = unipc_sample(exact_score(mm), VP, x, steps=8, corrector=False)
    assert a.nfe == b.nfe == 8
    assert np.abs(a.x - b.x).max() > 1e-3


# --------------------------------------------------------------------------------------------
# torch = NumPy, inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unipc-3", "unipc-2-noise-bh1", "deis-3", "dpm-solver++3m", "dpm-solver3m"])
def test_torch_float64_equals_numpy(name):
    torch = pytest.importorskip("torch")
    mm = FIXTURES[2]
    x = mm.sample(200, *VP.kernel(VP.T), seed=4)
    np_score = exact_score(mm)

    def t_score(xt, a, s):
        return torch.from_numpy(np_score(xt.numpy(), a, s))

    run = {
        "unipc-3": lambda s, x0: unipc_sample(s, VP, x0, order=3, steps=9, to_zero=True),
        "unipc-2-noise-bh1": lambda s, x0: unipc_sample(s, VP, x0, order=2, steps=9, prediction="noise",
                                                        variant="bh1"),
        "deis-3": lambda s, x0: deis_sample(s, VP, x0, order=3, steps=9),
        "dpm-solver++3m": lambda s, x0: dpm_solver_sample(s, VP, x0, order=3, steps=9, method="multistep",
                                                          algorithm="dpmsolver++"),
        "dpm-solver3m": lambda s, x0: dpm_solver_sample(s, VP, x0, order=3, steps=9, method="multistep",
                                                        algorithm="dpmsolver"),
    }[name]
    ref = run(np_score, x)
    got = run(t_score, torch.from_numpy(x))
    assert isinstance(got.x, torch.Tensor) and got.x.dtype == torch.float64
    np.testing.assert_allclose(got.x.numpy(), ref.x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("call", "word"), [
    (lambda s, x: unipc_sample(s, VP, x, order=4), "order"),
    (lambda s, x: unipc_sample(s, VP, x, order=True), "order"),
    (lambda s, x: unipc_sample(s, VP, x, variant="bh3"), "variant"),
    (lambda s, x: unipc_sample(s, VP, x, prediction="v"), "prediction"),
    (lambda s, x: unipc_sample(s, VP, x, corrector="yes"), "corrector"),
    (lambda s, x: unipc_sample(s, VP, x, lower_order_final=1), "lower_order_final"),
    (lambda s, x: unipc_sample(s, VP, x, to_zero=True, lower_order_final=False), "lower_order_final"),
    (lambda s, x: unipc_sample(s, VP, x, steps=0), "steps"),
    (lambda s, x: unipc_sample(s, VP, x[0]), "x_T"),
    (lambda s, x: unipc_sample(s, VP.kernel, x), "t_span"),
    (lambda s, x: unipc_sample(s, "vp", x), "forward"),
    (lambda s, x: unipc_sample(s, VP, x, skip="quadratic"), "skip"),
    (lambda s, x: unipc_sample(None, VP, x), "score"),
    (lambda s, x: unipc_sample(lambda *a: np.zeros(3), VP, x), "score"),
    (lambda s, x: deis_sample(s, VP, x, order=0), "order"),
    (lambda s, x: deis_sample(s, VP, x, to_zero="no"), "to_zero"),
    (lambda s, x: deis_sample(s, np.array([[0.6, 0.8], [1.0, 0.0]]), x, to_zero=True), "to_zero"),
    (lambda s, x: deis_sample(s, np.array([[0.8, 0.6], [0.6, 0.8]]), x), "lambda"),
    (lambda s, x: deis_sample(s, np.array([[0.6, 0.8], [0.8, 0.6]]), x, steps=3), "steps"),
    (lambda s, x: deis_sample(s, VP, x, callback=3), "callback"),
    (lambda s, x: dpm_solver_sample(s, VP, x, order=3, method="multistep", algorithm="sde-dpmsolver++"), "order"),
    (lambda s, x: dpm_solver_sample(s, np.array([[0.6, 0.8], [0.7, 0.7], [0.8, 0.6]]), x, method="multistep",
                                    orders=[1, 3]), "orders"),
])
def test_bad_input_raises_naming_the_argument(call, word):
    mm = FIXTURES[2]
    x = mm.sample(5, 1.0, 2.0, seed=0)
    with pytest.raises(SDEKitError, match=word):
        call(exact_score(mm), x)
