"""Conformance of the ancestral and SDE samplers (sdekit.diffusion.samplers.ancestral, dpmpp_sde,
dpmpp_multistep_sde) with diffusers 0.35.1: the same eps-network (tests/test_diffusers_conformance.TinyEps through
`from_diffusers`), the same sigma grid, initial state and normals give the same samples.

* EulerAncestralDiscreteScheduler (eta = 1) = euler_ancestral_sample on its sigma grid; its step casts the sample to
  float32, so both runs agree to float32 rounding.
* KDPM2AncestralDiscreteScheduler (eta = 1) = dpm2_ancestral_sample on its grid (its ``sigmas[::2]``): float32 tables,
  agreement to float32 rounding.
* DPMSolverSDEScheduler = dpmpp_sde_sample (eta = 1, r = 1/2) with its Brownian noise sampler replaced by one feeding
  the same normals (stage draws 2 i, 2 i + 1): to 1e-12 with float64 tables, to float32 rounding otherwise.
* DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", final_sigmas_type="zero"), solver_order 2,
  solver_type midpoint / heun = dpmpp_2m_sde_sample (eta = 1) on its grid in VE form (x_ve = x_vp / alpha); to float32
  rounding (its step casts the sample to float32). solver_order 3 is a different algorithm: it equals
  dpmpp_3m_sde_sample with diffusers' d2 weight (``_D2_WEIGHT = K_DIFFUSION_D2_WEIGHT``, ``_PHI3_HALF = -0.5``) and
  differs from sdekit's default (third-order) weight by far more than float32 rounding (pinned).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import sdekit.diffusion.samplers.dpmpp_multistep_sde as msde  # noqa: E402
from sdekit.diffusion.networks import schedule_from_scheduler  # noqa: E402
from sdekit.diffusion.samplers.ancestral import dpm2_ancestral_sample, euler_ancestral_sample  # noqa: E402
from sdekit.diffusion.samplers.dpmpp_multistep_sde import dpmpp_2m_sde_sample, dpmpp_3m_sde_sample  # noqa: E402
from sdekit.diffusion.samplers.dpmpp_sde import dpmpp_sde_sample  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_diffusers_conformance import (  # noqa: E402
    SHAPE,
    Z0,
    N,
    _dpm_scheduler,
    _edm_scheduler,
    f32_tol,
    f64_tol,
    maxdiff,
    model_for,
    run_diffusers,
    scheduler,
    sigma_edm,
)

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context")]  # diffusers' KDPM2 on NumPy 2
K = 1000


def normals(count: int, seed: int, dtype) -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((N,) + SHAPE, generator=g, dtype=dtype) for _ in range(count)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule,spacing,steps", [("linear", "linspace", 10), ("scaled_linear", "trailing", 7)])
def test_euler_ancestral_equals_diffusers(beta_schedule, spacing, steps, dtype):
    sch, schedule, sig = _edm_scheduler(diffusers.EulerAncestralDiscreteScheduler, beta_schedule, spacing, steps,
                                        dtype)
    x_init = Z0 * float(sig[0])
    gen = torch.Generator().manual_seed(5)
    xd, _ = run_diffusers(sch, dtype, x_init, lambda j: {"generator": gen})
    zs = normals(steps, 5, dtype)  # diffusers draws one normal per step in its model output's dtype
    ours = euler_ancestral_sample(model_for(schedule), sig, x_init, noise=lambda i, like: zs[i].double())
    assert ours.nfe == steps
    assert maxdiff(ours.x, xd) <= f32_tol(steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule,steps", [("linear", 10), ("scaled_linear", 6)])
def test_kdpm2_ancestral_equals_diffusers(beta_schedule, steps, dtype):
    sch = scheduler(diffusers.KDPM2AncestralDiscreteScheduler, beta_schedule=beta_schedule)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    sig = sch.sigmas.numpy().astype(np.float64)[::2]
    assert sig.size == steps + 1 and sig[-1] == 0.0
    x_init = Z0 * float(sig[0])
    gen = torch.Generator().manual_seed(6)
    xd, _ = run_diffusers(sch, dtype, x_init.to(dtype), lambda j: {"generator": gen})
    zs = normals(steps - 1, 6, dtype)  # drawn in the second-order steps only, the last step has none
    ours = dpm2_ancestral_sample(model_for(schedule), sig, x_init, noise=lambda i, like: zs[i].double())
    assert ours.nfe == len(sch.timesteps) == 2 * steps - 1
    assert maxdiff(ours.x, xd) <= f32_tol(ours.nfe, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


class FedNoise:
    """A stand-in for diffusers' BrownianTreeNoiseSampler returning the given normals in call order."""

    def __init__(self, zs: list) -> None:
        self.zs, self.k = zs, 0

    def __call__(self, sigma, sigma_next):
        z = self.zs[self.k]
        self.k += 1
        return z


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule,steps", [("linear", 10), ("scaled_linear", 4)])  # integer timesteps
def test_dpmpp_sde_equals_diffusers(beta_schedule, steps, dtype):
    sch = scheduler(diffusers.DPMSolverSDEScheduler, beta_schedule=beta_schedule)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    if dtype == torch.float64:  # float64 tables: the midpoint timesteps and sigma_edm from the float64 alphabar
        sch.alphas_cumprod = torch.from_numpy(schedule.alphas_bar.copy())
        sch.set_timesteps(steps)
        main = sch.timesteps.numpy()[0::2]
        s64 = np.interp(main, np.arange(K), sigma_edm(schedule))
        sch.sigmas = torch.from_numpy(np.concatenate([s64[:1], np.repeat(s64[1:], 2), [0.0]]))
    sig = np.append(sch.sigmas.numpy().astype(np.float64)[0:-1:2], 0.0)
    assert sig.size == steps + 1
    zs = normals(2 * (steps - 1), 8, dtype)
    sch.noise_sampler = FedNoise(zs)
    x_init = Z0 * float(sig[0])
    xd, _ = run_diffusers(sch, dtype, x_init.to(dtype))
    assert sch.noise_sampler.k == 2 * (steps - 1)
    ours = dpmpp_sde_sample(model_for(schedule), sig, x_init, noise=lambda k, like: zs[k].double())
    assert ours.nfe == len(sch.timesteps) == 2 * steps - 1
    bound = f64_tol(ours.x) if dtype == torch.float64 else f32_tol(ours.nfe, ours.x)
    assert maxdiff(ours.x, xd) <= bound, f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


