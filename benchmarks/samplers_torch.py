#!/usr/bin/env python
"""Sampler throughput on torch (CPU): sdekit's samplers against the same sampler in diffusers and in k-diffusion.

One eps-prediction network (by default a synthetic (n, 3, 32, 32) conv net with a sinusoidal timestep embedding,
fixed-seed init, float32) on a diffusers schedule (scaled_linear, K = 1000, timestep_spacing 'trailing'), sampled
with 20 steps by

  ddim          DDIM, eta = 0 (Song et al. 2021, eq. 12)            sdekit ddim_sample | DDIMScheduler |
                                                                    k-diffusion sample_euler (the same map)
  dpmpp_2m      DPM-Solver++(2M), final step to sigma = 0           dpm_solver_sample | DPMSolverMultistepScheduler |
                (Lu et al. 2022b)                                   sample_dpmpp_2m
  euler         Euler on diffusers' Euler sigmas (Karras et al.     edm_sample euler | EulerDiscreteScheduler |
                2022, Algorithm 1)                                  sample_euler
  heun          Heun (2nd order, Euler onto sigma = 0)              edm_sample heun | HeunDiscreteScheduler |
                                                                    sample_heun
  euler_karras  Euler on Karras sigmas (Karras et al. 2022, eq. 5)  edm_sample euler | Euler...(use_karras_sigmas)
                                                                    | sample_euler

from the same start, at batch sizes n = 1, 8, 64, 256. Every figure is the median of interleaved rounds after a
warm-up (at least 5, up to 25 while a batch size has taken under 30 s); `floor` is the network alone (NFE forward
passes at the same batch, timed in the same rounds), so ``(t - floor) / steps`` is a library's overhead per sampler
step. The outputs of the three libraries are compared
(max abs difference; float32 rounding is expected).

k-diffusion is not a dependency: only ``k_diffusion/sampling.py`` is loaded from its wheel (``--k-diffusion-wheel``,
default /tmp/dl/k_diffusion-0.1.1.post1-py3-none-any.whl) inside a stub package whose ``utils`` holds the one
helper it uses (`append_dims`); the eps-network's denoiser (k-diffusion's DiscreteEpsDDPMDenoiser convention) is
`KDiffusionEpsDenoiser` below. Without the wheel the k-diffusion columns are skipped with a note.

Another network plugs in through `NetworkCase` (a diffusers-style eps network ``unet(x, timestep)`` returning
``.sample`` or a tensor, its example shape and its diffusers beta schedule): ``doc = run_benchmark(case, [1, 8]);
doc["command"] = "..."; write_results(doc, Path("benchmarks/results"), "samplers_torch_digits")``.

    python benchmarks/samplers_torch.py                # full run: n = 1, 8, 64, 256 (about 10 min on 1 core)
    python benchmarks/samplers_torch.py --quick        # n = 1, 8: a smoke test (about a minute)
    python benchmarks/samplers_torch.py --profile      # also cProfile sdekit's samplers at n = 1
    python benchmarks/samplers_torch.py --batches 1 8 --repeats 3 --threads 1 --out DIR
    python benchmarks/samplers_torch.py --replot       # rewrite the .md / .png from results/samplers_torch.json
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.util
import io
import json
import math
import os
import pstats
import statistics
import sys
import time
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

from bench_timing import busy_jiffies, timed  # noqa: E402

from sdekit.diffusion.networks import from_diffusers, schedule_from_scheduler  # noqa: E402
from sdekit.diffusion.samplers.ddim import ddim_sample  # noqa: E402
from sdekit.diffusion.samplers.dpm_solver import dpm_solver_sample  # noqa: E402
from sdekit.diffusion.samplers.edm import edm_sample  # noqa: E402
from sdekit.diffusion.samplers.score_calls import CHECK_EVERY, ScoreCalls  # noqa: E402
from sdekit.diffusion.samplers.sigma_grids import karras_sigmas, pairs_from_schedule  # noqa: E402
from sdekit.diffusion.samplers.timestep_spacing import euler_sigmas, timestep_levels  # noqa: E402
from sdekit.validate.provenance import git_commit, machine, package_versions  # noqa: E402

DEFAULT_WHEEL = "/tmp/dl/k_diffusion-0.1.1.post1-py3-none-any.whl"
SAMPLERS = ("ddim", "dpmpp_2m", "euler", "heun", "euler_karras")
IMPLS = ("sdekit", "diffusers", "k_diffusion")
SAMPLER_NAMES = {"ddim": "DDIM (eta 0)", "dpmpp_2m": "DPM-Solver++(2M)", "euler": "Euler", "heun": "Heun",
                 "euler_karras": "Euler, Karras sigmas"}
SPACING = "trailing"  # integer timesteps for every scheduler at K = 1000, 20 steps (diffusers' and sdekit's agree)


# ------------------------------------------------------------------------------------------ the network


@dataclass
class UNetOutput:
    """diffusers' UNet2DOutput: the prediction is ``.sample``."""

    sample: torch.Tensor


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps t (n,) -> (n, dim): [cos(t w_j), sin(t w_j)] with
    w_j = max_period^(-j / (dim / 2)) (Vaswani et al. 2017, section 3.5; Ho et al. 2020, appendix B)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class SyntheticEpsNet(nn.Module):
    """A small eps-prediction conv net for (n, C, H, W) called as diffusers' UNets are, ``net(x, timestep)`` with a
    number, a 0-d or an (n,) timestep, returning `UNetOutput`. conv_in -> ``blocks`` residual blocks (GroupNorm,
    SiLU, 3x3 conv, + projected timestep embedding, GroupNorm, SiLU, 3x3 conv) -> GroupNorm, SiLU, conv_out.
    Weights from ``torch.manual_seed(seed)`` (untrained: only the cost of a forward pass matters here)."""

    def __init__(self, channels: int = 3, width: int = 32, blocks: int = 2, emb_dim: int = 64, seed: int = 0) -> None:
        super().__init__()
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, 4 * width), nn.SiLU(), nn.Linear(4 * width, 4 * width))
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(nn.ModuleDict({
                "norm1": nn.GroupNorm(8, width), "conv1": nn.Conv2d(width, width, 3, padding=1),
                "emb": nn.Linear(4 * width, width),
                "norm2": nn.GroupNorm(8, width), "conv2": nn.Conv2d(width, width, 3, padding=1)}))
        self.norm_out = nn.GroupNorm(8, width)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)
        torch.random.set_rng_state(gen_state)

    def forward(self, x: torch.Tensor, timestep: Any) -> UNetOutput:
        t = torch.as_tensor(timestep, device=x.device).reshape(-1).to(torch.float32)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim))
        h = self.conv_in(x)
        for b in self.blocks:
            r = b["conv1"](nn.functional.silu(b["norm1"](h))) + b["emb"](nn.functional.silu(emb))[:, :, None, None]
            h = h + b["conv2"](nn.functional.silu(b["norm2"](r)))
        return UNetOutput(self.conv_out(nn.functional.silu(self.norm_out(h))))


