"""The network interface (`sdekit.diffusion.networks`): every prediction type, kernel family and conditioning answers
the exact model, wherever the sampler asks; guidance, thresholding and EDM preconditioning follow their papers.

The fixture is Gaussian data x_0 ~ N(MU, C^2 I) entrywise: at x = a x_0 + s eps the exact answers are

    score = -(x - a MU) / (a^2 C^2 + s^2),   epshat = s (x - a MU) / (a^2 C^2 + s^2),
    x0hat = MU + a C^2 (x - a MU) / (a^2 C^2 + s^2),

for ANY (a, s). An exact network decodes its conditioning value c back to its own level (a*, s*) and returns the
exact prediction there; the wrapper asked at an arbitrary (alpha, sigma) must return the exact score at (alpha,
sigma): that only holds when the SNR matching, the scale m, the conditioning and the prediction conversion are all
right (a planted wrong scale or a wrong conditioning fails it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdekit.diffusion import ForwardSDE  # noqa: E402
from sdekit.diffusion.networks import (  # noqa: E402
    DiffusionNetwork,
    Threshold,
    from_diffusers,
    from_k_diffusion,
)
from sdekit.diffusion.networks import native as native_mod  # noqa: E402
from sdekit.diffusion.samplers.discrete import DiscreteSchedule  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402

MU, C = 0.3, 0.5
SCHED = DiscreteSchedule.linear(1000)
VP = ForwardSDE.vp()
LOG_SIGMAS = 0.5 * (np.log1p(-SCHED.alphas_bar) - np.log(SCHED.alphas_bar))


def exact(x, a, s):
    """(score, eps, x0) of the Gaussian fixture at x = a x0 + s eps (a, s numbers or per-row tensors)."""
    var = a * a * C * C + s * s
    r = x - a * MU
    return -r / var, s * r / var, MU + a * C * C * r / var


def per_row(v, x):
    return v.reshape((-1,) + (1,) * (x.ndim - 1))


def vp_pair(sig):
    a = 1.0 / torch.sqrt(1.0 + sig * sig)
    return a, sig * a


DECODERS = {  # c -> (a*, s*) of the network's own kernel
    ("vp", "sigma"): vp_pair,
    ("ve", "sigma"): lambda c: (torch.ones_like(c), c),
    ("flow", "t"): lambda c: (1.0 - c, c),
    ("vp", "logsnr"): lambda c: (torch.rsqrt(1.0 + torch.exp(-2.0 * c)), torch.rsqrt(1.0 + torch.exp(2.0 * c))),
    ("schedule", "timestep"): lambda c: vp_pair(torch.exp(torch.as_tensor(np.interp(
        c.detach().numpy(), np.arange(1000.0), LOG_SIGMAS), dtype=c.dtype))),
    ("forward", "t"): lambda c: tuple(torch.as_tensor(np.array([VP.kernel(float(t)) for t in c]).T[i],
                                                      dtype=c.dtype) for i in (0, 1)),
}

PRED_INDEX = {"score": 0, "eps": 1, "x0": 2}


class ExactNet(torch.nn.Module):
    """The exact prediction of the Gaussian fixture at the level its conditioning names."""

    def __init__(self, family, conditioning, prediction, plant=None):
        super().__init__()
        self.decode, self.prediction, self.plant = DECODERS[(family, conditioning)], prediction, plant
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))  # gives the net a dtype

    def forward(self, x, c, label=None):
        a, s = self.decode(c)
        a, s = per_row(a, x), per_row(s, x)
        score, eps, x0 = exact(x, a, s)
        if self.prediction == "v":
            out = a * eps - s * x0
        elif self.prediction == "velocity":
            out = eps - x0
        else:
            out = (score, eps, x0)[PRED_INDEX[self.prediction]]
        if label is not None:
            out = out + 0.1 * label.reshape((-1,) + (1,) * (x.ndim - 1))
        return out + self.anchor


KERNELS = {"vp": "vp", "ve": "ve", "flow": "flow", "schedule": SCHED, "forward": VP}
CASES = [(fam, cond, pred) for fam, cond in DECODERS for pred in ("eps", "x0", "v", "score")] + \
        [("flow", "t", "velocity")]


@pytest.mark.parametrize(("family", "conditioning", "prediction"), CASES)
def test_every_prediction_kernel_and_conditioning_answers_the_exact_score(family, conditioning, prediction):
    model = DiffusionNetwork(ExactNet(family, conditioning, prediction), prediction=prediction,
                             kernel=KERNELS[family], conditioning=conditioning)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    # a VP level inside the schedule's range, an off-family level (alpha^2 + sigma^2 != 1), a VE level
    for alpha, sigma in ((0.8, 0.6), (0.7, 0.9), (1.0, 2.5)):
        want_score, want_eps, want_x0 = exact(x, alpha, sigma)
        torch.testing.assert_close(model(x, alpha, sigma), want_score, rtol=1e-9, atol=1e-11)
        x0, eps = model.predict(x, alpha, sigma)
        torch.testing.assert_close(x0, want_x0, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(eps, want_eps, rtol=1e-9, atol=1e-11)
    # per-row levels (as the torch SDE backend passes them) and a NumPy state give the same numbers
    a_rows = torch.tensor([0.8, 0.7, 0.9, 0.95, 0.6], dtype=torch.float64)
    s_rows = torch.tensor([0.6, 0.9, 0.5, 0.2, 1.3], dtype=torch.float64)
    torch.testing.assert_close(model(x, a_rows, s_rows), exact(x, per_row(a_rows, x), per_row(s_rows, x))[0],
                               rtol=1e-9, atol=1e-11)
    got = model(x.numpy(), 0.7, 0.9)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, exact(x, 0.7, 0.9)[0].numpy(), rtol=1e-9, atol=1e-11)


def test_a_planted_wrong_scale_or_conditioning_fails_the_exact_check(monkeypatch):
    """The exact-score check can fail: an off-family level with the SNR scale m dropped, and a network conditioned
    on log-SNR read as sigma."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    want = exact(x, 0.7, 0.9)[0]
    wrong_cond = DiffusionNetwork(ExactNet("vp", "logsnr", "eps"), prediction="eps", kernel="vp",
                                  conditioning="sigma")
    assert not torch.allclose(wrong_cond(x, 0.7, 0.9), want, rtol=1e-3)
    model = DiffusionNetwork(ExactNet("vp", "sigma", "eps"), prediction="eps", kernel="vp", conditioning="sigma")
    torch.testing.assert_close(model(x, 0.7, 0.9), want)
    real_level = native_mod.Native.level

    def no_scale(self, alpha, sigma):
        m, a, s, c = real_level(self, alpha, sigma)
        return 1.0, a, s, c

    monkeypatch.setattr(native_mod.Native, "level", no_scale)
    assert not torch.allclose(model(x, 0.7, 0.9), want, rtol=1e-3)


