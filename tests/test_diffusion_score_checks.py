"""Every discrete sampler checks its model's output as the SDE kernels check a state, and the compositions name a
wrong score as the score.

- A score that turns NaN (or infinite) for one path at one call stops every sampler (DDPM, DDIM, annealed Langevin,
  predictor-corrector with both correctors, EDM, the DPM-Solver family) with a `ScoreNonFiniteError` naming that path,
  the noise level (alpha, sigma) of that call, and its step; on NumPy at once, on torch from the finiteness record
  read every CHECK_EVERY calls and at the end, still naming the exact call (tested on both sides of a read).
- A score returning the wrong shape, or a NumPy array for torch tensors, is refused naming the score: in the
  njit compositions (reverse SDE, PF-ODE) on the Numba backend, in the torch compositions and in the samplers.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

from sdekit import simulate
from sdekit.diffusion import ForwardSDE, probability_flow_ode, reverse_sde
from sdekit.diffusion.samplers.annealed_langevin import annealed_langevin
from sdekit.diffusion.samplers.ddim import ddim_sample
from sdekit.diffusion.samplers.ddpm import ddpm_sample
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.diffusion.samplers.predictor_corrector import pc_sample
from sdekit.diffusion.samplers.score_calls import CHECK_EVERY
from sdekit.diffusion.score_checks import ScoreNonFiniteError, ScoreShapeError
from sdekit.errors import NonFiniteError, SDEKitError

VP = ForwardSDE.vp()
SCHED = DiscreteSchedule.linear(12, 1e-3, 0.2)
X = np.random.default_rng(3).standard_normal((8, 2))
BAD_ROW = 5


def gaussian_score(x, alpha, sigma):
    """The exact score of x_t = alpha x_0 + sigma eps for x_0 ~ N(0, I): -x / (alpha^2 + sigma^2)."""
    return -x / (alpha * alpha + sigma * sigma)


def gaussian_log_prob(x, alpha, sigma):
    v = alpha * alpha + sigma * sigma
    return -0.5 * (x * x).sum(1) / v


class Poisoned:
    """gaussian_score, except that call number ``at`` (counted from 0) returns NaN in row BAD_ROW; it records the
    (alpha, sigma) of that call."""

    def __init__(self, at: int, value: float = float("nan")):
        self.at, self.value, self.calls, self.level = at, value, 0, None

    def __call__(self, x, alpha, sigma):
        s = gaussian_score(x, alpha, sigma)
        if self.calls == self.at:
            s = s.clone() if hasattr(s, "clone") else s.copy()
            s[BAD_ROW, 1] = self.value
            self.level = (alpha, sigma)
        self.calls += 1
        return s


# (run(score, x), the step of call number `at` in that sampler's numbering)
SAMPLERS = {
    "ddpm": (lambda s, x: ddpm_sample(s, SCHED, x, seed=1).x, lambda at: at),
    "ddim": (lambda s, x: ddim_sample(s, SCHED, x, steps=6, eta=0.5, seed=1).x, lambda at: at),
    "annealed-langevin": (lambda s, x: annealed_langevin(s, [1.0, 0.5, 0.2], x, steps_per_level=14, eps0=1e-3).x,
                          lambda at: at),
    "pc-langevin": (lambda s, x: pc_sample(s, VP, x, steps=6, n_corrector=1), lambda at: at // 2),
    "pc-mala": (lambda s, x: pc_sample(s, VP, x, steps=6, corrector="mala", log_prob=gaussian_log_prob,
                                       corrector_step=0.01), lambda at: at // 3),
    "edm-heun": (lambda s, x: edm_sample(s, karras_sigmas(6, 0.02, 5.0), 5.0 * x), lambda at: at // 2),
    "edm-churn": (lambda s, x: edm_sample(s, karras_sigmas(6, 0.02, 5.0), 5.0 * x, s_churn=3.0, seed=2),
                  lambda at: at // 2),
    "dpm-3": (lambda s, x: dpm_solver_sample(s, VP, x, order=3, steps=4), lambda at: at // 3),
    "dpm++-2": (lambda s, x: dpm_solver_sample(s, VP, x, order=2, steps=5, algorithm="dpmsolver++"),
                lambda at: at // 2),
    "dpm-2m": (lambda s, x: dpm_solver_sample(s, VP, x, order=2, steps=8, method="multistep"), lambda at: at),
    "sde-dpm++-2m": (lambda s, x: dpm_solver_sample(s, VP, x, order=2, steps=8, method="multistep",
                                                    algorithm="sde-dpmsolver++", seed=4), lambda at: at),
}


def _check_raised(name, x, at, value=float("nan")):
    run, step_of = SAMPLERS[name]
    score = Poisoned(at, value)
    with pytest.raises(ScoreNonFiniteError, match=rf"score returned non-finite values for path {BAD_ROW} at step "
                                                  rf"{step_of(at)} .*sigma = ") as info:
        run(score, x)
    err = info.value
    assert isinstance(err, NonFiniteError)
    assert (err.path, err.step) == (BAD_ROW, step_of(at))
    assert (err.alpha, err.sigma) == score.level  # the noise level of the poisoned call itself


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_nan_score_stops_every_sampler_naming_path_step_and_noise_level(name):
    _check_raised(name, X, at=4)
    _check_raised(name, X, at=0, value=float("inf"))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_nan_score_stops_every_sampler_on_torch(name):
    torch = pytest.importorskip("torch")
    _check_raised(name, torch.as_tensor(X), at=4)
    _check_raised(name, torch.as_tensor(X, dtype=torch.float32), at=1, value=float("-inf"))


def test_torch_record_is_read_every_check_every_calls_and_at_the_end():
    """42 annealed-Langevin calls: a NaN at call 5 is found at the read after call CHECK_EVERY - 1, one at call 40
    at the final read; both name their own step."""
    torch = pytest.importorskip("torch")
    assert CHECK_EVERY == 32
    x = torch.as_tensor(X)
    for at in (5, CHECK_EVERY - 1, CHECK_EVERY, 40, 41):
        _check_raised("annealed-langevin", x, at)
    score = Poisoned(at=5)
    with pytest.raises(ScoreNonFiniteError):
        SAMPLERS["annealed-langevin"][0](score, x)
    assert score.calls == CHECK_EVERY  # stopped at the first read, not at the end of the run


def test_finite_runs_are_unchanged_by_the_checks():
    """A run whose score stays finite returns its samples (the check only reads)."""
    out = dpm_solver_sample(gaussian_score, VP, X, order=2, steps=5)
    assert out.nfe == 10 and np.all(np.isfinite(out.x))


# --------------------------------------------------------------------------------------------
# wrong shape / kind, named as the score
# --------------------------------------------------------------------------------------------

@nb.njit
def _column_score(x, t, p):
    return -x[:, :1] * 1.0


@nb.njit
def _scalar_score(x, t, p):
    return 1.0


@nb.njit
def _row_score(x, t, p):
    return -x[:, 0] * 1.0


@pytest.mark.parametrize(("score", "got"), [(_column_score, r"shape \(\d+, 1\)"), (_scalar_score, "a scalar"),
                                             (_row_score, r"shape \(\d+,\)")])
def test_njit_composition_names_a_wrong_shaped_score(score, got):
    """A (n, 1) or scalar score used to broadcast silently into the drift; a (n,) one failed as 'drift'."""
    x = np.zeros((6, 2))
    for problem, kw in ((reverse_sde(VP, score, 2), {}), (probability_flow_ode(VP, score, 2), {"solver": "heun"})):
        with pytest.raises(ScoreShapeError, match=rf"^score returned {got} for a batch x of shape \((\d+), 2\); "
                                                   r"expected \(\1, 2\)"):
            simulate(problem, x, (VP.T, VP.eps), steps=4, **kw)


@pytest.mark.parametrize("kind", ["numpy", "shape"])
def test_torch_compositions_refuse_a_numpy_or_wrong_shaped_score(kind):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchsde")
    pytest.importorskip("torchdiffeq")
    from sdekit.diffusion.torch_likelihood import torch_log_likelihood

    def score(x, t):
        return -x.detach().numpy() if kind == "numpy" else -x[:, :1]

    msg = r"^score returned a NumPy array for torch tensors x; return a torch tensor" if kind == "numpy" else \
        r"^score returned shape \(\d, 1\) for a batch x of shape \(\d, 2\); expected"
    x = torch.as_tensor(X)
    with pytest.raises(SDEKitError, match=msg):
        simulate(reverse_sde(VP, score, 2), x, (VP.T, VP.eps), steps=4, backend="torch")
    with pytest.raises(SDEKitError, match=msg):
        simulate(probability_flow_ode(VP, score, 2), x, (VP.T, VP.eps), steps=4, solver="heun", backend="torch")
    with pytest.raises(SDEKitError, match=msg):
        torch_log_likelihood(score, VP, x, steps=4)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_refuse_a_numpy_score_for_a_torch_state(name):
    torch = pytest.importorskip("torch")
    with pytest.raises(SDEKitError, match=r"^score returned a NumPy array for a torch state x; return a torch tensor"):
        SAMPLERS[name][0](lambda x, a, s: gaussian_score(x.numpy(), a, s), torch.as_tensor(X))