@dataclass
class NetworkCase:
    """A network to benchmark: a diffusers-style eps network ``unet(x, timestep)`` (output ``.sample`` when
    output="sample", the tensor itself when output=None), the shape of one example, and its diffusers training
    schedule (DDIMScheduler keyword arguments: num_train_timesteps, beta_start, beta_end, beta_schedule)."""

    name: str
    unet: Callable[..., Any]
    shape: tuple[int, ...]
    schedule: dict[str, Any] = field(default_factory=lambda: {
        "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"})
    output: str | None = "sample"
    description: str = ""


def synthetic_case(width: int = 16, blocks: int = 2, seed: int = 0) -> NetworkCase:
    """The default case: `SyntheticEpsNet` on (3, 32, 32) images, SD's scaled_linear schedule, K = 1000."""
    net = SyntheticEpsNet(3, width, blocks, seed=seed).eval()
    n_params = sum(p.numel() for p in net.parameters())
    return NetworkCase("synthetic (3, 32, 32)", net, (3, 32, 32),
                       description=f"SyntheticEpsNet(width={width}, blocks={blocks}, seed={seed}): "
                                   f"{n_params} parameters, float32")


class DigitsUNet(nn.Module):
    """The trained digits eps-network of examples/digits.py (ConvScoreNet on (1, 8, 8), conditioned on lambda =
    log(alpha / sigma) of the VP SDE) as a diffusers-style ``unet(x, timestep)`` on the DDPM linear schedule: the
    timestep's lambda is read from the schedule (linear interpolation between levels for a fractional timestep).
    Both kernels are VP, so x needs no rescaling."""

    def __init__(self, net: nn.Module, lambdas: np.ndarray) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("lambdas", torch.as_tensor(lambdas, dtype=torch.float32))

    def forward(self, x: torch.Tensor, timestep: Any) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        lo = t.floor().clamp(0, self.lambdas.shape[0] - 2).long()
        lam = torch.lerp(self.lambdas[lo], self.lambdas[lo + 1], t - lo)
        return self.net(x, lam)


