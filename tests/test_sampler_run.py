"""One result type, one seed rule, an injectable noise source, a per-step callback and the trajectory, for every
sampler (`sdekit.diffusion.samplers.run`)."""

from __future__ import annotations

import numpy as np
import pytest

from sdekit.diffusion import ForwardSDE
from sdekit.diffusion.samplers.annealed_langevin import annealed_langevin
from sdekit.diffusion.samplers.ddim import ddim_sample
from sdekit.diffusion.samplers.ddpm import ddpm_sample
from sdekit.diffusion.samplers.discrete import DiscreteSchedule
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas
from sdekit.diffusion.samplers.predictor_corrector import PCResult, pc_sample
from sdekit.diffusion.samplers.run import SampleResult, StepInfo, sampler_normals
from sdekit.errors import SDEKitError

MU, C = 0.3, 0.5
VP = ForwardSDE.vp()
SCHED = DiscreteSchedule.linear(100)
X = np.random.default_rng(0).standard_normal((6, 2, 3))


def score(x, a, s):
    return -(x - a * MU) / (a * a * C * C + s * s)


def runs(**kw):
    """name -> (call(**kw), steps, stochastic)."""
    return {
        "ddpm": (lambda **k: ddpm_sample(score, SCHED.respaced([10, 50, 100]), X, **k), 3, True),
        "ddim": (lambda **k: ddim_sample(score, SCHED, X, steps=4, **k), 4, False),
        "ddim-eta": (lambda **k: ddim_sample(score, SCHED, X, steps=4, eta=0.5, **k), 4, True),
        "dpm": (lambda **k: dpm_solver_sample(score, VP, X, steps=3, **k), 3, False),
        "sde-dpm": (lambda **k: dpm_solver_sample(score, VP, X, steps=3, method="multistep",
                                                  algorithm="sde-dpmsolver++", **k), 3, True),
        "edm": (lambda **k: edm_sample(score, karras_sigmas(3, 0.1, 10.0), 10.0 * X, **k), 3, False),
        "edm-churn": (lambda **k: edm_sample(score, karras_sigmas(3, 0.1, 10.0), 10.0 * X, s_churn=2.0, **k), 3,
                      True),
        "pc": (lambda **k: pc_sample(score, VP, X, steps=3, **k), 3, True),
        "langevin": (lambda **k: annealed_langevin(score, [1.0, 0.5], X, steps_per_level=2, **k), 4, True),
    }


NAMES = list(runs())


@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_returns_one_result_type_and_follows_one_seed_rule(name):
    call, steps, stochastic = runs()[name]
    a, b, c = call(seed=0), call(seed=0), call(seed=5)
    assert isinstance(a, SampleResult) and a.x.shape == X.shape and a.nfe >= steps
    assert a.alphas.shape == a.sigmas.shape == (steps + 1,)
    np.testing.assert_array_equal(a.x, b.x)
    if stochastic:
        assert not np.array_equal(a.x, c.x)
    else:  # a deterministic sampler accepts a seed and ignores it
        np.testing.assert_array_equal(a.x, c.x)
    for bad in (-1, 1.5, True, None, 2**64):
        with pytest.raises(SDEKitError, match="seed"):
            call(seed=bad)


@pytest.mark.parametrize("name", NAMES)
def test_injected_noise_callback_and_trajectory(name):
    call, steps, stochastic = runs()[name]
    default = call(seed=3)
    drawn = []

    def noise(step, like):
        drawn.append(step)
        return sampler_normals(3, step, like)

    seen: list[StepInfo] = []
    res = call(seed=99, noise=noise, callback=seen.append, return_trajectory=True)
    np.testing.assert_array_equal(res.x, default.x)  # the streams, injected, are the default noise
    assert bool(drawn) == stochastic
    assert [info.step for info in seen] == list(range(steps))
    np.testing.assert_array_equal(seen[-1].x, res.x)
    assert res.trajectory.shape == (steps + 1, *X.shape)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    np.testing.assert_array_equal(res.trajectory[0], X if name not in ("edm", "edm-churn") else 10.0 * X)
    if stochastic:  # other noise, other output
        other = call(noise=lambda step, like: np.zeros(like.shape))
        assert not np.allclose(other.x, default.x)


def test_pc_result_is_a_sample_result():
    res = pc_sample(score, VP, X, steps=2, corrector="mala", log_prob=lambda x, a, s: np.zeros(x.shape[0]),
                    corrector_step=1e-3)
    assert isinstance(res, PCResult) and isinstance(res, SampleResult) and 0 <= res.accept_rate <= 1


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"noise": 3}, "noise must be None or callable"),
    ({"callback": "print"}, "callback must be None or callable"),
    ({"return_trajectory": 1}, "return_trajectory must be a bool"),
    ({"noise": lambda step, like: np.zeros((1, 1))}, r"noise\(step, like\) returned shape"),
    ({"path_offset": -1}, "path_offset"),
])
def test_bad_run_options_are_refused_naming_them(kwargs, word):
    with pytest.raises(SDEKitError, match=word):
        ddim_sample(score, SCHED, X, steps=3, eta=1.0, **kwargs)


def test_sampler_normals_depend_on_the_path_not_the_batch():
    z = sampler_normals(4, 2, np.zeros((10, 3, 2)))
    part = sampler_normals(4, 2, np.zeros((4, 3, 2)), path_offset=6)
    np.testing.assert_array_equal(z[6:], part)
    assert not np.array_equal(sampler_normals(4, 3, np.zeros((10, 3, 2))), z)
