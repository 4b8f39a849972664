"""Annealed Langevin (NCSN) and predictor-corrector samplers against exact Gaussian-mixture laws.

Every distributional test starts from exact draws of p_T (or of the first noise level), uses the exact mixture score
(and log density for MALA), N = 20000 paths, and the `compare_with_law` battery at alpha = 1e-6. Planted bugs are
mutants of the samplers' private step functions, swapped in with monkeypatch; each must fail the same battery.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import sdekit.diffusion.samplers.predictor_corrector as pcm
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.mixture_marginals import MixtureMarginals, mixture_marginal_log_prob, mixture_marginal_score
from sdekit.diffusion.samplers.annealed_langevin import (
    annealed_langevin,
    annealed_langevin_denoising,
    gaussian_annealed_langevin_law,
    geometric_sigmas,
)
from sdekit.diffusion.samplers.predictor_corrector import langevin_corrector, mala_corrector, pc_sample
from sdekit.errors import SDEKitError
from sdekit.targets import GaussianMixture
from sdekit.validate.compare import compare_with_law

N = 20_000


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((4, 4)))
    return q


MIX_1D = GaussianMixture([0.4, 0.6], [[-2.0], [1.5]], [[[0.25]], [[0.5]]])
MIX_2D = GaussianMixture([0.3, 0.7], [[-1.5, 0.5], [1.0, -0.5]], [np.diag([0.3, 0.5]), [[0.4, 0.15], [0.15, 0.3]]])
MIX_4D = GaussianMixture(
    [0.5, 0.3, 0.2], [[1.0, 0.0, 0.0, 0.5], [-1.0, 1.0, 0.0, 0.0], [0.0, -1.5, 1.0, 0.0]],
    [_rotation(1) @ np.diag([1.0, 0.3, 0.1, 0.05]) @ _rotation(1).T,
     _rotation(2) @ np.diag([0.6, 0.2, 0.08, 0.4]) @ _rotation(2).T, np.diag([0.2, 0.5, 0.1, 0.3])])


@pytest.fixture(autouse=True, scope="module")
def _one_numba_thread():
    """The per-path normal streams run serially: much faster than 2 threads on a shared 2-core machine."""
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


def _model(mix: GaussianMixture):
    mm = MixtureMarginals(mix)

    def score(x, alpha, sigma):
        return mixture_marginal_score(np.ascontiguousarray(x), alpha, sigma, mm.params)

    def log_prob(x, alpha, sigma):
        return mixture_marginal_log_prob(np.ascontiguousarray(x), alpha, sigma, mm.params)

    return mm, score, log_prob


def _check(x, law, expect: bool):
    rep = compare_with_law(x, law, alpha=1e-6)
    assert rep.passed is expect, rep.to_text()
    return rep


# --------------------------------------------------------------------------------------------
# (a) MALA leaves p_t invariant at a large step; unadjusted Langevin at the same step does not
# --------------------------------------------------------------------------------------------


def test_mala_corrector_exactly_invariant_where_langevin_is_biased():
    mm, score, log_prob = _model(MIX_4D)
    alpha, sigma = 0.9, 0.3  # smallest eigenvalue of any S_k: 0.13; eps = 0.1 is a large step
    x0 = mm.sample(N, alpha, sigma, seed=5)
    law = mm.marginal(alpha, sigma)
    x, rate = mala_corrector(score, log_prob, x0, alpha, sigma, step_size=0.1, n_steps=10, seed=7)
    assert 0.7 < rate < 0.95  # measured 0.8246
    _check(x, law, True)  # measured min p 0.11
    x_ula = langevin_corrector(score, x0, alpha, sigma, step_size=0.1, n_steps=10, seed=7)
    _check(x_ula, law, False)  # measured min p ~ 1e-287


# --------------------------------------------------------------------------------------------
# (b) PC sampling from the exact p_T
# --------------------------------------------------------------------------------------------


def test_pc_ve_reverse_diffusion_langevin_1d():
    """score_sde's VE settings (snr 0.16, one corrector step); N = 100 steps (NFE 200) for time, N = 1000 passes too."""
    mm, score, _ = _model(MIX_1D)
    fw = ForwardSDE.ve(0.01, 50.0)
    x_t = mm.sample(N, *fw.kernel(fw.T), seed=1)
    res = pc_sample(score, fw, x_t, steps=100, predictor="reverse_diffusion", corrector="langevin", snr=0.16, seed=3)
    assert res.nfe == 200 and res.accept_rate is None
    _check(res.x, mm.marginal(*fw.kernel(fw.eps)), True)  # measured min p 0.25


