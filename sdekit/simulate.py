"""The one entry point: `simulate(problem, x0, t, ...)` for SDEs and ODEs on either backend."""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends import reference
from sdekit.backends.numba import runner
from sdekit.backends.numba.fixed_solve import SERIAL_BELOW_PATHS, prepare_fixed
from sdekit.errors import NonFiniteError, SDEKitError, StepSizeError
from sdekit.grid import Grid, adaptive_saves, fixed_grid, time_span
from sdekit.memory import check_save_size, save_cap
from sdekit.params import cast_params
from sdekit.probe import probe_problem
from sdekit.sde import ODE, SDE
from sdekit.solution import Solution
from sdekit.solve_cache import SOLVES, CachedSolve
from sdekit.solvers import check_compatible, get_solver

BACKENDS = {"numba": runner, "numpy": reference}
DTYPES = {"float64": np.float64, "float32": np.float32}
PATH_INDEX_LIMIT = 2**62  # path indices are 64-bit words of the noise key; offsets stay far from overflow


def _dtype(dtype: Any) -> type:
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise SDEKitError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    return DTYPES[key]


def checked_noise_dtype(noise_dtype: Any, dtype: Any, backend: str) -> str:
    """noise_dtype ("float64" or "float32") checked against dtype and the backend: float32 noise (normals drawn in
    float32, `sdekit.noise.streams32`) is opt-in and needs dtype="float32" and the numba or numpy backend."""
    if noise_dtype not in ("float64", "float32"):
        raise SDEKitError(f"noise_dtype must be 'float64' or 'float32'; got {noise_dtype!r}")
    if noise_dtype == "float32":
        if backend == "torch":
            raise SDEKitError("noise_dtype='float32' is not supported on backend='torch' yet; use backend='numba' or "
                              "'numpy', or noise_dtype='float64'")
        if dtype is None or _dtype(dtype) is not np.float32:
            raise SDEKitError(f"noise_dtype='float32' needs dtype='float32' (a float32 solve); got dtype={dtype!r}")
    return noise_dtype


