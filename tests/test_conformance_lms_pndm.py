"""Conformance of LMS (sdekit.diffusion.samplers.lms) and PNDM / PLMS (sdekit.diffusion.samplers.pndm) with
diffusers 0.35.1's LMSDiscreteScheduler and PNDMScheduler: the same network, schedule, timesteps and initial state
give the same samples. The setting, the network (`TinyEps`), the diffusers loop and the tolerances are those of
tests/test_diffusers_conformance.py (imported from it): float32 diffusers runs agree within 64 sqrt(NFE) u32 max|x|,
float64 runs (float64 tables) within 1e-12 max(1, max|x|).

* LMSDiscreteScheduler.step(order=q) = lms_sample(order=q) on its sigma grid (sigma_edm at its timesteps, then 0),
  the network called at x / sqrt(sigma^2 + 1). diffusers integrates the Lagrange basis with scipy's quad, sdekit
  exactly (the integrand is a polynomial): the same to rounding.
* PNDMScheduler (skip_prk_steps False / True) = pndm_sample(method "pndm" / "plms") on the levels timesteps + 1
  with 'leading' spacing (evenly spaced by K // S) and set_alpha_to_one=True (the last step reaches the data).
  With its default set_alpha_to_one=False the last step goes to alphabar_1 from level 1 (the identity): diffusers'
  output is sdekit's state at level 1 (pinned).
* k-diffusion's sample_lms (optional, when its wheel is at /tmp/dl): equal to 1e-12 (measured ~3e-15).

Measured max |sdekit - diffusers| over the cases below: float32 LMS 5.3e-6 (0.16 of the bound), PNDM 3.6e-6 (0.034),
PLMS 3.0e-6 (0.030); float64 LMS 3.6e-15, PNDM 3.1e-15, PLMS 2.9e-15.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusers_conformance import (  # noqa: E402  (the shared network, loop and tolerances)
    NET64,
    SCHEDULES,
    Z0,
    K,
    f32_tol,
    f64_tol,
    maxdiff,
    model_for,
    run_diffusers,
    scheduler,
    sdekit_timesteps,
    sigma_edm,
    tol,
)

from sdekit.diffusion.networks import schedule_from_scheduler  # noqa: E402
from sdekit.diffusion.samplers.lms import lms_sample  # noqa: E402
from sdekit.diffusion.samplers.pndm import pndm_sample  # noqa: E402

diffusers.utils.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


# ---------------------------------------------------------------- LMS


def _lms_scheduler(beta_schedule: str, spacing: str, steps: int, dtype: torch.dtype):
    """LMSDiscreteScheduler after set_timesteps and sdekit's sigma grid (its sigmas; float64: sigma_edm of the float64
    alphabar interpolated at the timesteps, as diffusers does, then 0)."""
    sch = scheduler(diffusers.LMSDiscreteScheduler, beta_schedule=beta_schedule, timestep_spacing=spacing)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    sig = sch.sigmas.numpy().astype(np.float64)
    if dtype == torch.float64:
        sig = np.append(np.interp(sch.timesteps.numpy().astype(np.float64), np.arange(K), sigma_edm(schedule)), 0.0)
        sch.sigmas = torch.from_numpy(sig.copy())
    return sch, schedule, sig


LMS_CASES = [("linspace", 10, 4), ("leading", 10, 4), ("trailing", 7, 4), ("linspace", 10, 2), ("leading", 12, 3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("spacing,steps,order", LMS_CASES)
def test_lms_equals_diffusers(spacing, steps, order, beta_schedule, dtype):
    """LMSDiscreteScheduler.step(order=q) = lms_sample(order=q) on diffusers' sigma grid (integer timesteps:
    linspace 999 / 9 = 111), the same network timesteps, NFE = steps."""
    sch, schedule, sig = _lms_scheduler(beta_schedule, spacing, steps, dtype)
    x_init = Z0 * float(sig[0])
    NET64.timesteps.clear()
    xd, _ = run_diffusers(sch, dtype, x_init, lambda j: {"order": order})
    theirs = list(NET64.timesteps)
    ours, seen = sdekit_timesteps(lambda: lms_sample(model_for(schedule), sig, x_init, order=order))
    assert ours.nfe == steps
    if dtype == torch.float64:
        assert seen == theirs, "the network's timesteps differ from diffusers'"
    assert maxdiff(ours.x, xd) <= tol(dtype, steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


def test_lms_wrong_order_exceeds_the_float32_bound():
    """The comparison can fail: order 3 in sdekit where diffusers ran order 4."""
    sch, schedule, sig = _lms_scheduler("linear", "linspace", 10, torch.float32)
    x_init = Z0 * float(sig[0])
    xd, _ = run_diffusers(sch, torch.float32, x_init, lambda j: {"order": 4})
    ours = lms_sample(model_for(schedule), sig, x_init, order=3)
    assert maxdiff(ours.x, xd) > 10 * f32_tol(10, ours.x)


# ---------------------------------------------------------------- PNDM / PLMS


def _pndm(beta_schedule: str, method: str, steps: int, dtype: torch.dtype, set_alpha_to_one: bool = True):
    sch = scheduler(diffusers.PNDMScheduler, beta_schedule=beta_schedule, skip_prk_steps=method == "plms",
                    set_alpha_to_one=set_alpha_to_one, timestep_spacing="leading")
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    if dtype == torch.float64:
        sch.alphas_cumprod = torch.from_numpy(schedule.alphas_bar.copy())
        if not set_alpha_to_one:  # its final level is alphas_cumprod[0], in float64 too
            sch.final_alpha_cumprod = sch.alphas_cumprod[0]
    NET64.timesteps.clear()
    xd, _ = run_diffusers(sch, dtype, Z0)
    theirs = list(NET64.timesteps)
    levels = np.asarray(sch._timesteps, dtype=np.int64) + 1  # its evenly spaced timesteps, increasing
    ours, seen = sdekit_timesteps(lambda: pndm_sample(model_for(schedule), schedule, Z0, method=method,
                                                      indices=levels, return_trajectory=True))
    return sch, xd, theirs, ours, seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("method,steps", [("pndm", 50), ("plms", 50), ("pndm", 10), ("plms", 20)])
def test_pndm_equals_diffusers(method, steps, beta_schedule, dtype):
    """PNDMScheduler (skip_prk_steps = method == "plms", 'leading', set_alpha_to_one) = pndm_sample on the levels
    timesteps + 1: same network timesteps (the PRK half levels included), NFE = len(timesteps) (S + 9 / S + 1)."""
    sch, xd, theirs, ours, seen = _pndm(beta_schedule, method, steps, dtype)
    assert ours.nfe == len(sch.timesteps) == steps + (9 if method == "pndm" else 1)
    if dtype == torch.float64:
        assert seen == theirs, "the network's timesteps differ from diffusers'"
    assert maxdiff(ours.x, xd) <= tol(dtype, ours.nfe, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


@pytest.mark.parametrize("method", ["pndm", "plms"])
def test_pndm_default_last_step_of_diffusers_is_pinned(method):
    """With set_alpha_to_one=False (diffusers' default) the last step from timestep 0 goes to alphas_cumprod[0], the
    level it starts from: the identity. diffusers' output equals sdekit's state at level 1 (trajectory[-2]), not its
    output at the data (float64)."""
    sch, xd, _, ours, _ = _pndm("linear", method, 20, torch.float64, set_alpha_to_one=False)
    at_level_1 = ours.trajectory[-2]
    assert ours.sigmas[-2] == pytest.approx(float(np.sqrt(1.0 - float(sch.alphas_cumprod[0]))), rel=1e-12)
    assert maxdiff(at_level_1, xd) <= f64_tol(xd)
    assert maxdiff(ours.x, xd) > 1e3 * f64_tol(xd)


@pytest.mark.parametrize("bug", ["plms-weight", "prk-weight"])
def test_pndm_planted_weight_exceeds_the_float32_bound(bug, monkeypatch):
    """The comparison can fail: one Adams-Bashforth weight (-9/24 -> -8/24) or one PRK weight (1/6, 1/3, 1/3, 1/6 ->
    1/6, 1/3, 1/3, 1/3) changed."""
    import sdekit.diffusion.samplers.pndm as pndm_mod

    if bug == "plms-weight":
        w = list(pndm_mod._PLMS_WEIGHTS)
        w[3] = (55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -8.0 / 24.0)
        monkeypatch.setattr(pndm_mod, "_PLMS_WEIGHTS", tuple(w))
        method = "plms"
    else:
        monkeypatch.setattr(pndm_mod, "_PRK_WEIGHTS", (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0))
        method = "pndm"
    _, xd, _, ours, _ = _pndm("linear", method, 20, torch.float32)
    assert maxdiff(ours.x, xd) > 10 * f32_tol(ours.nfe, ours.x)


# ---------------------------------------------------------------- k-diffusion (optional: its wheel is not in CI)

KD_WHEEL = Path("/tmp/dl/k_diffusion-0.1.1.post1-py3-none-any.whl")


@pytest.mark.skipif(not KD_WHEEL.is_file(), reason="k-diffusion wheel not present (optional check)")
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lms_equals_k_diffusion_sample_lms(order):
    """k-diffusion's sample_lms (its sampling.py read from the wheel) with the denoiser D = x + sigma^2 s of the same
    float64 network = lms_sample, to 1e-12 (measured ~3e-15)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from samplers_torch import load_k_diffusion_sampling

    kd = load_k_diffusion_sampling(KD_WHEEL)
    sch = scheduler(diffusers.LMSDiscreteScheduler, beta_schedule="linear")
    schedule = schedule_from_scheduler(sch)
    model = model_for(schedule)
    sig = np.append(sigma_edm(schedule)[[999, 700, 400, 200, 100, 50, 20, 5]], 0.0)
    x_init = Z0 * float(sig[0])

    def denoiser(x, sigma):
        s = float(sigma.reshape(-1)[0])
        return x + (s * s) * model(x, 1.0, s)

    ref = kd.sample_lms(denoiser, x_init, torch.from_numpy(sig), disable=True, order=order)
    ours = lms_sample(model, sig, x_init, order=order)
    assert maxdiff(ours.x, ref) <= f64_tol(ref)
