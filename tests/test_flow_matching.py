"""Flow matching (sdekit.flow): exact velocity, conversions, the Euler / Heun / midpoint samplers, the flow ODE
through sdekit.simulate, and the diffusion samplers running a flow model.

Law checks (N = 20000, fixed seeds, ``compare_with_law`` at 1e-6 against the data law; start x_1 ~ N(0, I) exactly;
linear interpolant, uniform grid): the smallest passing step counts measured (and the ones below, which fail):

    Euler     1-D passes at 60 NFE (min p 5.4e-7), fails at 50 (1.4e-9); 2-D 80 (1.3e-7) / 70 (1.3e-9);
              4-D 90 (4.3e-7) / 80 (1.2e-9).
    Heun      1-D 10 NFE (1.9e-4) / 8 (8.2e-10); 2-D 10 (3.6e-4) / 8 (2.3e-10); 4-D 12 (2.4e-5) / 10 (2.6e-12).
    midpoint  1-D 8 NFE (1.2e-5) / 6 (1.2e-12); 2-D 8 (8.4e-5) / 6 (3.9e-27); 4-D 8 (7.2e-3) / 6 (3.7e-9).

Orders (Gaussian data N(0, diag(0.05, 0.3, 2)), 200 paths, RMS error against the exact flow map
x_0 = x_1 sqrt(v), NFE 10, 20, 40, 80; windows fixed in advance): Euler [0.8, 1.2] (measured 0.97 on both
interpolants), Heun [1.7, 2.4] (1.96 linear, 1.90 trigonometric), midpoint [1.7, 2.5] on the trigonometric
interpolant (2.21; on the linear one the Gaussian flow map is superconvergent for midpoint: 2.94, asymptotically 3).

Planted bugs: Heun with the second slope only (law p and order), midpoint evaluated at the end of the step (law),
a wrong interpolant derivative sigma' = 0.9 in the velocity (law), the sign of u flipped in the velocity -> eps
conversion that the diffusion samplers use (law).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import sdekit.flow.conversions as conv
import sdekit.flow.samplers as fs
from sdekit import simulate
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.mixture_marginals import MixtureMarginals
from sdekit.diffusion.networks import DiffusionNetwork
from sdekit.diffusion.samplers.ddim import ddim_sample
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.diffusion.score_checks import ScoreNonFiniteError
from sdekit.errors import SDEKitError
from sdekit.flow import (
    LINEAR,
    Interpolant,
    MixtureVelocity,
    ScoreAsVelocity,
    VelocityAsScore,
    flow_ode,
    flow_sample,
    flow_times,
    velocity_from_score,
    velocity_from_x0_eps,
    velocity_to_score,
    velocity_to_x0_eps,
    x0_eps_from_score,
)
from sdekit.targets import GaussianMixture

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import N_MC, assert_law, assert_law_fails, exact_score, make_data  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread (the test session runs one worker per core; more threads oversubscribe it)."""
    import torch

    torch.set_num_threads(1)


MIX = {d: MixtureMarginals(make_data(d)) for d in (1, 2, 4)}
VEL = {d: MixtureVelocity(MIX[d]) for d in (1, 2, 4)}


def start(d: int, n: int = N_MC, seed: int = 1) -> np.ndarray:
    return VEL[d].sample(n, 1.0, seed=seed)