def test_pc_corrector_repairs_coarse_predictor_ve_1d():
    """At N = 50 the reverse-diffusion predictor alone is rejected; adding the Langevin corrector passes."""
    mm, score, _ = _model(MIX_1D)
    fw = ForwardSDE.ve(0.01, 50.0)
    x_t = mm.sample(N, *fw.kernel(fw.T), seed=1)
    law = mm.marginal(*fw.kernel(fw.eps))
    alone = pc_sample(score, fw, x_t, steps=50, predictor="reverse_diffusion", corrector="none", seed=3)
    assert alone.nfe == 50
    _check(alone.x, law, False)  # measured min p 4e-19
    both = pc_sample(score, fw, x_t, steps=50, predictor="reverse_diffusion", corrector="langevin", snr=0.16, seed=3)
    _check(both.x, law, True)  # measured min p 0.11


def test_pc_vp_2d_reverse_diffusion_langevin():
    mm, score, _ = _model(MIX_2D)
    fw = ForwardSDE.vp()
    x_t = mm.sample(N, *fw.kernel(fw.T), seed=1)
    res = pc_sample(score, fw, x_t, steps=100, predictor="reverse_diffusion", corrector="langevin", snr=0.16,
                    seed=3)
    _check(res.x, mm.marginal(*fw.kernel(fw.eps)), True)


def test_pc_ancestral_mala_ve_1d():
    mm, score, log_prob = _model(MIX_1D)
    fw = ForwardSDE.ve(0.01, 50.0)
    x_t = mm.sample(N, *fw.kernel(fw.T), seed=1)
    law = mm.marginal(*fw.kernel(fw.eps))
    alone = pc_sample(score, fw, x_t, steps=40, predictor="ancestral", corrector="none", seed=4)
    _check(alone.x, law, False)  # the coarse ancestral predictor alone is biased
    # a fixed step makes each corrector sweep exactly p_t-invariant (the snr rule's batch-dependent step does not)
    mala = pc_sample(score, fw, x_t, steps=40, predictor="ancestral", corrector="mala", corrector_step=0.1,
                     log_prob=log_prob, seed=4)
    assert mala.accept_rate is not None and 0.9 < mala.accept_rate < 1.0  # measured 0.984
    assert mala.nfe == 40 + 40 * 2 and mala.n_log_prob == 40 * 2
    _check(mala.x, law, True)  # measured min p 0.25


# --------------------------------------------------------------------------------------------
# (c) annealed Langevin
# --------------------------------------------------------------------------------------------


def test_annealed_langevin_standard_settings_1d():
    """NCSN settings (L = 10 geometric levels 1 -> 0.01, M = 100, eps0 = 2e-5) pass the battery at N = 20000."""
    mm, score, _ = _model(MIX_1D)
    sig = geometric_sigmas(1.0, 0.01, 10)
    x0 = mm.sample(N, 1.0, sig[0], seed=1)
    x = annealed_langevin(score, sig, x0, steps_per_level=100, eps0=2e-5, seed=2).x
    _check(x, mm.marginal(1.0, sig[-1]), True)  # measured min p 0.08


def test_annealed_langevin_bias_matches_gaussian_oracle():
    """At a large eps0 the output is visibly biased, and its law is the exact linear-recursion prediction."""
    mix = GaussianMixture([1.0], [[0.5, -1.0]], [[[0.5, 0.2], [0.2, 0.3]]])
    mm, score, _ = _model(mix)
    sig = geometric_sigmas(2.0, 0.1, 10)
    x0 = mm.sample(N, 1.0, sig[0], seed=1)
    x = annealed_langevin(score, sig, x0, steps_per_level=20, eps0=0.01, seed=2).x
    start = mm.marginal(1.0, sig[0])
    law = gaussian_annealed_langevin_law(mix.means[0], mix.covs[0], sig, start.means[0], start.covs[0],
                                         steps_per_level=20, eps0=0.01)
    _check(x, law, True)
    _check(x, mm.marginal(1.0, sig[-1]), False)


def test_denoising_form_is_tweedie_step():
    """X <- Denoise(X; sigma^2) + sqrt(2) sigma W with the exact posterior mean, one level, one step."""
    mm, score, _ = _model(MIX_2D)
    x0 = mm.sample(500, 1.0, 0.7, seed=1)
    out = annealed_langevin_denoising(score, [0.7], x0, steps_per_level=1, seed=9).x
    from sdekit.diffusion.model import step_normals
    ref = mm.denoiser(x0, 1.0, 0.7) + np.sqrt(2.0) * 0.7 * step_normals(9, 500, 2, 0)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# (d) planted bugs
# --------------------------------------------------------------------------------------------


