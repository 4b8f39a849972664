"""Bad input to sdekit.diffusion and sdekit.learn: a clear error naming the argument, never a silent wrong answer, a
raw NumPy / Numba / torch exception or a leaked library warning.

Each case is (id, call, exception type, regex); the regex names the argument. The NumPy cases run without torch;
the torch ones (likelihood, learned scores, training) skip when torch is missing. A hypothesis property draws
malformed states, step counts, eta, noise levels and seeds for the discrete samplers.
"""

from __future__ import annotations

import warnings

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdekit.diffusion import DiffusionModel, ForwardSDE, MixtureMarginals, bits_per_dim, log_likelihood, reverse_sde
from sdekit.diffusion.parametrization import x0_from_score
from sdekit.diffusion.samplers.annealed_langevin import annealed_langevin, gaussian_annealed_langevin_law
from sdekit.diffusion.samplers.ddim import ddim_sample
from sdekit.diffusion.samplers.ddpm import ddpm_posterior_mean, ddpm_sample
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample, vp_alpha_sigma
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.diffusion.samplers.predictor_corrector import langevin_corrector, mala_corrector, pc_sample, snr_step_size
from sdekit.diffusion.score_checks import ScoreNonFiniteError, ScoreShapeError
from sdekit.errors import SDEKitError
from sdekit.targets import GaussianMixture

VP = ForwardSDE.vp()
SCHED = DiscreteSchedule.linear(8, 1e-3, 0.2)
SIGMAS = [1.0, 0.5, 0.2]
EDM_SIGMAS = karras_sigmas(4, 0.02, 5.0)
X = np.random.default_rng(0).standard_normal((6, 2))
DATA = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2) * 0.3, np.eye(2) * 0.4])


def gaussian_score(x, alpha, sigma):
    """The exact score for x_0 ~ N(0, I): -x / (alpha^2 + sigma^2)."""
    return -x / (alpha * alpha + sigma * sigma)


@nb.njit
def _schedule_f(t, p):
    return -0.5 * p[0]


@nb.njit
def _schedule_g(t, p):
    return np.sqrt(p[0])


@nb.njit
def _njit_score(x, t, p):
    return -x * 1.0


def _model():
    return DiffusionModel.exact_mixture(VP, DATA)


def _nan_at_second_call():
    calls = []

    def score(x, alpha, sigma):
        calls.append(sigma)
        return gaussian_score(x, alpha, sigma) * (np.nan if len(calls) == 2 else 1.0)
    return score


