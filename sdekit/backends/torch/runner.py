"""Run a lowered specification: SDEs by torchsde's one-step methods on sdekit's grid, ODEs by torchdiffeq.

SDE: sdekit drives the time loop and calls the torchsde method's ``step(s_k, s_k+1, y, extra)`` on every grid
step, with the Brownian increments of `StreamBrownian`. Driving the loop (instead of ``torchsde.sdeint``) keeps
the grid exact (sdeint accumulates t + dt in floating point and interpolates at the output times), allows any
grid (non-uniform, decreasing), saves only the requested steps, and checks finiteness without a host
synchronisation per step: the batch sum after each step stays on the device (a NaN or infinity in any row makes
it non-finite, and a non-finite row stays non-finite), and every ``CHECK_EVERY`` steps one read finds the first
step where it failed. The error names that step and its time exactly, and the lowest-numbered path that is
non-finite then (with several failures inside one window, not necessarily the earliest one).

ODE: torchdiffeq's ``odeint`` (or ``odeint_adjoint``) with the fixed-grid methods on sdekit's grid (the
``grid_constructor`` option) or the adaptive ones (dopri5, ...) with rtol / atol; the adaptive controller uses one
error norm for the whole batch (torchdiffeq's design), unlike the Numba backend's per-path control.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torchdiffeq
from torchsde._core import methods as torchsde_methods
from torchsde._core.base_sde import ForwardSDE as TorchsdeForward

from sdekit.backends.torch.brownian import StreamBrownian
from sdekit.backends.torch.lowering import LoweredODE, LoweredSDE
from sdekit.backends.torch.methods import TorchsdeMethod, run_calculus
from sdekit.errors import NonFiniteError
from sdekit.grid import Grid
from sdekit.solution import SolveStats

CHECK_EVERY = 32


def _first_bad(sums: list[torch.Tensor] | torch.Tensor) -> int:
    """Index of the first non-finite entry of 0-d tensors or a 1-D tensor (-1 if all finite); one synchronisation."""
    ok = torch.isfinite(torch.stack(sums) if isinstance(sums, list) else sums)
    return -1 if ok.numel() == 0 or bool(ok.all()) else int(torch.argmin(ok.to(torch.int8)))


def _bad_rows(y: torch.Tensor) -> torch.Tensor:
    """Rows with a NaN or an infinity (their sum is not finite)."""
    return ~torch.isfinite(y.sum(dim=1))


def save_slots(grid: Grid, x0: torch.Tensor) -> tuple[dict[int, list[int]], list[Any]]:
    """(step -> the save slots it fills, the slots with the start already saved) for a fixed-step solve."""
    saves: dict[int, list[int]] = {}
    for j, k in enumerate(grid.save_steps):
        saves.setdefault(int(k), []).append(j)
    out: list[Any] = [None] * grid.save_steps.size
    for j in saves.get(0, []):
        out[j] = x0.clone()
    return saves, out


def run_sde(problem: Any, method: TorchsdeMethod, x0: torch.Tensor, grid: Grid, params: Any, *, seed: int,
            substeps: int, mask: bool, progress: bool = False, path_offset: int = 0) -> tuple[torch.Tensor, SolveStats]:
    """Fixed-step solve of an SDE with a torchsde method; returns (ys (n_saves, n, d), stats). Row p is path
    path_offset + p of the ensemble (its noise is keyed by (seed, path_offset + p))."""
    t_start = time.perf_counter()
    n = x0.shape[0]
    ts = grid.ts
    sign = 1.0 if ts[-1] > ts[0] else -1.0
    s_grid = sign * ts
    calculus = run_calculus(method, problem)
    sde = LoweredSDE(problem, params, sign, sde_type=calculus)
    bm = StreamBrownian(s_grid, n, problem.m, seed=seed, dtype=x0.dtype, device=x0.device, substeps=substeps,
                        levy_area=method.levy_area, path_offset=path_offset)
    options = dict(method.options)
    if method.name == "milstein" and problem.noise == "additive":
        options = {}  # dg = 0: torchsde's additive Milstein is Euler's update
    elif method.name == "milstein" and calculus == "stratonovich":
        # torchsde's derivative-free Stratonovich Milstein differences g one-sidedly, g(x + g sqrt h) - g(x): its
        # error (g'' g^2 / 4) sqrt(h) dW^2 has mean O(h^1.5) per step, so strong order 0.5 when g'' != 0. Its
        # autograd form (the exact g'g) keeps order 1; sdekit's own Stratonovich Milstein uses central differences.
        # Its steps run with gradients off unless x0 requires them: torchsde enables them only inside its vjp, so
        # the state does not drag a graph over every step.
        options = {}
    autograd_steps = method.name == "milstein" and not options.get("grad_free", False)
    solver_cls = torchsde_methods.select(method=method.name, sde_type=calculus)
    solver = solver_cls(sde=TorchsdeForward(sde), bm=bm, dt=float(abs(ts[1] - ts[0])), adaptive=False, rtol=0.0,
                        atol=0.0, dt_min=0.0, options=options)
    s_times = torch.as_tensor(s_grid, dtype=torch.float64)  # CPU scalars: reading one never syncs a device
    saves, out = save_slots(grid, x0)
    y = x0
    extra = solver.init_extra_solver_state(s_times[0], y)
    n_steps = ts.size - 1
    steps_iter = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc=f"torchsde {method.name}", unit="step")
    window: list[torch.Tensor] = []  # the batch sum after each step of the current window (stays on the device)
    for k in steps_iter:
        with torch.set_grad_enabled(torch.is_grad_enabled() and (x0.requires_grad or not autograd_steps)):
            y, extra = solver.step(s_times[k], s_times[k + 1], y, extra)
        if not mask:
            window.append(y.sum())
            if len(window) == CHECK_EVERY or k + 1 == n_steps:
                bad = _first_bad(window)
                if bad >= 0:
                    step = k + 2 - len(window) + bad
                    raise NonFiniteError(int(torch.nonzero(_bad_rows(y))[0, 0]), step, float(ts[step]))
                window.clear()
        for j in saves.get(k + 1, []):
            out[j] = torch.where(_bad_rows(y)[:, None], torch.full_like(y, float("nan")), y) if mask else y
    ys = torch.stack(out)
    masked = int(_bad_rows(y).sum()) if mask else 0
    stats = SolveStats(steps=n_steps, evals=sde.evals, path_steps=n_steps * n, masked_paths=masked,
                       run_seconds=time.perf_counter() - t_start, backend="torch", solver=f"torchsde:{method.name}",
                       threads=torch.get_num_threads(), extra={"device": str(x0.device)})
    return ys, stats


def run_ode(problem: Any, method: str, adaptive: bool, x0: torch.Tensor, t0: float, save_ts: np.ndarray,
            grid_ts: np.ndarray | None, params: Any, *, rtol: float, atol: float, dt0: float | None,
            max_steps: int, adjoint: bool, mask: bool) -> tuple[torch.Tensor, SolveStats]:
    """Solve an ODE with torchdiffeq; save_ts are the output times, grid_ts the fixed grid (None if adaptive)."""
    t_start = time.perf_counter()
    n = x0.shape[0]
    sign = 1.0 if save_ts[-1] > t0 or (grid_ts is not None and grid_ts[-1] > grid_ts[0]) else -1.0
    field = LoweredODE(problem, params, sign)
    out_s = np.concatenate([[t0], save_ts]) * sign
    keep = np.concatenate([[True], np.diff(out_s) > 0])  # odeint needs strictly increasing times
    t_out = torch.as_tensor(out_s[keep], dtype=torch.float64, device=x0.device)
    if adaptive:
        # step_t: steps end exactly at the save times, so the field is never evaluated past the last one (torchdiffeq
        # otherwise steps beyond t1 and interpolates back; past eps a diffusion schedule has sigma^2 < 0)
        options: dict[str, Any] = {"max_num_steps": int(max_steps), "step_t": t_out}
        if dt0 is not None:
            options["first_step"] = float(dt0)
    else:
        grid_s = torch.as_tensor(grid_ts * sign, dtype=torch.float64, device=x0.device)
        if t_out[-1] != grid_s[-1]:
            t_out = torch.cat([t_out, grid_s[-1:]])
        options = {"grid_constructor": lambda func, y0, t: grid_s}
    integrate = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs: dict[str, Any] = {"rtol": rtol, "atol": atol, "method": method, "options": options}
    if adjoint:
        kwargs["adjoint_params"] = tuple(field.parameters())
    sol = integrate(field, x0, t_out, **kwargs)
    # map each requested save to its row of sol (saves equal to t0 are row 0; duplicates share rows)
    rows = np.searchsorted(out_s[keep], save_ts * sign)
    ys = sol[torch.as_tensor(rows, device=x0.device)]
    sums, times = field.record()
    first = _first_bad(sums)
    bad = _bad_rows(sol[-1])
    n_bad = int(bad.sum()) if first >= 0 else 0
    if n_bad and not mask:
        t_bad = float(times[first]) * sign
        step = int(np.argmin(np.abs(grid_ts - t_bad))) if grid_ts is not None else -1
        raise NonFiniteError(int(torch.nonzero(bad)[0, 0]), step, t_bad)
    if n_bad:
        ys = torch.where(bad[None, :, None], torch.full_like(ys, float("nan")), ys)
    n_steps = (grid_ts.size - 1) if grid_ts is not None else -1
    stats = SolveStats(steps=n_steps, evals=field.evals, path_steps=max(n_steps, 0) * n, masked_paths=n_bad,
                       run_seconds=time.perf_counter() - t_start, backend="torch",
                       solver=f"torchdiffeq:{method}{' (adjoint)' if adjoint else ''}",
                       threads=torch.get_num_threads(), extra={"device": str(x0.device)})
    return ys, stats
