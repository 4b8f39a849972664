"""Conformance of UniPC, DEIS and DPM-Solver(++)(3M) with diffusers 0.35.1 (the setting of
tests/test_diffusers_conformance.py: its TinyEps network through `from_diffusers`, the scheduler's own timesteps and
sigmas as (alpha, sigma) pairs, the same initial state).

* UniPCMultistepScheduler (bh1 / bh2, orders 1-3, predict_x0 True / False, corrector on / off via
  ``disable_corrector``) = `unipc_sample`; DEISMultistepScheduler (orders 1-3) = `deis_sample`: to float32 rounding
  (`f32_tol`) and, with float64 tables, network and latents, to 1e-12 (neither casts the sample to float32;
  measured <= 6e-14).
* diffusers' UniPC at a final sigma = 0 (its default final_sigmas_type "zero") returns NaN for bh1 and for noise
  prediction (B(h) = -inf or sigma_t expm1(h) = 0 * inf); sdekit's final denoise is the finite limit (pinned).
* DPMSolverMultistepScheduler(solver_order=3) weights D2 by w_3 where the exact integral of the quadratic needs 2 w_3
  (`sdekit.diffusion.samplers.dpm_solver`): it equals sdekit with ``_THIRD_ORDER_WEIGHTS = (1, 1, 1)`` to float32
  rounding (the scheduler casts the sample to float32), and differs from sdekit's third-order update by far more.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import sdekit.diffusion.samplers.dpm_solver as dpm  # noqa: E402
from sdekit.diffusion.samplers.deis import deis_sample  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.samplers.unipc import unipc_sample  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusers_conformance import (  # noqa: E402  (the shared network, helpers and tolerances)
    NET64,
    Z0,
    f32_tol,
    maxdiff,
    model_for,
    run_diffusers,
    schedule_from_scheduler,
    scheduler,
    sigma_edm,
    tol,
    vp_grid,
)

diffusers.utils.logging.set_verbosity_error()
pytestmark = [  # diffusers 0.35.1 calls np.array / np.log on tensors (NumPy 2 deprecations): its warnings, not ours
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]


def make_scheduler(cls, beta_schedule: str, steps: int, dtype: torch.dtype, **config):
    """A multistep scheduler after set_timesteps, its schedule and its sigma grid (float64 tables for a float64 run:
    sigma_edm of the float64 alphabar at the timesteps, then 0 or sigma_min)."""
    sch = scheduler(cls, beta_schedule=beta_schedule, **config)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    sig = sch.sigmas.numpy().astype(np.float64)
    if dtype == torch.float64:
        table = sigma_edm(schedule)
        last = 0.0 if getattr(sch.config, "final_sigmas_type", "sigma_min") == "zero" else table[0]
        sig = np.append(table[sch.timesteps.numpy()], last)
        sch.sigmas = torch.from_numpy(sig.copy())
    return sch, schedule, sig


def timesteps_seen(run) -> tuple[object, list[float]]:
    NET64.timesteps.clear()
    res = run()
    return res, list(NET64.timesteps)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("corrector", [True, False], ids=["unipc", "unip"])
@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_unipc_equals_diffusers(order, variant, prediction, corrector, dtype):
    """UniPCMultistepScheduler on its linspace timesteps, final sigma_min, 10 steps (lower_order_final: orders
    1, 2, 3, ..., 3, 2, 1)."""
    steps = 10
    sch, schedule, sig = make_scheduler(diffusers.UniPCMultistepScheduler, "linear", steps, dtype, solver_order=order,
                                        solver_type=variant, predict_x0=prediction == "data",
                                        final_sigmas_type="sigma_min",
                                        disable_corrector=[] if corrector else list(range(steps)))
    xd, _ = run_diffusers(sch, dtype, Z0)
    ours, seen = timesteps_seen(lambda: unipc_sample(model_for(schedule), vp_grid(sig), Z0, order=order,
                                                     variant=variant, prediction=prediction, corrector=corrector))
    assert ours.nfe == steps
    if dtype == torch.float64:
        assert seen == [float(t) for t in sch.timesteps]
    assert maxdiff(ours.x, xd) <= tol(dtype, steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("order", [2, 3])
def test_unipc_to_zero_equals_diffusers_bh2_data(order, dtype):
    """diffusers' default grid ends at sigma = 0: bh2 with data prediction reaches it by the final denoise."""
    sch, schedule, sig = make_scheduler(diffusers.UniPCMultistepScheduler, "scaled_linear", 12, dtype,
                                        solver_order=order)
    xd, _ = run_diffusers(sch, dtype, Z0)
    ours = unipc_sample(model_for(schedule), vp_grid(sig), Z0, order=order)
    assert sig[-1] == 0 and ours.sigmas[-1] == 0
    assert maxdiff(ours.x, xd) <= tol(dtype, 12, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


@pytest.mark.parametrize(("variant", "prediction"), [("bh1", "data"), ("bh2", "noise")])
def test_unipc_final_sigma_zero_of_diffusers_is_nan_sdekit_is_the_limit(variant, prediction):
    """Pinned: diffusers gives NaN at a final sigma = 0 for bh1 / noise prediction; sdekit's last step is the final
    denoise x0hat at the last model call's point (the predicted, uncorrected state, as diffusers' bh2 / data)."""
    sch, schedule, sig = make_scheduler(diffusers.UniPCMultistepScheduler, "linear", 10, torch.float64,
                                        solver_order=2, solver_type=variant, predict_x0=prediction == "data")
    xd, _ = run_diffusers(sch, torch.float64, Z0)
    assert torch.isnan(xd).all()
    model = model_for(schedule)
    calls = []

    def recording(x, a, s):
        out = model(x, a, s)
        calls.append((x, a, s, out))
        return out

    ours = unipc_sample(recording, vp_grid(sig), Z0, order=2, variant=variant, prediction=prediction)
    assert bool(torch.isfinite(ours.x).all()) and len(calls) == 10
    x, a, s, score = calls[-1]
    np.testing.assert_allclose(ours.x.numpy(), ((x + s * s * score) / a).numpy(), rtol=1e-13, atol=1e-13)


DEIS_CASES = [(1, True, 10), (2, True, 10), (2, False, 12), (3, True, 10), (3, False, 12), (3, True, 16)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear"])
@pytest.mark.parametrize("order,lower_order_final,steps", DEIS_CASES)
def test_deis_equals_diffusers(order, lower_order_final, steps, beta_schedule, dtype):
    """DEISMultistepScheduler (logrho) on its timesteps (last level sigma_min) = deis_sample with the same
    lower-order-final rule (diffusers lowers the last two steps only with fewer than 15 steps)."""
    sch, schedule, sig = make_scheduler(diffusers.DEISMultistepScheduler, beta_schedule, steps, dtype,
                                        solver_order=order, lower_order_final=lower_order_final)
    xd, _ = run_diffusers(sch, dtype, Z0)
    ours = deis_sample(model_for(schedule), vp_grid(sig), Z0, order=order,
                       lower_order_final=lower_order_final and steps < 15)
    assert ours.nfe == steps
    assert maxdiff(ours.x, xd) <= tol(dtype, steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


DPM3M_CASES = [  # (algorithm, final_sigmas_type, lower_order_final, steps)
    ("dpmsolver++", "zero", True, 10),
    ("dpmsolver++", "sigma_min", False, 12),
    ("dpmsolver++", "sigma_min", True, 16),
    ("dpmsolver", "sigma_min", True, 10),
    ("dpmsolver", "sigma_min", False, 12),
]


def _dpm3m(algorithm, final, lower_order_final, steps, dtype):
    sch, schedule, sig = make_scheduler(diffusers.DPMSolverMultistepScheduler, "linear", steps, dtype,
                                        algorithm_type=algorithm, solver_order=3, final_sigmas_type=final,
                                        lower_order_final=lower_order_final)
    xd, _ = run_diffusers(sch, dtype, Z0)
    lof = None if final == "zero" else (lower_order_final and steps < 15)

    def ours():
        return dpm_solver_sample(model_for(schedule), vp_grid(sig), Z0, order=3, method="multistep",
                                 algorithm=algorithm, lower_order_final=lof)
    return xd, ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("algorithm,final,lower_order_final,steps", DPM3M_CASES)
def test_dpm_solver_3m_of_diffusers_is_the_half_d2_variant(algorithm, final, lower_order_final, steps, dtype,
                                                             monkeypatch):
    """DPMSolverMultistepScheduler(solver_order=3) = sdekit's 3M with diffusers' D2 weight w_3 (instead of 2 w_3)
    to float32 rounding; sdekit's third-order update differs from it by more than 10x that bound."""
    xd, ours = _dpm3m(algorithm, final, lower_order_final, steps, dtype)
    third = ours().x
    monkeypatch.setattr(dpm, "_THIRD_ORDER_WEIGHTS", (1.0, 1.0, 1.0))
    variant = ours()
    assert variant.nfe == steps
    assert maxdiff(variant.x, xd) <= f32_tol(steps, variant.x), f"max diff {maxdiff(variant.x, xd):.3g}"
    assert maxdiff(third, xd) > 10 * f32_tol(steps, third)
