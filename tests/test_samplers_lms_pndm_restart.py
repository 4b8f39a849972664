"""LMS (sdekit.diffusion.samplers.lms), PNDM / PLMS (pndm) and restart sampling (restart) with the exact score of
Gaussian-mixture data.

Law checks (N = 20000, fixed seeds, ``compare_with_law`` at 1e-6, the 1-, 2-, 4-D anisotropic mixtures of
tests/test_diffusion_fixtures.make_data, exact start at the first level), each at the smallest NFE measured to pass
(min p over the three dimensions; the NFE below it fails where said):

* LMS order 4 on karras_sigmas(n, 0.002, 80): n = 28 (28 NFE) passes (min p 1-D 0.11, 2-D 0.019, 4-D 0.032);
  n = 20 fails in 2-D (2e-12) and 4-D (2e-17) (1-D passes, 1.6e-5); n = 14 fails everywhere.
* PNDM / PLMS on the linear schedule of Ho et al. (K = 1000) from level K, S evenly spaced levels: S = 15 passes
  (PNDM 24 NFE: min p 1-D 0.33, 2-D 0.20, 4-D 2.0e-4; PLMS 16 NFE: 0.32, 0.20, 1.8e-4); S = 10 fails in 4-D
  (PNDM 19 NFE p 2.9e-10, PLMS 11 NFE p 1.2e-11; 1-D and 2-D pass).
* Restart: karras_sigmas(18, 0.002, 80) with restart [(0.1, 2.0, K = 2, N_restart = 8)] (67 NFE) passes (min p 1-D
  0.14, 2-D 0.011, 4-D 8.7e-6); 12 main steps (55 NFE) fail in 4-D (1e-14). (Heun alone passes from 32 steps / 63
  NFE: tests/test_samplers_edm_dpm.py.)

Orders (Gaussian data N(0, diag(0.05, 0.3, 2)), 200 paths, error against the exact linear flow map, windows fixed in
advance): LMS order q on Karras grids ending at sigma_min with NFE 20, 40, 80, 160: slopes measured 0.97 / 1.87 /
2.71 / 3.51 (windows [0.8, 1.2] / [1.6, 2.3] / [2.4, 3.3] / [3.2, 4.3]). PLMS / PNDM on fine schedules (K = 9600)
with S = 80, 160, 320 uniform levels down to the data: where sigma / alpha is linear in the level
(alphabar = 1 / (1 + (2 k / K)^2)) the slope is 3.9 / 4.1 (PLMS / PNDM; window [3.5, 4.5]), order 4; where it is not
(sigma / alpha = 2 u + 2 u^2, u = k / K) it is 2.2 (window [1.8, 2.6]): the Adams-Bashforth weights average eps
uniformly in the level while the transfer integrates it against d(sigma / alpha). Restart without intervals is EDM
Heun (equal bit for bit), slope 2.16 on NFE 10 .. 80 (window [1.7, 2.5]).

Planted bugs (monkeypatched module hooks): LMS weights applied to the derivatives in reverse order (law, p = 0 in
2-D), the fourth Adams-Bashforth weight -9/24 -> -8/24 in PLMS (law, p = 0), the restart noise at the wrong level
sqrt(t_max^2 - t_min^2) -> t_max - t_min (law, p 5e-28 in 2-D).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

import sdekit.diffusion.samplers.lms as lms_mod
import sdekit.diffusion.samplers.pndm as pndm_mod
import sdekit.diffusion.samplers.restart as restart_mod
from sdekit.diffusion.samplers.ddim import ddim_coefficients
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.diffusion.samplers.lms import lms_coefficients, lms_sample
from sdekit.diffusion.samplers.pndm import pndm_sample, pndm_transfer
from sdekit.diffusion.samplers.restart import restart_sample
from sdekit.errors import SDEKitError

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import FIXTURES, GAUSS, N_MC, assert_law, assert_law_fails, exact_score, flow_map, slope  # noqa: E402

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
LIN = DiscreteSchedule.linear()
RESTART = [(0.1, 2.0, 2, 8)]


def edm_start(d: int) -> np.ndarray:
    return FIXTURES[d].sample(N_MC, 1.0, SIGMA_MAX, seed=1)


def discrete_start(d: int) -> np.ndarray:
    return FIXTURES[d].sample(N_MC, *LIN.level(LIN.n_steps), seed=2)


# --------------------------------------------------------------------------------------------
# exact laws
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 4])
def test_lms_reaches_the_data_law(d):
    """LMS order 4, 28 steps (28 NFE); 20 steps fail in 2-D / 4-D."""
    mm = FIXTURES[d]
    res = lms_sample(exact_score(mm), karras_sigmas(28, SIGMA_MIN, SIGMA_MAX), edm_start(d))
    assert res.nfe == 28
    assert_law(res.x, mm.data, f"LMS-4 d={d}")


@pytest.mark.parametrize("method,nfe", [("pndm", 24), ("plms", 16)])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_pndm_reaches_the_data_law(d, method, nfe):
    """PNDM / PLMS at S = 15 levels (24 / 16 NFE); S = 10 fails in 4-D."""
    mm = FIXTURES[d]
    res = pndm_sample(exact_score(mm), LIN, discrete_start(d), method=method, steps=15)
    assert res.nfe == nfe
    assert_law(res.x, mm.data, f"{method} d={d}")


@pytest.mark.parametrize("d", [1, 2, 4])
def test_restart_reaches_the_data_law(d):
    """18 Heun steps + restart (0.1, 2.0, K = 2, N_restart = 8): 35 + 32 = 67 NFE; 12 main steps fail in 4-D."""
    mm = FIXTURES[d]
    res = restart_sample(exact_score(mm), karras_sigmas(18, SIGMA_MIN, SIGMA_MAX), edm_start(d), restart=RESTART,
                         seed=3)
    assert res.nfe == 67
    assert_law(res.x, mm.data, f"restart d={d}")


# --------------------------------------------------------------------------------------------
# planted bugs
# --------------------------------------------------------------------------------------------


def test_lms_planted_reversed_weights_are_caught(monkeypatch):
    right = lms_mod._coefficients
    monkeypatch.setattr(lms_mod, "_coefficients", lambda s, i, order: right(s, i, order)[::-1])
    mm = FIXTURES[2]
    res = lms_sample(exact_score(mm), karras_sigmas(28, SIGMA_MIN, SIGMA_MAX), edm_start(2))
    assert_law_fails(res.x, mm.data, "LMS weights in reverse order")


def test_plms_planted_weight_is_caught(monkeypatch):
    weights = list(pndm_mod._PLMS_WEIGHTS)
    weights[3] = (55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -8.0 / 24.0)
    monkeypatch.setattr(pndm_mod, "_PLMS_WEIGHTS", tuple(weights))
    mm = FIXTURES[2]
    res = pndm_sample(exact_score(mm), LIN, discrete_start(2), method="plms", steps=15)
    assert_law_fails(res.x, mm.data, "PLMS with -9/24 -> -8/24")


def test_restart_planted_noise_level_is_caught(monkeypatch):
    monkeypatch.setattr(restart_mod, "_restart_std", lambda t_min, t_max: t_max - t_min)
    mm = FIXTURES[2]
    res = restart_sample(exact_score(mm), karras_sigmas(18, SIGMA_MIN, SIGMA_MAX), edm_start(2), restart=RESTART,
                         seed=3)
    assert_law_fails(res.x, mm.data, "restart noise t_max - t_min")


# --------------------------------------------------------------------------------------------
# orders on Gaussian data: the exact PF-ODE flow map is linear
# --------------------------------------------------------------------------------------------


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def edm_grid_order(sampler) -> tuple[float, list[int], list[float]]:
    x0 = GAUSS.sample(200, 1.0, SIGMA_MAX, seed=3)
    exact = flow_map(x0, (1.0, SIGMA_MAX), (1.0, SIGMA_MIN))
    nfes, errs = [], []
    for n in (21, 41, 81, 161):
        res = sampler(karras_sigmas(n, SIGMA_MIN, SIGMA_MAX)[:-1], x0)  # ending at sigma_min
        nfes.append(res.nfe)
        errs.append(rms(res.x, exact))
    return slope(nfes, errs), nfes, errs


LMS_WINDOWS = {1: (0.8, 1.2), 2: (1.6, 2.3), 3: (2.4, 3.3), 4: (3.2, 4.3)}


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lms_global_order(order):
    p, nfes, errs = edm_grid_order(lambda s, x: lms_sample(exact_score(GAUSS), s, x, order=order))
    assert nfes == [20, 40, 80, 160]
    lo, hi = LMS_WINDOWS[order]
    assert lo <= p <= hi, f"LMS-{order}: order {p:.2f}; errors {errs}"


def test_restart_without_intervals_is_edm_heun_of_order_two():
    mm = FIXTURES[2]
    x = mm.sample(500, 1.0, SIGMA_MAX, seed=4)
    sig = karras_sigmas(12, SIGMA_MIN, SIGMA_MAX)
    np.testing.assert_array_equal(restart_sample(exact_score(mm), sig, x).x, edm_sample(exact_score(mm), sig, x).x)
    x0 = GAUSS.sample(200, 1.0, SIGMA_MAX, seed=3)
    exact = flow_map(x0, (1.0, SIGMA_MAX), (1.0, SIGMA_MIN))
    nfes, errs = [], []
    for n in (6, 11, 21, 41):
        res = restart_sample(exact_score(GAUSS), karras_sigmas(n, SIGMA_MIN, SIGMA_MAX)[:-1], x0)
        nfes.append(res.nfe)
        errs.append(rms(res.x, exact))
    assert nfes == [10, 20, 40, 80]
    assert 1.7 <= slope(nfes, errs) <= 2.5, f"errors {errs}"


K_FINE = 9600
U_FINE = np.arange(1, K_FINE + 1) / K_FINE
# sigma / alpha = 2 u (linear in the level) and 2 u + 2 u^2 (not): alphabar = 1 / (1 + (sigma / alpha)^2)
FINE = {"linear": DiscreteSchedule.from_alphas_cumprod(1.0 / (1.0 + (2.0 * U_FINE) ** 2)),
        "quadratic": DiscreteSchedule.from_alphas_cumprod(1.0 / (1.0 + (2.0 * U_FINE + 2.0 * U_FINE ** 2) ** 2))}


@pytest.mark.parametrize("method,rho,window", [("plms", "linear", (3.5, 4.5)), ("pndm", "linear", (3.5, 4.5)),
                                                ("plms", "quadratic", (1.8, 2.6))])
def test_pndm_global_order(method, rho, window):
    """Order 4 where sigma / alpha is linear in the level, 2 where it is not (module docstring)."""
    sch = FINE[rho]
    x = GAUSS.sample(200, *sch.level(K_FINE), seed=3)
    exact = flow_map(x, sch.level(K_FINE), (1.0, 0.0))
    nfes, errs = [], []
    for s in (80, 160, 320):
        res = pndm_sample(exact_score(GAUSS), sch, x, method=method, indices=np.arange(1, s + 1) * (K_FINE // s))
        nfes.append(res.nfe)
        errs.append(rms(res.x, exact))
    p = slope(nfes, errs)
    assert window[0] <= p <= window[1], f"{method} on sigma/alpha {rho}: order {p:.2f}; errors {errs}"


# --------------------------------------------------------------------------------------------
# formulas
# --------------------------------------------------------------------------------------------


def test_lms_coefficients_are_the_exact_lagrange_integrals():
    """Against adaptive quadrature of the Lagrange basis (k-diffusion's / diffusers' route) to 1e-12 relative, the
    weights sum to the step (constants integrate exactly) and a polynomial derivative of degree q - 1 is integrated
    exactly."""
    s = karras_sigmas(10, SIGMA_MIN, SIGMA_MAX)
    for i in range(10):
        c = lms_coefficients(s, i, 4)
        q = min(i + 1, 4)
        nodes = s[i - np.arange(q)]

        def basis(tau, j):
            return math.prod((tau - nodes[k]) / (nodes[j] - nodes[k]) for k in range(q) if k != j)

        ref = [integrate.quad(basis, s[i], s[i + 1], args=(j,), epsabs=0, epsrel=1e-13)[0] for j in range(q)]
        np.testing.assert_allclose(c, ref, rtol=1e-12, atol=0)
        assert sum(c) == pytest.approx(s[i + 1] - s[i], rel=1e-12)
        poly = np.array([0.3, -1.0, 2.0, 0.5])[-q:]
        exact = np.polyval(np.polyint(poly), s[i + 1]) - np.polyval(np.polyint(poly), s[i])
        assert np.dot(c, np.polyval(poly, nodes)) == pytest.approx(exact, rel=1e-10)
    assert lms_coefficients(s, 5, 1) == [pytest.approx(s[6] - s[5], rel=1e-15)]


def test_pndm_transfer_is_the_ddim_step():
    rng = np.random.default_rng(0)
    x, e = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    for k, kp in ((1000, 980), (500, 250), (20, 0)):
        a, ap = LIN.alpha_bar(k), LIN.alpha_bar(kp)
        c_x0, c_eps, _ = ddim_coefficients(a, ap)
        x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
        np.testing.assert_allclose(pndm_transfer(x, e, a, ap), c_x0 * x0 + c_eps * e, rtol=1e-12, atol=1e-12)


def test_restart_draws_reproducible_and_batch_independent():
    mm = FIXTURES[2]
    x0 = mm.sample(400, 1.0, SIGMA_MAX, seed=5)
    sig = karras_sigmas(8, SIGMA_MIN, SIGMA_MAX)
    kw = {"restart": [(0.5, 3.0, 2, 2), (0.05, 0.4, 1, 2)], "seed": 11}
    full = restart_sample(exact_score(mm), sig, x0, **kw)
    assert full.nfe == 15 + 2 * 2 * 2 + 2 * 1 * 2
    head = restart_sample(exact_score(mm), sig, x0[:200], **kw).x
    tail = restart_sample(exact_score(mm), sig, x0[200:], path_offset=200, **kw).x
    np.testing.assert_array_equal(head, full.x[:200])
    np.testing.assert_array_equal(tail, full.x[200:])
    assert not np.allclose(head, restart_sample(exact_score(mm), sig, x0[:200], restart=kw["restart"], seed=12).x)
    # levels visited: every main level, each restart's jump to t_max and its sub-grid back to the snapped t_min
    j = int(np.argmin(np.abs(sig - 0.5)))
    assert full.sigmas[:j + 1].tolist() == sig[:j + 1].tolist()
    assert full.sigmas[j + 1] == 3.0 and full.sigmas[j + 3] == sig[j]


# --------------------------------------------------------------------------------------------
# torch, inputs
# --------------------------------------------------------------------------------------------


def test_torch_float64_equals_numpy():
    torch = pytest.importorskip("torch")
    from sdekit.diffusion.torch_mixture import TorchMixtureScore

    mm = FIXTURES[2]
    tscore = TorchMixtureScore(mm.data)
    tol = {"rtol": 1e-9, "atol": 1e-9}
    x = mm.sample(20, 1.0, SIGMA_MAX, seed=6)
    sig = karras_sigmas(10, SIGMA_MIN, SIGMA_MAX)
    for sampler in (lambda s, v: lms_sample(s, sig, v),
                    lambda s, v: restart_sample(s, sig, v, restart=[(0.3, 2.0, 2, 3)], seed=4)):
        ours, ref = sampler(tscore, torch.from_numpy(x)), sampler(exact_score(mm), x)
        assert isinstance(ours.x, torch.Tensor) and ours.x.dtype == torch.float64
        np.testing.assert_allclose(ours.x.numpy(), ref.x, **tol)
    xk = mm.sample(20, *LIN.level(1000), seed=6)
    for method in ("pndm", "plms"):
        ours = pndm_sample(tscore, LIN, torch.from_numpy(xk), method=method, steps=8)
        np.testing.assert_allclose(ours.x.numpy(), pndm_sample(exact_score(mm), LIN, xk, method=method,
                                                               steps=8).x, **tol)


@pytest.mark.parametrize(("call", "word"), [
    (lambda s, x: lms_sample(s, [1.0, 2.0, 0.0], x), "sigmas"),
    (lambda s, x: lms_sample(s, [2.0, 1.0, 0.0], x, order=5), "order"),
    (lambda s, x: lms_sample(s, [2.0, 1.0, 0.0], x, order=True), "order"),
    (lambda s, x: lms_sample(s, [2.0, 1.0, 0.0], x[0]), "x_init"),
    (lambda s, x: lms_sample(None, [2.0, 1.0, 0.0], x), "score"),
    (lambda s, x: lms_coefficients([2.0, 1.0, 0.0], 2, 4), "step index"),
    (lambda s, x: pndm_sample(s, LIN, x, method="prk"), "method"),
    (lambda s, x: pndm_sample(s, LIN, x, method="pndm", steps=3), "at least 4"),
    (lambda s, x: pndm_sample(s, LIN, x, method="plms", steps=1), "at least 2"),
    (lambda s, x: pndm_sample(s, "linear", x), "schedule"),
    (lambda s, x: pndm_sample(s, LIN, x, indices=[5, 3, 9]), "indices"),
    (lambda s, x: pndm_transfer(x, x, 0.5, 0.0), "alpha_bar"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(0.5, 3.0, 2)]), "restart"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=(0.5, 3.0, 2, 2)), "restart"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1.0, 0.5, 2, 2)]), "t_max"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1e-4, 0.5, 2, 2)]), "t_max"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1.0, 3.0, 0, 2)]), "K"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1.0, 3.0, 2, 1.5)]), "N_restart"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1.9, 3.0, 2, 2)]), "first grid level"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1.0, 3.0, 1, 1), (1.1, 3.0, 1, 1)]), "same"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, s_noise=-1.0), "s_noise"),
    (lambda s, x: restart_sample(s, [2.0, 1.0, 0.0], x, restart=[(1.0, 3.0, 1, 1)], seed=-1), "seed"),
])
def test_bad_input_raises_naming_the_argument(call, word):
    mm = FIXTURES[2]
    x = mm.sample(5, 1.0, 2.0, seed=0)
    with pytest.raises(SDEKitError, match=word):
        call(exact_score(mm), x)
