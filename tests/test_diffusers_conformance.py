"""Conformance of sdekit's samplers with diffusers 0.35.1 (the pinned test extra): the same network, schedule,
timesteps, initial state and noise give the same samples.

Setting: a small fixed torch eps-network built here (`TinyEps`: the exact eps of N(0, I) data plus a fixed random
tanh layer of x and a sinusoidal embedding of the timestep; float64 parameters, a float32 copy for diffusers' default
precision; nothing downloaded), diffusers' ``linear`` and ``scaled_linear`` schedules with K = 1000, timesteps from
the diffusers scheduler's own ``set_timesteps`` (sdekit levels = timesteps + 1), states of shape (3, 2, 4, 4).
sdekit always runs in float64 through `from_diffusers` (the network's eps read at any (alpha, sigma) on its VP
kernel, conditioned on the fractional training timestep); diffusers runs

* in float32, as it does by default: agreement within `f32_tol` = 64 sqrt(NFE) u32 max(1, max|x|), u32 = 2^-24.
  Each diffusers step rounds the state, the schedule coefficients and the network's output (its 32-term dot
  products) in float32, i.e. O(10) roundings of relative size u32 per model call, which accumulate like a random
  walk over the NFE calls; the measured ratio error / (sqrt(NFE) u32 max|x|) is at most 25 (DDPM, 1000 steps; 23
  for the noise-prediction DPM-Solver-2 singlestep, <= 15 elsewhere);
* in float64 (its tables alphas_cumprod / sigmas replaced by float64 ones, float64 network and latents): agreement
  within `f64_tol` = 1e-12 max(1, max|x|) where diffusers computes in float64 (DDPM, DDIM, DPM-Solver singlestep,
  Heun; measured <= 4e-14, and 1.3e-12 for the 1000-step DDPM chain, whose per-level betas 1 - alphabar_k /
  alphabar_{k-1} ~ 1e-4 carry relative rounding ~1e-12 in either library). It does not for
  DPMSolverMultistepScheduler and EulerDiscreteScheduler: their ``step`` casts the sample to
  float32 (``sample = sample.to(torch.float32)``), so those runs agree only to float32 rounding of the state.

Where diffusers deviates from the papers, the test pins the difference (it equals sdekit with diffusers' variant
reproduced by hand, or differs from sdekit by the amount the derivation predicts):

* DDIMScheduler takes alphabar_prev at ``t - K // S`` instead of the next entry of its timestep list (Song et al.
  2021, eq. 12, steps between consecutive levels of the subsequence): the same only when the list is evenly spaced
  by K // S ('leading'; 'trailing' with S dividing K).
* DDPMScheduler adds noise at the last step whenever its last timestep is > 0 ('trailing', or 'leading' with
  steps_offset = 1): std sqrt(1 - alphabar_{tau_1}) for fixed_large, 1e-10 (its variance clamp) for fixed_small;
  Ho et al. 2020 Algorithm 2 sets z = 0 at the last step.
* EulerDiscreteScheduler with s_churn > 0 evaluates the network at the pre-churn state and sigma and reuses that
  output at (x_hat, sigma_hat); Karras et al. 2022 Algorithm 2 evaluates D(x_hat; sigma_hat).
* DPMSolverSinglestepScheduler order 3 computes the second intermediate point u2 by its second-order midpoint update
  instead of Lu et al. 2022's formula (`sdekit.diffusion.samplers.dpm_solver`).

Conventions that differ without either being wrong, also pinned: diffusers' Euler / Heun 'linspace' timesteps can
be fractional (e.g. 832.5) with sigma interpolated linearly in sigma, while `from_diffusers` maps sigma to the timestep
by interpolating log sigma (k-diffusion's convention): the network then receives timesteps that differ by ~1e-3, and
a conditioning that inverts diffusers' interpolation gives agreement to 1e-12; DPMSolverMultistepScheduler with
``use_karras_sigmas`` conditions on rounded timesteps, which is ``from_diffusers(timestep_rounding="nearest")``.
"""

from __future__ import annotations

import copy
import math
import types
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from sdekit.diffusion.networks import DiffusionNetwork, from_diffusers, schedule_from_scheduler  # noqa: E402
from sdekit.diffusion.samplers.ddim import ddim_coefficients, ddim_sample  # noqa: E402
from sdekit.diffusion.samplers.ddpm import ddpm_sample  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.samplers.edm import edm_sample  # noqa: E402

diffusers.utils.logging.set_verbosity_error()  # diffusers' own notices (e.g. "changing lower_order_final") are logged
# diffusers 0.35.1 calls np.array on tensors (NumPy 2 asks for a copy keyword): its warning, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

