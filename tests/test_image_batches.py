"""Image-shaped batches (n, C, H, W) from a diffusers-style and a k-diffusion-style torch network through every
sampler, the reverse SDE and the PF-ODE.

Data: every pixel i.i.d. N(MU, C^2) (the Gaussian fixture of tests/test_networks.py), so the networks are exact and
each output pixel of an accurate sampler is near a draw of N(MU, C^2). Every run must keep the shape, dtype and
device, return finite values and put the pixel mean and standard deviation within 10 % of C of (MU, C) (a sign or
scale error in any conversion moves them by far more; a flipped network fails). Annealed Langevin, whose exact output
law is known for Gaussian data, is tested against it with ``compare_with_law`` at 1e-6 on the 16 x 768 pixel draws
(i.i.d.: the exact model acts per pixel and the noise is independent per pixel).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchsde")
pytest.importorskip("torchdiffeq")

from sdekit import simulate  # noqa: E402
from sdekit.diffusion import ForwardSDE, probability_flow_ode, reverse_sde  # noqa: E402
from sdekit.diffusion.networks import from_diffusers, from_k_diffusion  # noqa: E402
from sdekit.diffusion.samplers.annealed_langevin import (  # noqa: E402
    annealed_langevin,
    gaussian_annealed_langevin_law,
)
from sdekit.diffusion.samplers.ddim import ddim_sample  # noqa: E402
from sdekit.diffusion.samplers.ddpm import ddpm_sample  # noqa: E402
from sdekit.diffusion.samplers.discrete import DiscreteSchedule  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.samplers.edm import edm_sample, karras_sigmas  # noqa: E402
from sdekit.diffusion.samplers.predictor_corrector import pc_sample  # noqa: E402
from sdekit.validate import compare_with_law  # noqa: E402

MU, C = 0.3, 0.5
SHAPE = (3, 16, 16)
N = 16
SCHED = DiscreteSchedule.linear(1000)
VP = ForwardSDE.vp()
LOG_SIGMAS = torch.as_tensor(0.5 * (np.log1p(-SCHED.alphas_bar) - np.log(SCHED.alphas_bar)))


def rows(v, x):
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


class UNetOutput:
    def __init__(self, sample):
        self.sample = sample


class GaussianUNet(torch.nn.Module):
    """diffusers-style: unet(x, timestep).sample, the exact eps at the (fractional) training timestep."""

    def __init__(self, flip=False):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64), requires_grad=False)
        self.flip = flip

    def forward(self, x, timestep):
        t = timestep.to(torch.float64)
        lo = t.floor().clamp(0, 998).long()
        w = t - lo
        ls = LOG_SIGMAS[lo] * (1 - w) + LOG_SIGMAS[lo + 1] * w
        sig = torch.exp(ls)
        a, s = rows(torch.rsqrt(1 + sig * sig), x), rows(sig * torch.rsqrt(1 + sig * sig), x)
        eps = s * (x.to(torch.float64) - a * MU) / (a * a * C * C + s * s)
        return UNetOutput((-eps if self.flip else eps).to(x.dtype) * self.scale.to(x.dtype))


class GaussianDenoiser(torch.nn.Module):
    """k-diffusion-style: denoiser(x, sigma) = E[x_0 | x_0 + sigma eps = x]."""

    def forward(self, x, sigma):
        s = rows(sigma, x)
        return MU + C * C * (x - MU) / (C * C + s * s)


def start(alpha, sigma, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((N, *SHAPE), generator=gen, dtype=torch.float64)
    return (alpha * MU + math.sqrt(alpha * alpha * C * C + sigma * sigma) * z).to(dtype)


def vp_grid(levels):
    lv = np.asarray(levels)[::-1]
    return np.stack([SCHED.alphas[lv - 1], SCHED.sigmas[lv - 1]], axis=1)


UNET = from_diffusers(GaussianUNet(), schedule=SCHED, prediction="eps")
KDIFF = from_k_diffusion(GaussianDenoiser())
A_K, S_K = SCHED.level(1000)
LEVELS = SCHED.spaced_levels(50)
FINE_LEVELS = SCHED.spaced_levels(200)  # ancestral steps: the posterior-variance bias is -11 % in std at 50 steps
DPM_LEVELS = np.round(np.linspace(0, 999, 51))[1:].astype(np.int64) + 1  # diffusers' 'linspace' grid, then sigma 0
LANGEVIN_SIGMAS, LANGEVIN_STEPS, LANGEVIN_EPS0 = np.geomspace(5.0, 0.05, 8), 30, 1e-4
KARRAS = karras_sigmas(40, 0.002, float(S_K / A_K))


def run_sampler(name, model, dtype):
    """The sampler's output for a start drawn from the exact law of its first level."""
    if name == "ddpm":
        return ddpm_sample(model, SCHED.respaced(FINE_LEVELS), start(A_K, S_K, dtype), seed=1).x
    if name == "ddim":
        return ddim_sample(model, SCHED, start(A_K, S_K, dtype), indices=LEVELS).x
    if name == "ddim-eta1":
        return ddim_sample(model, SCHED, start(A_K, S_K, dtype), indices=FINE_LEVELS, eta=1.0, seed=2).x
    if name == "dpm++2m":
        return dpm_solver_sample(model, vp_grid(DPM_LEVELS), start(A_K, S_K, dtype), method="multistep",
                                 algorithm="dpmsolver++", to_zero=True).x
    if name == "dpm3":
        return dpm_solver_sample(model, VP, start(*VP.kernel(VP.T), dtype), order=3, steps=10,
                                 skip="logSNR").x
    if name == "sde-dpm++2m":
        return dpm_solver_sample(model, vp_grid(DPM_LEVELS), start(A_K, S_K, dtype), method="multistep",
                                 algorithm="sde-dpmsolver++", to_zero=True, seed=3).x
    if name == "edm-heun":
        return edm_sample(model, KARRAS, start(1.0, float(KARRAS[0]), dtype)).x
    if name == "edm-churn":
        return edm_sample(model, KARRAS, start(1.0, float(KARRAS[0]), dtype), s_churn=10.0, seed=4).x
    if name == "pc":
        return pc_sample(model, VP, start(*VP.kernel(VP.T), dtype), steps=60, seed=5).x
    if name == "annealed-langevin":
        return annealed_langevin(model, LANGEVIN_SIGMAS, start(1.0, float(LANGEVIN_SIGMAS[0]), dtype),
                                 steps_per_level=LANGEVIN_STEPS, eps0=LANGEVIN_EPS0, seed=6).x
    raise AssertionError(name)