def test_timesteps_are_exact_at_the_levels_and_interpolate_in_log_sigma_between():
    nat = native_mod.Native(SCHED, "timestep")
    for k in (1, 2, 500, 999, 1000):
        a, s = SCHED.level(k)
        assert nat.level(a, s)[3] == k - 1  # exact integers (diffusers' 0-based timestep), after snapping
    a1, s1 = SCHED.level(10)
    a2, s2 = SCHED.level(11)
    mid = math.exp(0.5 * (math.log(s1 / a1) + math.log(s2 / a2)))  # halfway in log sigma
    assert nat.timestep(mid) == pytest.approx(9.5, abs=1e-9)
    assert native_mod.Native(SCHED, "timestep", "nearest").timestep(mid * 1.01) == 10.0
    t = nat.timestep(torch.tensor([s1 / a1, mid, 1e-9, 1e9], dtype=torch.float64))
    torch.testing.assert_close(t, torch.tensor([9.0, 9.5, 0.0, 999.0], dtype=torch.float64))  # clamped at the ends


def test_edm_preconditioning_reads_the_network_as_F():
    """D = c_skip x + c_out F(c_in x; ln(sigma) / 4) (Karras et al. 2022, Table 1): an F built from the exact
    denoiser gives the exact score."""
    sd = 0.5

    class EDMF(torch.nn.Module):
        def forward(self, x_in, c_noise):
            sig = per_row(torch.exp(4.0 * c_noise), x_in)
            norm = torch.sqrt(sig * sig + sd * sd)
            x = x_in * norm
            d = exact(x, 1.0, sig)[2]
            return (d - sd * sd / (norm * norm) * x) / (sig * sd / norm)

    model = DiffusionNetwork(EDMF(), prediction="x0", kernel="ve", precondition="edm", sigma_data=sd)
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for alpha, sigma in ((1.0, 0.3), (0.6, 0.8), (1.0, 40.0)):
        torch.testing.assert_close(model(x, alpha, sigma), exact(x, alpha, sigma)[0], rtol=1e-9, atol=1e-12)