def _sde_multistep(order: int, solver_type: str, steps: int, dtype, lower_order_final: bool = True):
    sch, schedule, sig = _dpm_scheduler(diffusers.DPMSolverMultistepScheduler, "linear", steps, dtype,
                                        algorithm_type="sde-dpmsolver++", solver_order=order,
                                        solver_type=solver_type, final_sigmas_type="zero",
                                        lower_order_final=lower_order_final)
    zs = normals(steps, 11, torch.float32)
    xd, _ = run_diffusers(sch, dtype, Z0, lambda j: {"variance_noise": zs[j]})
    x_init = Z0 * float(np.sqrt(1.0 + sig[0] ** 2))  # the VE state x_vp / alpha
    return schedule, sig, zs, x_init, xd


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("steps", [10, 16])
def test_sde_dpmsolver_pp_2m_equals_diffusers(steps, solver_type, dtype):
    schedule, sig, zs, x_init, xd = _sde_multistep(2, solver_type, steps, dtype)
    ours = dpmpp_2m_sde_sample(model_for(schedule), sig, x_init, solver_type=solver_type,
                               noise=lambda i, like: zs[i].double())
    assert ours.nfe == steps
    assert maxdiff(ours.x, xd) <= f32_tol(steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


def test_sde_dpmsolver_pp_3m_of_diffusers_is_pinned(monkeypatch):
    """diffusers' order-3 SDE update weights d2 by (1 - e^{-H} - H) / H^2 - 1/2 (H = 2h): sdekit with that weight
    agrees to float32 rounding; sdekit's default weight 2 (1/2 - phi_2 / H) differs by far more."""
    steps = 12
    schedule, sig, zs, x_init, xd = _sde_multistep(3, "midpoint", steps, torch.float32, lower_order_final=False)
    ref = dpmpp_3m_sde_sample(model_for(schedule), sig, x_init, noise=lambda i, like: zs[i].double())
    monkeypatch.setattr(msde, "_D2_WEIGHT", msde.K_DIFFUSION_D2_WEIGHT)
    monkeypatch.setattr(msde, "_PHI3_HALF", -0.5)
    variant = dpmpp_3m_sde_sample(model_for(schedule), sig, x_init, noise=lambda i, like: zs[i].double())
    assert maxdiff(variant.x, xd) <= f32_tol(steps, xd), f"diffusers vs its variant: {maxdiff(variant.x, xd):.3g}"
    assert maxdiff(ref.x, xd) > 10 * f32_tol(steps, xd)


def test_a_planted_difference_exceeds_the_bound():
    """The comparisons can fail: Euler ancestral with eta = 0.9 where diffusers ran eta = 1."""
    sch, schedule, sig = _edm_scheduler(diffusers.EulerAncestralDiscreteScheduler, "linear", "linspace", 10,
                                        torch.float32)
    x_init = Z0 * float(sig[0])
    gen = torch.Generator().manual_seed(5)
    xd, _ = run_diffusers(sch, torch.float32, x_init, lambda j: {"generator": gen})
    zs = normals(10, 5, torch.float32)
    ours = euler_ancestral_sample(model_for(schedule), sig, x_init, eta=0.9, noise=lambda i, like: zs[i].double())
    assert maxdiff(ours.x, xd) > 10 * f32_tol(10, ours.x)