SAMPLERS = ["ddpm", "ddim", "ddim-eta1", "dpm++2m", "dpm3", "sde-dpm++2m", "edm-heun", "edm-churn", "pc",
            "annealed-langevin"]


@pytest.mark.parametrize("network", ["diffusers", "k-diffusion"])
@pytest.mark.parametrize("name", SAMPLERS)
def test_image_batches_through_every_sampler(name, network):
    model = UNET if network == "diffusers" else KDIFF
    dtype = torch.float32 if name in ("ddim", "edm-heun") else torch.float64  # float32 runs too
    with torch.no_grad():
        x = run_sampler(name, model, dtype)
    assert tuple(x.shape) == (N, *SHAPE) and x.dtype == dtype and x.device.type == "cpu"
    assert bool(torch.isfinite(x).all())
    px = x.to(torch.float64).reshape(-1)
    if name == "annealed-langevin":  # its exact output law is known (biased at finite eps0): test against it
        law = gaussian_annealed_langevin_law([MU], [[C * C]], LANGEVIN_SIGMAS, [MU],
                                             [[C * C + LANGEVIN_SIGMAS[0] ** 2]], steps_per_level=LANGEVIN_STEPS,
                                             eps0=LANGEVIN_EPS0)
        report = compare_with_law(px.numpy()[:, None], law, name=f"{name}-{network}")
        assert report.passed, report
        return
    # the discretisation bias of these step counts is below 7 % in the std (measured: DDIM 50 steps -5.3 %,
    # DDPM / DDIM eta = 1 200 steps -3 %, PC 60 steps +2.5 %); a sign or scale error moves it by far more
    assert abs(float(px.mean()) - MU) < 0.1 * C and abs(float(px.std()) - C) < 0.1 * C


