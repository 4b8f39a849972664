"""Tests of InDI (sdekit.restoration: Delbracio & Milanfar 2023) with the exact posterior-mean denoiser of
Gaussian-mixture data.

Setting: clean x from the shared 1-, 2-, 4-D anisotropic mixtures (tests/test_diffusion_fixtures.make_data), the
observation y = x + SIGMA_Y n drawn exactly (N = 20000, fixed seed), the exact denoiser `MixtureDenoiser`, and
``compare_with_law`` at 1e-6 of the restorations against the data law.

Measured (uniform t grid, deterministic chain; min p of the battery):
  1-D: 20 steps fail (1e-10), 30 pass (5.3e-6); 2-D: 40 fail (2.6e-8), 50 pass (1.0e-5);
  4-D: 60 fail (1.1e-8), 70 pass (4.9e-6). (A grid t_i = (1 - i / N)^2 passes at 30 / 40 / 40 steps.)
Stochastic chain, eps_t = SIGMA_Y sqrt(1 - t) (so x_1 = y exactly), seed 3:
  1-D: 30 fail (2.4e-10), 40 pass (5.9e-7); 2-D: 70 fail (1.5e-8), 80 pass (6.8e-7); 4-D: 100 fail (1.0e-9),
  120 pass (1.5e-6). (The battery's Bonferroni level per test is 1e-6 / 30 = 3.3e-8.)
Order (Gaussian data N(0, diag(0.05, 0.3, 2)), error against the exact flow map y sqrt(v / (v + SIGMA_Y^2)), 10, 20,
40, 80 steps, slope window fixed in advance [0.8, 1.2]).

Planted bugs (monkeypatched module hooks of sdekit.restoration.indi): the step weight delta / t replaced by delta
(law and order), the injected noise without its factor (t - delta) and without its square root (law).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import sdekit.restoration.indi as indi
from sdekit.diffusion.mixture_marginals import mixture_marginal_score
from sdekit.diffusion.samplers.edm import edm_sample
from sdekit.errors import SDEKitError
from sdekit.restoration import MixtureDenoiser, indi_sample, indi_times

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import FIXTURES, GAUSS, GAUSS_VARS, N_MC, assert_law, assert_law_fails  # noqa: E402

SIGMA_Y = 2.0
DETERMINISTIC_STEPS = {1: 30, 2: 50, 4: 70}  # the smallest measured to pass; 20 / 40 / 60 fail
STOCHASTIC_STEPS = {1: 40, 2: 80, 4: 120}  # the smallest measured to pass; 30 / 70 / 100 fail


def stochastic_schedule(t: float) -> float:
    """eps_t = SIGMA_Y sqrt(1 - t): no noise at t = 1 (the chain starts from y), growing as t falls."""
    return SIGMA_Y * math.sqrt(1.0 - t)


def observations(d: int, n: int = N_MC, seed: int = 1) -> np.ndarray:
    """y = x + SIGMA_Y n with x from the data law: exact draws of the VE marginal at sigma = SIGMA_Y."""
    return FIXTURES[d].sample(n, 1.0, SIGMA_Y, seed=seed)


# --------------------------------------------------------------------------------------------
# the exact denoiser and the one-step restoration
# --------------------------------------------------------------------------------------------


def test_exact_denoiser_is_the_posterior_mean_at_level_t_sigma_y():
    mm = FIXTURES[2]
    y = observations(2, 50)
    for noise_schedule, level in ((None, 0.3 * SIGMA_Y), (0.5, 0.3 * math.hypot(SIGMA_Y, 0.5)),
                                  (stochastic_schedule, 0.3 * math.hypot(SIGMA_Y, stochastic_schedule(0.3)))):
        f = MixtureDenoiser(mm, SIGMA_Y, noise_schedule)
        assert f.level(0.3) == pytest.approx(level, rel=1e-15)
        np.testing.assert_allclose(f(y, 0.3), mm.denoiser(y, 1.0, level), rtol=1e-11, atol=1e-11)
    f = MixtureDenoiser(mm.data, SIGMA_Y)
    np.testing.assert_array_equal(f(y, 0.0), y)  # F(x, 0) = x


def test_single_step_is_the_posterior_mean():
    """delta = t = 1: x_0 = F(y, 1) = E[x | y] exactly (the MMSE estimate), one model call."""
    mm = FIXTURES[4]
    y = observations(4, 200)
    res = indi_sample(MixtureDenoiser(mm, SIGMA_Y), y, steps=1)
    assert res.nfe == 1
    np.testing.assert_array_equal(res.times, [1.0, 0.0])
    np.testing.assert_allclose(res.x, mm.denoiser(y, 1.0, SIGMA_Y), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# laws
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 4])
def test_deterministic_chain_reaches_the_data_law(d):
    mm = FIXTURES[d]
    steps = DETERMINISTIC_STEPS[d]
    res = indi_sample(MixtureDenoiser(mm, SIGMA_Y), observations(d), steps=steps)
    assert res.nfe == steps
    assert_law(res.x, mm.data, f"InDI deterministic d={d}, {steps} steps")


def test_one_step_posterior_mean_is_not_the_data_law():
    """The MMSE estimate E[x | y] regresses to the mean (Delbracio & Milanfar's motivation): its law is rejected."""
    mm = FIXTURES[2]
    res = indi_sample(MixtureDenoiser(mm, SIGMA_Y), observations(2), steps=1)
    assert_law_fails(res.x, mm.data, "one-step posterior mean")


def test_planted_step_weight_bug_is_caught(monkeypatch):
    monkeypatch.setattr(indi, "_step_weight", lambda t, t_next: t - t_next)  # delta instead of delta / t
    mm = FIXTURES[2]
    res = indi_sample(MixtureDenoiser(mm, SIGMA_Y), observations(2), steps=DETERMINISTIC_STEPS[2])
    assert_law_fails(res.x, mm.data, "step weight delta instead of delta / t")


@pytest.mark.parametrize("d", [1, 2, 4])
def test_stochastic_chain_reaches_the_data_law(d):
    mm = FIXTURES[d]
    steps = STOCHASTIC_STEPS[d]
    res = indi_sample(MixtureDenoiser(mm, SIGMA_Y, stochastic_schedule), observations(d), steps=steps,
                      noise_schedule=stochastic_schedule, seed=3)
    assert res.nfe == steps
    assert_law(res.x, mm.data, f"InDI stochastic d={d}, {steps} steps")


def test_stochastic_chain_keeps_the_intermediate_marginal():
    """Stopped at t = 0.5 the chain's law is that of x + s(0.5) xi, s(t) = t sqrt(SIGMA_Y^2 + eps_t^2)."""
    mm = FIXTURES[2]
    f = MixtureDenoiser(mm, SIGMA_Y, stochastic_schedule)
    grid = np.linspace(1.0, 0.5, 41)
    res = indi_sample(f, observations(2), times=grid, noise_schedule=stochastic_schedule, seed=4)
    np.testing.assert_array_equal(res.times, grid)
    assert_law(res.x, mm.marginal(1.0, f.level(0.5)), "InDI stochastic at t = 0.5")


@pytest.mark.parametrize("bug", ["without (t - delta)", "without sqrt"])
def test_planted_noise_level_bugs_are_caught(monkeypatch, bug):
    wrong = {"without (t - delta)": lambda tn, e, en: math.sqrt(en * en - e * e),
             "without sqrt": lambda tn, e, en: tn * (en * en - e * e)}[bug]
    monkeypatch.setattr(indi, "_injected_std", wrong)
    mm = FIXTURES[2]
    res = indi_sample(MixtureDenoiser(mm, SIGMA_Y, stochastic_schedule), observations(2), steps=STOCHASTIC_STEPS[2],
                      noise_schedule=stochastic_schedule, seed=3)
    assert_law_fails(res.x, mm.data, f"stochastic noise {bug}")


# --------------------------------------------------------------------------------------------
# the deterministic chain is Euler on the VE probability-flow ODE; its order
# --------------------------------------------------------------------------------------------


def test_deterministic_chain_is_euler_on_the_ve_pf_ode():
    """x_{t - delta} = (delta / t) D + (1 - delta / t) x equals EDM's Euler step on sigma_i = t_i SIGMA_Y."""
    mm = FIXTURES[2]
    y = observations(2, 500)
    times = indi_times(12, rho=2.0)
    a = indi_sample(MixtureDenoiser(mm, SIGMA_Y), y, times=times).x
    b = edm_sample(lambda x, al, s: mixture_marginal_score(np.ascontiguousarray(x), al, s, mm.params),
                   SIGMA_Y * times, y, method="euler").x
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def indi_order() -> tuple[float, list[float]]:
    y = GAUSS.sample(200, 1.0, SIGMA_Y, seed=3)
    exact = y * np.sqrt(GAUSS_VARS / (GAUSS_VARS + SIGMA_Y ** 2))  # the PF-ODE's flow map from sigma_y to 0
    steps_list = (10, 20, 40, 80)
    errs = [float(np.sqrt(np.mean((indi_sample(MixtureDenoiser(GAUSS, SIGMA_Y), y, steps=s).x - exact) ** 2)))
            for s in steps_list]
    return float(-np.polyfit(np.log(steps_list), np.log(errs), 1)[0]), errs


def test_deterministic_chain_has_order_one():
    p, errs = indi_order()
    assert 0.8 <= p <= 1.2, f"InDI order {p:.2f}; errors {errs}"


def test_planted_step_weight_bug_loses_the_order(monkeypatch):
    monkeypatch.setattr(indi, "_step_weight", lambda t, t_next: t - t_next)
    p, errs = indi_order()
    assert not 0.8 <= p <= 1.2, f"planted bug kept order {p:.2f}; errors {errs}"


# --------------------------------------------------------------------------------------------
# backends, noise streams, bookkeeping
# --------------------------------------------------------------------------------------------


def test_torch_float64_equals_numpy():
    torch = pytest.importorskip("torch")
    mm = FIXTURES[2]
    y = observations(2, 300)
    f = MixtureDenoiser(mm, SIGMA_Y, stochastic_schedule)
    kw = {"steps": 8, "noise_schedule": stochastic_schedule, "seed": 5}
    ref = indi_sample(f, y, **kw)
    out = indi_sample(f, torch.as_tensor(y), **kw)
    assert torch.is_tensor(out.x) and out.x.dtype == torch.float64 and out.nfe == ref.nfe
    np.testing.assert_allclose(out.x.numpy(), ref.x, rtol=1e-10, atol=1e-10)
    single = indi_sample(f, torch.as_tensor(y, dtype=torch.float32), **kw)
    assert single.x.dtype == torch.float32
    np.testing.assert_allclose(single.x.numpy(), ref.x, rtol=1e-4, atol=1e-4)


def test_stochastic_is_reproducible_and_batch_independent():
    mm = FIXTURES[2]
    y = observations(2, 400)
    f = MixtureDenoiser(mm, SIGMA_Y, stochastic_schedule)
    kw = {"steps": 6, "noise_schedule": stochastic_schedule, "seed": 11}
    whole = indi_sample(f, y, **kw).x
    np.testing.assert_array_equal(indi_sample(f, y[:200], **kw).x, whole[:200])
    np.testing.assert_array_equal(indi_sample(f, y[200:], path_offset=200, **kw).x, whole[200:])
    assert not np.allclose(indi_sample(f, y, steps=6, noise_schedule=stochastic_schedule, seed=12).x, whole)


def test_noise_callable_trajectory_and_callback():
    mm = FIXTURES[1]
    y = observations(1, 10)
    zeros_seen, infos = [], []

    def noise(step, like):
        zeros_seen.append(step)
        return np.zeros(like.shape)

    f = MixtureDenoiser(mm, SIGMA_Y, 0.7)  # constant eps: only the start is noised
    res = indi_sample(f, y, steps=4, noise_schedule=0.7, noise=noise, callback=infos.append, return_trajectory=True)
    assert zeros_seen == [0]
    assert res.trajectory.shape == (5, 10, 1)
    np.testing.assert_array_equal(res.trajectory[0], y)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    np.testing.assert_allclose(res.sigmas, [1.0, 0.75, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(res.alphas, 1.0 - res.sigmas)
    assert res.sigmas_edm[0] == np.inf and res.sigmas_edm[-1] == 0.0
    assert [i.step for i in infos] == [0, 1, 2, 3] and infos[-1].sigma == 0.0
    np.testing.assert_array_equal(infos[-1].denoised, res.x)  # the last step returns the denoised estimate


def test_non_finite_denoiser_output_names_the_step():
    with pytest.raises(FloatingPointError, match="denoiser returned non-finite values for path 0 at step 2 \\(t = 0.5"):
        indi_sample(lambda x, t: x + (np.nan if t == 0.5 else 0.0), observations(2, 5), steps=4)


@pytest.mark.parametrize(("call", "word"), [
    (lambda f, y: indi_sample("F", y, steps=3), "denoiser"),
    (lambda f, y: indi_sample(f, y), "steps"),
    (lambda f, y: indi_sample(f, y, steps=3, times=[1.0, 0.0]), "times"),
    (lambda f, y: indi_sample(f, y, steps=0), "steps"),
    (lambda f, y: indi_sample(f, y, times=[0.9, 0.0]), "times"),
    (lambda f, y: indi_sample(f, y, times=[1.0, 0.5, 0.6, 0.0]), "times"),
    (lambda f, y: indi_sample(f, y, times=[1.0, -0.5]), "times"),
    (lambda f, y: indi_sample(f, y, times=[1.0]), "times"),
    (lambda f, y: indi_sample(f, y, steps=3, noise_schedule=lambda t: t), "non-increasing"),
    (lambda f, y: indi_sample(f, y, steps=3, noise_schedule=-0.1), "noise_schedule"),
    (lambda f, y: indi_sample(f, y, steps=3, noise_schedule="brownian"), "noise_schedule"),
    (lambda f, y: indi_sample(f, y, steps=3, noise_schedule=lambda t: float("nan")), "noise_schedule"),
    (lambda f, y: indi_sample(f, y[0], steps=3), "y"),
    (lambda f, y: indi_sample(f, np.full_like(y, np.nan), steps=3), "y"),
    (lambda f, y: indi_sample(f, y, steps=3, noise_schedule=0.5, seed=-1), "seed"),
    (lambda f, y: indi_sample(lambda x, t: np.zeros(3), y, steps=3), "denoiser"),
    (lambda f, y: indi_times(5, rho=0.0), "rho"),
    (lambda f, y: MixtureDenoiser(FIXTURES[2], 0.0), "sigma_y"),
    (lambda f, y: MixtureDenoiser("mixture", 1.0), "data"),
    (lambda f, y: MixtureDenoiser(FIXTURES[2], 1.0, noise_schedule=[0.1]), "noise_schedule"),
    (lambda f, y: f(y, 1.5), "t"),
    (lambda f, y: f(y[:, :1], 0.5), "x"),
])
def test_bad_input_raises_naming_the_argument(call, word):
    f = MixtureDenoiser(FIXTURES[2], SIGMA_Y)
    y = observations(2, 5)
    with pytest.raises(SDEKitError, match=word):
        call(f, y)
