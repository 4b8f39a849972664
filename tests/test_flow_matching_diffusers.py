"""Conformance of sdekit's flow samplers with diffusers 0.35.1's FlowMatchEulerDiscreteScheduler and
FlowMatchHeunDiscreteScheduler: the same velocity network, the same time grid (diffusers' ``sigmas``, which are the
flow times t; the network is called at timestep 1000 t), the same initial state.

Both diffusers schedulers cast the sample to float32 inside ``step`` (``sample = sample.to(torch.float32)``), so a
float64 run agrees only to float32 rounding; the runs here are diffusers in float32 against sdekit in float64 (NumPy,
through `VelocityModel(net, time_scale=1000)` on a float64 copy of the network), within the bound of
tests/test_diffusers_conformance.py: 64 sqrt(NFE) u32 max(1, max|x|), u32 = 2^-24.

* FlowMatchEulerDiscreteScheduler (shift 1 and 3) = ``flow_sample(method="euler", times=scheduler.sigmas)``.
* FlowMatchHeunDiscreteScheduler takes Heun steps between its N sigmas and a final Euler step onto sigma = 0 (its
  timestep list repeats every interior timestep; NFE = 2N - 1), where ``flow_sample(method="heun")`` also corrects
  the last step (t = 0 is a regular level of a flow model): it equals Heun on sigmas[:-1] followed by one Euler step,
  and differs from Heun on the whole grid by the last step's correction (pinned: 9.6e-5 on 8 steps, shift 3, against
  the bound 2.4e-5; the agreement with the Heun + Euler composition is 1.1e-6).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from sdekit.flow import flow_sample  # noqa: E402
from sdekit.learn import VelocityModel  # noqa: E402

diffusers.utils.logging.set_verbosity_error()
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SHAPE = (2, 4, 4)
N = 3
U32 = 2.0 ** -24


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class TinyVelocity(torch.nn.Module):
    """v(x, c) = x - m + W2 tanh(W1 x + w c / 1000 + b): a fixed smooth velocity of images, conditioned on the
    diffusers-style timestep c = 1000 t."""

    def __init__(self, seed: int = 0, width: int = 16) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = math.prod(SHAPE)
        self.w1 = torch.nn.Parameter(torch.randn(width, d, generator=g, dtype=torch.float64) / math.sqrt(d))
        self.w2 = torch.nn.Parameter(torch.randn(d, width, generator=g, dtype=torch.float64) / math.sqrt(width))
        self.wt = torch.nn.Parameter(torch.randn(width, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(0.1 * torch.randn(width, generator=g, dtype=torch.float64))
        self.m = torch.nn.Parameter(0.5 * torch.randn(d, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        c = c.reshape(-1).to(flat).expand(flat.shape[0])
        h = torch.tanh(flat @ self.w1.T + (c[:, None] / 1000.0) * self.wt + self.b)
        return (flat - self.m + h @ self.w2.T).reshape(x.shape)


def f32_tol(nfe: int, x: np.ndarray) -> float:
    return 64.0 * math.sqrt(nfe) * U32 * max(1.0, float(np.abs(x).max()))


def nets() -> tuple[TinyVelocity, TinyVelocity]:
    net64 = TinyVelocity()
    return net64, TinyVelocity().float()


def latents() -> torch.Tensor:
    return torch.randn((N, *SHAPE), generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def run_diffusers(scheduler, net32: TinyVelocity, x: torch.Tensor) -> tuple[np.ndarray, int]:
    sample, calls = x.float(), 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in scheduler.timesteps:
            out = net32(sample, t.expand(N))
            calls += 1
            sample = scheduler.step(out, t, sample).prev_sample
    return sample.double().numpy(), calls


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_match_euler_equals_the_euler_flow_sampler(shift):
    net64, net32 = nets()
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(12)
    times = sched.sigmas.double().numpy()
    ref, calls = run_diffusers(sched, net32, latents())
    res = flow_sample(VelocityModel(net64, time_scale=1000.0), latents().numpy(), method="euler", times=times)
    assert res.nfe == calls == 12
    assert np.max(np.abs(res.x - ref)) <= f32_tol(res.nfe, ref)


def test_flow_match_heun_is_heun_with_a_final_euler_step():
    net64, net32 = nets()
    sched = diffusers.FlowMatchHeunDiscreteScheduler(shift=3.0)
    sched.set_timesteps(8)
    times = torch.unique_consecutive(sched.sigmas).double().numpy()  # t_0 > ... > t_7 > 0
    assert times.size == 9
    ref, calls = run_diffusers(sched, net32, latents())
    model = VelocityModel(net64, time_scale=1000.0)
    heun = flow_sample(model, latents().numpy(), method="heun", times=times[:-1])
    last = flow_sample(model, heun.x, method="euler", times=times[-2:])
    assert heun.nfe + last.nfe == calls == 15
    assert np.max(np.abs(last.x - ref)) <= f32_tol(calls, ref)
    full = flow_sample(model, latents().numpy(), method="heun", times=times)  # Heun also on the last step
    assert full.nfe == 16
    assert np.max(np.abs(full.x - ref)) > 2 * f32_tol(calls, ref)  # measured 9.6e-5, 4x the bound