# --------------------------------------------------------------------------------------------
# the exact velocity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "trigonometric"])
def test_exact_velocity_is_tweedie_and_its_divergence_the_trace(name):
    """u = alpha' (x + sigma^2 s) / alpha - sigma' sigma s inside (0, 1); div u = central-difference trace; torch
    float64 = NumPy; defined at t = 0 (u = alpha' x) and t = 1 (u = alpha' E[x_0] + sigma' x)."""
    import torch

    mm, v = MIX[2], MixtureVelocity(MIX[2], name)
    for t in (0.1, 0.5, 0.9):
        x = v.sample(50, t, seed=2)
        a, s, da, ds = v.interpolant.coefficients(t)
        sc = mm.score(x, a, s)
        np.testing.assert_allclose(v(x, t), da * (x + s * s * sc) / a - ds * s * sc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(v(torch.tensor(x), t).numpy(), v(x, t), rtol=0, atol=1e-13)
        h = 1e-5
        fd = sum((v(x + h * e, t)[:, i] - v(x - h * e, t)[:, i]) / (2 * h) for i, e in enumerate(np.eye(2)))
        np.testing.assert_allclose(v.divergence(x, t), fd, rtol=0, atol=1e-7)
        np.testing.assert_allclose(v.divergence(torch.tensor(x), t).numpy(), v.divergence(x, t), rtol=0, atol=1e-12)
    x = v.sample(20, 0.5, seed=3)
    _, _, da0, ds0 = v.interpolant.coefficients(0.0)
    np.testing.assert_allclose(v(x, 0.0), da0 * x, rtol=0, atol=1e-12)
    _, s1, da1, ds1 = v.interpolant.coefficients(1.0)
    np.testing.assert_allclose(v(x, 1.0), da1 * mm.data.mean + ds1 * x / s1, rtol=0, atol=1e-12)


def test_exact_velocity_takes_one_time_per_row():
    v = VEL[2]
    x = v.sample(6, 0.5, seed=4)
    ts = np.linspace(0.0, 1.0, 6)
    rows = np.stack([v(x[i:i + 1], float(ts[i]))[0] for i in range(6)])
    np.testing.assert_allclose(v(x, ts), rows, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------------------------
# samplers: exact law at the smallest passing NFE
# --------------------------------------------------------------------------------------------

PASSING = {("euler", 1): 60, ("euler", 2): 80, ("euler", 4): 90, ("heun", 1): 5, ("heun", 2): 5, ("heun", 4): 6,
           ("midpoint", 1): 4, ("midpoint", 2): 4, ("midpoint", 4): 4}


@pytest.mark.parametrize("method, d", list(PASSING))
def test_flow_sampler_reaches_the_data_law(method, d):
    steps = PASSING[(method, d)]
    res = flow_sample(VEL[d], start(d), method=method, steps=steps)
    assert res.nfe == steps * (1 if method == "euler" else 2)
    assert_law(res.x, MIX[d].data, f"flow {method} {res.nfe} NFE d={d}")


def test_flow_sampler_bias_is_seen_below_the_passing_nfe():
    """Heun at 4 steps (8 NFE) in 2-D: min p 2e-10 (the discretisation bias is detectable at N = 20000)."""
    assert_law_fails(flow_sample(VEL[2], start(2), method="heun", steps=4).x, MIX[2].data, "Heun 8 NFE d=2")


def test_planted_heun_weights_bug_is_caught(monkeypatch):
    monkeypatch.setattr(fs, "_HEUN_WEIGHTS", (0.0, 1.0))
    assert_law_fails(flow_sample(VEL[2], start(2), method="heun", steps=5).x, MIX[2].data, "Heun second slope")


def test_planted_midpoint_at_the_step_end_is_caught(monkeypatch):
    monkeypatch.setattr(fs, "_MIDPOINT", 1.0)
    assert_law_fails(flow_sample(VEL[2], start(2), method="midpoint", steps=4).x, MIX[2].data, "midpoint at end")


def test_planted_wrong_interpolant_derivative_is_caught():
    """sigma' = 0.9 instead of 1 in the linear interpolant's velocity (built as a built-in, so unchecked)."""
    wrong = dataclasses.replace(LINEAR, dsigma=lambda t: 0.9 + 0.0 * t)
    res = flow_sample(MixtureVelocity(MIX[2], wrong), start(2), method="heun", steps=5)
    assert_law_fails(res.x, MIX[2].data, "wrong sigma'")


# --------------------------------------------------------------------------------------------
# orders on Gaussian data (exact flow map x_0 = x_1 sqrt(v) per eigendirection)
# --------------------------------------------------------------------------------------------

GAUSS_VARS = np.array([0.05, 0.3, 2.0])
GAUSS = GaussianMixture([1.0], [np.zeros(3)], [np.diag(GAUSS_VARS)])


def flow_order(method: str, interpolant: str) -> tuple[float, list[int], list[float]]:
    v = MixtureVelocity(GAUSS, interpolant)
    x1 = v.sample(200, 1.0, seed=3)
    exact = x1 * np.sqrt(GAUSS_VARS)
    nfes, errs = [], []
    for nfe in (10, 20, 40, 80):
        res = flow_sample(v, x1, method=method, steps=nfe if method == "euler" else nfe // 2, interpolant=interpolant)
        nfes.append(res.nfe)
        errs.append(float(np.sqrt(np.mean((res.x - exact) ** 2))))
    return float(-np.polyfit(np.log(nfes), np.log(errs), 1)[0]), nfes, errs


ORDER_CASES = [("euler", "linear", (0.8, 1.2)), ("euler", "trigonometric", (0.8, 1.2)),
               ("heun", "linear", (1.7, 2.4)), ("heun", "trigonometric", (1.7, 2.4)),
               ("midpoint", "trigonometric", (1.7, 2.5))]


@pytest.mark.parametrize("method, interpolant, window", ORDER_CASES)
def test_flow_sampler_global_order(method, interpolant, window):
    p, nfes, errs = flow_order(method, interpolant)
    assert nfes == [10, 20, 40, 80]
    assert window[0] <= p <= window[1], f"{method} ({interpolant}): order {p:.2f}; errors {errs}"


def test_planted_heun_weights_bug_lowers_the_order(monkeypatch):
    monkeypatch.setattr(fs, "_HEUN_WEIGHTS", (0.0, 1.0))
    p, _, errs = flow_order("heun", "linear")
    assert not 1.7 <= p <= 2.4, f"planted bug kept order {p:.2f}"


# --------------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------------

SQUARE = Interpolant(alpha=lambda t: 1.0 - t * t, sigma=lambda t: t, dalpha=lambda t: -2.0 * t,
                     dsigma=lambda t: 1.0 + 0.0 * t, name="square")


@pytest.mark.parametrize("interpolant", ["linear", "trigonometric", SQUARE], ids=["linear", "trig", "custom"])
def test_conversions_round_trip_and_match_the_exact_targets(interpolant):
    mm = MIX[2]
    v = MixtureVelocity(mm, interpolant)
    t = 0.4
    a, s, da, ds = v.interpolant.coefficients(t)
    x = v.sample(40, t, seed=5)
    u = v(x, t)
    x0, eps = velocity_to_x0_eps(u, x, t, interpolant)
    np.testing.assert_allclose(x0, mm.denoiser(x, a, s), rtol=0, atol=1e-12)
    np.testing.assert_allclose(eps, mm.eps_target(x, a, s), rtol=0, atol=1e-12)
    np.testing.assert_allclose(velocity_from_x0_eps(x0, eps, t, interpolant), u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(velocity_to_score(u, x, t, interpolant), mm.score(x, a, s), rtol=0, atol=1e-11)
    np.testing.assert_allclose(velocity_from_score(mm.score(x, a, s), x, t, interpolant), u, rtol=0, atol=1e-12)
    x0s, epss = x0_eps_from_score(mm.score(x, a, s), x, a, s)
    np.testing.assert_allclose((x0s, epss), (x0, eps), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ScoreAsVelocity(mm.score, interpolant)(x, t), u, rtol=0, atol=1e-12)
    as_score = VelocityAsScore(v, interpolant)
    for alpha, sigma in [(1.0, 0.5), (1.0, 30.0), (0.6, 0.8), (0.999, 0.04), (2.0, 1.0)]:  # VE, VP, unscaled levels
        y = mm.sample(30, alpha, sigma, seed=6)
        np.testing.assert_allclose(as_score(y, alpha, sigma), mm.score(y, alpha, sigma), rtol=1e-9, atol=1e-9)


def test_velocity_network_on_the_flow_kernel_is_the_exact_score():
    """DiffusionNetwork(prediction="velocity", kernel="flow", conditioning="t") reads the linear-interpolant
    velocity as VelocityAsScore does."""
    mm = MIX[2]
    net = DiffusionNetwork(lambda x, c: VEL[2](x, c), prediction="velocity", kernel="flow", conditioning="t")
    for alpha, sigma in [(1.0, 0.5), (1.0, 30.0), (0.6, 0.8)]:
        y = mm.sample(30, alpha, sigma, seed=7)
        np.testing.assert_allclose(net(y, alpha, sigma), mm.score(y, alpha, sigma), rtol=1e-9, atol=1e-9)


def test_conversions_on_torch_equal_numpy():
    import torch

    mm = MIX[2]
    as_score = VelocityAsScore(VEL[2], "trigonometric")
    v = MixtureVelocity(mm, "trigonometric")
    for alpha, sigma in [(1.0, 0.5), (0.6, 0.8)]:
        y = mm.sample(30, alpha, sigma, seed=8)
        out = as_score(torch.tensor(y), alpha, sigma)
        assert torch.is_tensor(out)
        np.testing.assert_allclose(out.numpy(), as_score(y, alpha, sigma), rtol=0, atol=1e-12)
    x = v.sample(30, 0.3, seed=9)
    u = velocity_to_x0_eps(torch.tensor(v(x, 0.3)), torch.tensor(x), 0.3, "trigonometric")
    np.testing.assert_allclose(u[0].numpy(), mm.denoiser(x, *v.level(0.3)), rtol=0, atol=1e-12)


def test_diffusion_samplers_run_the_flow_model_to_the_exact_law():
    """DPM-Solver++(2M) (30 NFE, VP, logSNR grid), EDM Heun (63 NFE) and DDIM (1-D, 200 NFE) on the exact velocity
    through VelocityAsScore pass the exact law, and equal their runs on the exact score to 1e-9."""
    vp = ForwardSDE.vp()
    d = 2
    as_score = VelocityAsScore(VEL[d])
    x_t = MIX[d].sample(N_MC, *vp.kernel(vp.T), seed=2)
    kw = {"order": 2, "steps": 30, "method": "multistep", "algorithm": "dpmsolver++", "skip": "logSNR"}
    res = dpm_solver_sample(as_score, vp, x_t, **kw)
    assert_law(res.x, MIX[d].marginal(*vp.kernel(vp.eps)), "DPM-Solver++(2M) on the velocity")
    ref = dpm_solver_sample(exact_score(MIX[d]), vp, x_t[:500], **kw)
    np.testing.assert_allclose(dpm_solver_sample(as_score, vp, x_t[:500], **kw).x, ref.x, rtol=0, atol=1e-9)
    sig = karras_sigmas(32, 0.002, 80.0)
    x_e = MIX[d].sample(N_MC, 1.0, 80.0, seed=1)
    res = edm_sample(as_score, sig, x_e)
    assert res.nfe == 63
    assert_law(res.x, MIX[d].data, "EDM Heun on the velocity")
    np.testing.assert_allclose(res.x[:500], edm_sample(exact_score(MIX[d]), sig, x_e[:500]).x, rtol=0, atol=1e-9)
    lin = DiscreteSchedule.linear()
    x_k = MIX[1].sample(N_MC, *lin.level(lin.n_steps), seed=11)
    res = ddim_sample(VelocityAsScore(VEL[1]), lin, x_k, steps=200)
    assert res.nfe == 200
    assert_law(res.x, MIX[1].data, "DDIM on the velocity")
    ref = ddim_sample(exact_score(MIX[1]), lin, x_k[:500], steps=200)
    np.testing.assert_allclose(res.x[:500], ref.x, rtol=0, atol=1e-9)


def test_planted_velocity_sign_bug_in_the_conversion_is_caught(monkeypatch):
    monkeypatch.setattr(conv, "_eps_from_velocity", lambda u, x, a, s, da, ds: (-a * u - da * x) / (a * ds - s * da))
    vp = ForwardSDE.vp()
    x_t = MIX[2].sample(N_MC, *vp.kernel(vp.T), seed=2)
    res = dpm_solver_sample(VelocityAsScore(VEL[2]), vp, x_t, order=2, steps=30, method="multistep",
                            algorithm="dpmsolver++", skip="logSNR")
    assert_law_fails(res.x, MIX[2].marginal(*vp.kernel(vp.eps)), "velocity sign flipped")


# --------------------------------------------------------------------------------------------
# the flow ODE through sdekit.simulate
# --------------------------------------------------------------------------------------------


def test_flow_ode_through_simulate_reaches_the_data_law():
    """The Numba field of the exact velocity with sdekit's RK4, 8 steps (dopri5 at rtol 1e-6 passes too)."""
    sol = simulate(VEL[2].ode(), start(2), (1.0, 0.0), solver="rk4", steps=8)
    assert_law(sol.final, MIX[2].data, "flow ODE rk4")


def test_flow_ode_torch_backend_midpoint_is_the_midpoint_sampler():
    """torchdiffeq's explicit midpoint on flow_ode(velocity) is flow_sample(method="midpoint") (float64)."""
    import torch

    x1 = start(2, 300)
    out = simulate(flow_ode(VEL[2], 2), torch.tensor(x1), (1.0, 0.0), solver="midpoint", steps=6, backend="torch")
    ref = flow_sample(VEL[2], x1, method="midpoint", steps=6).x
    np.testing.assert_allclose(out.final.numpy(), ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# backends, bookkeeping, bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["euler", "heun", "midpoint"])
def test_torch_float64_run_equals_numpy(method):
    import torch

    x1 = start(2, 300)
    ref = flow_sample(VEL[2], x1, method=method, steps=7, shift=3.0)
    out = flow_sample(VEL[2], torch.tensor(x1), method=method, steps=7, shift=3.0)
    assert torch.is_tensor(out.x) and out.x.dtype == torch.float64 and out.nfe == ref.nfe
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=0, atol=1e-12)


def test_result_callback_trajectory_and_times():
    seen = []
    x1 = start(2, 50)
    times = np.array([1.0, 0.7, 0.3, 0.0])
    res = flow_sample(VEL[2], x1, method="heun", times=times, callback=seen.append, return_trajectory=True)
    assert res.nfe == 6 and res.trajectory.shape == (4, 50, 2)
    np.testing.assert_array_equal(res.times, times)
    np.testing.assert_allclose(res.alphas, 1.0 - times)
    np.testing.assert_allclose(res.sigmas, times)
    assert [i.step for i in seen] == [0, 1, 2] and np.array_equal(seen[-1].x, res.x)
    np.testing.assert_allclose(seen[1].denoised, MIX[2].denoiser(res.trajectory[1], 0.3, 0.7), atol=1e-12)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    np.testing.assert_allclose(flow_times(4), [1.0, 0.75, 0.5, 0.25, 0.0])
    shifted = flow_times(4, shift=3.0)
    np.testing.assert_allclose(shifted, 3 * flow_times(4) / (1 + 2 * flow_times(4)))


BAD = [
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), method="rk4"), "method"),
    (lambda: flow_sample("v", np.zeros((3, 2))), "velocity"),
    (lambda: flow_sample(VEL[2], np.full((3, 2), np.nan)), "x1"),
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), steps=0), "steps"),
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), times=[0.0, 1.0]), "times"),
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), times=[1.5, 0.0]), "times"),
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), times=[1.0, 0.5, 0.0], steps=3), "steps"),
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), shift=0.0), "shift"),
    (lambda: flow_sample(VEL[2], np.zeros((3, 2)), interpolant="cubic"), "interpolant"),
    (lambda: flow_sample(lambda x, t: x[:, :1], np.zeros((3, 2))), "velocity"),
    (lambda: flow_times(4, t_min=0.5, t_max=0.2), "t_min"),
    (lambda: Interpolant(alpha=lambda t: 1 - t, sigma=lambda t: t, dalpha=lambda t: -1.0, dsigma=lambda t: 2.0),
     "dsigma"),
    (lambda: Interpolant(alpha=lambda t: t, sigma=lambda t: 1 - t, dalpha=lambda t: 1.0, dsigma=lambda t: -1.0),
     "increase"),
    (lambda: MixtureVelocity("data"), "data"),
    (lambda: VEL[2](np.zeros((3, 3)), 0.5), "x"),
    (lambda: VEL[2](np.zeros((3, 2)), 1.5), "t"),
    (lambda: VelocityAsScore(VEL[2])(np.zeros((3, 2)), 1.0, 0.0), "sigma"),
    (lambda: velocity_from_score(np.zeros((3, 2)), np.zeros((3, 2)), 1.0), "alpha"),
    (lambda: velocity_to_x0_eps(np.zeros((3, 2)), np.zeros((3, 2)), -0.1), "t"),
    (lambda: flow_ode(VEL[2], 0), "dim"),
    (lambda: MixtureVelocity(MIX[2], SQUARE).ode(), "built-in"),
]


def test_non_finite_velocity_is_named():
    with pytest.raises(ScoreNonFiniteError, match="velocity returned non-finite values for path 1 at step 0"):
        flow_sample(lambda x, t: np.where(x[:, :1] > 0, x, np.nan), np.array([[1.0, 2.0], [0.0, 1.0]]))


@pytest.mark.parametrize("call, match", BAD)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(SDEKitError, match=match):
        call()