K = 1000
SHAPE = (2, 4, 4)
N = 3
U32 = 2.0 ** -24
SCHEDULES = ("linear", "scaled_linear")


class TinyEps(torch.nn.Module):
    """eps(x, t) = sigma(t) x + sigma(t) alpha(t) W2 tanh(W1 x + Wt emb(t) + b): the exact eps of N(0, I) data on a
    linear-beta VP schedule (sigma(t)^2 = 1 - exp(-(b0 (t + 1) + (b1 - b0) (t + 1)^2 / 2K)), smooth in the
    fractional timestep t) plus a fixed random nonlinear part that vanishes at both ends; emb(t) = sin / cos of
    t pi / 1000 at frequencies 0.5 .. 3. Records the timesteps it is called with (row 0 of each call)."""

    def __init__(self, seed: int = 0, width: int = 16) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = math.prod(SHAPE)

        def draw(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g, dtype=torch.float64)

        def param(v: torch.Tensor) -> torch.nn.Parameter:  # fixed weights: no autograd graph in the comparisons
            return torch.nn.Parameter(v, requires_grad=False)

        self.w1 = param(draw(d, width) / math.sqrt(d))
        self.b1 = param(draw(width))
        self.wt = param(draw(8, width))
        self.w2 = param(draw(width, d) * (0.2 / math.sqrt(width)))
        self.register_buffer("freqs", torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64) * math.pi / K)
        self.timesteps: list[float] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> types.SimpleNamespace:
        n = x.shape[0]
        t = torch.as_tensor(t, device=x.device).to(x.dtype).reshape(-1).expand(n)
        self.timesteps.append(float(t[0]))
        ang = t[:, None] * self.freqs.to(x.dtype)
        emb = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
        tt = t + 1
        sig = torch.sqrt(-torch.expm1(-(1e-4 * tt + (0.02 - 1e-4) * tt * tt / (2 * K))))
        alp = torch.sqrt(1 - sig * sig)
        h = torch.tanh(x.reshape(n, -1) @ self.w1 + emb @ self.wt + self.b1)
        row = (n,) + (1,) * (x.ndim - 1)
        out = sig.reshape(row) * x + (sig * alp).reshape(row) * (h @ self.w2).reshape(x.shape)
        return types.SimpleNamespace(sample=out)