CASES = [
    # forward SDEs: eps < T, positive finite parameters, beta_max >= beta_min, times >= 0
    ("vp-eps-above-T", lambda: ForwardSDE.vp(T=0.5, eps=0.9), SDEKitError,
     r"eps must be smaller than T .*eps = 0.9, T = 0.5"),
    ("vp-eps-equal-T", lambda: ForwardSDE.vp(T=0.5, eps=0.5), SDEKitError, "eps must be smaller than T"),
    ("vp-T-nan", lambda: ForwardSDE.vp(T=float("nan")), SDEKitError, "T must be a positive number"),
    ("vp-eps-zero", lambda: ForwardSDE.vp(eps=0.0), SDEKitError, "eps must be a positive number"),
    ("vp-beta-min-above-max", lambda: ForwardSDE.vp(20.0, 0.1), SDEKitError, "beta_max must be >= beta_min"),
    ("subvp-beta-min-above-max", lambda: ForwardSDE.subvp(5.0, 1.0), SDEKitError, "beta_max must be >= beta_min"),
    ("vp-beta-array", lambda: ForwardSDE.vp(np.array([0.1])), SDEKitError, "beta_min must be a positive number"),
    ("vp-beta-bool", lambda: ForwardSDE.vp(True), SDEKitError, "beta_min must be a positive number"),
    ("ve-eps-above-T", lambda: ForwardSDE.ve(T=0.1, eps=0.2), SDEKitError, "eps must be smaller than T"),
    ("cosine-eps-above-T", lambda: ForwardSDE.cosine(T=0.5, eps=0.6), SDEKitError, "eps must be smaller than T"),
    ("custom-eps-above-T", lambda: ForwardSDE.custom(_schedule_f, _schedule_g, [1.0], T=0.1, eps=0.2), SDEKitError,
     "eps must be smaller than T"),
    ("custom-params-nan", lambda: ForwardSDE.custom(_schedule_f, _schedule_g, [np.nan]), SDEKitError,
     "params must be finite"),
    ("custom-params-complex", lambda: ForwardSDE.custom(_schedule_f, _schedule_g, [1.0 + 1j]), SDEKitError,
     "params must be real"),
    ("forward-sp-infinite", lambda: ForwardSDE("vp", np.array([1.0, 0.1, np.inf, 0.0])), SDEKitError,
     "sp .*must be a finite"),
    ("kernel-t-negative", lambda: VP.kernel(-0.5), SDEKitError, "t must be a finite number >= 0"),
    ("kernel-t-nan", lambda: VP.sigma(float("nan")), SDEKitError, "t must be a finite number >= 0"),
    ("perturb-x0-complex", lambda: VP.perturb(X + 1j, 0.5), SDEKitError, "x0 must be real"),
    ("prior-sample-n-float", lambda: VP.prior_sample(2.5, 2), SDEKitError, "n must be an integer"),
    ("prior-log-prob-complex", lambda: VP.prior_log_prob(X + 1j), SDEKitError, "x must be real"),
    # the reverse-SDE composition
    ("reverse-lam-string", lambda: reverse_sde(VP, _njit_score, 2, lam="1"), SDEKitError, "lam must be a finite"),
    ("reverse-lam-complex", lambda: reverse_sde(VP, _njit_score, 2, lam=1j), SDEKitError, "lam must be a finite"),
    ("reverse-score-params-complex", lambda: reverse_sde(VP, _njit_score, 2, np.array([1 + 1j])), SDEKitError,
     "score_params must be real"),
    ("reverse-score-params-ragged", lambda: reverse_sde(VP, _njit_score, 2, [[1.0], [1.0, 2.0]]), SDEKitError,
     "score_params must be a numeric array"),
    # the NumPy PF-ODE likelihood
    ("loglik-model-type", lambda: log_likelihood("model", X), SDEKitError, "model must be a DiffusionModel"),
    ("loglik-x-complex", lambda: log_likelihood(_model(), X + 1j), SDEKitError, "x must be real"),
    ("loglik-x-nan", lambda: log_likelihood(_model(), np.full((2, 2), np.nan)), SDEKitError, "x must be finite"),
    ("loglik-probes-float", lambda: log_likelihood(_model(), X, divergence="hutchinson", probes=2.5), SDEKitError,
     "probes must be a positive int"),
    ("loglik-fd-step-zero", lambda: log_likelihood(_model(), X, divergence="hutchinson", fd_step=0.0), SDEKitError,
     "fd_step must be a positive number"),
    ("loglik-seed-negative", lambda: log_likelihood(_model(), X, divergence="hutchinson", seed=-1), SDEKitError,
     "seed must be a non-negative integer"),
    ("loglik-prior-shape", lambda: log_likelihood(_model(), X, steps=1, prior_log_prob=lambda z: np.zeros(1)),
     SDEKitError, r"prior_log_prob must return shape \(6,\)"),
    ("bits-per-dim-dim-float", lambda: bits_per_dim(np.zeros(3), 2.5), SDEKitError, "dim must be an integer"),
    ("bits-per-dim-complex", lambda: bits_per_dim(np.zeros(3) + 1j, 2), SDEKitError, "log_prob must be real"),
    # the exact model, its parts and the parametrizations
    ("model-score-x-wrong-dim", lambda: _model().score(np.ones((3, 3)), 0.5), SDEKitError,
     r"x must have shape \(2,\) or \(n, 2\)"),
    ("model-score-x-column", lambda: _model().eps(np.ones((3, 1)), 0.5), SDEKitError,
     r"x must have shape \(2,\) or \(n, 2\)"),
    ("mixture-marginals-x-complex", lambda: MixtureMarginals(DATA).score(X + 1j, 0.5, 0.5), SDEKitError,
     "x must be real"),
    ("x0-from-score-complex", lambda: x0_from_score(X + 1j, X, 0.5, 0.5), SDEKitError, "x must be real"),
    ("ddpm-posterior-mean-complex", lambda: ddpm_posterior_mean(X, X + 1j, SCHED, 3), SDEKitError,
     "x0hat must be real"),
    ("schedule-betas-complex", lambda: DiscreteSchedule(np.array([0.1 + 1j])), SDEKitError, "betas must be real"),
    ("annealed-law-cov-indefinite", lambda: gaussian_annealed_langevin_law([0, 0], [[1, 2], [2, 1]], SIGMAS, [0, 0],
                                                                           np.eye(2)), SDEKitError,
     "cov must be positive definite"),
    ("langevin-corrector-ratio-nan", lambda: langevin_corrector(gaussian_score, X, 0.5, 0.5, snr=0.1,
                                                                ratio=float("nan")), SDEKitError,
     "ratio must be finite"),
    ("langevin-corrector-ratio-negative", lambda: langevin_corrector(gaussian_score, X, 0.5, 0.5, snr=0.1,
                                                                     ratio=-1.0), SDEKitError, "ratio must be > 0"),
    ("langevin-corrector-alpha-nan", lambda: langevin_corrector(gaussian_score, X, float("nan"), 0.5,
                                                                step_size=0.1), SDEKitError, "alpha must be finite"),
    ("mala-corrector-step0-negative", lambda: mala_corrector(gaussian_score, lambda x, a, s: -(x * x).sum(1), X, 0.5,
                                                             0.5, step_size=0.1, step0=-1), SDEKitError,
     "step0 must be an integer >= 0"),
    ("snr-step-size-shapes", lambda: snr_step_size(X, X[:3], 0.1), SDEKitError, "z must have the shape of s"),
    ("vp-alpha-sigma-nan", lambda: vp_alpha_sigma(float("nan")), SDEKitError, "lam must be finite"),
    # discrete samplers: states, seeds, offsets, levels, flags
    ("ddpm-x-complex", lambda: ddpm_sample(gaussian_score, SCHED, X + 1j).x, SDEKitError, "x_K must be real"),
    ("edm-x-complex", lambda: edm_sample(gaussian_score, EDM_SIGMAS, X + 1j), SDEKitError, "x_init must be real"),
    ("ddpm-seed-2**70", lambda: ddpm_sample(gaussian_score, SCHED, X, seed=2**70).x, SDEKitError,
     r"seed must be a non-negative integer below 2\*\*64"),
    ("ddim-path-offset-2**70", lambda: ddim_sample(gaussian_score, SCHED, X, path_offset=2**70).x, SDEKitError,
     r"path_offset must be a non-negative integer below 2\*\*63"),
    ("sde-dpm-seed-2**70", lambda: dpm_solver_sample(gaussian_score, VP, X, method="multistep",
                                                     algorithm="sde-dpmsolver++", seed=2**70), SDEKitError,
     "seed must be a non-negative integer"),
    ("annealed-sigmas-2d", lambda: annealed_langevin(gaussian_score, [[1.0, 0.5], [0.2, 0.1]], X).x, SDEKitError,
     "sigmas must be a 1-D array"),
    ("annealed-final-denoise-string", lambda: annealed_langevin(gaussian_score, SIGMAS, X, final_denoise="yes").x,
     SDEKitError, "final_denoise must be a bool"),
    ("pc-final-denoise-string", lambda: pc_sample(gaussian_score, VP, X, steps=2, final_denoise="yes"), SDEKitError,
     "final_denoise must be a bool"),
    # discrete samplers: the model's output
    ("ddpm-score-ragged", lambda: ddpm_sample(lambda x, a, s: [[1.0], [1.0, 2.0]], SCHED, X).x, SDEKitError,
     "the output of score must be a numeric array"),
    ("ddpm-score-none", lambda: ddpm_sample(lambda x, a, s: None, SCHED, X).x, SDEKitError, "score returned None"),
    ("ddim-score-complex", lambda: ddim_sample(lambda x, a, s: x + 1j, SCHED, X).x, SDEKitError,
     "the output of score must be real"),
    ("edm-score-column", lambda: edm_sample(lambda x, a, s: x[:, :1], EDM_SIGMAS, X), ScoreShapeError,
     r"score returned shape \(6, 1\) for a batch x of shape \(6, 2\)"),
    ("dpm-score-nan", lambda: dpm_solver_sample(_nan_at_second_call(), VP, X, order=2), ScoreNonFiniteError,
     r"score returned non-finite values for path 0 at step 0 \(alpha = "),
    ("pc-mala-score-nan", lambda: pc_sample(_nan_at_second_call(), VP, X, steps=2, corrector="mala",
                                            log_prob=lambda x, a, s: -0.5 * (x * x).sum(1)), ScoreNonFiniteError,
     "score returned non-finite values for path 0 at step 0"),
]


