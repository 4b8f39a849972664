"""The adaptive step-size DPM-Solver (sdekit.diffusion.samplers.adaptive_dpm_solver; Lu et al. 2022, section 4.2)
with the exact score of Gaussian-mixture data.

Law checks (ForwardSDE.vp(), T = 1 to eps = 1e-3, exact start at T, N = 20000, ``compare_with_law`` at 1e-6 against
the exact marginal at eps; atol = 0.0078, h_init = 0.05, theta = 0.9). NFE used (accepted + rejected trials x order)
and min p, measured for the 1-, 2-, 4-D mixtures:

    order 3 (DPM-Solver-23)  rtol 1.0: 36 / 54 / 66 NFE, fails in 1-D (p 4e-266);
                             rtol 0.5: 42 / 60 / 78 NFE, passes (min p 0.43 / 0.24 / 0.069);
                             rtol 0.2: 48 / 66 / 81; rtol 0.05: 57 / 81 / 99; rtol 0.02: 63 / 93 / 105 (all pass).
    order 2 (DPM-Solver-12)  rtol 0.5: 56 / 82 / 84 NFE, fails in 1-D (p 1e-13);
                             rtol 0.2: 70 / 104 / 102 NFE, passes (min p 0.041 / 0.075 / 0.067);
                             rtol 0.05: 96 / 128 / 122; rtol 0.02: 106 / 132 / 120 (all pass).

Tested: order 3 at rtol 0.5 in 1-, 2-, 4-D and order 2 at rtol 0.2 in 1-D. Planted bug: the error scale without
rtol (delta = max(atol, max(|x_low|, |x_prev|))), rejected in 1-D at order 3, rtol 0.5.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import sdekit.diffusion.samplers.adaptive_dpm_solver as adaptive_mod
from sdekit.diffusion.forward import ForwardSDE
from sdekit.diffusion.samplers.adaptive_dpm_solver import adaptive_dpm_solver_sample
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
from sdekit.errors import SDEKitError
from sdekit.validate import compare_with_law

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusion_fixtures import ALPHA_TEST, FIXTURES, N_MC, exact_score  # noqa: E402

VP = ForwardSDE.vp()


def vp_start(d: int, n: int = N_MC) -> np.ndarray:
    return FIXTURES[d].sample(n, *VP.kernel(VP.T), seed=2)


def vp_target(d: int):
    return FIXTURES[d].marginal(*VP.kernel(VP.eps))


@pytest.mark.parametrize("d,order,rtol,nfe", [(1, 3, 0.5, 42), (2, 3, 0.5, 60), (4, 3, 0.5, 78), (1, 2, 0.2, 70)])
def test_adaptive_reaches_the_marginal(d, order, rtol, nfe):
    res = adaptive_dpm_solver_sample(exact_score(FIXTURES[d]), VP, vp_start(d), order=order, rtol=rtol)
    assert res.nfe == nfe == order * (res.accepted + res.rejected)
    rep = compare_with_law(res.x, vp_target(d), alpha=ALPHA_TEST, name=f"adaptive-{order} rtol {rtol} d={d}")
    assert rep.passed, rep.to_text()


def test_adaptive_planted_error_scale_is_caught(monkeypatch):
    def without_rtol(x_low, x_high, x_prev, atol, rtol):
        delta = np.maximum(atol, np.maximum(np.abs(x_low), np.abs(x_prev)))
        r = ((x_high - x_low) / delta).reshape(x_low.shape[0], -1)
        return float(np.sqrt(np.mean(r * r, axis=1)).max())

    monkeypatch.setattr(adaptive_mod, "_error_ratio", without_rtol)
    res = adaptive_dpm_solver_sample(exact_score(FIXTURES[1]), VP, vp_start(1), order=3, rtol=0.5)
    rep = compare_with_law(res.x, vp_target(1), alpha=ALPHA_TEST, name="adaptive without rtol")
    assert not rep.passed, f"planted bug not caught, min p = {rep.min_pvalue:.3g}"


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("algorithm", ["dpmsolver", "dpmsolver++"])
def test_accepted_steps_are_dpm_solver_steps(order, algorithm):
    """The result is DPM-Solver-2 (r1 = 1/2) / DPM-Solver-3 (r1 = 1/3, r2 = 2/3) on the accepted levels (the same
    updates, imported from dpm_solver), the levels run from T to exactly eps with lambda increasing, rejected trials
    happen, and the memo makes a trial cost ``order`` model calls."""
    mm = FIXTURES[2]
    x = vp_start(2, 300)
    calls = []

    def counting(v, a, s):
        calls.append(s)
        return exact_score(mm)(v, a, s)

    res = adaptive_dpm_solver_sample(counting, VP, x, order=order, algorithm=algorithm, rtol=0.05)
    assert res.rejected > 0 and len(calls) == res.nfe == order * (res.accepted + res.rejected)
    assert (res.alphas[0], res.sigmas[0]) == VP.kernel(VP.T) and (res.alphas[-1], res.sigmas[-1]) == VP.kernel(VP.eps)
    assert np.all(np.diff(res.lambdas) > 0) and res.sigmas.size == res.accepted + 1
    ref = dpm_solver_sample(exact_score(mm), np.stack([res.alphas, res.sigmas], axis=1), x, order=order,
                            algorithm=algorithm, lower_order_final=False)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-12, atol=1e-12)


def test_smaller_rtol_takes_smaller_steps():
    mm = FIXTURES[2]
    x = vp_start(2, 300)
    loose = adaptive_dpm_solver_sample(exact_score(mm), VP, x, order=2, rtol=0.5)
    tight = adaptive_dpm_solver_sample(exact_score(mm), VP, x, order=2, rtol=0.01, atol=1e-4)
    assert tight.accepted > 2 * loose.accepted


def test_torch_float64_equals_numpy():
    torch = pytest.importorskip("torch")
    from sdekit.diffusion.torch_mixture import TorchMixtureScore

    mm = FIXTURES[2]
    x = vp_start(2, 20)
    for order in (2, 3):
        ours = adaptive_dpm_solver_sample(TorchMixtureScore(mm.data), VP, torch.from_numpy(x), order=order)
        ref = adaptive_dpm_solver_sample(exact_score(mm), VP, x, order=order)
        assert isinstance(ours.x, torch.Tensor) and ours.nfe == ref.nfe
        np.testing.assert_allclose(ours.x.numpy(), ref.x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"order": 1}, "order"),
    ({"order": True}, "order"),
    ({"algorithm": "sde-dpmsolver++"}, "algorithm"),
    ({"rtol": 0.0}, "rtol"),
    ({"atol": -1.0}, "atol"),
    ({"h_init": float("nan")}, "h_init"),
    ({"max_trials": 0}, "max_trials"),
    ({"max_trials": 3}, "max_trials"),
    ({"t_span": (0.5, 0.9)}, "t_span"),
])
def test_bad_input_raises_naming_the_argument(kwargs, word):
    mm = FIXTURES[2]
    with pytest.raises(SDEKitError, match=word):
        adaptive_dpm_solver_sample(exact_score(mm), VP, vp_start(2, 5), **kwargs)


def test_bad_forward_and_state():
    mm = FIXTURES[2]
    x = vp_start(2, 5)
    with pytest.raises(SDEKitError, match="forward"):
        adaptive_dpm_solver_sample(exact_score(mm), np.array([[0.1, 0.99], [0.99, 0.1]]), x)
    with pytest.raises(SDEKitError, match="t_span"):
        adaptive_dpm_solver_sample(exact_score(mm), VP.kernel, x)
    with pytest.raises(SDEKitError, match="x_T"):
        adaptive_dpm_solver_sample(exact_score(mm), VP, x[0])