def digits_case() -> NetworkCase:
    """The digits model (examples/digits.py, trained or loaded from its cache) on (1, 8, 8), DDPM's linear schedule
    (K = 1000, 1e-4 .. 0.02: the discretisation of the VP SDE it was trained on)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import digits  # noqa: PLC0415

    trained = digits.train(digits.load_split(), digits.FULL, digits.default_cache_dir())
    abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))
    lambdas = 0.5 * (np.log(abar) - np.log1p(-abar))
    unet = DigitsUNet(trained.model.net.float().eval(), lambdas)
    n_params = sum(p.numel() for p in unet.net.parameters())
    return NetworkCase("digits (1, 8, 8)", unet, (1, 8, 8),
                       schedule={"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                                 "beta_schedule": "linear"},
                       output=None, description=f"examples/digits.py ConvScoreNet ({n_params} parameters, "
                                                f"{'cached' if trained.cached else 'trained'} weights), float32")


def _prediction(case: NetworkCase, out: Any) -> torch.Tensor:
    return out if case.output is None else getattr(out, case.output)


# ------------------------------------------------------------------------------------------ k-diffusion


def load_k_diffusion_sampling(wheel: str | Path) -> types.ModuleType | None:
    """k-diffusion's ``sampling.py`` read from its wheel (no install) as ``_kd_stub.sampling``, with a stub
    ``_kd_stub.utils`` holding the helper it calls; None when the wheel is absent."""
    path = Path(wheel)
    if not path.is_file():
        return None
    with zipfile.ZipFile(path) as zf:
        source = zf.read("k_diffusion/sampling.py").decode()
    pkg = types.ModuleType("_kd_stub")
    pkg.__path__ = []
    utils = types.ModuleType("_kd_stub.utils")

    def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
        """x with trailing singleton dimensions up to target_dims."""
        return x.reshape(tuple(x.shape) + (1,) * (target_dims - x.ndim))

    utils.append_dims = append_dims
    pkg.utils = utils
    sys.modules["_kd_stub"], sys.modules["_kd_stub.utils"] = pkg, utils
    spec = importlib.util.spec_from_loader("_kd_stub.sampling", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "_kd_stub"
    sys.modules["_kd_stub.sampling"] = module
    exec(compile(source, f"{path}!k_diffusion/sampling.py", "exec"), module.__dict__)  # noqa: S102
    pkg.sampling = module
    return module


class KDiffusionEpsDenoiser:
    """k-diffusion's convention for a discrete-time eps network (its DiscreteEpsDDPMDenoiser): D(x; sigma) =
    x - sigma eps(x / sqrt(sigma^2 + 1), t(sigma)) for x = x_0 + sigma n, with t(sigma) the fractional timestep by
    linear interpolation of log sigma in the schedule's table (Crowson's ``sigma_to_t``). Written here."""

    def __init__(self, case: NetworkCase, sigmas_table: torch.Tensor) -> None:
        self.case = case
        self.log_sigmas = sigmas_table.log()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        ls, table = sigma.log(), self.log_sigmas
        lo = (torch.searchsorted(table, ls, right=True) - 1).clamp(0, table.shape[0] - 2)
        w = ((ls - table[lo]) / (table[lo + 1] - table[lo])).clamp(0, 1)
        return lo.to(ls.dtype) + w

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.reshape((-1,) + (1,) * (x.ndim - 1))
        eps = _prediction(self.case, self.case.unet(x / torch.sqrt(s * s + 1.0), self.sigma_to_t(sigma)))
        return x - s * eps


# ------------------------------------------------------------------------------------------ the samplers


@dataclass
class SamplerSetup:
    """One sampler on one case: its grid, the start's scale (VP samplers start from N(0, I); the Euler family from
    x_T / alpha_T, as diffusers' init_noise_sigma does), the NFE and the three runners x_start -> x_0."""

    name: str
    nfe: int
    start_scale: float
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]]