NET64 = TinyEps()
NETS = {torch.float64: NET64, torch.float32: copy.deepcopy(NET64).float()}
Z0 = torch.randn((N,) + SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# ---------------------------------------------------------------- helpers


def f32_tol(nfe: int, x: torch.Tensor) -> float:
    """Agreement bound with a float32 diffusers run (module docstring)."""
    return 64.0 * math.sqrt(nfe) * U32 * max(1.0, float(x.abs().max()))


def f64_tol(x: torch.Tensor) -> float:
    """Agreement bound with a float64 diffusers run."""
    return 1e-12 * max(1.0, float(x.abs().max()))


def tol(dtype: torch.dtype, nfe: int, x: torch.Tensor) -> float:
    return f64_tol(x) if dtype == torch.float64 else f32_tol(nfe, x)


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def scheduler(cls: type, **config) -> object:
    with warnings.catch_warnings():  # algorithm_type="dpmsolver" is deprecated in diffusers (FutureWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return cls(**config)


def model_for(schedule) -> DiffusionNetwork:
    """The float64 network through sdekit's diffusers adapter (eps prediction on the scheduler's schedule)."""
    return from_diffusers(NET64, schedule=schedule, prediction="eps")


def sigma_edm(schedule) -> np.ndarray:
    """sigma = sqrt((1 - alphabar) / alphabar) of the K training levels (diffusers' ``sigmas`` before spacing)."""
    return np.sqrt((1.0 - schedule.alphas_bar) / schedule.alphas_bar)


def vp_grid(sigmas: np.ndarray) -> np.ndarray:
    """diffusers' DPM-Solver grid as (alpha, sigma) pairs: alpha = 1 / sqrt(1 + s^2), sigma = s alpha (s = 0 gives
    the data level (1, 0))."""
    s = np.asarray(sigmas, dtype=np.float64)
    a = 1.0 / np.sqrt(1.0 + s * s)
    return np.stack([a, s * a], axis=1)


def float32_normals(count: int, seed: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((N,) + SHAPE, generator=g, dtype=dtype) for _ in range(count)]


def run_diffusers(sch, dtype: torch.dtype, x: torch.Tensor, step_kwargs=None) -> tuple[torch.Tensor, list]:
    """diffusers' denoising loop (scale_model_input, network, step); returns the final sample and the samples after
    each step. step_kwargs(j) gives extra keyword arguments of step j."""
    net = NETS[dtype]
    x = x.to(dtype)
    outs = []
    for j, t in enumerate(sch.timesteps):
        out = net(sch.scale_model_input(x, t), t).sample
        x = sch.step(out, t, x, **(step_kwargs(j) if step_kwargs else {})).prev_sample
        outs.append(x)
    return x, outs


def sdekit_timesteps(run) -> tuple[object, list[float]]:
    """Run ``run()`` and return its result and the timesteps the float64 network received."""
    NET64.timesteps.clear()
    res = run()
    return res, list(NET64.timesteps)


# ---------------------------------------------------------------- DDPM


def _ddpm(beta_schedule: str, variance: str, spacing: str, steps: int, dtype: torch.dtype, steps_offset: int = 0):
    sch = scheduler(diffusers.DDPMScheduler, beta_schedule=beta_schedule, variance_type=variance, clip_sample=False,
                    timestep_spacing=spacing, steps_offset=steps_offset)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    if dtype == torch.float64:
        sch.alphas_cumprod = torch.from_numpy(schedule.alphas_bar.copy())
    ts = sch.timesteps.numpy()
    gen = torch.Generator().manual_seed(5)
    xd, _ = run_diffusers(sch, dtype, Z0, lambda j: {"generator": gen})
    # diffusers draws one normal per step whose timestep is > 0, in order, from the generator
    g = torch.Generator().manual_seed(5)
    draws = {j: torch.randn((N,) + SHAPE, generator=g, dtype=dtype).double() for j in range(steps) if ts[j] > 0}
    levels = ts[::-1] + 1
    ours = ddpm_sample(model_for(schedule), schedule.respaced(levels), Z0,
                       variance="posterior" if variance == "fixed_small" else "beta",
                       noise=lambda k, like: draws[steps - k])
    return xd, ours, schedule, levels, draws


DDPM_CASES = [(spacing, 50, variance) for spacing in ("linspace", "leading") for variance in ("fixed_small",
                                                                                           "fixed_large")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("spacing,steps,variance", DDPM_CASES + [("linspace", K, "fixed_small")])
def test_ddpm_equals_diffusers(spacing, steps, variance, beta_schedule, dtype):
    """DDPMScheduler (fixed_small = variance "posterior", fixed_large = "beta") on its timesteps = ddpm_sample on the
    respaced schedule with diffusers' normals; steps = K is the full chain."""
    xd, ours, *_ = _ddpm(beta_schedule, variance, spacing, steps, dtype)
    assert ours.nfe == steps
    assert maxdiff(ours.x, xd) <= tol(dtype, steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("spacing,offset", [("trailing", 0), ("leading", 1)])
def test_ddpm_last_step_noise_of_diffusers_is_pinned(variance, spacing, offset):
    """With a last timestep > 0 diffusers adds noise at the last step (to the data): diffusers - sdekit equals
    s z_last exactly, s = sqrt(1 - alphabar_{tau_1}) (fixed_large: beta'_1 of the respaced schedule) or 1e-10
    (fixed_small: the posterior variance is 0 there and diffusers clamps it at 1e-20). float64 runs."""
    xd, ours, schedule, levels, draws = _ddpm("linear", variance, spacing, 50, torch.float64, offset)
    assert levels[0] > 1
    std = math.sqrt(1.0 - schedule.alpha_bar(int(levels[0]))) if variance == "fixed_large" else 1e-10
    predicted = std * draws[49]
    err = maxdiff(xd - ours.x, predicted)
    assert err <= f64_tol(ours.x), f"diffusers - sdekit differs from s z_last by {err:.3g}"
    assert maxdiff(xd, ours.x) >= 0.5 * std


# ---------------------------------------------------------------- DDIM


def _ddim(beta_schedule: str, spacing: str, steps: int, eta: float, dtype: torch.dtype):
    sch = scheduler(diffusers.DDIMScheduler, beta_schedule=beta_schedule, clip_sample=False, timestep_spacing=spacing)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    if dtype == torch.float64:
        sch.alphas_cumprod = torch.from_numpy(schedule.alphas_bar.copy())
    zs = float32_normals(steps, 7, dtype)
    xd, _ = run_diffusers(sch, dtype, Z0, lambda j: {"eta": eta, "variance_noise": zs[j] if eta > 0 else None})
    ts = sch.timesteps.numpy()
    ours = ddim_sample(model_for(schedule), schedule, Z0, indices=ts[::-1] + 1, eta=eta,
                       noise=lambda i, like: zs[steps - i].double())
    return xd, ours, schedule, ts, zs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_equals_diffusers(spacing, beta_schedule, eta, dtype):
    """DDIMScheduler with timesteps evenly spaced by K // S (S = 50) = ddim_sample on levels timesteps + 1
    (eta = 1 with diffusers' normals passed as variance_noise)."""
    xd, ours, *_ = _ddim(beta_schedule, spacing, 50, eta, dtype)
    assert maxdiff(ours.x, xd) <= tol(dtype, 50, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("spacing,steps", [("linspace", 50), ("trailing", 30), ("linspace", 10)])
def test_ddim_prev_timestep_of_diffusers_is_pinned(spacing, steps, eta):
    """diffusers' DDIM step from timestep t goes to alphabar at t - K // S (``prev_timestep``), not to the next
    entry of its list; with uneven spacing the two differ. diffusers equals sdekit's DDIM step (ddim_coefficients,
    Song et al. eq. 12) from level t + 1 to level t - K // S + 1 (level 0 below 0) with the next model call at the
    next entry, to 1e-12 in float64; sdekit on the listed levels differs from it by far more than rounding."""
    xd, ours, schedule, ts, zs = _ddim("linear", spacing, steps, eta, torch.float64)
    model = model_for(schedule)
    x = Z0.clone()
    for j, t in enumerate(ts):
        k, k_prev = int(t) + 1, max(int(t) - K // steps + 1, 0)
        a, s = schedule.level(k)
        x0, eps = model.predict(x, a, s)
        c_x0, c_eps, std = ddim_coefficients(schedule.alpha_bar(k), schedule.alpha_bar(k_prev), eta)
        x = c_x0 * x0 + c_eps * eps + std * zs[j].double()
    assert maxdiff(x, xd) <= f64_tol(x), f"diffusers vs its variant by hand: {maxdiff(x, xd):.3g}"
    listed_prev = np.append(ts[1:], -1)
    assert np.any(ts - K // steps != listed_prev)
    assert maxdiff(ours.x, xd) > 1e5 * f64_tol(x), f"sdekit equals diffusers' variant: {maxdiff(ours.x, xd):.3g}"


# ---------------------------------------------------------------- DPM-Solver


def _dpm_scheduler(cls, beta_schedule: str, steps: int, dtype: torch.dtype, **config):
    """A DPM-Solver scheduler after set_timesteps, its schedule and its sigma grid (float64 tables for a float64
    run: sigma_edm of the float64 alphabar at the timesteps, then 0 or sigma_min)."""
    sch = scheduler(cls, beta_schedule=beta_schedule, **config)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    sig = sch.sigmas.numpy().astype(np.float64)
    if dtype == torch.float64:
        table = sigma_edm(schedule)
        last = 0.0 if sch.config.final_sigmas_type == "zero" else table[0]
        sig = np.append(table[sch.timesteps.numpy()], last)
        sch.sigmas = torch.from_numpy(sig.copy())
    return sch, schedule, sig


MULTISTEP = [  # (algorithm, order, final_sigmas_type, lower_order_final, steps)
    ("dpmsolver++", 2, "zero", True, 10),
    ("dpmsolver++", 2, "sigma_min", True, 10),
    ("dpmsolver++", 2, "sigma_min", False, 10),
    ("dpmsolver++", 2, "sigma_min", True, 20),
    ("dpmsolver++", 1, "zero", True, 10),
    ("dpmsolver", 2, "sigma_min", True, 10),
    ("dpmsolver", 2, "sigma_min", False, 12),
    ("sde-dpmsolver++", 2, "zero", True, 10),
    ("sde-dpmsolver++", 2, "sigma_min", False, 10),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("algorithm,order,final,lower_order_final,steps", MULTISTEP)
def test_dpm_solver_multistep_equals_diffusers(algorithm, order, final, lower_order_final, steps, beta_schedule,
                                               dtype):
    """DPMSolverMultistepScheduler = dpm_solver_sample(method="multistep") on diffusers' grid of (alpha, sigma) pairs
    (a final sigma 0 is the pair (1, 0), the final denoise) with sdekit's default lower-order-final rule, which is
    diffusers' (last step first order when the grid ends at 0, or lower_order_final with < 15 steps); the SDE variant
    with diffusers' normals passed as variance_noise. diffusers casts the sample to float32 in every step, so the
    float64 run is compared at the float32 bound."""
    sch, schedule, sig = _dpm_scheduler(diffusers.DPMSolverMultistepScheduler, beta_schedule, steps, dtype,
                                        algorithm_type=algorithm, solver_order=order, final_sigmas_type=final,
                                        lower_order_final=lower_order_final)
    zs = float32_normals(steps, 11)
    xd, _ = run_diffusers(sch, dtype, Z0, lambda j: {"variance_noise": zs[j]})
    lof = None if final == "zero" else (lower_order_final and steps < 15)
    ours, seen = sdekit_timesteps(lambda: dpm_solver_sample(
        model_for(schedule), vp_grid(sig), Z0, order=order, method="multistep", algorithm=algorithm,
        lower_order_final=lof, noise=lambda i, like: zs[i].double()))
    assert ours.nfe == steps
    if dtype == torch.float64:
        assert seen == [float(t) for t in sch.timesteps], "the network's timesteps differ from diffusers'"
    assert maxdiff(ours.x, xd) <= f32_tol(steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


def test_dpm_solver_multistep_karras_sigmas_condition_on_rounded_timesteps():
    """With use_karras_sigmas diffusers conditions the network on round(t(sigma)): from_diffusers with
    timestep_rounding="nearest" receives the same timesteps and gives the same samples; the default fractional
    timesteps differ from them by up to ~0.5 and the samples by more than float32 rounding."""
    sch, schedule, sig = _dpm_scheduler(diffusers.DPMSolverMultistepScheduler, "linear", 10, torch.float32,
                                        use_karras_sigmas=True)  # its float32 Karras grid, not at the levels
    NET64.timesteps.clear()
    xd, _ = run_diffusers(sch, torch.float64, Z0)
    theirs = list(NET64.timesteps)
    results = {}
    for rounding in ("nearest", "interpolate"):
        model = from_diffusers(NET64, schedule=schedule, prediction="eps", timestep_rounding=rounding)
        results[rounding] = sdekit_timesteps(lambda m=model: dpm_solver_sample(
            m, vp_grid(sig), Z0, method="multistep", algorithm="dpmsolver++"))
    (near, near_t), (interp, interp_t) = results["nearest"], results["interpolate"]
    assert near_t == theirs
    assert maxdiff(near.x, xd) <= f32_tol(10, near.x)
    assert max(abs(a - b) for a, b in zip(interp_t, theirs)) > 0.1
    assert maxdiff(interp.x, xd) > 10 * f32_tol(10, interp.x)


def single_steps(order_list: list[int]) -> list[int]:
    """diffusers' singlestep ``order_list`` (one entry per timestep: 1, 2, 3 within a step) as sdekit's ``orders``
    (one entry per step: its order)."""
    out: list[int] = []
    for o in order_list:
        if o == 1:
            out.append(1)
        else:
            out[-1] += 1
    return out


SINGLESTEP = [  # (algorithm, order, final_sigmas_type, lower_order_final, steps)
    ("dpmsolver++", 1, "zero", True, 10),
    ("dpmsolver++", 2, "zero", True, 10),
    ("dpmsolver++", 2, "zero", True, 9),
    ("dpmsolver++", 2, "sigma_min", False, 10),
    ("dpmsolver", 1, "sigma_min", True, 10),
    ("dpmsolver", 2, "sigma_min", True, 10),
    ("dpmsolver", 2, "sigma_min", False, 12),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("algorithm,order,final,lower_order_final,steps", SINGLESTEP)
def test_dpm_solver_singlestep_equals_diffusers(algorithm, order, final, lower_order_final, steps, beta_schedule,
                                                dtype):
    """DPMSolverSinglestepScheduler orders 1 and 2 = dpm_solver_sample(method="singlestep", orders=...) on
    diffusers' grid: its order_list (Lu et al.'s order schedule with diffusers' lower-order-final rule) read as
    steps whose intermediate points are the grid points inside them (general r1 = h_0 / h)."""
    sch, schedule, sig = _dpm_scheduler(diffusers.DPMSolverSinglestepScheduler, beta_schedule, steps, dtype,
                                        algorithm_type=algorithm, solver_order=order, final_sigmas_type=final,
                                        lower_order_final=lower_order_final)
    NET64.timesteps.clear()
    xd, _ = run_diffusers(sch, dtype, Z0)
    theirs = list(NET64.timesteps)
    orders = single_steps(sch.order_list)
    ours, seen = sdekit_timesteps(lambda: dpm_solver_sample(
        model_for(schedule), vp_grid(sig), Z0, method="singlestep", algorithm=algorithm, orders=orders))
    assert ours.nfe == steps == sum(orders)
    if dtype == torch.float64:
        assert seen == theirs, "the network's timesteps differ from diffusers'"
    assert maxdiff(ours.x, xd) <= tol(dtype, steps, ours.x), f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


class _Recorder:
    """A score that records the points (x, alpha, sigma) it is called at."""

    def __init__(self, model: DiffusionNetwork) -> None:
        self.model, self.points = model, []

    def __call__(self, x, alpha, sigma):
        self.points.append((x, alpha, sigma))
        return self.model(x, alpha, sigma)


@pytest.mark.parametrize("algorithm", ["dpmsolver++", "dpmsolver"])
def test_dpm_solver_singlestep_third_order_of_diffusers_is_pinned(algorithm):
    """One third-order step of diffusers (3 timesteps, order_list [1, 2, 3], float64) over the grid s, s1, s2, t
    (r1 = h_1 / h, r2 = h_2 / h; psi = expm1(-h), phi = expm1(h), psi2 / phi2 at r2 h):

    - its first two sub-steps are sdekit's steps of orders 1 and 2 (u1, and u2' = DPM-Solver-2 from s to s2 through
      s1: its second-order midpoint update);
    - sdekit's order-3 step evaluates the model at Lu et al.'s u2 = u2' + Delta, Delta = alpha_s2 (r2 / r1)
      (psi2 / (r2 h) + 1 + psi2 / 2) (x0(u1) - x0_s) for data prediction, -sigma_s2 (r2 / r1) (phi2 / (r2 h) - 1
      - phi2 / 2) (eps(u1) - eps_s) for noise prediction;
    - the final updates differ by alpha_t / r2 (psi / h + 1) (x0(u2') - x0(u2)), resp.
      -sigma_t / r2 (phi / h - 1) (eps(u2') - eps(u2)).
    """
    sch, schedule, sig = _dpm_scheduler(diffusers.DPMSolverSinglestepScheduler, "linear", 3, torch.float64,
                                        algorithm_type=algorithm, solver_order=3, final_sigmas_type="sigma_min",
                                        lower_order_final=False)
    assert list(sch.order_list) == [1, 2, 3]
    xd, (u1_d, u2_d, _) = run_diffusers(sch, torch.float64, Z0)
    grid = vp_grid(sig)
    model = model_for(schedule)
    plus = algorithm == "dpmsolver++"
    u1 = dpm_solver_sample(model, grid[:2], Z0, method="singlestep", algorithm=algorithm, orders=[1]).x
    u2_mid = dpm_solver_sample(model, grid[:3], Z0, method="singlestep", algorithm=algorithm, orders=[2]).x
    assert maxdiff(u1, u1_d) <= f64_tol(u1) and maxdiff(u2_mid, u2_d) <= f64_tol(u2_mid)
    rec = _Recorder(model)
    ours = dpm_solver_sample(rec, grid, Z0, method="singlestep", algorithm=algorithm, orders=[3])
    assert len(rec.points) == 3
    u2 = rec.points[2][0]
    lam = np.log(grid[:, 0]) - np.log(grid[:, 1])
    h = lam[3] - lam[0]
    r1, r2 = (lam[1] - lam[0]) / h, (lam[2] - lam[0]) / h
    (a_s, s_s), (a1, s1), (a2, s2), (a_t, s_t) = grid

    def pred(x, a, s):  # the model's x0hat (data prediction) or epshat (noise prediction)
        return model.predict(x, float(a), float(s))[0 if plus else 1]

    d1 = pred(u1, a1, s1) - pred(Z0, a_s, s_s)
    if plus:
        psi2, psi = math.expm1(-r2 * h), math.expm1(-h)
        delta = a2 * (r2 / r1) * (psi2 / (r2 * h) + 1.0 + psi2 / 2.0) * d1
        final_gap = a_t / r2 * (psi / h + 1.0) * (pred(u2_mid, a2, s2) - pred(u2, a2, s2))
    else:
        phi2, phi = math.expm1(r2 * h), math.expm1(h)
        delta = -s2 * (r2 / r1) * (phi2 / (r2 * h) - 1.0 - phi2 / 2.0) * d1
        final_gap = -s_t / r2 * (phi / h - 1.0) * (pred(u2_mid, a2, s2) - pred(u2, a2, s2))
    assert maxdiff(u2 - u2_mid, delta) <= f64_tol(u2), f"u2 - u2' vs Delta: {maxdiff(u2 - u2_mid, delta):.3g}"
    assert maxdiff(xd - ours.x, final_gap) <= f64_tol(xd)
    assert maxdiff(xd, ours.x) > 1e6 * f64_tol(xd)


# ---------------------------------------------------------------- Euler and Heun (EDM, Karras et al. 2022)


def _edm_scheduler(cls, beta_schedule: str, spacing: str, steps: int, dtype: torch.dtype):
    """An Euler / Heun scheduler after set_timesteps and sdekit's sigma grid (sigma_0 > ... > sigma_{S-1} > 0 = its
    ``sigmas`` without Heun's repeats); float64 tables (sigma_edm of the float64 alphabar interpolated at the
    timesteps, as diffusers does) for a float64 run."""
    sch = scheduler(cls, beta_schedule=beta_schedule, timestep_spacing=spacing)
    sch.set_timesteps(steps)
    schedule = schedule_from_scheduler(sch)
    heun = cls is diffusers.HeunDiscreteScheduler
    ts = sch.timesteps.numpy().astype(np.float64)
    sig = sch.sigmas.numpy().astype(np.float64)
    if heun:
        ts, sig = np.append(ts[:1], ts[1::2]), np.append(sig[:1], sig[1::2])
    if dtype == torch.float64:
        sig = np.append(np.interp(ts, np.arange(K), sigma_edm(schedule)), 0.0)
        full = np.concatenate([sig[:1], np.repeat(sig[1:-1], 2), sig[-1:]]) if heun else sig
        sch.sigmas = torch.from_numpy(full.copy())
    return sch, schedule, sig


EDM_CASES = [("linspace", 10), ("leading", 10), ("trailing", 7)]  # integer timesteps (linspace: 999 / 9 = 111)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("beta_schedule", SCHEDULES)
@pytest.mark.parametrize("spacing,steps", EDM_CASES)
@pytest.mark.parametrize("method", ["euler", "heun"])
def test_euler_heun_equal_diffusers(method, spacing, steps, beta_schedule, dtype):
    """EulerDiscreteScheduler / HeunDiscreteScheduler = edm_sample (Karras et al. Algorithm 1) on diffusers' sigma
    grid sigma_edm = sqrt((1 - alphabar) / alphabar) (ending at 0), the model called at (1, sigma) and answered by
    the VP network at the level of the same SNR, x / sqrt(sigma^2 + 1) (diffusers' scale_model_input), conditioned on
    the same timestep. Euler casts the sample to float32 in every step: its float64 run is compared at the float32
    bound."""
    cls = diffusers.EulerDiscreteScheduler if method == "euler" else diffusers.HeunDiscreteScheduler
    sch, schedule, sig = _edm_scheduler(cls, beta_schedule, spacing, steps, dtype)
    x_init = Z0 * float(sig[0])
    NET64.timesteps.clear()
    xd, _ = run_diffusers(sch, dtype, x_init)
    theirs = list(NET64.timesteps)
    ours, seen = sdekit_timesteps(lambda: edm_sample(model_for(schedule), sig, x_init, method=method))
    assert ours.nfe == len(sch.timesteps) == (steps if method == "euler" else 2 * steps - 1)
    if dtype == torch.float64:
        assert seen == theirs, "the network's timesteps differ from diffusers'"
    bound = f64_tol(ours.x) if dtype == torch.float64 and method == "heun" else f32_tol(ours.nfe, ours.x)
    assert maxdiff(ours.x, xd) <= bound, f"max |sdekit - diffusers| = {maxdiff(ours.x, xd):.3g}"


def test_heun_fractional_linspace_timesteps_follow_diffusers_interpolation():
    """'linspace' with 7 steps gives fractional timesteps (166.5, 499.5, 832.5) and diffusers interpolates sigma
    linearly in sigma between levels. from_diffusers interpolates log sigma, so the network receives timesteps that
    differ by 1e-5 .. 1e-2 (samples agree only loosely); a DiffusionNetwork whose conditioning inverts diffusers'
    linear interpolation (from_diffusers(..., timestep_interpolation="linear"), or a conditioning callable) receives
    diffusers' timesteps and agrees to 1e-12 (float64)."""
    sch, schedule, sig = _edm_scheduler(diffusers.HeunDiscreteScheduler, "linear", "linspace", 7, torch.float64)
    assert np.any(sch.timesteps.numpy() % 1 != 0)
    x_init = Z0 * float(sig[0])
    NET64.timesteps.clear()
    xd, _ = run_diffusers(sch, torch.float64, x_init)
    theirs = np.array(NET64.timesteps)
    table = sigma_edm(schedule)

    def linear_in_sigma(a_star, s_star):  # the inverse of np.interp(t, arange(K), table)
        return float(np.interp(s_star / a_star, table, np.arange(K, dtype=np.float64)))

    by_hand = DiffusionNetwork(NET64, prediction="eps", kernel=schedule, conditioning=linear_in_sigma, output="sample")
    exact_model = from_diffusers(NET64, schedule=schedule, prediction="eps", timestep_interpolation="linear")
    default, seen_default = sdekit_timesteps(lambda: edm_sample(model_for(schedule), sig, x_init, method="heun"))
    exact, seen_exact = sdekit_timesteps(lambda: edm_sample(exact_model, sig, x_init, method="heun"))
    assert np.max(np.abs(np.array(seen_exact) - theirs)) <= 1e-9
    assert maxdiff(exact.x, xd) <= f64_tol(xd)
    hand, _ = sdekit_timesteps(lambda: edm_sample(by_hand, sig, x_init, method="heun"))
    assert maxdiff(hand.x, exact.x) <= f64_tol(xd)
    gap = np.abs(np.array(seen_default) - theirs)
    assert 1e-5 < gap.max() < 1e-2
    assert maxdiff(default.x, xd) > 1e3 * f64_tol(xd)


def test_euler_churn_of_diffusers_reuses_the_pre_churn_output():
    """EulerDiscreteScheduler.step(s_churn=1) adds the churn noise after the network was called at (x_i, sigma_i)
    and steps with that output: x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) eps(x_i; sigma_i). It equals edm_sample
    with a score answering at (x_hat, sigma_hat) with -eps(x_i; sigma_i) / sigma_hat (same normals), to float32
    rounding; edm_sample itself follows Karras et al. Algorithm 2 (D evaluated at x_hat, sigma_hat) and differs by
    O(1) here."""
    sch, schedule, sig = _edm_scheduler(diffusers.EulerDiscreteScheduler, "linear", "linspace", 10, torch.float64)
    x_init = Z0 * float(sig[0])
    gen = torch.Generator().manual_seed(9)
    xd, _ = run_diffusers(sch, torch.float64, x_init, lambda j: {"s_churn": 1.0, "generator": gen})
    g = torch.Generator().manual_seed(9)
    zs = [torch.randn((N,) + SHAPE, generator=g, dtype=torch.float64) for _ in range(10)]
    model = model_for(schedule)
    karras = edm_sample(model, sig, x_init, method="euler", s_churn=1.0, noise=lambda i, like: zs[i])
    pre = {"x": x_init, "step": 0}

    def stale(x_hat, alpha, sigma_hat):
        return -model.eps(pre["x"], 1.0, float(sig[pre["step"]])) / sigma_hat

    def remember(info):
        pre["x"], pre["step"] = info.x, info.step + 1

    variant = edm_sample(stale, sig, x_init, method="euler", s_churn=1.0, noise=lambda i, like: zs[i],
                         callback=remember)
    assert maxdiff(variant.x, xd) <= f32_tol(10, xd), f"diffusers vs its variant: {maxdiff(variant.x, xd):.3g}"
    assert maxdiff(karras.x, xd) > 1e3 * f32_tol(10, xd)


# ---------------------------------------------------------------- the comparisons can fail


@pytest.mark.parametrize("case", ["ddpm-variance", "dpm-lower-order-final", "heun-as-euler"])
def test_a_planted_difference_exceeds_the_float32_bound(case):
    """Small algorithmic differences are far outside the float32 bound: DDPM with the other variance, DPM-Solver++(2M)
    without the lower-order final step, and Euler where diffusers ran Heun."""
    if case == "ddpm-variance":
        sch = scheduler(diffusers.DDPMScheduler, variance_type="fixed_small", clip_sample=False)
        sch.set_timesteps(50)
        schedule = schedule_from_scheduler(sch)
        gen = torch.Generator().manual_seed(5)
        xd, _ = run_diffusers(sch, torch.float32, Z0, lambda j: {"generator": gen})
        g = torch.Generator().manual_seed(5)
        draws = [torch.randn((N,) + SHAPE, generator=g).double() for _ in range(49)]
        ours = ddpm_sample(model_for(schedule), schedule.respaced(sch.timesteps.numpy()[::-1] + 1), Z0,
                           variance="beta", noise=lambda k, like: draws[50 - k]).x
        nfe = 50
    elif case == "dpm-lower-order-final":
        sch, schedule, sig = _dpm_scheduler(diffusers.DPMSolverMultistepScheduler, "linear", 10, torch.float32,
                                            final_sigmas_type="sigma_min")
        xd, _ = run_diffusers(sch, torch.float32, Z0)
        ours = dpm_solver_sample(model_for(schedule), vp_grid(sig), Z0, method="multistep", algorithm="dpmsolver++",
                                 lower_order_final=False).x
        nfe = 10
    else:
        sch, schedule, sig = _edm_scheduler(diffusers.HeunDiscreteScheduler, "linear", "linspace", 10, torch.float32)
        xd, _ = run_diffusers(sch, torch.float32, Z0 * float(sig[0]))
        ours = edm_sample(model_for(schedule), sig, Z0 * float(sig[0]), method="euler").x
        nfe = 19
    assert maxdiff(ours, xd) > 10 * f32_tol(nfe, ours)