@pytest.mark.parametrize(("call", "exc", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(call, exc, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked NumPy / torch warning (ComplexWarning, ...) fails the case
        with pytest.raises(exc, match=pattern):
            call()


def _torch_cases():
    import torch

    from sdekit.diffusion.torch_likelihood import torch_log_likelihood
    from sdekit.diffusion.torch_mixture import TorchMixtureScore
    from sdekit.learn import (
        FourierEmbedding,
        ScoreMLP,
        ScoreModel,
        dsm_loss,
        log_snr,
        time_from_logsnr,
        train_score_model,
    )

    ts = TorchMixtureScore(DATA, VP)
    xt = torch.as_tensor(X)
    torch.manual_seed(0)
    sm = ScoreModel(ScoreMLP(2, hidden=8, depth=1).double(), VP)

    def nan_batches(n, generator):
        return torch.full((n, 2), float("nan"))

    return [
        ("tll-x-complex", lambda: torch_log_likelihood(ts.score_t, VP, xt + 1j), SDEKitError,
         "x must be a real tensor"),
        ("tll-x-nan", lambda: torch_log_likelihood(ts.score_t, VP, torch.full((3, 2), float("nan"))), SDEKitError,
         "x must be finite"),
        ("tll-x-empty", lambda: torch_log_likelihood(ts.score_t, VP, torch.zeros(0, 2)), SDEKitError,
         r"x must be a tensor of shape \(n, \*shape\) .* with every size >= 1"),
        ("tll-seed-negative", lambda: torch_log_likelihood(ts.score_t, VP, xt, divergence="hutchinson", seed=-1),
         SDEKitError, "seed must be an integer"),
        ("tll-prior-shape", lambda: torch_log_likelihood(ts.score_t, VP, xt, steps=2, prior_log_prob=lambda z: z),
         SDEKitError, r"prior_log_prob must return a tensor of shape \(6,\)"),
        ("tll-score-raises", lambda: torch_log_likelihood(lambda x, t: x @ torch.ones(3, 3), VP, xt, steps=2),
         SDEKitError, r"score could not be evaluated as score\(x, t\)"),
        ("tll-score-nan", lambda: torch_log_likelihood(lambda x, t: x * float("nan"), VP, xt, steps=2),
         ScoreNonFiniteError, r"score returned non-finite values for path 0 at step 0 \(t = 0.001"),
        ("tll-score-numpy", lambda: torch_log_likelihood(lambda x, t: x.detach().numpy(), VP, xt, steps=2),
         SDEKitError, "score returned a NumPy array"),
        ("ddpm-torch-state-numpy-score", lambda: ddpm_sample(lambda x, a, s: gaussian_score(x.numpy(), a, s), SCHED,
                                                             xt).x, SDEKitError, "score returned a NumPy array"),
        ("score-model-x-complex-array", lambda: sm(X + 1j, 0.5, 0.5), SDEKitError, "x must be real"),
        ("score-model-x-complex-tensor", lambda: sm(xt + 1j, 0.5, 0.5), SDEKitError, "x must be a real tensor"),
        ("score-model-x-nan-array", lambda: sm(np.full((2, 2), np.nan), 0.5, 0.5), SDEKitError, "x must be finite"),
        ("score-model-t-negative", lambda: sm.score(xt, -0.5), SDEKitError, "t must be finite and >= 0"),
        ("time-from-logsnr-nan", lambda: time_from_logsnr(VP, float("nan")), SDEKitError, "logsnr must be finite"),
        ("log-snr-t-nan", lambda: log_snr(VP, float("nan")), SDEKitError, "t must be finite"),
        ("train-data-nan", lambda: train_score_model(sm, np.full((10, 2), np.nan), VP, steps=2, batch_size=4),
         SDEKitError, "data must be finite"),
        ("train-data-complex", lambda: train_score_model(sm, X + 1j, VP, steps=2, batch_size=4), SDEKitError,
         "data must be real"),
        ("train-data-wrong-dim", lambda: train_score_model(sm, np.zeros((10, 3)), VP, steps=2, batch_size=4),
         SDEKitError, r"data must have shape \(N, 2\)"),
        ("train-data-callable-nan", lambda: train_score_model(sm, nan_batches, VP, steps=2, batch_size=4),
         SDEKitError, r"data\(n, generator\) returned non-finite values at step 0"),
        ("train-seed-2**70", lambda: train_score_model(sm, X, VP, steps=2, batch_size=4, seed=2**70), SDEKitError,
         r"seed must be below 2\*\*63"),
        ("torch-mixture-x-complex", lambda: ts(xt + 1j, 0.5, 0.5), SDEKitError, "x must be a real tensor"),
        ("fourier-embedding-c-2d", lambda: FourierEmbedding(4)(torch.ones(3, 2)), SDEKitError,
         r"c must be a tensor of shape \(n,\) or \(n, 1\)"),
        ("score-model-net-signature", lambda: ScoreModel(torch.nn.Linear(2, 2).double(), VP)(xt, 0.5, 0.5),
         SDEKitError, r"net must be callable as net\(x"),
        ("dsm-loss-t-zero", lambda: dsm_loss(sm, xt, VP, t=0.0), SDEKitError, "t must be finite and > 0"),
        ("dsm-loss-t-negative", lambda: dsm_loss(sm, xt, VP, t=-0.5), SDEKitError, "t must be finite and > 0"),
    ]


TORCH_IDS = ["tll-x-complex", "tll-x-nan", "tll-x-empty", "tll-seed-negative", "tll-prior-shape", "tll-score-raises",
             "tll-score-nan", "tll-score-numpy", "ddpm-torch-state-numpy-score", "score-model-x-complex-array",
             "score-model-x-complex-tensor", "score-model-x-nan-array", "score-model-t-negative",
             "time-from-logsnr-nan", "log-snr-t-nan", "train-data-nan", "train-data-complex", "train-data-wrong-dim",
             "train-data-callable-nan", "train-seed-2**70", "torch-mixture-x-complex", "fourier-embedding-c-2d",
             "score-model-net-signature", "dsm-loss-t-zero", "dsm-loss-t-negative"]


@pytest.mark.parametrize("case_id", TORCH_IDS)
def test_bad_torch_input_gives_a_clear_error(case_id):
    pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    cases = {c[0]: c[1:] for c in _torch_cases()}
    assert sorted(cases) == sorted(TORCH_IDS)
    call, exc, pattern = cases[case_id]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(exc, match=pattern):
            call()


# --------------------------------------------------------------------------------------------
# hypothesis: malformed arguments of the discrete samplers
# --------------------------------------------------------------------------------------------

# sampler -> (run(x, **overrides), the name of its state argument, the arguments it takes)
SAMPLERS = {
    "ddpm": (lambda x, **kw: ddpm_sample(gaussian_score, SCHED, x, **kw).x, "x_K", ("seed",)),
    "ddim": (lambda x, **kw: ddim_sample(gaussian_score, SCHED, x, **kw).x, "x_K", ("steps", "eta", "seed")),
    "annealed": (lambda x, **kw: annealed_langevin(gaussian_score, kw.pop("sigmas", SIGMAS), x, steps_per_level=1,
                                                   **kw).x, "x_init", ("sigmas", "seed")),
    "pc": (lambda x, **kw: pc_sample(gaussian_score, VP, x, **{"steps": 2, **kw}), "x_T", ("steps", "seed")),
    "edm": (lambda x, **kw: edm_sample(gaussian_score, kw.pop("sigmas", EDM_SIGMAS), x, **kw), "x_init",
            ("sigmas", "seed")),
    "dpm": (lambda x, **kw: dpm_solver_sample(gaussian_score, VP, x, **kw), "x_T", ("steps",)),
}

bad_states = st.one_of(
    st.sampled_from([np.zeros(3), np.zeros((2, 2, 2)), np.zeros((0, 2)), np.zeros((3, 0)), np.float64(1.0),
                     "x", [[1.0], [1.0, 2.0]]]),
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.sampled_from([np.nan, np.inf, -np.inf])).map(
        lambda a: np.where(np.arange(a[0] * a[1]).reshape(a[0], a[1]) == 0, a[2], 0.5)),
    st.tuples(st.integers(1, 4), st.integers(1, 3)).map(lambda a: np.zeros(a) + 1j),
)
BAD_VALUES = {
    "steps": st.one_of(st.integers(-5, 0), st.floats(0.5, 9.5), st.just(True), st.just("3")),
    "eta": st.one_of(st.floats(1.0, 1e6, exclude_min=True), st.floats(-1e6, 0.0, exclude_max=True),
                     st.sampled_from([np.nan, np.inf, "0.5"])),
    "sigmas": st.one_of(st.lists(st.floats(0.1, 5.0), min_size=2, max_size=4, unique=True).map(sorted),
                        st.just([1.0, -0.5, 0.1]), st.just([1.0, np.nan, 0.1]), st.just([[1.0, 0.5], [0.2, 0.1]])),
    "seed": st.one_of(st.integers(-10**6, -1), st.integers(2**64, 2**70), st.floats(0.5, 9.5), st.just(None),
                      st.just(True)),
}


@st.composite
def malformed_calls(draw):
    name = draw(st.sampled_from(sorted(SAMPLERS)))
    run, state_name, args = SAMPLERS[name]
    which = draw(st.sampled_from(("state", *args)))
    if which == "state":
        return name, run, state_name, draw(bad_states), {}
    if name == "edm" and which == "seed":
        overrides = {"seed": draw(BAD_VALUES["seed"].filter(lambda s: s is not None)), "s_churn": 1.0}
        return name, run, "seed", X, overrides
    if which == "seed" and name == "dpm":
        return name, run, "seed", X, {"seed": draw(BAD_VALUES["seed"])}
    value = draw(BAD_VALUES[which])
    if which == "seed" and value is None:
        value = -1
    return name, run, which, X, {which: value}


@settings(max_examples=60)
@given(malformed_calls())
def test_malformed_sampler_arguments_are_refused_naming_them(case):
    _, run, argument, x, overrides = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SDEKitError, match=argument):
            run(x, **overrides)


def test_unusual_but_valid_inputs_give_the_right_answer():
    """Inputs that are unusual but well defined are converted, not refused: a score returning a CPU tensor for a
    NumPy state (ddpm), and an integer tensor x for the torch likelihood (made float64)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from sdekit.diffusion.torch_likelihood import torch_log_likelihood

    want = ddpm_sample(gaussian_score, SCHED, X, seed=3).x
    got = ddpm_sample(lambda x, a, s: torch.as_tensor(gaussian_score(x, a, s)), SCHED, X, seed=3).x
    np.testing.assert_array_equal(got, want)
    xi = torch.tensor([[1, -2], [0, 3]])
    with torch.no_grad():
        a = torch_log_likelihood(lambda x, t: -x, VP, xi, steps=4).log_prob
        b = torch_log_likelihood(lambda x, t: -x, VP, xi.to(torch.float64), steps=4).log_prob
    assert a.dtype == torch.float64
    torch.testing.assert_close(a, b, rtol=0, atol=0)
