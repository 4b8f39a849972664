"""Drive the Numba kernels: allocate once, pick serial or parallel, time compile and run, report errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends.numba import disk_cache, evaluate, first_class, kernels
from sdekit.backends.numba.steps_implicit import closes_over_user_function
from sdekit.errors import STEP_SIZE_COLLAPSED, STEP_SIZE_UNDERFLOW, NonFiniteError, SDEKitError, StepSizeError
from sdekit.forms import batch_functions
from sdekit.probe import compile_error
from sdekit.solution import SolveStats
from sdekit.solvers import Solver
from sdekit.user_functions import jitted


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

    field = batch_functions(problem)[0]  # a per-path field through its row-by-row batch function
    kernel, leading = adaptive_kernel(field, x0, params)

    def call(xs_, out_, cs, et, p0, p1):
        kernel(*leading, xs_, t0, save_ts, out_, params, a, b, be, c, tab.fsal, rtol, atol, float(dt0 or 0.0),
               max_steps, *cs, et, p0, p1)

    with user_compile_errors((field,), ("field",), x0, params):
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
                if isinstance(fn, evaluate.MARKERS):
                    jitted(fn.fn, role).compile(evaluate.row_argument_types(fn, x0, params))
                else:
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
    if isinstance(f, evaluate.MARKERS) or isinstance(g, evaluate.MARKERS):
        return _per_path_kernel(step, gdw, f, g, roles)
    cached = disk_cache.specialised("fixed", {"f": f, "g": g, "gdw": gdw}, step=step)
    if cached is not None:
        return cached, ()
    pointers = disk_cache.pointer_kernel("fixed", step, gdw)
    if pointers is not None:
        return pointers, tuple(function_pointer(fn, role, x0, params, m) for fn, role in zip(functions, roles))
    return kernels.fixed_step, (step, _compiled(f, roles[0]), _compiled(g, roles[1]), gdw)


def _per_path_kernel(step: Any, gdw: Any, f: Any, g: Any, roles: tuple) -> tuple[Callable, tuple]:
    """`fixed_kernel` for per-path functions (`evaluate`): the disk-cached kernel with their markers bound as globals
    when the functions are importable by name, else the generic kernel compiled in this process for them (per-path
    functions have no function-pointer kernel)."""
    cached = disk_cache.specialised("fixed", {"f": f, "g": g, "gdw": gdw}, step=step)
    if cached is not None:
        return cached, ()
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
    return fn if fn is _no_diffusion else evaluate.compiled_marker(fn, role)
