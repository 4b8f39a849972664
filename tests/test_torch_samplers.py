"""The torch backend of the discrete diffusion samplers and the torch port of the exact mixture marginals.

* `TorchMixtureScore` agrees with the NumPy `MixtureMarginals` (score, log_prob, Laplacian) to 1e-10 in float64 on
  random 2-D and 3-D mixtures with rotated (non-diagonal) covariances; its score is the autograd gradient of its
  log_prob and its Laplacian the trace of the autograd Hessian; score_t agrees at forward.kernel(t) for VP and VE.
* Every sampler run on a float64 torch tensor with `TorchMixtureScore` equals the NumPy run with
  `MixtureMarginals.score` on the same seed and initial state to rtol = atol = 1e-9 (same noise streams, same
  formulas, rounding only); a float32 run per family agrees loosely; a torch run on the first rows of a batch equals
  those rows of the full run (per-path noise streams); a score of the wrong sign is caught by the same comparison.
* Bad torch input (NaN state, wrong ndim, score of the wrong shape) raises SDEKitError naming the argument.

Agreement tests, not law tests: few steps (<= 20) and 20 paths.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdekit.diffusion.forward import ForwardSDE  # noqa: E402
from sdekit.diffusion.mixture_marginals import MixtureMarginals  # noqa: E402
from sdekit.diffusion.samplers.annealed_langevin import annealed_langevin, geometric_sigmas  # noqa: E402
from sdekit.diffusion.samplers.ddim import ddim_sample  # noqa: E402
from sdekit.diffusion.samplers.ddpm import ddpm_sample  # noqa: E402
from sdekit.diffusion.samplers.discrete import DiscreteSchedule  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas  # noqa: E402
from sdekit.diffusion.samplers.predictor_corrector import PREDICTORS, pc_sample  # noqa: E402
from sdekit.diffusion.score_checks import ScoreNonFiniteError  # noqa: E402
from sdekit.diffusion.torch_mixture import TorchMixtureScore  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402
from sdekit.targets import GaussianMixture  # noqa: E402

N_PATHS = 20
TOL64 = {"rtol": 1e-9, "atol": 1e-9}
# float32 vs float64: inputs rounded to ~6e-8 relative, <= 20 steps of O(1)-Lipschitz maps on O(1)..O(10) states;
# observed differences are ~1e-6, so 2e-4 leaves two orders of margin while a real bug gives O(0.1 .. 1).
TOL32 = {"rtol": 2e-4, "atol": 2e-4}


def _random_mixture(dim: int, k: int, seed: int) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, k)
    means = rng.normal(0.0, 2.0, (k, dim))
    covs = []
    for _ in range(k):
        a = rng.normal(0.0, 0.7, (dim, dim))
        covs.append(a @ a.T + 0.2 * np.eye(dim))  # full, non-diagonal
    return GaussianMixture(w / w.sum(), means, np.array(covs))


MIX2 = _random_mixture(2, 3, 11)
MM2 = MixtureMarginals(MIX2)
T64 = TorchMixtureScore(MIX2)
T32 = TorchMixtureScore(MIX2, dtype=torch.float32)
X0 = np.random.default_rng(5).standard_normal((N_PATHS, 2))


def _t(x: np.ndarray, dtype=torch.float64):
    return torch.from_numpy(x).to(dtype)


def _x(result):
    return result if isinstance(result, np.ndarray | torch.Tensor) else result.x


# --------------------------------------------------------------------------------------------
# TorchMixtureScore
# --------------------------------------------------------------------------------------------

LEVELS = [(1.0, 0.0), (1.0, 0.3), (0.8, 0.6), (0.3, 0.95), (1.0, 5.0)]


@pytest.mark.parametrize("dim,k,seed", [(2, 3, 1), (3, 4, 2)])
def test_torch_mixture_matches_numpy(dim, k, seed):
    mix = _random_mixture(dim, k, seed)
    mm, tm = MixtureMarginals(mix), TorchMixtureScore(mix)
    x = np.random.default_rng(seed + 100).normal(0.0, 2.5, (30, dim))
    xt = _t(x)
    for alpha, sigma in LEVELS:
        np.testing.assert_allclose(tm.score(xt, alpha, sigma).numpy(), mm.score(x, alpha, sigma), rtol=1e-10,
                                   atol=1e-10)
        np.testing.assert_allclose(tm.log_prob(xt, alpha, sigma).numpy(), mm.log_prob(x, alpha, sigma), rtol=1e-10,
                                   atol=1e-10)
        np.testing.assert_allclose(tm.laplacian(xt, alpha, sigma).numpy(), mm.laplacian_log_prob(x, alpha, sigma),
                                   rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(tm(xt, alpha, sigma).numpy(), mm.score(x, alpha, sigma), rtol=1e-10, atol=1e-10)


def test_torch_mixture_per_row_levels_and_dtype():
    x = X0 * 2.0
    alphas, sigmas = np.linspace(0.3, 1.0, N_PATHS), np.linspace(1.2, 0.05, N_PATHS)
    got = T64.score(_t(x), torch.from_numpy(alphas), torch.from_numpy(sigmas)).numpy()
    want = np.array([MM2.score(x[i], alphas[i], sigmas[i]) for i in range(N_PATHS)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    lap = T64.laplacian(_t(x), torch.from_numpy(alphas), torch.from_numpy(sigmas)).numpy()
    np.testing.assert_allclose(lap, [MM2.laplacian_log_prob(x[i], alphas[i], sigmas[i]) for i in range(N_PATHS)],
                               rtol=1e-10, atol=1e-10)
    s32 = T64.score(_t(x, torch.float32), 0.8, 0.6)  # float64 buffers, float32 input: computed in float32
    assert s32.dtype == torch.float32
    np.testing.assert_allclose(s32.numpy(), MM2.score(x, 0.8, 0.6), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dim,k,seed", [(2, 3, 3), (3, 2, 4)])
def test_torch_mixture_autograd_consistency(dim, k, seed):
    tm = TorchMixtureScore(_random_mixture(dim, k, seed))
    x = torch.from_numpy(np.random.default_rng(seed).normal(0.0, 2.0, (4, dim))).requires_grad_(True)
    for alpha, sigma in [(1.0, 0.3), (0.6, 0.8)]:
        (grad,) = torch.autograd.grad(tm.log_prob(x, alpha, sigma).sum(), x)
        np.testing.assert_allclose(grad.numpy(), tm.score(x, alpha, sigma).detach().numpy(), rtol=1e-10, atol=1e-10)
        traces = []
        for i in range(x.shape[0]):
            h = torch.autograd.functional.hessian(lambda p: tm.log_prob(p[None], alpha, sigma)[0], x[i].detach())
            traces.append(float(torch.trace(h)))
        lap = tm.laplacian(x, alpha, sigma).detach().numpy()
        np.testing.assert_allclose(lap, traces, rtol=1e-9, atol=1e-9)
        assert np.all(np.abs(lap) > 1e-3)  # a nontrivial check (not 0 == 0)


@pytest.mark.parametrize("forward", [ForwardSDE.vp(), ForwardSDE.ve()], ids=["vp", "ve"])
def test_torch_mixture_score_t(forward):
    tm = TorchMixtureScore(MM2, forward)
    x = X0 * 3.0
    for t in (0.05, 0.4, 0.9):
        a, s = forward.kernel(t)
        np.testing.assert_allclose(tm.score_t(_t(x), t).numpy(), MM2.score(x, a, s), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(tm.log_prob_t(_t(x), t).numpy(), MM2.log_prob(x, a, s), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(tm.laplacian_t(_t(x), t).numpy(), MM2.laplacian_log_prob(x, a, s), rtol=1e-10,
                                   atol=1e-10)
    ts = np.linspace(0.05, 0.95, N_PATHS)
    got = tm.score_t(_t(x), torch.from_numpy(ts)).numpy()
    want = np.array([MM2.score(x[i], *forward.kernel(ts[i])) for i in range(N_PATHS)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_torch_mixture_buffers_and_errors():
    assert set(dict(T64.named_buffers())) == {"log_w", "means", "Q", "lam"}
    assert T32.means.dtype == torch.float32 and T64.dim == 2
    with pytest.raises(SDEKitError, match="x must have shape"):
        T64.score(torch.zeros(3, 5), 1.0, 0.5)
    with pytest.raises(SDEKitError, match="alpha"):
        T64.score(torch.zeros(3, 2), -1.0, 0.5)
    with pytest.raises(SDEKitError, match="sigma"):
        T64.log_prob(torch.zeros(3, 2), 1.0, torch.ones(4))
    with pytest.raises(SDEKitError, match="forward"):
        T64.score_t(torch.zeros(3, 2), 0.5)
    with pytest.raises(SDEKitError, match="data"):
        TorchMixtureScore([0.5, 0.5])


def test_torch_not_imported_by_sdekit():
    code = ("import sys, sdekit, sdekit.diffusion, sdekit.diffusion.samplers.ddpm, sdekit.diffusion.samplers.ddim, "
            "sdekit.diffusion.samplers.edm, sdekit.diffusion.samplers.dpm_solver, "
            "sdekit.diffusion.samplers.predictor_corrector, sdekit.diffusion.samplers.annealed_langevin; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# samplers: NumPy vs torch
# --------------------------------------------------------------------------------------------

SCHED = DiscreteSchedule.linear(20, 1e-3, 0.25)
LIN = DiscreteSchedule.linear()
VP = ForwardSDE.vp()
VE = ForwardSDE.ve(0.05, 10.0)
EDM_SIGMAS = karras_sigmas(6, 0.02, 10.0)
AL_SIGMAS = geometric_sigmas(1.5, 0.1, 4)


def _ddpm(score, x, **kw):
    return ddpm_sample(score, SCHED, x, seed=7, **kw).x


def _ddim(score, x, eta):
    return ddim_sample(score, LIN, x, steps=8, eta=eta, seed=3).x


def _annealed(score, x):
    return annealed_langevin(score, AL_SIGMAS, 1.5 * x, steps_per_level=3, eps0=2e-3, seed=4, final_denoise=True).x


def _pc(score, x, predictor, corrector, forward=VP, lp=None, **kw):
    start = x * (forward.sigma(forward.T) if forward is VE else 1.0)
    return pc_sample(score, forward, start, steps=6, predictor=predictor, corrector=corrector, seed=9, log_prob=lp,
                     **kw)


def _edm(score, x, churn):
    kw = {"s_churn": 5.0, "s_tmin": 0.05, "s_tmax": 50.0, "seed": 2} if churn else {}
    return edm_sample(score, EDM_SIGMAS, 10.0 * x, **kw)


def _dpm(score, x, **kw):
    return dpm_solver_sample(score, VP, x, steps=5, skip="logSNR", **kw)


def _lp(kind):
    return MM2.log_prob if kind == "np" else T64.log_prob


CASES = {
    "ddpm-posterior": lambda s, x, k: _ddpm(s, x),
    "ddpm-beta-x0": lambda s, x, k: _ddpm(s, x, variance="beta", mean_form="x0"),
    "ddpm-final-denoise": lambda s, x, k: _ddpm(s, x, final_denoise=True),
    "ddim-eta0": lambda s, x, k: _ddim(s, x, 0.0),
    "ddim-eta1": lambda s, x, k: _ddim(s, x, 1.0),
    "annealed-langevin": lambda s, x, k: _annealed(s, x),
    "edm-heun": lambda s, x, k: _edm(s, x, False),
    "edm-heun-churn": lambda s, x, k: _edm(s, x, True),
    "edm-euler": lambda s, x, k: edm_sample(s, EDM_SIGMAS, 10.0 * x, method="euler"),
    "dpm-1": lambda s, x, k: _dpm(s, x, order=1),
    "dpm-2": lambda s, x, k: _dpm(s, x, order=2),
    "dpm-3": lambda s, x, k: _dpm(s, x, order=3),
    "dpm++-2": lambda s, x, k: _dpm(s, x, order=2, algorithm="dpmsolver++"),
    "dpm++-3": lambda s, x, k: _dpm(s, x, order=3, algorithm="dpmsolver++"),
    "dpm-2m": lambda s, x, k: _dpm(s, x, order=2, method="multistep"),
    "dpm++-2m": lambda s, x, k: _dpm(s, x, order=2, method="multistep", algorithm="dpmsolver++"),
    "sde-dpm++-2m": lambda s, x, k: _dpm(s, x, order=2, method="multistep", algorithm="sde-dpmsolver++", seed=5),
    "pc-ve-ancestral-langevin": lambda s, x, k: _pc(s, x, "ancestral", "langevin", VE),
    "pc-ve-reverse-mala": lambda s, x, k: _pc(s, x, "reverse_diffusion", "mala", VE, _lp(k), corrector_step=0.05),
    # a large fixed MALA step: ~35 % of the moves are rejected, so the accept / reject branch is exercised
    "pc-mala-rejecting": lambda s, x, k: _pc(s, x, "reverse_diffusion", "mala", lp=_lp(k), n_corrector=2,
                                             corrector_step=1.0),
}
for _pred in PREDICTORS:
    for _corr in ("langevin", "mala"):
        CASES[f"pc-{_pred}-{_corr}"] = (
            lambda s, x, k, p=_pred, c=_corr: _pc(s, x, p, c, lp=_lp(k), n_corrector=2))


@pytest.mark.parametrize("name", sorted(CASES))
def test_sampler_torch_float64_equals_numpy(name):
    run = CASES[name]
    want = _x(run(MM2.score, X0, "np"))
    got = _x(run(T64, _t(X0), "torch"))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and got.shape == want.shape
    assert np.all(np.isfinite(want)) and np.ptp(want) > 0.1  # a real run, not a trivial output
    np.testing.assert_allclose(got.numpy(), want, **TOL64)


def test_mala_accept_rate_torch_equals_numpy():
    rn = CASES["pc-mala-rejecting"](MM2.score, X0, "np")
    rt = CASES["pc-mala-rejecting"](T64, _t(X0), "torch")
    assert 0.3 < rn.accept_rate < 0.9  # measured 0.646: both branches of accept / reject are taken
    assert rt.accept_rate == pytest.approx(rn.accept_rate, abs=1e-12)
    assert (rt.nfe, rt.n_log_prob) == (rn.nfe, rn.n_log_prob)


FAMILIES = ["ddpm-posterior", "ddim-eta1", "annealed-langevin", "pc-mala-rejecting",
            "pc-euler_maruyama-langevin", "edm-heun-churn", "dpm-3", "sde-dpm++-2m"]


@pytest.mark.parametrize("name", FAMILIES)
def test_sampler_torch_float32(name):
    run = CASES[name]
    want = _x(run(MM2.score, X0, "np"))
    got = _x(run(T32, _t(X0, torch.float32), "torch"))  # log_prob (MALA): T64's, evaluated in x's float32
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, **TOL32)


BATCH_CASES = {
    "ddpm": lambda s, x: _ddpm(s, x),
    "ddim-eta1": lambda s, x: _ddim(s, x, 1.0),
    "annealed-langevin": lambda s, x: _annealed(s, x),
    # snr_norms="per_sample": the batch-mean step-size rule makes a path depend on its batch by design
    "pc-langevin": lambda s, x: _pc(s, x, "reverse_diffusion", "langevin", snr_norms="per_sample"),
    "pc-mala": lambda s, x: _pc(s, x, "ancestral", "mala", lp=T64.log_prob, snr_norms="per_sample"),
    "pc-mala-rejecting": lambda s, x: _pc(s, x, "euler_maruyama", "mala", lp=T64.log_prob, corrector_step=1.0),
    "edm-churn": lambda s, x: _edm(s, x, True),
    "dpm-3": lambda s, x: _dpm(s, x, order=3),
    "sde-dpm++-2m": lambda s, x: _dpm(s, x, order=2, method="multistep", algorithm="sde-dpmsolver++", seed=5),
}


@pytest.mark.parametrize("name", sorted(BATCH_CASES))
def test_sampler_torch_batch_independent(name):
    run = BATCH_CASES[name]
    full = _x(run(T64, _t(X0))).numpy()
    head = _x(run(T64, _t(X0[:5]))).numpy()
    # the same per-path noise and row-wise formulas; only the batched einsum may round differently in the last bit
    np.testing.assert_allclose(head, full[:5], rtol=1e-12, atol=1e-12)
    assert np.ptp(full) > 0.1


@pytest.mark.parametrize("name", ["ddpm-posterior", "pc-reverse_diffusion-langevin", "edm-heun", "dpm++-2m"])
def test_planted_wrong_sign_score_is_caught(name):
    run = CASES[name]
    want = _x(run(MM2.score, X0, "np"))
    got = _x(run(lambda x, a, s: -T64(x, a, s), _t(X0), "torch")).numpy()
    assert np.max(np.abs(got - want)) > 0.5
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got, want, **TOL64)


# --------------------------------------------------------------------------------------------
# errors on torch input
# --------------------------------------------------------------------------------------------

ERROR_RUNS = {
    "ddpm": (lambda s, x: ddpm_sample(s, SCHED, x).x, "x_K"),
    "ddim": (lambda s, x: ddim_sample(s, LIN, x, steps=4).x, "x_K"),
    "annealed": (lambda s, x: annealed_langevin(s, AL_SIGMAS, x, steps_per_level=1).x, "x_init"),
    "pc": (lambda s, x: pc_sample(s, VP, x, steps=3), "x_T"),
    "edm": (lambda s, x: edm_sample(s, EDM_SIGMAS, x), "x_init"),
    "dpm": (lambda s, x: dpm_solver_sample(s, VP, x, steps=3), "x_T"),
}


@pytest.mark.parametrize("name", sorted(ERROR_RUNS))
def test_torch_bad_state_and_score_shape(name):
    run, arg = ERROR_RUNS[name]
    bad = _t(X0).clone()
    bad[3, 1] = float("nan")
    with pytest.raises(SDEKitError, match=f"{arg} must be finite"):
        run(T64, bad)
    with pytest.raises(SDEKitError, match=rf"{arg} must have shape \(n, d\)"):
        run(T64, _t(X0[0]))
    with pytest.raises(SDEKitError, match="score.*shape"):
        run(lambda x, a, s: T64(x, a, s)[:, :1], _t(X0))


def test_torch_score_nan_and_log_prob_shape():
    with pytest.raises(ScoreNonFiniteError, match=r"score returned non-finite values for path 0 at step 0 "):
        ddpm_sample(lambda x, a, s: T64(x, a, s) * float("nan"), SCHED, _t(X0))
    with pytest.raises(SDEKitError, match="log_prob must return"):
        pc_sample(T64, VP, _t(X0), steps=2, corrector="mala", log_prob=lambda x, a, s: T64.log_prob(x, a, s)[:3])
    with pytest.raises(SDEKitError, match="log_prob returned NaN"):
        pc_sample(T64, VP, _t(X0), steps=2, corrector="mala", log_prob=lambda x, a, s: T64.log_prob(x, a, s) * np.nan)
