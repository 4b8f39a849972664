"""`simulate(..., backend="torch")`: check the arguments, lower the specification and run it on x0's device."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sdekit.backends.torch.fused import run_fused
from sdekit.backends.torch.lowering import probe, torch_function, torch_params
from sdekit.backends.torch.methods import fused_method, ode_method, sde_method
from sdekit.backends.torch.runner import run_ode, run_sde
from sdekit.errors import SDEKitError
from sdekit.grid import Grid, adaptive_saves, fixed_grid
from sdekit.memory import check_save_size
from sdekit.sde import SDE
from sdekit.solution import Solution

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}
DTYPE_NAMES = {torch.float64: np.float64, torch.float32: np.float32}


def torch_dtype(dtype: Any, x0: Any) -> Any:
    """The solve's dtype: the given one ("float32"/"float64", numpy or torch), else x0's if a tensor, else f64."""
    if dtype is None:
        if torch.is_tensor(x0) and x0.dtype in (torch.float32, torch.float64):
            return x0.dtype
        return torch.float64
    if isinstance(dtype, torch.dtype):
        key = str(dtype).replace("torch.", "")
    else:
        key = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if key not in TORCH_DTYPES:
        raise SDEKitError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return TORCH_DTYPES[key]


def initial_tensor(x0: Any, dim: int, n_paths: int | None, dtype: Any, device: Any) -> torch.Tensor:
    """x0 as a (n_paths, dim) tensor on device (x0's own device when it is a tensor and device is None)."""
    if torch.is_tensor(x0):
        dev = x0.device if device is None else torch.device(device)
        arr = x0.detach().to(device=dev, dtype=dtype) if not x0.requires_grad else x0.to(device=dev, dtype=dtype)
    else:
        try:
            arr = torch.as_tensor(np.asarray(x0, dtype=np.float64), dtype=dtype,
                                  device=torch.device(device) if device is not None else None)
        except (TypeError, ValueError) as exc:
            raise SDEKitError(f"x0 must be numeric (a scalar, shape ({dim},) or (n_paths, {dim})); got {x0!r}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1, 1).expand(1, dim)
    elif arr.ndim == 1:
        if arr.shape[0] != dim:
            raise SDEKitError(f"x0 has shape {tuple(arr.shape)} but dim = {dim}; expected ({dim},) or (n_paths, {dim})")
        arr = arr[None, :]
    elif arr.ndim > 2 and math.prod(arr.shape[1:]) == dim:  # (n, *shape): the solvers' state is the flat vector
        arr = arr.reshape(arr.shape[0], dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise SDEKitError(f"x0 has shape {tuple(arr.shape)}; expected a scalar, ({dim},), (n_paths, {dim}) or "
                          f"(n_paths, *shape) with prod(shape) = {dim}")
    if n_paths is not None and arr.shape[0] not in (1, n_paths):
        raise SDEKitError(f"x0 has {arr.shape[0]} rows but n_paths = {n_paths}; give one or make them agree")
    if not bool(torch.isfinite(arr).all()):
        bad = torch.nonzero(~torch.isfinite(arr))[0].tolist()
        raise SDEKitError(f"x0 must be finite; x0[{', '.join(map(str, bad))}] = {arr[tuple(bad)].item()}")
    if n_paths is not None:
        if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 1:
            raise SDEKitError(f"n_paths must be an integer >= 1; got {n_paths!r}")
        arr = arr.expand(int(n_paths), dim)
    return arr.clone() if not arr.requires_grad else arr + 0.0


def on_grid_saves(grid: Grid) -> Grid:
    """The grid, if every save time is a grid time; else an SDEKitError. The numba and numpy backends reach a save
    inside a step by a partial step with a bridged Brownian increment (`sdekit.backends.save_bridge`); the torch
    backend does not (yet), and inserting the save into the grid would change the Brownian increments."""
    if grid.off_grid:
        j = int(np.flatnonzero(grid.save_offsets != 0.0)[0])
        k = int(grid.save_steps[j])
        raise SDEKitError(f"save_at time {float(grid.save_ts[j])!r} lies inside the step [{float(grid.ts[k])!r}, "
                          f"{float(grid.ts[k + 1])!r}]"
                          "; backend='torch' saves only at grid times: choose save times on the grid (multiples of "
                          "dt from t0, or an explicit grid t containing them), or use backend='numba' or 'numpy'")
    return grid


def simulate_torch(problem: Any, x0: Any, t: Any, *, steps: int | None, dt: float | None, n_paths: int | None,
                   seed: int, solver: str | None, save_at: Any, dtype: Any, device: Any, noise_substeps: int,
                   rtol: float, atol: float, dt0: float | None, max_steps: int, on_nonfinite: str,
                   adjoint: bool, progress: bool = False, max_save_bytes: int | None = None,
                   path_offset: int = 0) -> Solution:
    """The torch branch of `sdekit.simulate` (arguments already checked there: seed, substeps, on_nonfinite)."""
    if getattr(problem, "form", "batch") != "batch":
        raise SDEKitError(f"form={problem.form!r} (per-path functions) runs on backend='numba' or 'numpy'; the torch "
                          "backend calls its functions on the whole batch of paths: write them in form='batch'")
    is_sde = isinstance(problem, SDE)
    tdtype = torch_dtype(dtype, x0)
    x = initial_tensor(x0, problem.dim, n_paths, tdtype, device)
    params = torch_params(problem.params, tdtype, x.device)
    mask = on_nonfinite == "mask"
    if is_sde:
        if adjoint:
            raise SDEKitError("adjoint=True is for ODEs (torchdiffeq's adjoint); backpropagate through an SDE "
                              "solve directly")
        fused = fused_method(solver, problem)
        method = sde_method(solver, problem) if fused is None else None
        grid = on_grid_saves(fixed_grid(t, steps, dt, save_at, max_bytes=max_save_bytes))
        check_save_size(grid.save_steps.size, tuple(x.shape), DTYPE_NAMES[tdtype], max_save_bytes)
        probe((torch_function(problem.drift), torch_function(problem.diffusion)), ("drift", "diffusion"), problem,
              x, float(grid.ts[0]), params)
        if fused is not None:
            ys, stats = run_fused(problem, fused, x, grid, params, seed=seed, substeps=noise_substeps, mask=mask,
                                  progress=progress, path_offset=path_offset)
        else:
            ys, stats = run_sde(problem, method, x, grid, params, seed=seed, substeps=noise_substeps, mask=mask,
                                progress=progress, path_offset=path_offset)
        return Solution(grid.save_ts.copy(), ys, stats)
    name, adaptive = ode_method(solver)
    field = (torch_function(problem.field),)
    if adaptive:
        if steps is not None or dt is not None:
            raise SDEKitError(f"solver {name!r} is adaptive; give rtol/atol (and dt0), not steps or dt")
        for nm, v in (("rtol", rtol), ("atol", atol)):
            if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
                raise SDEKitError(f"{nm} must be a positive number; got {v!r}")
        t0, save_ts = adaptive_saves(t, save_at)
        check_save_size(save_ts.size, tuple(x.shape), DTYPE_NAMES[tdtype], max_save_bytes)
        probe(field, ("field",), problem, x, t0, params)
        ys, stats = run_ode(problem, name, True, x, t0, save_ts, None, params, rtol=float(rtol), atol=float(atol),
                            dt0=dt0, max_steps=max_steps, adjoint=adjoint, mask=mask)
        return Solution(save_ts, ys, stats)
    grid = on_grid_saves(fixed_grid(t, steps, dt, save_at, max_bytes=max_save_bytes))
    check_save_size(grid.save_steps.size, tuple(x.shape), DTYPE_NAMES[tdtype], max_save_bytes)
    probe(field, ("field",), problem, x, float(grid.ts[0]), params)
    ys, stats = run_ode(problem, name, False, x, float(grid.ts[0]), grid.save_ts, grid.ts, params, rtol=float(rtol),
                        atol=float(atol), dt0=None, max_steps=max_steps, adjoint=adjoint, mask=mask)
    return Solution(grid.save_ts.copy(), ys, stats)