def _int_arg(v: Any, name: str, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        bound = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise SDEKitError(f"{name} must be {bound}; got {v!r}")
    return int(v)


def _initial_state(x0: Any, dim: int, n_paths: int | None, dtype: type) -> np.ndarray:
    try:
        raw = np.asarray(x0)
    except (TypeError, ValueError) as exc:
        raise SDEKitError(f"x0 must be numeric (a scalar, shape ({dim},) or (n_paths, {dim})); got {x0!r}") from exc
    if raw.dtype.kind == "c":
        raise SDEKitError(f"x0 is complex (dtype {raw.dtype}); sdekit integrates real equations: split the real and "
                          "imaginary parts into separate components of x")
    if raw.dtype.kind not in "iuf":
        raise SDEKitError(f"x0 must hold real numbers (a scalar, shape ({dim},) or (n_paths, {dim})); got dtype "
                          f"{raw.dtype}: {x0!r}"[:300])
    arr = np.array(raw, dtype=dtype)
    if arr.ndim == 0:
        arr = np.full((1, dim), arr, dtype=dtype)
    elif arr.ndim == 1:
        if arr.shape[0] != dim:
            raise SDEKitError(f"x0 has shape {arr.shape} but dim = {dim}; expected ({dim},) or (n_paths, {dim})")
        arr = arr[None, :]
    elif arr.ndim > 2 and math.prod(arr.shape[1:]) == dim:  # (n, *shape): the solvers' state is the flat vector
        arr = np.ascontiguousarray(arr).reshape(arr.shape[0], dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise SDEKitError(f"x0 has shape {arr.shape}; expected a scalar, ({dim},), (n_paths, {dim}) or (n_paths, "
                          f"*shape) with prod(shape) = {dim}")
    if raw.ndim >= 2 and n_paths is not None and arr.shape[0] != n_paths:
        raise SDEKitError(f"x0 has {arr.shape[0]} rows but n_paths = {n_paths}; give one or make them agree")
    if arr.shape[0] == 0:
        raise SDEKitError("x0 has 0 rows; give at least one path")
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise SDEKitError(f"x0 must be finite; x0[{', '.join(map(str, bad[0]))}] = {arr[tuple(bad[0])]}")
    if n_paths is None:
        return np.ascontiguousarray(arr)
    return np.broadcast_to(arr, (_int_arg(n_paths, "n_paths"), dim))


def simulate(problem: SDE | ODE, x0: Any, t: Any, *, steps: int | None = None, dt: float | None = None,
             n_paths: int | None = None, seed: int = 0, solver: str | None = None, save_at: Any = None,
             dtype: Any = None, backend: str = "numba", noise_substeps: int = 1,
             rtol: float = 1e-6, atol: float = 1e-9, dt0: float | None = None, max_steps: int = 1_000_000,
             threads: int | None = None, progress: bool | None = None, on_nonfinite: str = "raise",
             max_save_bytes: int | None = None, chunk_size: int | None = None, device: Any = None,
             adjoint: bool = False, save_brownian: bool = False, path_offset: int = 0,
             noise_dtype: str = "float64") -> Solution:
    """Integrate an SDE or ODE on n_paths paths and return the states at the save times.

    SDE:  X_{t+h} = Phi(X_t, t, h, dW) for the chosen solver, dW ~ N(0, |h| I) from the
    reproducible stream of (seed, path); ODE: x' = v(x, t) by a Runge–Kutta tableau.

    t: (t0, t1) with `steps` or `dt`, or an explicit grid; t1 < t0 integrates backwards.
    save_at: None (final time only), 'steps' (every grid time) or a list of times. A save time inside a step is
    reached by a partial step of the solver from the step's start, with the Brownian increment bridged from the
    step's own (`sdekit.backends.save_bridge`): saves never change the step grid, the Brownian path or any other
    result.
    save_brownian: also return sol.ws, W(t_save) - W(t0) of every path at the save times, shape
    (n_saves, n_paths, m) (fixed-step SDE solves on the numba and numpy backends).
    noise_substeps: each step's dW (and I_(1,0)) is assembled from this many finer increments
    of the stream, so a solve with `steps` and noise_substeps = 2^k sees exactly the Brownian
    path of a solve with steps * 2^k (strong-order coupling).
    Adaptive ODE solvers (dopri5) use rtol, atol, dt0 and max_steps, per path.
    on_nonfinite: 'raise' (NonFiniteError naming path, step, t) or 'mask' (NaN rows, counted).
    dtype: "float64" (default) or "float32"; on the torch backend the default is x0's dtype when x0 is a tensor.
    backend: "numba" (compiled kernels), "numpy" (the reference) or "torch" (torchsde / torchdiffeq on the device
    of x0, or ``device``; solver names are torchsde's or torchdiffeq's, or sdekit's for the same method; the
    Brownian increments are the Numba backend's; adjoint=True solves an ODE with torchdiffeq's adjoint;
    solver="fused_euler_maruyama" or "fused_heun" runs sdekit's own fixed-step loop instead of torchsde, with
    counter-based noise drawn on the device: `sdekit.backends.torch.fused`).
    path_offset: row p of the solve is path path_offset + p of the ensemble of ``seed`` (its noise is keyed by
    (seed, path_offset + p), and errors name that path), so paths [a, b) solved alone equal rows a..b-1 of a solve
    of all paths, bit for bit: the shards of `sdekit.distributed.simulate`.
    noise_dtype: "float64" (default: float64 normals, cast in a float32 solve, so both precisions follow the same
    Brownian path) or "float32" (normals drawn in float32, `sdekit.noise.streams32`: faster, a different path; needs
    dtype="float32", backend "numba" or "numpy", one normal per component and step: noise_substeps=1, no auxiliary
    noise, no save inside a step, a fixed-step solver).
    Returns a Solution with ts (n_saves,), ys (n_saves, n_paths, dim) and stats; ys is a tensor on torch.

    A fixed-step solve on the numba backend is remembered (`sdekit.solve_cache`): called again with the same problem
    functions and options and only x0 values, parameter values, seed or path_offset changed, it skips the checks,
    the probe of the functions and the set-up and runs the prepared kernel (the same numbers, bit for bit); the
    values the compiled functions froze (closure cells, global arrays) are still checked on every call.
    """
    if type(path_offset) is not int or not 0 <= path_offset <= PATH_INDEX_LIMIT:
        path_offset = _int_arg(path_offset, "path_offset", 0, PATH_INDEX_LIMIT)
    key = None
    if backend == "numba" and device is None and adjoint is False:  # a fixed-step solve remembered: solve_cache
        key = SOLVES.key(problem, x0, t, (steps, dt, n_paths, solver, save_at, dtype, noise_substeps, threads,
                                          _default_threads(threads, x0, n_paths), progress, on_nonfinite,
                                          max_save_bytes, chunk_size, save_brownian, noise_dtype))
    try:
        found = None if key is None else SOLVES.get(key)
        if found is not None:
            sol = _solve_again(found, problem, x0, n_paths, seed, path_offset)
            if sol is not None:
                return sol
        return _simulate(problem, x0, t, steps=steps, dt=dt, n_paths=n_paths, seed=seed, solver=solver,
                         save_at=save_at, dtype=dtype, backend=backend, noise_substeps=noise_substeps, rtol=rtol,
                         atol=atol, dt0=dt0, max_steps=max_steps, threads=threads, progress=progress,
                         on_nonfinite=on_nonfinite, max_save_bytes=max_save_bytes, chunk_size=chunk_size,
                         device=device, adjoint=adjoint, save_brownian=save_brownian, path_offset=path_offset,
                         noise_dtype=checked_noise_dtype(noise_dtype, dtype, backend), cache_key=key)
    except (NonFiniteError, StepSizeError) as exc:
        if path_offset == 0:
            raise
        raise exc.with_path_offset(path_offset) from None


def _simulate(problem: SDE | ODE, x0: Any, t: Any, *, steps: int | None, dt: float | None, n_paths: int | None,
              seed: int, solver: str | None, save_at: Any, dtype: Any, backend: str, noise_substeps: int, rtol: float,
              atol: float, dt0: float | None, max_steps: int, threads: int | None, progress: bool | None,
              on_nonfinite: str, max_save_bytes: int | None, chunk_size: int | None, device: Any, adjoint: bool,
              save_brownian: bool, path_offset: int, noise_dtype: str = "float64",
              cache_key: tuple | None = None) -> Solution:
    """`simulate` after path_offset is checked: the argument checks and the dispatch to a backend; a fixed-step
    Numba solve is remembered under cache_key (`sdekit.solve_cache`)."""
    if not isinstance(problem, (SDE, ODE)):
        raise SDEKitError(f"problem must be an sdekit.SDE or sdekit.ODE; got {type(problem).__name__}")
    kind = "sde" if isinstance(problem, SDE) else "ode"
    max_save_bytes = save_cap(max_save_bytes)
    if progress is not None and not isinstance(progress, bool):
        raise SDEKitError(f"progress must be None (automatic), True or False; got {progress!r}")
    if not isinstance(save_brownian, bool):
        raise SDEKitError(f"save_brownian must be True or False; got {save_brownian!r}")
    if save_brownian and (kind != "sde" or backend == "torch"):
        raise SDEKitError("save_brownian=True returns the Brownian path of a fixed-step SDE solve on backend='numba' "
                          f"or 'numpy'; got {'an ODE' if kind != 'sde' else 'backend=' + repr(backend)}")
    if backend == "torch":
        for name, v, why in (("threads", threads, "set torch.set_num_threads (and NUMBA_NUM_THREADS for the noise)"),
                             ("chunk_size", chunk_size, "the torch backend runs all paths as one batch")):
            if v is not None:
                raise SDEKitError(f"{name} is an option of backend='numba'; on backend='torch' {why}")
        return _simulate_torch(problem, x0, t, steps=steps, dt=dt, n_paths=n_paths, seed=seed, solver=solver,
                               save_at=save_at, dtype=dtype, device=device, noise_substeps=noise_substeps, rtol=rtol,
                               atol=atol, dt0=dt0, max_steps=max_steps, on_nonfinite=on_nonfinite, adjoint=adjoint,
                               progress=progress, max_save_bytes=max_save_bytes, path_offset=path_offset)
    if device is not None or adjoint:
        raise SDEKitError(f"device and adjoint are options of backend='torch'; got backend={backend!r}")
    solver_obj, dtype, seed, noise_substeps, threads, chunk_size, x, params = _checked_options(
        problem, kind, x0, n_paths, solver=solver, backend=backend, dtype=dtype, seed=seed,
        noise_substeps=noise_substeps, on_nonfinite=on_nonfinite, threads=threads, chunk_size=chunk_size)
    functions = (problem.drift, problem.diffusion) if kind == "sde" else (problem.field,)
    if solver_obj.adaptive and noise_dtype != "float64":
        raise SDEKitError(f"noise_dtype='float32' needs a fixed-step solver; {solver_obj.name!r} is adaptive")
    if solver_obj.adaptive and save_brownian:
        raise SDEKitError(f"save_brownian=True needs a fixed-step solver; {solver_obj.name!r} is adaptive")
    if solver_obj.adaptive:
        for name, v in (("rtol", rtol), ("atol", atol)):
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise SDEKitError(f"{name} must be a positive number; got {v!r}")
        if dt0 is not None and not (np.isfinite(dt0) and dt0 > 0):
            raise SDEKitError(f"dt0 must be a positive number (the direction comes from t); got {dt0!r}")
        if steps is not None or dt is not None:
            raise SDEKitError(f"solver {solver_obj.name!r} is adaptive; give rtol/atol (and dt0), not steps or dt")
        if on_nonfinite != "raise" or noise_substeps != 1:
            raise SDEKitError(f"solver {solver_obj.name!r} is adaptive: on_nonfinite='mask' and noise_substeps are "
                              "options of the fixed-step solvers (an adaptive solve stops at a non-finite path and "
                              "queries its Brownian path at the times it steps to)")
        max_steps = _int_arg(max_steps, "max_steps")
        t0, save_ts = adaptive_saves(t, save_at)
        check_save_size(save_ts.size, x.shape, dtype, max_save_bytes)
        x = np.ascontiguousarray(x)
        probe_problem(problem, x, t0, params)
        if kind == "sde":  # each path its own steps on its own Brownian tree: sdekit.backends.numba.adaptive_sde
            ys, stats = _adaptive_sde(problem, solver_obj, params, x, t, save_ts, backend=backend, seed=seed,
                                      rtol=float(rtol), atol=float(atol), dt0=dt0, max_steps=max_steps,
                                      threads=threads, path_offset=path_offset)
            return Solution(save_ts, ys, stats)
        ys, stats = BACKENDS[backend].run_adaptive(problem, solver_obj, functions, params, x, t0, save_ts,
                                                   rtol=float(rtol), atol=float(atol), dt0=dt0,
                                                   max_steps=max_steps, threads=threads)
        return Solution(save_ts, ys, stats)
    grid, x = checked_fixed_grid(problem, solver_obj, x, params, t, steps=steps, dt=dt, save_at=save_at,
                                 max_save_bytes=max_save_bytes)
    mask = on_nonfinite == "mask"
    if backend == "numba":
        prepared = prepare_fixed(problem, solver_obj, params, x, grid, substeps=noise_substeps, threads=threads,
                                 progress=progress, mask=mask, chunk=chunk_size, save_brownian=save_brownian,
                                 noise_dtype=noise_dtype)
        if cache_key is not None:
            SOLVES.put(cache_key, prepared, problem)
        ys, stats = prepared.run(x, params, seed, path_offset)
        stats.compile_seconds = prepared.compile_seconds
    else:
        ys, stats = reference.run_fixed(problem, solver_obj, functions, params, x, grid, seed=seed,
                                        substeps=noise_substeps, threads=threads, progress=progress, mask=mask,
                                        chunk=chunk_size, save_brownian=save_brownian, path_offset=path_offset,
                                        noise_dtype=noise_dtype)
    return Solution(grid.save_ts.copy(), ys, stats, ws=stats.extra.pop("ws", None))


def _default_threads(threads: Any, x0: Any, n_paths: Any) -> int | None:
    """The thread count threads=None stands for (`numba.get_num_threads`, part of the cache key), or None where it
    cannot matter: threads given, or fewer paths than a solve splits over threads (`SERIAL_BELOW_PATHS`)."""
    if threads is not None:
        return None
    rows = n_paths if type(n_paths) is int else x0.shape[0] if type(x0) is np.ndarray and x0.ndim >= 2 else None
    return None if rows is not None and rows < SERIAL_BELOW_PATHS else nb.get_num_threads()


def _solve_again(found: CachedSolve, problem: SDE | ODE, x0: Any, n_paths: int | None, seed: Any,
                 path_offset: int) -> Solution | None:
    """A remembered solve (`sdekit.solve_cache`) run for this x0, the problem's parameter values and this seed:
    the kernel call of the full path on the same arguments. None when x0 does not fit it (then the full path)."""
    prepared = found.prepared
    if type(seed) is not int or not 0 <= seed < 2**64:
        seed = _int_arg(seed, "seed", 0, 2**64 - 1)
    shape = (prepared.n_paths, prepared.dim)
    if type(x0) is np.ndarray and x0.dtype is prepared.dtype and x0.flags.c_contiguous and (
            x0.shape == shape or (x0.shape == shape[1:] and shape[0] == 1)):
        x = x0.reshape(shape)  # finiteness: checked by the run
    else:
        x = np.ascontiguousarray(_initial_state(x0, prepared.dim, n_paths, prepared.dtype.type))
        if x.shape != shape:
            return None
    params = problem.params
    params = params.astype(prepared.dtype) if type(params) is np.ndarray else cast_params(params,
                                                                                          prepared.dtype.type)
    ys, stats = prepared.run(x, params, seed, path_offset)
    return Solution(found.save_ts.copy(), ys, stats, stats.extra.pop("ws", None) if prepared.save_brownian else None)


def _checked_options(problem: SDE | ODE, kind: str, x0: Any, n_paths: int | None, *, solver: str | None,
                     backend: str, dtype: Any, seed: Any, noise_substeps: Any, on_nonfinite: str, threads: Any,
                     chunk_size: Any) -> tuple:
    """The options shared by the Numba and NumPy backends, checked: (solver, dtype, seed, noise_substeps, threads,
    chunk_size, x0 as (n_paths, dim), params in dtype)."""
    solver_obj = get_solver(solver or ("euler_maruyama" if kind == "sde" and problem.calculus == "ito"
                                       else "heun" if kind == "sde" else "dopri5"), kind)
    if kind == "sde":
        check_compatible(solver_obj, problem)
    if backend not in BACKENDS:
        raise SDEKitError(f"backend must be one of {sorted([*BACKENDS, 'torch'])}; got {backend!r}")
    dtype = _dtype("float64" if dtype is None else dtype)
    seed = _int_arg(seed, "seed", 0, 2**64 - 1)
    noise_substeps = _int_arg(noise_substeps, "noise_substeps")
    if on_nonfinite not in ("raise", "mask"):
        raise SDEKitError(f"on_nonfinite must be 'raise' or 'mask'; got {on_nonfinite!r}")
    max_threads = nb.config.NUMBA_NUM_THREADS
    threads = nb.get_num_threads() if threads is None else _int_arg(threads, "threads", 1, max_threads)
    if chunk_size is not None:
        chunk_size = _int_arg(chunk_size, "chunk_size")
    x = _initial_state(x0, problem.dim, n_paths, dtype)
    params = cast_params(problem.params, dtype)
    return solver_obj, dtype, seed, noise_substeps, threads, chunk_size, x, params


def checked_fixed_grid(problem: SDE | ODE, solver: Any, x: np.ndarray, params: Any, t: Any, *, steps: int | None,
                       dt: float | None, save_at: Any, max_save_bytes: int) -> tuple[Grid, np.ndarray]:
    """The step grid and saves of a fixed-step solve (`sdekit.grid.fixed_grid`), checked against the solver and the
    memory cap, and x0 as a C-contiguous array after the problem's functions were probed on it at t0."""
    grid = fixed_grid(t, steps, dt, save_at, max_bytes=max_save_bytes)
    if solver.levy_area and grid.off_grid:
        inside = grid.save_ts[grid.save_offsets != 0.0]
        raise SDEKitError(f"solver {solver.name!r} draws a Lévy area per step, which sdekit cannot yet bridge to "
                          f"a save inside a step; save_at times {inside.tolist()[:5]} are not grid times: put them on "
                          "the grid (an explicit grid t, or steps that divide them)")
    check_save_size(grid.save_steps.size, x.shape, x.dtype, max_save_bytes)
    x = np.ascontiguousarray(x)
    probe_problem(problem, x, float(grid.ts[0]), params)
    return grid, x


def _adaptive_sde(problem: SDE, solver: Any, params: Any, x: np.ndarray, t: Any, save_ts: np.ndarray, *,
                  backend: str, **kw: Any) -> tuple[np.ndarray, Any]:
    """An adaptive SDE solve: Numba backend only, forwards in time; the Brownian tree spans [t0, t1] whatever the
    save times."""
    if backend != "numba":
        raise SDEKitError(f"solver {solver.name!r} (adaptive SDE) runs on backend='numba' only; got backend="
                          f"{backend!r}")
    span = time_span(t)
    t0, t1 = (float(span[0]), float(span[-1])) if not isinstance(span, tuple) else span
    if not t1 > t0:
        raise SDEKitError(f"solver {solver.name!r} (adaptive SDE) integrates forwards in time; got t0 = {t0}, "
                          f"t1 = {t1}")
    from sdekit.backends.numba.adaptive_sde import run_adaptive_sde

    return run_adaptive_sde(problem, solver, params, x, t0, t1, save_ts, **kw)


def _simulate_torch(problem: SDE | ODE, x0: Any, t: Any, **kw: Any) -> Solution:
    """Check the arguments shared with the other backends, then hand over to `sdekit.backends.torch`."""
    from sdekit.backends.torch import require_torch

    require_torch()
    from sdekit.backends.torch.solve import simulate_torch

    kw["seed"] = _int_arg(kw["seed"], "seed", 0, 2**64 - 1)
    kw["noise_substeps"] = _int_arg(kw["noise_substeps"], "noise_substeps")
    kw["max_steps"] = _int_arg(kw["max_steps"], "max_steps")
    if kw["on_nonfinite"] not in ("raise", "mask"):
        raise SDEKitError(f"on_nonfinite must be 'raise' or 'mask'; got {kw['on_nonfinite']!r}")
    if not isinstance(kw["adjoint"], bool):
        raise SDEKitError(f"adjoint must be True or False; got {kw['adjoint']!r}")
    return simulate_torch(problem, x0, t, **kw)
