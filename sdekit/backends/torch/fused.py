"""A fused fixed-step SDE loop on torch: Euler–Maruyama and stochastic Heun, noise drawn on the state's device.

``simulate(sde, x0, t, steps=..., backend="torch", solver="fused_euler_maruyama" | "fused_heun")``. The drift and
diffusion are lowered exactly as for torchsde (`sdekit.backends.torch.lowering.LoweredSDE`, so built-ins, user
functions with torch twins and `sdekit.diffusion.reverse_sde` with a torch score all run), but the loop is this
module's: one Python iteration per step, no torchsde solver, no Brownian object, no per-step host synchronisation.
On the grid t_0, ..., t_K (either direction; h_k = t_{k+1} - t_k):

    Euler–Maruyama (Itô):        x' = x + (f(x, t) h + g(x, t) dW),
    Heun (Stratonovich; Rümelin 1982):
                                 x~ = (x + f(x, t) h) + g(x, t) dW,
                                 x' = x + (0.5 (f(x, t) + f(x~, t + h)) h + 0.5 (g(x, t) dW + g(x~, t + h) dW)),

the same operations in the same order as the Numba kernels' steps (`sdekit.backends.numba.steps`); with zero noise
Heun is the ODE's Heun method. g dW is the lowering's ``g_prod`` (diagonal, scalar, additive or a matrix).

Noise: step k's increments are dW = sqrt(|h_k| / q) sum_{j < q} Z_{k q + j} (q = noise_substeps), Z_i the (n, m)
block of counter-based normals N(seed, stream 0, path p, i m + c) (`sdekit.backends.torch.counter_noise`): the same
numbers on every device and whatever the batch size (row p is always path p), computed on the device. These are
not the Numba backend's xoshiro256++ streams: a fused solve and a Numba solve with one seed see different Brownian
paths (the same law).

Non-finite states are found without a per-step read: the batch sum after each step stays on the device, and every
CHECK_EVERY steps (and at the end) one read says whether any was non-finite; then the first bad step, its time and a
bad path are reported as the torchsde runner does (NonFiniteError), or with on_nonfinite='mask' the bad rows are
saved as NaN and counted. On CUDA the noise kernel is compiled with torch.compile (`counter_noise`); the step's own
operations (the user's drift and diffusion) run eagerly on every device.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from sdekit.backends.torch.counter_noise import CounterNormals
from sdekit.backends.torch.lowering import LoweredSDE
from sdekit.backends.torch.methods import FusedMethod
from sdekit.backends.torch.runner import _bad_rows, _first_bad, save_slots
from sdekit.errors import NonFiniteError
from sdekit.grid import Grid
from sdekit.noise.streams import STREAM_BROWNIAN
from sdekit.solution import SolveStats

CHECK_EVERY = 64  # steps between two reads of the finiteness record


def brownian_increment(noise: CounterNormals, step: int, m: int, substeps: int, habs: float) -> torch.Tensor:
    """dW (n, m) of grid step ``step``: sqrt(|h| / q) (Z_{step q} + ... + Z_{step q + q - 1}), Z_i the (n, m) block
    of counter normals at draws i m ... i m + m - 1 (``noise`` has width q m: one step's draws)."""
    z = noise.block(step * substeps * m)
    sq = math.sqrt(habs / substeps)
    dw = sq * z[:, :m]
    for j in range(1, substeps):
        dw = dw + sq * z[:, j * m:(j + 1) * m]
    return dw


def euler_maruyama_step(sde: LoweredSDE, x: torch.Tensor, t: float, h: float, dw: torch.Tensor) -> torch.Tensor:
    """x + (f(x, t) h + g(x, t) dW)."""
    return x + (sde.f(t, x) * h + sde.g_prod(t, x, dw))


def heun_step(sde: LoweredSDE, x: torch.Tensor, t: float, h: float, dw: torch.Tensor) -> torch.Tensor:
    """Stochastic Heun: x~ = (x + f h) + g dW, x' = x + (0.5 (f + f~) h + 0.5 (g dW + g~ dW))."""
    f0 = sde.f(t, x)
    n0 = sde.g_prod(t, x, dw)
    xt = x + f0 * h + n0
    t1 = t + h
    return x + (0.5 * (f0 + sde.f(t1, xt)) * h + 0.5 * (n0 + sde.g_prod(t1, xt, dw)))


STEPS = {"euler_maruyama": euler_maruyama_step, "heun": heun_step}


def run_fused(problem: Any, method: FusedMethod, x0: torch.Tensor, grid: Grid, params: Any, *, seed: int,
              substeps: int, mask: bool, progress: bool | None = False,
              path_offset: int = 0) -> tuple[torch.Tensor, SolveStats]:
    """The fused fixed-step solve of an SDE on x0's device and dtype; returns (ys (n_saves, n, d), stats). Row p
    is path path_offset + p of the ensemble."""
    t_start = time.perf_counter()
    n, m = x0.shape[0], problem.m
    ts = [float(v) for v in grid.ts]
    n_steps = len(ts) - 1
    sde = LoweredSDE(problem, params, 1.0)  # sign +1: f and g on the t axis itself (h carries the direction)
    step = STEPS[method.family]
    noise = CounterNormals(seed, n, substeps * m, stream=STREAM_BROWNIAN, path_offset=path_offset, dtype=x0.dtype,
                           device=x0.device)
    saves, out = save_slots(grid, x0)
    y = x0
    steps_iter: Any = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc=method.name, unit="step")
    window: list[torch.Tensor] = []  # the batch sum after each step of the current window (stays on the device)
    for k in steps_iter:
        h = ts[k + 1] - ts[k]
        dw = brownian_increment(noise, k, m, substeps, abs(h))
        y = step(sde, y, ts[k], h, dw)
        if not mask:
            window.append(y.detach().sum())
            if len(window) == CHECK_EVERY or k + 1 == n_steps:
                bad = _first_bad(window)
                if bad >= 0:
                    at = k + 2 - len(window) + bad
                    raise NonFiniteError(int(torch.nonzero(_bad_rows(y))[0, 0]), at, ts[at])
                window.clear()
        for j in saves.get(k + 1, []):
            out[j] = torch.where(_bad_rows(y)[:, None], torch.full_like(y, float("nan")), y) if mask else y
    ys = torch.stack(out)
    masked = int(_bad_rows(y).sum()) if mask else 0
    stats = SolveStats(steps=n_steps, evals=sde.evals, path_steps=n_steps * n, masked_paths=masked,
                       run_seconds=time.perf_counter() - t_start, backend="torch", solver=f"fused:{method.family}",
                       threads=torch.get_num_threads(), extra={"device": str(x0.device), "noise": "counter"})
    return ys, stats