def test_planted_bug_langevin_noise_too_small(monkeypatch):
    """Corrector with the noise sqrt(2 eps) z replaced by sqrt(eps) z (half-drift: sqrt(eps) -> sqrt(eps / 2))."""
    mm, score, _ = _model(MIX_2D)
    alpha, sigma = 0.9, 0.3
    x0 = mm.sample(N, alpha, sigma, seed=5)
    law = mm.marginal(alpha, sigma)
    _check(langevin_corrector(score, x0, alpha, sigma, step_size=0.005, n_steps=5, seed=7), law, True)
    monkeypatch.setattr(pcm, "_langevin_move", lambda x, s, z, eps: x + eps * s + np.sqrt(eps) * z)
    _check(langevin_corrector(score, x0, alpha, sigma, step_size=0.005, n_steps=5, seed=7), law, False)


def test_planted_bug_mala_without_proposal_ratio(monkeypatch):
    mm, score, log_prob = _model(MIX_4D)
    alpha, sigma = 0.9, 0.3
    x0 = mm.sample(N, alpha, sigma, seed=5)
    monkeypatch.setattr(pcm, "_mala_log_ratio", lambda x, y, s_x, s_y, lp_x, lp_y, eps: lp_y - lp_x)
    x, _ = mala_corrector(score, log_prob, x0, alpha, sigma, step_size=0.1, n_steps=10, seed=7)
    _check(x, mm.marginal(alpha, sigma), False)


def test_planted_bug_predictor_score_sign(monkeypatch):
    mm, score, _ = _model(MIX_1D)
    fw = ForwardSDE.vp()
    x_t = mm.sample(N, *fw.kernel(fw.T), seed=1)
    law = mm.marginal(*fw.kernel(fw.eps))
    orig = pcm._predict
    monkeypatch.setattr(pcm, "_predict", lambda kind, x, s, *a: orig(kind, x, -s, *a))
    res = pc_sample(score, fw, x_t, steps=50, predictor="reverse_diffusion", corrector="none", seed=3)
    _check(res.x, law, False)


# --------------------------------------------------------------------------------------------
# reproducibility and input errors
# --------------------------------------------------------------------------------------------


def test_reproducible_and_batch_independent():
    mm, score, log_prob = _model(MIX_2D)
    fw = ForwardSDE.ve(0.01, 50.0)
    x_t = mm.sample(2000, *fw.kernel(fw.T), seed=1)
    kw = {"steps": 20, "predictor": "reverse_diffusion", "corrector": "mala", "log_prob": log_prob, "snr": 0.16,
          "snr_norms": "per_sample", "n_corrector": 2, "seed": 11}
    a = pc_sample(score, fw, x_t, **kw).x
    np.testing.assert_array_equal(a, pc_sample(score, fw, x_t, **kw).x)
    np.testing.assert_array_equal(a[:1000], pc_sample(score, fw, x_t[:1000], **kw).x)
    assert not np.array_equal(a, pc_sample(score, fw, x_t, **{**kw, "seed": 12}).x)
    sig = geometric_sigmas(1.0, 0.05, 4)
    b = annealed_langevin(score, sig, x_t, steps_per_level=5, eps0=1e-3, seed=3).x
    np.testing.assert_array_equal(b, annealed_langevin(score, sig, x_t, steps_per_level=5, eps0=1e-3, seed=3).x)
    np.testing.assert_array_equal(b[:1000], annealed_langevin(score, sig, x_t[:1000], steps_per_level=5, eps0=1e-3,
                                                              seed=3).x)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"steps": 0}, "steps"), ({"predictor": "heun"}, "predictor"), ({"corrector": "hmc"}, "corrector"),
    ({"corrector": "mala"}, "log_prob"), ({"snr": -1.0}, "snr"), ({"seed": -3}, "seed"),
    ({"n_corrector": -1}, "n_corrector"), ({"snr_norms": "max"}, "snr_norms"),
])
def test_pc_errors_name_argument(kwargs, name):
    _, score, _ = _model(MIX_1D)
    with pytest.raises(SDEKitError, match=name):
        pc_sample(score, ForwardSDE.vp(), np.zeros((3, 1)), **kwargs)


def test_annealed_errors_name_argument():
    _, score, _ = _model(MIX_1D)
    x = np.zeros((3, 1))
    with pytest.raises(SDEKitError, match="sigmas"):
        annealed_langevin(score, [0.1, 0.5], x)
    with pytest.raises(SDEKitError, match="eps0"):
        annealed_langevin(score, [0.5, 0.1], x, eps0=0.0)
    with pytest.raises(SDEKitError, match="x_init"):
        annealed_langevin(score, [0.5, 0.1], np.zeros(3))
    with pytest.raises(SDEKitError, match="score"):
        annealed_langevin(lambda x, a, s: np.zeros((2, 1)), [0.5, 0.1], x)
    with pytest.raises(SDEKitError, match="forward"):
        pc_sample(score, "vp", x)
