"""Drive the Numba kernels: allocate once, pick serial or parallel, time compile and run, report errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends.numba import disk_cache, first_class, kernels
from sdekit.backends.numba.access import noise_term_for
from sdekit.backends.numba.steps import CARRIED_FAMILIES, STEPS, work_arrays
from sdekit.backends.numba.steps_implicit import closes_over_user_function, theta_step_with_jacobian
from sdekit.backends.save_bridge import save_bridges
from sdekit.errors import STEP_SIZE_COLLAPSED, STEP_SIZE_UNDERFLOW, NonFiniteError, SDEKitError, StepSizeError
from sdekit.grid import Grid
from sdekit.noise.levy_area import aux_mode
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN, noise_tables
from sdekit.probe import compile_error
from sdekit.solution import SolveStats
from sdekit.solvers import Solver, step_family
from sdekit.user_functions import jitted

SERIAL_BELOW_PATHS = 2048  # below this many paths one thread beats splitting the work
# progress=None shows a bar when a solve is expected to take longer than AUTO_PROGRESS_SECONDS: solves of at least
# AUTO_PROGRESS_WORK element-evaluations (paths x steps x evals x dim, about 0.1 s and up) run in segments, and the
# first segment's time, times the number of segments, is the estimate
AUTO_PROGRESS_SECONDS = 5.0
AUTO_PROGRESS_WORK = 10**7


@nb.njit(cache=True)
def _no_diffusion(x, t, p):
    """g = 0: the diffusion slot of an ODE solved by the fixed-step kernel."""
    return 0.0


def default_chunk(dim: int) -> int:
    """Paths per chunk: the chunk's state and scratch stay in L1/L2 (about 4096 numbers per array)."""
    return 256 if dim <= 16 else max(16, 4096 // dim)


def solver_tab(solver: Solver, calculus: str) -> tuple:
    """A solver's coefficients as the tuple of arrays its step function reads."""
    tab = solver.tableau
    if hasattr(tab, "step_arrays"):  # tableaus and parameter data that give their step's arrays (SRI, stiff)
        return tab.step_arrays()
    if solver.family == "sra":
        return (tab.c0, tab.c1, tab.a0, tab.b0, tab.alpha, tab.beta1, tab.beta2)
    if solver.family in ("rk", "rk_adaptive"):
        return (np.ascontiguousarray(tab.a), tab.b, tab.c)
    return (np.array([1.0 if calculus == "ito" else 0.0]),)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of exactly `threads` workers (so a solve never runs on more threads than asked)."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"sdekit{threads}")
    return _POOLS[threads]


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into `parts` contiguous ranges (fewer when n is small)."""
    parts = max(1, min(parts, n))
    edges = np.linspace(0, n, parts + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run_threads(fn: Callable[[int, int], None], n: int, threads: int, pieces: int = 1) -> None:
    """fn(lo, hi) over a split of [0, n): on this thread alone, or on `threads` pool threads."""
    ranges = split(n, threads * pieces)
    if threads <= 1 or len(ranges) <= 1:
        for lo, hi in ranges:
            fn(lo, hi)
        return
    for fut in [_pool(threads).submit(fn, lo, hi) for lo, hi in ranges]:
        fut.result()


def run_fixed(problem: Any, solver: Solver, functions: tuple, params: Any, x0: np.ndarray, grid: Grid, *,
              seed: int, substeps: int, threads: int, progress: bool, mask: bool,
              chunk: int | None, save_brownian: bool = False, path_offset: int = 0) -> tuple[np.ndarray, SolveStats]:
    """Fixed-step solve of an SDE (or ODE with an RK tableau) on all paths; returns (ys, stats). Row p of x0 is path
    path_offset + p of the ensemble: its noise is keyed by (seed, path_offset + p).

    Saves inside a step are partial steps (`sdekit.backends.save_bridge`); with save_brownian, stats.extra["ws"]
    holds W(t_save) - W(t0) of every path, shape (n_saves, n_paths, m).
    """
    t_compile = time.perf_counter()
    is_sde = solver.kind == "sde"
    n_paths, dim = x0.shape
    gdw = noise_term_for(problem.noise, problem.matrix_noise) if is_sde else noise_term_for("diagonal", False)
    m = problem.m if is_sde else 0
    stages = solver.tableau.stages if solver.tableau is not None else 1
    family = step_family(solver, problem)
    n_work = work_arrays(family, stages, max(m, 1))
    tab = solver_tab(solver, getattr(problem, "calculus", "ito"))
    step = STEPS[family]
    if family == "theta" and getattr(problem, "drift_jacobian", None) is not None:
        step = theta_step_with_jacobian(jitted(problem.drift_jacobian, "drift_jacobian"))
    chunk = chunk or default_chunk(dim)
    use_aux = aux_mode(solver)  # 0: dW, 1: and I_(1,0), 2: and the Lévy area (sdekit.noise.levy_area)
    parallel = threads > 1 and n_paths >= SERIAL_BELOW_PATHS

    xs = np.ascontiguousarray(x0).copy()
    # state a step carries between steps (steps_reversible_heun): kept per path across chunks and segments
    carry = np.zeros((n_work if family in CARRIED_FAMILIES else 0, n_paths, dim), dtype=x0.dtype)
    rng_w = np.empty((n_paths if m else 0, 4), dtype=np.uint64)
    rng_z = np.empty((n_paths if use_aux else 0, 4), dtype=np.uint64)
    kernels.seed_states(rng_w, np.uint64(seed), np.uint64(STREAM_BROWNIAN), np.uint64(path_offset))
    kernels.seed_states(rng_z, np.uint64(seed), np.uint64(STREAM_AUX), np.uint64(path_offset))
    out = np.empty((grid.save_steps.size, n_paths, dim), dtype=x0.dtype)
    n_chunks = (n_paths + chunk - 1) // chunk
    dead = np.zeros(n_paths, dtype=np.bool_)
    err_step = np.full(n_chunks, -1, dtype=np.int64)
    err_path = np.full(n_chunks, -1, dtype=np.int64)
    tables = noise_tables()
    n_steps = grid.ts.size - 1
    bridges = save_bridges(grid, seed, n_paths, m, use_aux, substeps, path_offset)
    keep_w = save_brownian and m > 0
    w_now = np.zeros((n_paths if keep_w else 0, max(m, 1)))
    w_out = np.zeros((grid.save_steps.size if keep_w else 0, n_paths, max(m, 1)))

    roles = ("drift", "diffusion") if is_sde else ("field", "diffusion")
    originals = (problem.drift, problem.diffusion) if is_sde else (problem.field, _no_diffusion)
    kernel, leading = fixed_kernel(step, gdw, originals, roles, x0, params, m)

    def call(xs_, rw, rz, k0, k1, out_, dead_, es, ep, c0, c1, carry_=carry, w_now_=w_now, w_out_=w_out):
        kernel(*leading, xs_, rw, rz, grid.ts, k0, k1, grid.save_steps, out_, params, tab, m, substeps, use_aux,
               chunk, c0, c1, n_work, carry_, mask, dead_, es, ep, *tables, grid.save_offsets, *bridges, w_now_,
               w_out_)

    empty = np.empty((0, dim), dtype=x0.dtype)
    with user_compile_errors(originals, roles, x0, params):
        call(empty, rng_w[:0], rng_z[:0], 0, 0, np.empty((grid.save_steps.size, 0, dim), x0.dtype),
             dead[:0], err_step[:0], err_path[:0], 0, 0, carry[:, :0], w_now[:0], w_out[:, :0])
    t_run = time.perf_counter()
    bar = _progress_bar(n_steps, progress is True)
    large = n_paths * n_steps * solver.evals * dim >= AUTO_PROGRESS_WORK
    segments = _segments(n_steps, progress is True or (progress is None and large))
    for k0, k1 in segments:
        with user_run_errors(roles, grid.ts[k0], grid.ts[k1]):
            run_threads(lambda c0, c1, k0=k0, k1=k1: call(xs, rng_w, rng_z, k0, k1, out, dead, err_step, err_path,
                                                           c0, c1),
                        n_chunks, threads if parallel else 1, pieces=4)
        if bar is None and progress is None and k0 == 0 and len(segments) > 1:
            if (time.perf_counter() - t_run) * len(segments) > AUTO_PROGRESS_SECONDS:
                bar = _progress_bar(n_steps, True)  # expected to run long: show where it is
                bar.update(k1)
        elif bar is not None:
            bar.update(k1 - k0)
        if np.any(err_step >= 0):
            break
    if bar is not None:
        bar.close()
    t_end = time.perf_counter()
    if np.any(err_step >= 0):
        bad = np.flatnonzero(err_step >= 0)
        order = np.lexsort((err_path[bad], err_step[bad]))
        c = bad[order[0]]
        raise NonFiniteError(err_path[c], err_step[c], grid.ts[err_step[c]], what=_nonfinite_what(leading, roles)
                             + getattr(solver.tableau, "failure_hint", ""))
    stats = SolveStats(steps=n_steps, evals=n_steps * solver.evals, path_steps=n_steps * n_paths,
                       masked_paths=int(dead.sum()), compile_seconds=t_run - t_compile,
                       run_seconds=t_end - t_run, backend="numba", solver=solver.name,
                       threads=threads if parallel else 1)
    if save_brownian:
        stats.extra["ws"] = w_out[:, :, :m]
    return out, stats


def run_adaptive(problem: Any, solver: Solver, functions: tuple, params: Any, x0: np.ndarray, t0: float,
                 save_ts: np.ndarray, *, rtol: float, atol: float, dt0: float | None, max_steps: int,
                 threads: int) -> tuple[np.ndarray, SolveStats]:
    """Adaptive ODE solve, each path with its own step sequence; returns (ys, stats)."""
    t_compile = time.perf_counter()
    n_paths, dim = x0.shape
    tab = solver.tableau
    parallel = threads > 1 and n_paths > 1
    xs = np.ascontiguousarray(x0).copy()
    out = np.empty((save_ts.size, n_paths, dim), dtype=x0.dtype)
    counts = [np.zeros(n_paths, dtype=np.int64) for _ in range(4)]
    err_t = np.zeros(n_paths)
    a, b, be, c = np.ascontiguousarray(tab.a), tab.b, np.ascontiguousarray(tab.b_err), tab.c

    kernel, leading = adaptive_kernel(problem.field, x0, params)

    def call(xs_, out_, cs, et, p0, p1):
        kernel(*leading, xs_, t0, save_ts, out_, params, a, b, be, c, tab.fsal, rtol, atol, float(dt0 or 0.0),
               max_steps, *cs, et, p0, p1)

    with user_compile_errors((problem.field,), ("field",), x0, params):
        call(np.empty((0, dim), x0.dtype), np.empty((save_ts.size, 0, dim), x0.dtype),
             [cc[:0] for cc in counts], err_t[:0], 0, 0)
    t_run = time.perf_counter()
    with user_run_errors(("field",), t0, save_ts[-1]):
        run_threads(lambda p0, p1: call(xs, out, counts, err_t, p0, p1), n_paths, threads if parallel else 1,
                    pieces=4)
    t_end = time.perf_counter()
    n_steps, n_rejected, n_evals, code = counts
    if np.any(code != 0):
        p = int(np.flatnonzero(code != 0)[0])
        if code[p] == 3:
            what = STEP_SIZE_COLLAPSED + ("" if not leading else "; or the field raised an exception there")
            raise NonFiniteError(p, n_steps[p] + n_rejected[p], err_t[p], what=what, adaptive=True)
        reason = "step budget max_steps exhausted" if code[p] == 1 else STEP_SIZE_UNDERFLOW
        raise StepSizeError(p, n_steps[p] + n_rejected[p], err_t[p], reason)
    stats = SolveStats(steps=int(n_steps.max(initial=0)), rejected=int(n_rejected.sum()),
                       evals=int(n_evals.max(initial=0)), path_steps=int(n_steps.sum()),
                       compile_seconds=t_run - t_compile, run_seconds=t_end - t_run, backend="numba",
                       solver=solver.name, threads=threads if parallel else 1,
                       extra={"steps_per_path": n_steps, "rejected_per_path": n_rejected})
    return out, stats


@contextlib.contextmanager
def user_compile_errors(functions: tuple, roles: tuple, x0: np.ndarray, params: Any):
    """Turn a Numba error while compiling a kernel into an SDEKitError naming the user function at fault (found by
    compiling each alone for the kernel's argument types); errors of sdekit's own code pass through."""
    try:
        yield
    except nb.core.errors.NumbaError as exc:
        args = first_class.argument_types(x0, params)
        for fn, role in zip(functions, roles):
            if fn is _no_diffusion:
                continue
            try:
                jitted(fn, role).compile(args)
            except nb.core.errors.NumbaError as own:
                raise compile_error(role, own) from exc
        raise


@contextlib.contextmanager
def user_run_errors(roles: tuple, t_from: float, t_to: float):
    """An exception raised inside a compiled solve (by the user's functions: a division by zero under Numba's
    Python error model, an explicit raise) becomes an SDEKitError naming the functions and the time span."""
    try:
        yield
    except (SDEKitError, FloatingPointError, MemoryError):
        raise
    except Exception as exc:
        names = _role_names(roles)
        raise SDEKitError(f"the solve stopped between t = {t_from:.6g} and t = {t_to:.6g}: {names} raised "
                          f"{type(exc).__name__}: {exc}") from exc


def _role_names(roles: tuple) -> str:
    """'drift or diffusion' for an SDE, 'field' for an ODE (its diffusion slot is sdekit's zero)."""
    return " or ".join(roles if roles[0] == "drift" else roles[:1])


def _nonfinite_what(leading: tuple, roles: tuple) -> str:
    """The NonFiniteError wording: through function pointers an exception of the user's functions shows as NaN."""
    if leading and isinstance(leading[0], first_class.FunctionPointer):
        return f"state; or {_role_names(roles)} raised an exception there (it cannot cross the compiled call)"
    return "state"


def function_pointer(fn: Any, role: str, x0: np.ndarray, params: Any, m: int) -> first_class.FunctionPointer:
    """fn's adapter compiled for the kernels' argument types, as a first-class function value."""
    try:
        return first_class.FunctionPointer(disk_cache.adapter(fn, role, m), first_class.argument_types(x0, params))
    except nb.core.errors.NumbaError as exc:
        raise compile_error(role, exc) from exc


def fixed_kernel(step: Any, gdw: Any, functions: tuple, roles: tuple, x0: np.ndarray, params: Any,
                 m: int) -> tuple[Callable, tuple]:
    """(kernel, its leading function arguments) of a fixed-step solve, the fastest available:

    1. functions importable by name: a kernel generated with them as globals (inlined), cached on disk;
    2. any other functions: the kernel cached on disk for this step and noise term, taking the functions as
       first-class pointers to their adapters (compiles only the adapters, about 0.4 s each);
    3. disk cache off: the generic kernel, compiled in this process for these function objects.
    """
    f, g = functions
    if closes_over_user_function(step):
        return kernels.fixed_step, (step, _compiled(f, roles[0]), _compiled(g, roles[1]), gdw)
    cached = disk_cache.specialised("fixed", {"f": f, "g": g, "gdw": gdw}, step=step)
    if cached is not None:
        return cached, ()
    pointers = disk_cache.pointer_kernel("fixed", step, gdw)
    if pointers is not None:
        return pointers, tuple(function_pointer(fn, role, x0, params, m) for fn, role in zip(functions, roles))
    return kernels.fixed_step, (step, _compiled(f, roles[0]), _compiled(g, roles[1]), gdw)


def adaptive_kernel(field: Any, x0: np.ndarray, params: Any) -> tuple[Callable, tuple]:
    """(kernel, its leading function arguments) of an adaptive ODE solve, chosen as in `fixed_kernel`."""
    cached = disk_cache.specialised("adaptive", {"f": field})
    if cached is not None:
        return cached, ()
    pointers = disk_cache.pointer_kernel("adaptive")
    if pointers is not None:
        return pointers, (function_pointer(field, "field", x0, params, 0),)
    return kernels.adaptive, (_compiled(field, "field"),)


def _compiled(fn: Any, role: str) -> Any:
    return fn if fn is _no_diffusion else jitted(fn, role)


def _segments(n_steps: int, split: bool) -> list[tuple[int, int]]:
    """[0, n_steps) whole, or in up to 50 segments between which progress is reported (same numbers either way)."""
    if not split or n_steps < 2:
        return [(0, n_steps)]
    edges = np.unique(np.linspace(0, n_steps, min(n_steps, 50) + 1).astype(int))
    return list(zip(edges[:-1], edges[1:]))


def _progress_bar(n_steps: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n_steps, unit="step", desc="sdekit")
