"""The exact diffusion model of Gaussian-mixture data: compiled reverse SDE and PF-ODE from the exact
p_T against the exact p_eps, per-path sampler noise, and likelihoods through the PF-ODE.

Batteries gate at overall false-alarm rate 1e-6; the planted bugs (the score's sign flipped in the
likelihood's field, a Hutchinson estimator with its probes' scale wrong) fail.
"""

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats as st

import sdekit
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.likelihood import bits_per_dim, log_likelihood
from sdekit.diffusion.model import DiffusionModel, step_normals
from sdekit.errors import SDEKitError
from sdekit.targets import GaussianMixture
from sdekit.validate import compare_with_law

MIX2 = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [np.eye(2) * 0.5, [[1.0, 0.3], [0.3, 0.4]]])


def rotated(d: int, eigs, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return (q * np.asarray(eigs)) @ q.T


MIX4 = GaussianMixture([0.25, 0.45, 0.3], [[2.0, 0.0, -1.0, 1.0], [-1.5, 1.0, 0.5, 0.0], [0.0, -2.0, 1.5, -1.0]],
                       [rotated(4, [0.1, 0.3, 0.6, 1.2], 1), rotated(4, [0.2, 0.2, 0.5, 1.5], 2),
                        rotated(4, [0.15, 0.4, 0.8, 1.0], 3)])
N = 20_000


@pytest.mark.parametrize("data", [MIX2, MIX4], ids=["2d", "4d"])
@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_exact_model_reverse_sde_and_pf_ode_reach_p_eps(data, kind):
    """Reverse SDE (EM, 1000 steps) and PF-ODE (RK4, 200 steps) from exact draws of p_T."""
    fw = ForwardSDE.vp() if kind == "vp" else ForwardSDE.ve(0.01, 20.0)
    model = DiffusionModel.exact_mixture(fw, data)
    x_t = model.sample_marginal(N, fw.T, seed=21)
    law = model.marginal(fw.eps)
    sde = sdekit.simulate(model.reverse_sde(), x_t, (fw.T, fw.eps), steps=1000, seed=22).final
    ode = sdekit.simulate(model.probability_flow(), x_t, (fw.T, fw.eps), steps=200, solver="rk4").final
    for name, sample in (("reverse SDE", sde), ("PF-ODE", ode)):
        report = compare_with_law(sample, law, name=f"{kind} {name}")
        assert report.passed, report.to_text()


def test_parametrizations_of_the_model_agree_with_the_fixture():
    model = DiffusionModel.exact_mixture(ForwardSDE.vp(), MIX2)
    x = model.sample_marginal(50, 0.4, seed=1)
    a, s = model.forward.kernel(0.4)
    assert np.allclose(model.x0(x, 0.4), model.exact.denoiser(x, a, s), rtol=1e-10, atol=1e-12)
    assert np.allclose(model.eps(x, 0.4), model.exact.eps_target(x, a, s), rtol=1e-10, atol=1e-12)


def test_step_normals_do_not_depend_on_the_batch():
    whole = step_normals(5, 300, 3, 7)
    assert np.array_equal(whole[100:], step_normals(5, 200, 3, 7, path_offset=100))
    assert not np.array_equal(whole, step_normals(5, 300, 3, 8))


def test_exact_divergence_likelihood_converges_at_order_four():
    """log p_eps(x) by RK4 on the augmented PF-ODE with the exact divergence d f - g^2/2 Lap log p_t:
    errors vs the exact mixture log-density at 100 and 200 steps (measured 1.4e-7 and 8.8e-9)."""
    model = DiffusionModel.exact_mixture(ForwardSDE.vp(), MIX2)
    x = model.sample_marginal(200, model.forward.eps, seed=3)
    exact = model.marginal(model.forward.eps).log_prob(x)
    e100 = np.abs(log_likelihood(model, x, steps=100).log_prob - exact).max()
    e200 = np.abs(log_likelihood(model, x, steps=200).log_prob - exact).max()
    assert e200 < 1e-7 and 3.2 < math.log2(e100 / e200) < 4.8, (e100, e200)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_likelihood_is_unbiased_within_its_standard_error(probe):
    """16 probes per point. Per point: within the t_15 critical value (Bonferroni over 200 points) times
    its standard error. Over the 200 points: the mean error is within 5.3 standard errors of 0
    (z-test; the points are independent). Together at most ~1e-6. A planted bug (the score's sign
    flipped in the PF-ODE field) fails the aggregate test."""
    model = DiffusionModel.exact_mixture(ForwardSDE.vp(), MIX2)
    x = model.sample_marginal(200, model.forward.eps, seed=4)
    exact = model.marginal(model.forward.eps).log_prob(x)
    lik = log_likelihood(model, x, steps=100, divergence="hutchinson", probes=16, probe=probe, seed=5)
    crit = st.t.isf(1e-6 / (4 * len(x)), 15)
    assert np.all(np.abs(lik.log_prob - exact) <= crit * lik.stderr), np.abs(lik.log_prob - exact) / lik.stderr
    se_mean = math.sqrt(np.sum(lik.stderr**2)) / len(x)
    assert abs(np.mean(lik.log_prob - exact)) <= 5.33 * se_mean
    buggy = dataclasses.replace(model, score_fn=lambda y, t: -model.score_fn(y, t))
    bad = log_likelihood(buggy, x, steps=100, divergence="hutchinson", probes=16, probe=probe, seed=5)
    assert abs(np.mean(bad.log_prob - exact)) > 5.33 * math.sqrt(np.sum(bad.stderr**2)) / len(x)


def test_bits_per_dim_and_bad_input():
    assert bits_per_dim(-3.0 * math.log(2), 1, data_scale=1.0) == pytest.approx(3.0)
    # [0, 1) scaling: a uniform density p_y = 1 gives log2(256) = 8 bits per dimension
    assert bits_per_dim(0.0, 5, data_scale=1 / 256) == pytest.approx(8.0)
    model = DiffusionModel.exact_mixture(ForwardSDE.vp(), MIX2)
    with pytest.raises(SDEKitError, match="divergence"):
        log_likelihood(model, np.zeros((2, 2)), divergence="exactish")
    with pytest.raises(SDEKitError, match="shape"):
        log_likelihood(model, np.zeros((2, 3)))
    with pytest.raises(SDEKitError, match="forward"):
        DiffusionModel.exact_mixture("vp", MIX2)