def _pixel_law():
    from sdekit.targets import Gaussian

    return Gaussian(np.array([MU]), np.array([[C * C]]))


def test_a_flipped_eps_network_fails_the_checks():
    model = from_diffusers(GaussianUNet(flip=True), schedule=SCHED, prediction="eps")
    with torch.no_grad():
        x = ddim_sample(model, SCHED, start(A_K, S_K), indices=LEVELS).x
    px = x.reshape(-1)
    assert not (abs(float(px.mean()) - MU) < 0.1 * C and abs(float(px.std()) - C) < 0.1 * C)
    assert not compare_with_law(px.numpy()[:, None], _pixel_law(), name="flipped").passed


@pytest.mark.parametrize("network", ["diffusers", "k-diffusion"])
def test_image_batches_through_the_reverse_sde_and_pf_ode(network):
    """The SDE/ODE solvers work on vectors: the state is the flattened batch (n, 768) and the network, given
    shape=, reshapes it to (n, 3, 16, 16) for each call (`DiffusionNetwork`)."""
    if network == "diffusers":
        model = from_diffusers(GaussianUNet(), schedule=SCHED, prediction="eps", shape=SHAPE)
    else:
        model = from_k_diffusion(GaussianDenoiser(), shape=SHAPE)
    score = model.score_in_time(VP)
    d = math.prod(SHAPE)
    x_t = start(*VP.kernel(VP.T)).reshape(N, d)
    with torch.no_grad():
        sde = simulate(reverse_sde(VP, score, d), x_t, (VP.T, VP.eps), steps=200, backend="torch", seed=7)
        ode = simulate(probability_flow_ode(VP, score, d), x_t, (VP.T, VP.eps), steps=40, solver="rk4",
                       backend="torch")
    a, s = VP.kernel(VP.eps)
    law = (a * MU, math.sqrt(a * a * C * C + s * s))
    for sol in (sde, ode):
        x = torch.as_tensor(sol.final)
        assert tuple(x.shape) == (N, d) and bool(torch.isfinite(x).all())
        assert abs(float(x.mean()) - law[0]) < 0.05 * C and abs(float(x.std()) - law[1]) < 0.05 * C


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_simulate_takes_image_shaped_x0_as_its_flat_state(backend):
    """x0 of shape (n, *shape) with prod(shape) = dim is the flattened (n, dim) state (C order): the same solve."""
    import sdekit

    ou = sdekit.SDE(drift=lambda x, t, p: -x, diffusion=lambda x, t, p: 0.5, noise="additive", dim=4)
    x0 = np.arange(24, dtype=np.float64).reshape(6, 2, 2) / 10.0
    if backend == "torch":
        x0 = torch.as_tensor(x0)
    image = simulate(ou, x0, (0.0, 1.0), steps=20, seed=3, backend=backend)
    flat = simulate(ou, x0.reshape(6, 4), (0.0, 1.0), steps=20, seed=3, backend=backend)
    assert image.final.shape == (6, 4)
    np.testing.assert_array_equal(np.asarray(image.final), np.asarray(flat.final))


def test_numpy_log_likelihood_takes_image_shaped_points():
    """The exact-model likelihood of (n, 2, 2) points is that of the same points flattened to (n, 4)."""
    from sdekit.diffusion import DiffusionModel, log_likelihood
    from sdekit.targets import GaussianMixture

    data = GaussianMixture([0.4, 0.6], [[-1.0, 0.0, 0.5, 0.0], [1.0, 0.5, 0.0, -0.5]],
                           [np.diag([0.3, 0.5, 0.4, 0.2]), np.diag([0.5, 0.2, 0.3, 0.4])])
    model = DiffusionModel.exact_mixture(VP, data)
    x = data.sample(5, seed=1)
    flat = log_likelihood(model, x, steps=50)
    image = log_likelihood(model, x.reshape(5, 2, 2), steps=50)
    np.testing.assert_array_equal(image.log_prob, flat.log_prob)