def _diffusers_loop(case: NetworkCase, scheduler: Any, steps: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The usual pipeline loop: set_timesteps, then scale_model_input -> unet -> scheduler.step."""

    def run(x: torch.Tensor) -> torch.Tensor:
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            eps = _prediction(case, case.unet(scheduler.scale_model_input(x, t), t))
            x = scheduler.step(eps, t, x).prev_sample
        return x

    return run


def sampler_setups(case: NetworkCase, steps: int, kd: types.ModuleType | None) -> dict[str, SamplerSetup]:
    """Every sampler of `SAMPLERS` on ``case`` with ``steps`` steps: sdekit, diffusers and (with ``kd``)
    k-diffusion runners on the same schedule, timesteps and noise levels."""
    import diffusers

    cfg = dict(case.schedule, prediction_type="epsilon", timestep_spacing=SPACING)
    ddim = diffusers.DDIMScheduler(**cfg, clip_sample=False, set_alpha_to_one=True, steps_offset=0)
    dpm = diffusers.DPMSolverMultistepScheduler(**cfg, algorithm_type="dpmsolver++", solver_order=2,
                                                final_sigmas_type="zero", lower_order_final=True)
    euler = diffusers.EulerDiscreteScheduler(**cfg)
    heun = diffusers.HeunDiscreteScheduler(**cfg)
    karras = diffusers.EulerDiscreteScheduler(**cfg, use_karras_sigmas=True)
    schedule = schedule_from_scheduler(ddim)  # the float32 alphas_cumprod every library uses
    model = from_diffusers(case.unet, ddim, output=case.output)

    def ddim_levels():
        return timestep_levels(schedule, steps, SPACING, convention="ddim")

    def euler_grid():
        return euler_sigmas(schedule, steps, SPACING)

    def karras_grid():
        g = euler_sigmas(schedule, steps, SPACING)  # diffusers' Karras range: its own sigmas' ends
        return karras_sigmas(steps, float(g[-2]), float(g[0]))

    sdk = {
        "ddim": lambda x: ddim_sample(model, schedule, x, indices=ddim_levels()).x,
        "dpmpp_2m": lambda x: dpm_solver_sample(model, pairs_from_schedule(schedule, np.r_[0, ddim_levels()]), x,
                                                method="multistep", algorithm="dpmsolver++").x,
        "euler": lambda x: edm_sample(model, euler_grid(), x, method="euler").x,
        "heun": lambda x: edm_sample(model, euler_grid(), x, method="heun").x,
        "euler_karras": lambda x: edm_sample(model, karras_grid(), x, method="euler").x,
    }
    dif = {"ddim": _diffusers_loop(case, ddim, steps), "dpmpp_2m": _diffusers_loop(case, dpm, steps),
           "euler": _diffusers_loop(case, euler, steps), "heun": _diffusers_loop(case, heun, steps),
           "euler_karras": _diffusers_loop(case, karras, steps)}
    grids = {"ddim": euler_grid(), "dpmpp_2m": euler_grid(), "euler": euler_grid(), "heun": euler_grid(),
             "euler_karras": karras_grid()}
    s0 = float(grids["euler"][0])
    vp_scale = math.sqrt(1.0 + s0 * s0)  # x_ve = x_vp / alpha_T for k-diffusion's DDIM / DPM-Solver start
    starts = {"ddim": 1.0, "dpmpp_2m": 1.0, "euler": vp_scale, "heun": vp_scale,
              "euler_karras": math.sqrt(1.0 + float(grids["euler_karras"][0]) ** 2)}
    nfes = {"ddim": steps, "dpmpp_2m": steps, "euler": steps, "heun": 2 * steps - 1, "euler_karras": steps}
    kdr: dict[str, Callable] = {}
    if kd is not None:
        den = KDiffusionEpsDenoiser(case, torch.tensor(schedule.sigmas_edm, dtype=torch.float32))
        fns = {"ddim": kd.sample_euler, "dpmpp_2m": kd.sample_dpmpp_2m, "euler": kd.sample_euler,
               "heun": kd.sample_heun, "euler_karras": kd.sample_euler}
        grid_fn = {"ddim": euler_grid, "dpmpp_2m": euler_grid, "euler": euler_grid, "heun": euler_grid,
                   "euler_karras": karras_grid}
        for name in SAMPLERS:
            pre = vp_scale if starts[name] == 1.0 else 1.0

            def run(x, fn=fns[name], grid=grid_fn[name], pre=pre):
                return fn(den, x * pre, torch.tensor(grid(), dtype=torch.float32), disable=True)

            kdr[name] = run
    out = {}
    for name in SAMPLERS:
        runners = {"sdekit": sdk[name], "diffusers": dif[name]}
        if name in kdr:
            runners["k_diffusion"] = kdr[name]
        out[name] = SamplerSetup(name, nfes[name], starts[name], runners)
    return out


def network_floor(case: NetworkCase, nfe: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network alone: nfe forward passes at x's batch with an (n,) timestep, nothing else."""

    def run(x: torch.Tensor) -> torch.Tensor:
        t = torch.full((x.shape[0],), 500.0)
        out = x
        for _ in range(nfe):
            out = _prediction(case, case.unet(x, t))
        return out

    return run


# ------------------------------------------------------------------------------------------ timing


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def bench_batch(case: NetworkCase, setups: dict[str, SamplerSetup], n: int, repeats: int, seed: int,
                budget_s: float, min_s: float = 0.0, max_rounds: int = 25) -> list[dict]:
    """Every sampler and implementation at batch n: a warm-up (its output checked across libraries), then rounds,
    each running every (sampler, implementation, floor) once in turn; medians. At least ``repeats`` rounds (at
    least 3 once ``budget_s`` seconds are spent), more while under ``min_s`` seconds (up to ``max_rounds``): cheap
    small batches get many rounds, which a shared machine needs."""
    z = torch.randn((n, *case.shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    recs = []
    calls: list[tuple[dict, Callable, torch.Tensor]] = []
    for name, st in setups.items():
        x0 = z * st.start_scale
        outs = {}
        for impl, fn in {**st.runners, "floor": network_floor(case, st.nfe)}.items():
            with torch.no_grad():
                outs[impl] = timed(lambda fn=fn, x0=x0: fn(x0)).run  # warm-up
            rec = {"sampler": name, "impl": impl, "batch": n, "nfe": st.nfe, "seconds": [], "cpu_s": [],
                   "other_cores": []}
            recs.append(rec)
            calls.append((rec, fn, x0))
        scale = float(outs["sdekit"].double().abs().max())
        agree = {"max_abs_x": scale}
        for a, b in (("sdekit", "diffusers"), ("sdekit", "k_diffusion"), ("diffusers", "k_diffusion")):
            if a in outs and b in outs:
                agree[f"{a}_vs_{b}"] = _max_abs(outs[a], outs[b])
        for rec in recs:
            if rec["sampler"] == name:
                rec["agreement"] = agree
    spent = 0.0
    j0, c0, w0 = busy_jiffies(), time.process_time(), time.perf_counter()
    for rep in range(max(repeats, max_rounds)):
        if rep >= repeats and spent >= min_s:
            break
        for rec, fn, x0 in calls:
            with torch.no_grad():
                t = timed(lambda fn=fn, x0=x0: fn(x0))
            rec["seconds"].append(t.wall_s)
            rec["cpu_s"].append(t.cpu_s)
            rec["other_cores"].append(t.other_cores)
            spent += t.wall_s
        if rep + 1 >= 3 and spent > budget_s:  # at least 3 rounds; stop early past the budget
            break
    j1, c1, w1 = busy_jiffies(), time.process_time(), time.perf_counter()
    other = None
    if j0 is not None and j1 is not None:
        other = max(0.0, ((j1 - j0) / os.sysconf("SC_CLK_TCK") - (c1 - c0)) / (w1 - w0))
    for rec in recs:
        rec["batch_other_cores"] = other  # cores other processes kept busy during this batch's timed rounds
        rec["median_s"] = statistics.median(rec["seconds"])
        rec["median_cpu_s"] = statistics.median(rec["cpu_s"])
        rec["min_s"] = min(rec["seconds"])
        rec["repeats"] = len(rec["seconds"])
        busy = [v for v in rec["other_cores"] if v is not None]
        rec["other_cores_median"] = statistics.median(busy) if busy else None
    return recs


def ratios(recs: list[dict], steps: int) -> list[dict]:
    """Per (sampler, batch): ms per batch of each implementation and the floor, sdekit/diffusers,
    sdekit/k-diffusion, sdekit/floor (time ratios: below 1 means sdekit is faster), and every implementation's
    overhead per sampler step (t - floor) / steps in ms; the same from this process's CPU time (``cpu_``), which
    other processes on a shared machine disturb less than the wall clock."""
    rows = []
    keys = dict.fromkeys((r["sampler"], r["batch"]) for r in recs)
    for sampler, n in keys:
        med = {r["impl"]: r["median_s"] for r in recs if r["sampler"] == sampler and r["batch"] == n}
        cpu = {r["impl"]: r["median_cpu_s"] for r in recs if r["sampler"] == sampler and r["batch"] == n}
        any_rec = next(r for r in recs if r["sampler"] == sampler and r["batch"] == n)
        row = {"sampler": sampler, "batch": n, "nfe": any_rec["nfe"], "agreement": any_rec["agreement"],
               "ms": {k: 1e3 * v for k, v in med.items()},
               "overhead_ms_per_step": {k: 1e3 * (v - med["floor"]) / steps for k, v in med.items() if k != "floor"},
               "sdekit_over_diffusers": med["sdekit"] / med["diffusers"],
               "sdekit_over_floor": med["sdekit"] / med["floor"],
               "cpu_ms": {k: 1e3 * v for k, v in cpu.items()},
               "cpu_overhead_ms_per_step": {k: 1e3 * (v - cpu["floor"]) / steps for k, v in cpu.items()
                                            if k != "floor"},
               "cpu_sdekit_over_diffusers": cpu["sdekit"] / cpu["diffusers"]}
        if "k_diffusion" in med:
            row["sdekit_over_k_diffusion"] = med["sdekit"] / med["k_diffusion"]
            row["cpu_sdekit_over_k_diffusion"] = cpu["sdekit"] / cpu["k_diffusion"]
        rows.append(row)
    return rows


def _free_net(x: torch.Tensor, timestep: Any) -> UNetOutput:
    """A network that costs nothing (returns its input): what is left of a call is the wrapper's own work."""
    return UNetOutput(x)


def overhead_breakdown(case: NetworkCase, n: int = 1, rounds: int = 7, calls: int = 200) -> dict[str, float]:
    """Microseconds per call at batch n (median over interleaved rounds) of the pieces of one sdekit model call:
    the network, `from_diffusers`'s wrapper around a network that costs nothing, its timestep lookup
    (DiscreteSchedule.timestep_of_sigma of a float) and the samplers' checked-call record (`ScoreCalls`, amortised
    over CHECK_EVERY calls and its read-back)."""
    import diffusers

    sch = diffusers.DDIMScheduler(**case.schedule)
    schedule = schedule_from_scheduler(sch)
    free = from_diffusers(_free_net, sch)
    x = torch.randn((n, *case.shape), generator=torch.Generator().manual_seed(3))
    t = torch.full((n,), 500.0)

    def checked_identity() -> None:
        rec = ScoreCalls(lambda x, a, s: x)
        for _ in range(CHECK_EVERY):
            rec(x, 1.0, 3.0, 0)
        rec.finish(None)

    items = {"network forward": (lambda: case.unet(x, t), 1),
             "wrapper around a free network": (lambda: free(x, 1.0, 3.0), 1),
             "of which timestep_of_sigma": (lambda: schedule.timestep_of_sigma(3.0), 1),
             "checked-call record (ScoreCalls)": (checked_identity, CHECK_EVERY)}
    res: dict[str, list[float]] = {k: [] for k in items}
    with torch.no_grad():
        for _ in range(rounds):
            for key, (fn, per) in items.items():
                reps = max(1, calls // per)
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                res[key].append((time.perf_counter() - t0) / (reps * per) * 1e6)
    return {k: statistics.median(v) for k, v in res.items()}


def free_network_overhead(case: NetworkCase, steps: int, kd: types.ModuleType | None, n: int = 1,
                          rounds: int = 9, runs: int = 5) -> dict[str, dict[str, float]]:
    """Each library's own cost per sampler step in microseconds at batch n: every sampler of `sampler_setups` run
    with a network that costs nothing (`_free_net`, eps = its input) on ``case``'s shape and schedule; median over
    interleaved rounds of ``runs`` runs each, divided by the steps."""
    free = NetworkCase("free network", _free_net, case.shape, case.schedule, output="sample")
    setups = sampler_setups(free, steps, kd)
    z = torch.randn((n, *case.shape), generator=torch.Generator().manual_seed(5))
    res: dict[str, dict[str, list[float]]] = {s: {impl: [] for impl in st.runners} for s, st in setups.items()}
    with torch.no_grad():
        for st in setups.values():
            for fn in st.runners.values():
                fn(z * st.start_scale)  # warm-up
        for _ in range(rounds):
            for s, st in setups.items():
                x0 = z * st.start_scale
                for impl, fn in st.runners.items():
                    t0 = time.perf_counter()
                    for _ in range(runs):
                        fn(x0)
                    res[s][impl].append((time.perf_counter() - t0) / (runs * steps) * 1e6)
    return {s: {impl: statistics.median(v) for impl, v in d.items()} for s, d in res.items()}


def profile_sdekit(case: NetworkCase, steps: int, kd: types.ModuleType | None, n: int = 1,
                   top: int = 18) -> dict[str, str]:
    """cProfile (by own time) of 100 runs of sdekit's Euler and DPM-Solver++(2M) and of diffusers' Euler at batch n
    with a network that costs nothing (`_free_net`), so that the libraries' own work shows."""
    setups = sampler_setups(NetworkCase("free network", _free_net, case.shape, case.schedule), steps, kd)
    z = torch.randn((n, *case.shape), generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    out = {}
    targets = [(f"sdekit {s}", setups[s].runners["sdekit"], setups[s].start_scale) for s in ("euler", "dpmpp_2m")]
    targets.append(("diffusers euler", setups["euler"].runners["diffusers"], setups["euler"].start_scale))
    for label, fn, scale in targets:
        x0 = z * scale
        with torch.no_grad():
            fn(x0)
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(100):
                fn(x0)
            prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
        text = buf.getvalue().replace(str(Path(torch.__file__).parents[1]) + "/", "")
        out[label] = text.replace(str(Path(__file__).resolve().parents[1]) + "/", "")
    return out


# ------------------------------------------------------------------------------------------ reports


def run_benchmark(case: NetworkCase, batches: list[int], *, steps: int = 20, repeats: int = 5, seed: int = 7,
                  wheel: str | Path = DEFAULT_WHEEL, threads: int = 1, budget_s: float = 120.0, min_s: float = 30.0,
                  profile: bool = False) -> dict:
    """Run the benchmark of this module on ``case`` (batch sizes ``batches``) and return the JSON document: the
    machine and its load, config, per-run records, per-(sampler, batch) rows with ratios and agreement, the
    free-network overhead per step, and with ``profile`` the overhead breakdown and cProfile tables. Set
    doc["command"] and pass it to `write_results`."""
    torch.set_num_threads(threads)
    info = machine()
    info.update(loadavg_before=os.getloadavg(), torch_threads=torch.get_num_threads(),
                date_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), commit=git_commit())
    kd = load_k_diffusion_sampling(wheel)
    notes = []
    if kd is None:
        notes.append(f"k-diffusion skipped: no wheel at {wheel}")
        print(f"note: {notes[-1]}", flush=True)
    setups = sampler_setups(case, steps, kd)
    with torch.no_grad():
        z = torch.zeros((8, *case.shape))
        fwd = timed(lambda: [case.unet(z, torch.full((8,), 500.0)) for _ in range(10)])
    recs: list[dict] = []
    for n in batches:
        recs += bench_batch(case, setups, n, repeats, seed, budget_s, min_s)
        for row in ratios([r for r in recs if r["batch"] == n], steps):
            ms = row["ms"]
            print(f"n={n:4d} {row['sampler']:13s} " + "  ".join(f"{k} {v:8.2f}" for k, v in ms.items())
                  + f"  ms | sdekit/diffusers {row['sdekit_over_diffusers']:.2f}", flush=True)
    free_us = free_network_overhead(case, steps, kd)
    info["loadavg_after"] = os.getloadavg()
    doc = {"machine": info, "versions": package_versions(("sdekit", "torch", "numpy", "diffusers", "scipy")),
           "config": {"case": case.name, "network": case.description, "shape": list(case.shape),
                      "schedule": case.schedule, "steps": steps, "spacing": SPACING, "batches": batches,
                      "repeats": repeats, "min_seconds": min_s, "budget_seconds": budget_s, "seed": seed,
                      "threads": threads, "dtype": "float32",
                      "k_diffusion_wheel": str(wheel) if kd is not None else None,
                      "forward_ms_at_n8": 1e3 * fwd.wall_s / 10},
           "notes": notes, "records": recs, "rows": ratios(recs, steps), "free_network_us_per_step_n1": free_us}
    if profile:
        doc["overhead_us_per_call_n1"] = overhead_breakdown(case)
        doc["profile"] = profile_sdekit(case, steps, kd)
    return doc


def markdown(doc: dict, command: str) -> str:
    info, cfg = doc["machine"], doc["config"]
    out = [f"# Sampler throughput on torch (CPU): {cfg['case']}", "",
           f"Written by `{command}` (`benchmarks/samplers_torch.py`; see benchmarks/README.md).", "",
           f"* machine: {info['cpu']}, {info['cores']}; torch threads {info['torch_threads']}; {info['os']}",
           f"* load average (1, 5, 15 min) before {tuple(round(v, 2) for v in info['loadavg_before'])}, after "
           f"{tuple(round(v, 2) for v in info['loadavg_after'])} (the machine was shared: compare ratios taken in "
           "the same run only)",
           f"* versions: {', '.join(f'{k} {v}' for k, v in doc['versions'].items())}; commit {info.get('commit')}; "
           f"date (UTC) {info['date_utc']}",
           f"* network: {cfg['network']}; one forward pass at n = 8: {cfg['forward_ms_at_n8']:.2f} ms",
           f"* schedule: {cfg['schedule']}, timestep_spacing '{cfg['spacing']}', {cfg['steps']} steps, float32, "
           f"start from the same N(0, I) draw (seed {cfg['seed']}); median of interleaved rounds "
           f"after a warm-up (at least {cfg['repeats']}, more while under {cfg['min_seconds']:g} s per batch size)", ""]
    per_batch = {r["batch"]: (r["repeats"], r.get("batch_other_cores")) for r in doc["records"]}
    out += ["Rounds and load per batch size (other processes' busy cores during the timed rounds, from /proc/stat): "
            + "; ".join(f"n = {n}: {k} rounds, {'?' if o is None else f'{o:.2f}'} cores"
                        for n, (k, o) in per_batch.items()), ""]
    out += [f"Note: {n}\n" for n in doc["notes"]]
    has_kd = any("sdekit_over_k_diffusion" in r for r in doc["rows"])
    head = "| sampler | n | NFE | sdekit ms | diffusers ms | " + ("k-diff ms | " if has_kd else "") + \
           "floor ms | sdekit/diffusers | " + ("sdekit/k-diff | " if has_kd else "") + \
           "sdekit/floor | overhead ms/step sdekit | diffusers | " + ("k-diff |" if has_kd else "")
    out += ["## Time per batch", "", "Ratios are time ratios (below 1: sdekit is faster). Overhead per step = "
            "(time - floor) / steps, floor = NFE forward passes of the network alone.", "", head,
            "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in doc["rows"]:
        ms, ov = r["ms"], r["overhead_ms_per_step"]
        cells = [SAMPLER_NAMES[r["sampler"]], str(r["batch"]), str(r["nfe"]), f"{ms['sdekit']:.2f}",
                 f"{ms['diffusers']:.2f}"]
        if has_kd:
            cells.append(f"{ms.get('k_diffusion', float('nan')):.2f}")
        cells += [f"{ms['floor']:.2f}", f"{r['sdekit_over_diffusers']:.3f}"]
        if has_kd:
            cells.append(f"{r.get('sdekit_over_k_diffusion', float('nan')):.3f}")
        cells += [f"{r['sdekit_over_floor']:.3f}", f"{ov['sdekit']:.3f}", f"{ov['diffusers']:.3f}"]
        if has_kd:
            cells.append(f"{ov.get('k_diffusion', float('nan')):.3f}")
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "### The same from CPU time", "", "This process's CPU time per batch (with one torch thread it "
            "is the work done; other processes' load inflates it less than the wall clock).", "",
            "| sampler | n | sdekit/diffusers | " + ("sdekit/k-diff | " if has_kd else "")
            + "overhead ms/step sdekit | diffusers | " + ("k-diff |" if has_kd else ""),
            "|" + "|".join(["---"] * (7 if has_kd else 5)) + "|"]
    for r in doc["rows"]:
        ov = r["cpu_overhead_ms_per_step"]
        cells = [SAMPLER_NAMES[r["sampler"]], str(r["batch"]), f"{r['cpu_sdekit_over_diffusers']:.3f}"]
        if has_kd:
            cells.append(f"{r.get('cpu_sdekit_over_k_diffusion', float('nan')):.3f}")
        cells += [f"{ov['sdekit']:.3f}", f"{ov['diffusers']:.3f}"]
        if has_kd:
            cells.append(f"{ov.get('k_diffusion', float('nan')):.3f}")
        out.append("| " + " | ".join(cells) + " |")
    free = doc["free_network_us_per_step_n1"]
    impls = [i for i in IMPLS if any(i in d for d in free.values())]
    out += ["", "## Library overhead per step with a free network (n = 1)", "",
            "Each sampler run with a network that costs nothing (it returns its input), microseconds per sampler "
            "step (20 steps; Heun makes 39 calls): the libraries' own work, without the network's timing noise.", "",
            "| sampler | " + " | ".join(f"{i} us/step" for i in impls) + " | sdekit/diffusers |",
            "|" + "|".join(["---"] * (len(impls) + 2)) + "|"]
    for name, d in free.items():
        out.append(f"| {SAMPLER_NAMES[name]} | " + " | ".join(f"{d[i]:.1f}" if i in d else "-" for i in impls)
                   + f" | {d['sdekit'] / d['diffusers']:.2f} |")
    out += ["", "## Agreement of the outputs (same start, float32)", "",
            "Max abs differences of the final samples; ulp: the float32 spacing at max |x|.", "",
            "| sampler | n | max abs x | ulp | sdekit vs diffusers | sdekit vs k-diff | diffusers vs k-diff |",
            "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        a = r["agreement"]
        ulp = float(np.spacing(np.float32(a["max_abs_x"])))
        out.append(f"| {SAMPLER_NAMES[r['sampler']]} | {r['batch']} | {a['max_abs_x']:.3g} | {ulp:.2g} | "
                   f"{a.get('sdekit_vs_diffusers', float('nan')):.2e} | "
                   f"{a.get('sdekit_vs_k_diffusion', float('nan')):.2e} | "
                   f"{a.get('diffusers_vs_k_diffusion', float('nan')):.2e} |")
    worst = max((v / float(np.spacing(np.float32(r["agreement"]["max_abs_x"])))
                 for r in doc["rows"] for k, v in r["agreement"].items() if "_vs_" in k), default=float("nan"))
    out += ["", f"Largest difference: {worst:.0f} float32 ulps of max |x| (the libraries compute their coefficients "
            "in different precisions and orders: sdekit in float64 Python floats, diffusers and k-diffusion partly "
            "in float32 tensors; DDIM and DPM-Solver step in VP coordinates, through x0hat = (x - sigma eps) / "
            "alpha with 1 / alpha up to 1 / alpha_K, the Euler family in x / alpha)."]
    out += ["", "k-diffusion has no DDIM: its row runs `sample_euler` on the same levels, which is the same map for an "
            "eps network (x/alpha moves by (sigma' - sigma) eps: Song et al. 2021, eq. 14; Karras et al. 2022, "
            "section 3).", ""]
    if "overhead_us_per_call_n1" in doc:
        out += ["## Where sdekit's per-call overhead goes (n = 1, microseconds per model call, median)", "",
                "| piece | us per call |", "|---|---|"]
        out += [f"| {k} | {v:.1f} |" for k, v in doc["overhead_us_per_call_n1"].items()]
        out += [""]
    if "profile" in doc:
        out += ["## Profile at n = 1 with a free network (cProfile, 100 runs of 20 steps, by own time)", ""]
        for label, text in doc["profile"].items():
            lines = [ln for ln in text.splitlines() if ln.strip()]
            start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
            out += [f"### {label}", "", "```", lines[0], *lines[start:start + 19], "```", ""]
    return "\n".join(out) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    rows = doc["rows"]
    samplers = [s for s in SAMPLERS if any(r["sampler"] == s for r in rows)]
    fig, axes = plt.subplots(2, len(samplers), figsize=(3.2 * len(samplers), 6.4), squeeze=False)
    styles = {"sdekit": ("C0", "o-"), "diffusers": ("C1", "s-"), "k_diffusion": ("C2", "^-"), "floor": ("k", "--")}
    for j, s in enumerate(samplers):
        rs = sorted((r for r in rows if r["sampler"] == s), key=lambda r: r["batch"])
        ns = [r["batch"] for r in rs]
        for impl, (color, fmt) in styles.items():
            if impl in rs[0]["ms"]:
                axes[0, j].loglog(ns, [r["ms"][impl] for r in rs], fmt, color=color, label=impl, ms=4)
                if impl != "floor":
                    axes[1, j].semilogx(ns, [r["cpu_overhead_ms_per_step"][impl] for r in rs], fmt, color=color,
                                        label=impl, ms=4)
        axes[0, j].set_title(f"{SAMPLER_NAMES[s]} (NFE {rs[0]['nfe']})", fontsize=9)
        axes[1, j].axhline(0.0, color="0.6", lw=0.6)
        axes[1, j].set_xlabel("batch size n")
        for ax in axes[:, j]:
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xticks(ns)
            ax.xaxis.set_major_formatter(ticker.FixedFormatter([str(v) for v in ns]))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        axes[0, j].yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
        axes[0, j].yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axes[0, j].yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    axes[0, 0].set_ylabel("ms per batch")
    axes[1, 0].set_ylabel("overhead ms per step\n(CPU time - floor) / steps")
    axes[0, 0].legend(fontsize=7)
    info = doc["machine"]
    fig.suptitle(f"{doc['config']['case']}, {doc['config']['steps']} steps, float32 - {info['cpu']}, "
                 f"{info['torch_threads']} torch thread(s), load {info['loadavg_before'][0]:.1f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(doc: dict, out: Path, stem: str = "samplers_torch") -> str:
    """Write ``doc`` (from `run_benchmark`, with "command" set) as out/stem.json, out/stem.md and out/stem.png;
    returns the markdown. Another network's results go under another stem."""
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(doc, doc["command"])
    (out / f"{stem}.md").write_text(md)
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=1))
    try:
        plot(doc, out / f"{stem}.png")
    except ImportError:
        print("note: matplotlib not importable, no figure")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="n = 1, 8 and 8 s per batch size (a smoke test)")
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=5, help="least number of rounds")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="more rounds while a batch size has taken less (default 30, 8 with --quick)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of timed rounds per batch size")
    parser.add_argument("--k-diffusion-wheel", default=DEFAULT_WHEEL)
    parser.add_argument("--profile", action="store_true", help="add a cProfile of sdekit's samplers at n = 1")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--replot", action="store_true", help="rewrite the .md and .png from the .json in --out")
    parser.add_argument("--network", choices=("synthetic", "digits"), default="synthetic",
                        help="the synthetic (3, 32, 32) network or the trained digits model of examples/digits.py")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stem = "samplers_torch" if args.network == "synthetic" else "samplers_torch_digits"
    if args.replot:
        write_results(json.loads((out / f"{stem}.json").read_text()), out, stem)
        return 0
    batches = args.batches or ([1, 8] if args.quick else [1, 8, 64, 256])
    min_s = args.min_seconds if args.min_seconds is not None else (8.0 if args.quick else 30.0)
    case = synthetic_case() if args.network == "synthetic" else digits_case()
    doc = run_benchmark(case, batches, steps=args.steps, repeats=args.repeats, seed=args.seed,
                        wheel=args.k_diffusion_wheel, threads=args.threads, budget_s=args.budget, min_s=min_s,
                        profile=args.profile)
    doc["config"]["quick"] = args.quick
    doc["command"] = ("python benchmarks/samplers_torch.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    print(write_results(doc, out, stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