def test_classifier_free_guidance_and_its_rescale():
    """p_u + w (p_c - p_u) (Ho & Salimans 2022) in one doubled batch or two calls, and Lin et al. 2024's rescale."""
    net = ExactNet("vp", "sigma", "eps")
    x = torch.randn(4, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    cond, uncond = {"label": torch.full((4,), 2.0, dtype=torch.float64)}, {"label": torch.zeros(4, dtype=torch.float64)}
    base = DiffusionNetwork(net, prediction="eps", kernel="vp", conditioning="sigma")
    a, s = 0.8, 0.6
    e_c = base.eps(x, a, s) + 0.1 * 2.0
    e_u = base.eps(x, a, s)
    for batched in (True, False):
        guided = base.with_guidance(3.0, cond, uncond, batched=batched)
        torch.testing.assert_close(guided.eps(x, a, s), e_u + 3.0 * (e_c - e_u))
        torch.testing.assert_close(guided(x, a, s), -(e_u + 3.0 * (e_c - e_u)) / s)
    phi = 0.7
    cfg = e_u + 3.0 * (e_c - e_u)
    std = lambda v: v.reshape(4, -1).std(dim=1).reshape(4, 1, 1)  # noqa: E731
    want = phi * cfg * std(e_c) / std(cfg) + (1 - phi) * cfg
    torch.testing.assert_close(base.with_guidance(3.0, cond, uncond, rescale=phi).eps(x, a, s), want)
    with pytest.raises(SDEKitError, match="rescale"):
        base.with_guidance(3.0, cond, uncond, rescale=1.5)
    with pytest.raises(SDEKitError, match="same keys"):
        base.with_guidance(3.0, cond, {})


def test_thresholding_matches_diffusers_and_keeps_eps_consistent():
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler

    gen = torch.Generator().manual_seed(5)
    x0 = 3.0 * torch.randn(6, 3, 4, 4, generator=gen, dtype=torch.float64)
    sched = DDPMScheduler(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.0)
    from sdekit.diffusion.networks.thresholding import threshold_x0

    torch.testing.assert_close(threshold_x0(x0, Threshold("dynamic", ratio=0.9, max_value=2.0)),
                               sched._threshold_sample(x0.clone()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(threshold_x0(x0.numpy(), Threshold("dynamic", ratio=0.9, max_value=2.0)),
                               sched._threshold_sample(x0.clone()).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(threshold_x0(x0.numpy(), Threshold("static", clip=1.0)), np.clip(x0.numpy(), -1, 1))

    class X0Net(torch.nn.Module):
        def forward(self, x, c):
            return 3.0 * x

    model = DiffusionNetwork(X0Net(), prediction="x0", kernel="vp", conditioning="sigma",
                             threshold=Threshold("static", clip=1.0))
    x = torch.randn(3, 5, dtype=torch.float64, generator=gen)
    x0hat, eps = model.predict(x, 0.8, 0.6)
    assert float(x0hat.abs().max()) <= 1.0
    torch.testing.assert_close(eps, (x - 0.8 * x0hat) / 0.6)


def test_adapters_read_the_conventions():
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler

    class Out:
        def __init__(self, sample):
            self.sample = sample

    class UNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = ExactNet("schedule", "timestep", "v")

        def forward(self, x, timestep, **cond):
            return Out(self.inner(x, timestep, **cond))

    sched = DDPMScheduler(prediction_type="v_prediction")
    model = from_diffusers(UNet(), sched)
    assert model.prediction == "v"
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(model(x, 0.7, 0.9), exact(x, 0.7, 0.9)[0], rtol=1e-6, atol=1e-8)  # float32 table

    class KDenoiser(torch.nn.Module):
        def forward(self, x, sigma):
            return exact(x, 1.0, per_row(sigma, x))[2]

    kd = from_k_diffusion(KDenoiser())
    torch.testing.assert_close(kd(x, 0.7, 0.9), exact(x, 0.7, 0.9)[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(SDEKitError, match="prediction"):
        from_diffusers(UNet(), schedule=SCHED)


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"prediction": "noise"}, "prediction"),
    ({"prediction": "eps", "kernel": "cosine"}, "kernel"),
    ({"prediction": "eps", "conditioning": "tau"}, "conditioning"),
    ({"prediction": "eps", "kernel": "vp", "conditioning": "t"}, "conditioning 't'"),
    ({"prediction": "eps", "kernel": "vp", "conditioning": "timestep"}, "conditioning 'timestep'"),
    ({"prediction": "velocity", "kernel": "vp"}, "velocity"),
    ({"prediction": "eps", "precondition": "edm", "kernel": "vp"}, "precondition"),
    ({"prediction": "eps", "shape": (0, 3)}, "shape"),
    ({"prediction": "eps", "guidance": 3.0}, "guidance"),
    ({"prediction": "eps", "sigma_data": -1.0}, "sigma_data"),
    ({"prediction": "eps", "kernel": SCHED, "conditioning": "timestep", "timestep_rounding": "floor"},
     "timestep_rounding"),
])
def test_bad_network_settings_are_refused_naming_them(kwargs, word):
    with pytest.raises(SDEKitError, match=word):
        DiffusionNetwork(ExactNet("vp", "sigma", "eps"), **kwargs)


def test_wrong_network_outputs_are_named():
    x = torch.zeros(2, 3, dtype=torch.float64)
    bad_shape = DiffusionNetwork(lambda x, c: x[:, :1], prediction="eps")
    with pytest.raises(SDEKitError, match=r"the network returned .* shape \(2, 1\); expected x's shape \(2, 3\)"):
        bad_shape(x, 0.8, 0.6)
    bad_call = DiffusionNetwork(lambda x: x, prediction="eps")
    with pytest.raises(SDEKitError, match="net must be callable as net"):
        bad_call(x, 0.8, 0.6)
    flat = DiffusionNetwork(ExactNet("vp", "sigma", "eps"), prediction="eps", shape=(3, 2))
    with pytest.raises(SDEKitError, match=r"x must have shape \(n, \*\(3, 2\)\) or \(n, 6\)"):
        flat(torch.zeros(2, 5, dtype=torch.float64), 0.8, 0.6)
    torch.testing.assert_close(flat(torch.ones(2, 6, dtype=torch.float64), 0.8, 0.6),
                               exact(torch.ones(2, 6, dtype=torch.float64), 0.8, 0.6)[0])


def test_dpm_solver_grid_may_end_at_the_data_with_a_final_denoise():
    """A grid of pairs ending at (1, 0) (`sigma_grids.vp_pairs`) equals the same grid without it plus to_zero, and
    its last step is the denoiser: x = x0hat(x_prev) (Lu et al. 2022b; diffusers' final_sigmas_type='zero')."""
    from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
    from sdekit.diffusion.samplers.sigma_grids import karras_sigmas, vp_pairs

    model = DiffusionNetwork(ExactNet("vp", "sigma", "eps"), prediction="eps", kernel="vp", conditioning="sigma")
    grid = vp_pairs(karras_sigmas(12, 0.01, 50.0))
    assert tuple(grid[-1]) == (1.0, 0.0)
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 50.0
    seen = []
    a = dpm_solver_sample(model, grid, x, method="multistep", algorithm="dpmsolver++",
                          callback=lambda info: seen.append(info), return_trajectory=True)
    b = dpm_solver_sample(model, grid[:-1], x, method="multistep", algorithm="dpmsolver++", to_zero=True)
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    assert a.nfe == 12 and a.sigmas[-1] == 0 and a.trajectory.shape == (13, 8, 2) and len(seen) == 12
    torch.testing.assert_close(a.x, model.denoise(a.trajectory[-2], *grid[-2]))
    torch.testing.assert_close(seen[-1].denoised, a.x)
    with pytest.raises(SDEKitError, match="lower_order_final"):
        dpm_solver_sample(model, grid, x, method="multistep", lower_order_final=False)


def test_schedule_twins_read_a_tensor_schedule_once():
    """The torch twins of the schedule coefficients read a parameter tensor's values once (no host read per step)
    and see an in-place change of it."""
    from sdekit.diffusion import torch_schedule

    sp = torch.as_tensor(VP.sp, dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    first = torch_schedule.kernel_from_sp(t, sp)
    assert torch_schedule._SP_FLOATS[id(sp)][0]() is sp
    calls = []
    real = torch.Tensor.cpu
    try:
        torch.Tensor.cpu = lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
        again = torch_schedule.kernel_from_sp(t, sp)
    finally:
        torch.Tensor.cpu = real
    assert not calls and all(torch.equal(u, v) for u, v in zip(first, again))
    sp[2] = 2.0 * sp[2]  # beta_max doubled in place: the cache must notice
    assert not torch.equal(torch_schedule.kernel_from_sp(t, sp)[0], first[0])
    key = id(sp)
    del sp
    assert key not in torch_schedule._SP_FLOATS  # forgotten with the tensor


def test_every_sigma_grid_drives_every_sampler_on_its_own_levels():
    """A Karras / exponential / polyexponential grid runs EDM directly, DPM-Solver through `vp_pairs` and DDIM / DDPM
    through `schedule_from_sigmas`; the levels each visits are the grid's (as sigma / alpha)."""
    from sdekit.diffusion.samplers.ddim import ddim_sample
    from sdekit.diffusion.samplers.ddpm import ddpm_sample
    from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample
    from sdekit.diffusion.samplers.edm import edm_sample
    from sdekit.diffusion.samplers.sigma_grids import (
        exponential_sigmas,
        karras_sigmas,
        polyexponential_sigmas,
        schedule_from_sigmas,
        vp_pairs,
    )

    model = DiffusionNetwork(ExactNet("ve", "sigma", "x0"), prediction="x0", kernel="ve", conditioning="sigma")
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    for grid in (karras_sigmas(8, 0.02, 20.0), exponential_sigmas(8, 0.02, 20.0),
                 polyexponential_sigmas(8, 0.02, 20.0, rho=2.0)):
        sched = schedule_from_sigmas(grid)
        assert sched.n_steps == 8
        np.testing.assert_allclose(sched.sigmas_edm[::-1], grid[:-1], rtol=1e-12)
        a_top, s_top = sched.level(8)
        runs = [edm_sample(model, grid, 20.0 * x), dpm_solver_sample(model, vp_pairs(grid), a_top * 20.0 * x,
                                                                    method="multistep", algorithm="dpmsolver++"),
                ddim_sample(model, sched, a_top * 20.0 * x, indices=np.arange(1, 9)),
                ddpm_sample(model, sched, a_top * 20.0 * x, seed=1)]
        for res in runs:
            np.testing.assert_allclose(res.sigmas_edm, grid, rtol=1e-12)
            assert bool(torch.isfinite(res.x).all())
    with pytest.raises(SDEKitError, match="sigmas_edm"):
        schedule_from_sigmas([1.0, np.nan])
