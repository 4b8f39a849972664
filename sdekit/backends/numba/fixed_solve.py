"""A fixed-step Numba solve split in two: `prepare_fixed` does everything that does not depend on the initial state,
the seed or the parameter values (pick and compile the kernel, its coefficient arrays, the noise tables, the thread
plan); `FixedSolve.run` allocates the state, seeds the per-path generators and runs the kernel.

`sdekit.plan` keeps the prepared solve and runs it again for new x0, seed and parameters, and `sdekit.simulate`
remembers it for the next call of the same problem (`sdekit.solve_cache`), so a repeated small solve skips the
checking, probing and set-up (the throughput benchmark's small-run rows measure it). Every path runs the same
kernel on the same arguments: the numbers are the same. A small serial run (`FixedSolve._run_small`) fills the
state, output and parameters into an argument list made once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends.numba.access import noise_term_for
from sdekit.backends.numba.runner import (
    _no_diffusion,
    _nonfinite_what,
    default_chunk,
    fixed_kernel,
    run_threads,
    solver_tab,
    user_compile_errors,
    user_run_errors,
)
from sdekit.backends.numba.steps import CARRIED_FAMILIES, STEPS, work_arrays
from sdekit.backends.numba.steps_implicit import theta_step_with_jacobian
from sdekit.backends.save_bridge import save_bridges
from sdekit.errors import NonFiniteError, SDEKitError
from sdekit.forms import kernel_functions
from sdekit.grid import Grid
from sdekit.noise.levy_area import aux_mode
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN, noise_tables, seed_stream
from sdekit.noise.streams32 import STATE_WORDS_32, noise_tables32
from sdekit.solution import SolveStats
from sdekit.solvers import Solver, step_family
from sdekit.user_functions import jitted

_U64_0 = np.uint64(0)
SERIAL_BELOW_PATHS = 2048  # below this many paths one thread beats splitting the work
# progress=None shows a bar when a solve is expected to take longer than AUTO_PROGRESS_SECONDS: solves of at least
# AUTO_PROGRESS_WORK element-evaluations (paths x steps x evals x dim, about 0.1 s and up) run in segments, and the
# first segment's time, times the number of segments, is the estimate; below it, the rest runs as one segment
AUTO_PROGRESS_SECONDS = 5.0
AUTO_PROGRESS_WORK = 10**7


@nb.njit(cache=True)
def reset_run(x0, xs, rng_w, rng_z, seed, path_offset, carry, dead, err_step, err_path):
    """A run's scratch set to its start: the state xs a copy of x0, the generators of paths path_offset + p seeded
    for (seed, stream 0: the Brownian increments; stream 1: the auxiliary normals; a 5-word float32 generator with its
    spare word empty), carried work arrays 0, no path dead, no error. Returns False when x0 is not all finite."""
    finite = True
    for p in range(x0.shape[0]):
        for i in range(x0.shape[1]):
            v = x0[p, i]
            xs[p, i] = v
            if not np.isfinite(v):
                finite = False
    for p in range(rng_w.shape[0]):
        seed_stream(rng_w[p], seed, path_offset + np.uint64(p), np.uint64(STREAM_BROWNIAN))
        if rng_w.shape[1] > 4:
            rng_w[p, 4] = 0
    for p in range(rng_z.shape[0]):
        seed_stream(rng_z[p], seed, path_offset + np.uint64(p), np.uint64(STREAM_AUX))
    flat = carry.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = 0.0
    for p in range(dead.shape[0]):
        dead[p] = False
    for c in range(err_step.shape[0]):
        err_step[c] = -1
        err_path[c] = -1
    return finite


@nb.njit(cache=True)
def first_error(err_step):
    """The first chunk that stopped at a non-finite state, or -1."""
    for c in range(err_step.shape[0]):
        if err_step[c] >= 0:
            return c
    return -1


@dataclass
class FixedSolve:
    """A prepared fixed-step solve of `n_paths` paths of dimension `dim` on `grid` (module docstring).

    kernel(*leading, ...) is the compiled kernel and its leading function arguments (`runner.fixed_kernel`); tab the
    solver's coefficients, tables the ziggurat tables (float32 ones for float32 noise); m Brownian components,
    use_aux the auxiliary-noise mode; threads the threads the solve runs on (1 below `SERIAL_BELOW_PATHS` paths);
    compile_seconds the time `prepare_fixed` took. `bridges` holds the off-grid save bridges when they do not depend
    on the seed (no save inside a step).
    """

    solver: Solver
    grid: Grid
    kernel: Any
    leading: tuple
    tab: tuple
    tables: tuple
    roles: tuple
    n_paths: int
    dim: int
    dtype: Any
    m: int
    use_aux: int
    substeps: int
    chunk: int
    n_work: int
    carried: bool
    mask: bool
    threads: int
    progress: bool | None
    save_brownian: bool
    bridges: tuple | None
    compile_seconds: float
    state_words: int = 4

    def __post_init__(self) -> None:
        n_paths, dim, m = self.n_paths, self.dim, self.m
        mm = max(m, 1)
        self._n_chunks = (n_paths + self.chunk - 1) // self.chunk
        self._small = n_paths * (self.grid.ts.size - 1) * self.solver.evals * dim < AUTO_PROGRESS_WORK
        self._keep_w = self.save_brownian and m > 0
        self._lock = threading.Lock()
        # scratch that a run overwrites or resets: reused by one run at a time (the lock), fresh for a concurrent one
        self._scratch = self._new_scratch()
        self._empty_w = (np.zeros((0, mm)), np.zeros((0, n_paths, mm)))
        # the small serial run with the seed-free bridges on the own scratch: its kernel arguments are made once here
        # and a run fills in only the state, the output and the parameters (`_run_small`)
        self._x_at = len(self.leading)  # where the state, the output and the parameters sit in the kernel arguments
        self._out_shape = (self.grid.save_steps.size, n_paths, dim)
        self._lean = (self.progress is not True and self._small and self.threads == 1 and self.bridges is not None
                      and not self._keep_w)
        self._lean_args = self._arguments(None, None, self._scratch, self.bridges, *self._empty_w) \
            if self._lean else []

    def retained_bytes(self) -> int:
        """Bytes of the arrays this prepared solve keeps between runs (scratch, grid, seed-free save bridges)."""
        grid = self.grid
        kept = [*self._scratch, grid.ts, grid.save_steps, grid.save_offsets, *(self.bridges or ())]
        return sum(a.nbytes for a in kept if isinstance(a, np.ndarray))

    def _new_scratch(self) -> tuple:
        n_paths = self.n_paths
        return (np.empty((n_paths, self.dim), dtype=self.dtype),
                np.zeros((self.n_work if self.carried else 0, n_paths, self.dim), dtype=self.dtype),
                np.empty((n_paths if self.m else 0, self.state_words), dtype=np.uint64),
                np.empty((n_paths if self.use_aux else 0, 4), dtype=np.uint64),
                np.zeros(n_paths, dtype=np.bool_), np.empty(self._n_chunks, dtype=np.int64),
                np.empty(self._n_chunks, dtype=np.int64))

    def run(self, x0: np.ndarray, params: Any, seed: int, path_offset: int = 0) -> tuple[np.ndarray, SolveStats]:
        """Solve from x0 (C-contiguous, shape (n_paths, dim), this dtype, finite: checked by the caller) with these
        parameters (the prepared structure and dtypes) and seed; row p is path path_offset + p of the ensemble.
        Returns (ys (n_saves, n_paths, dim), stats); raises NonFiniteError naming the first non-finite path."""
        own = self._lock.acquire(blocking=False)
        try:
            if own and self._lean:
                return self._run_small(x0, params, seed, path_offset)
            return self._run(x0, params, seed, path_offset, self._scratch if own else self._new_scratch())
        finally:
            if own:
                self._lock.release()

    def _arguments(self, out: Any, params: Any, scratch: tuple, bridges: tuple, w_now: np.ndarray,
                   w_out: np.ndarray) -> list:
        """The kernel's arguments for a run of all steps on all chunks (`kernels.fixed_step`'s order)."""
        xs, carry, rng_w, rng_z, dead, err_step, err_path = scratch
        grid = self.grid
        return [*self.leading, xs, rng_w, rng_z, grid.ts, 0, grid.ts.size - 1, grid.save_steps, out, params,
                self.tab, self.m, self.substeps, self.use_aux, self.chunk, 0, self._n_chunks, self.n_work, carry,
                self.mask, dead, err_step, err_path, *self.tables, grid.save_offsets, *bridges, w_now, w_out]

    def _run_small(self, x0: np.ndarray, params: Any, seed: int, path_offset: int) -> tuple[np.ndarray, SolveStats]:
        """`_run` of a small serial solve on the own scratch (the lock held): the same kernel call on the same
        arguments, made from the prepared list (no per-call argument assembly)."""
        xs, carry, rng_w, rng_z, dead, err_step, err_path = self._scratch
        if not reset_run(x0, xs, rng_w, rng_z, np.uint64(seed), _U64_0 if path_offset == 0 else np.uint64(path_offset),
                         carry, dead, err_step, err_path):
            _raise_not_finite(x0)
        args = self._lean_args
        args[self._x_at + 7] = out = np.empty(self._out_shape, self.dtype)
        args[self._x_at + 8] = params
        t_run = time.perf_counter()
        try:
            self.kernel(*args)
        except Exception as exc:
            ts = self.grid.ts
            with user_run_errors(self.roles, ts[0], ts[-1]):
                raise exc
        t_end = time.perf_counter()
        if (err_step[0] >= 0) if self._n_chunks == 1 else (first_error(err_step) >= 0):
            self._raise_nonfinite(err_step, err_path)
        n_steps = self.grid.ts.size - 1
        return out, SolveStats(n_steps, 0, n_steps * self.solver.evals, n_steps * self.n_paths,
                               int(dead.sum()) if self.mask else 0, 0.0, t_end - t_run, "numba", self.solver.name, 1)

    def _raise_nonfinite(self, err_step: np.ndarray, err_path: np.ndarray) -> None:
        """NonFiniteError naming the first path (lowest step, then lowest path) that turned non-finite."""
        bad = np.flatnonzero(err_step >= 0)
        order = np.lexsort((err_path[bad], err_step[bad]))
        c = bad[order[0]]
        raise NonFiniteError(err_path[c], err_step[c], self.grid.ts[err_step[c]],
                             what=_nonfinite_what(self.leading, self.roles)
                             + getattr(self.solver.tableau, "failure_hint", ""))

    def _run(self, x0: np.ndarray, params: Any, seed: int, path_offset: int,
             scratch: tuple) -> tuple[np.ndarray, SolveStats]:
        grid = self.grid
        n_paths, m, ts = self.n_paths, self.m, grid.ts
        xs, carry, rng_w, rng_z, dead, err_step, err_path = scratch
        if not reset_run(x0, xs, rng_w, rng_z, np.uint64(seed), np.uint64(path_offset), carry, dead, err_step,
                         err_path):
            _raise_not_finite(x0)
        out = np.empty(self._out_shape, dtype=self.dtype)
        bridges = self.bridges
        if bridges is None:
            bridges = save_bridges(grid, seed, n_paths, m, self.use_aux, self.substeps, path_offset)
        if self._keep_w:
            w_now = np.zeros((n_paths, m))
            w_out = np.zeros((grid.save_steps.size, n_paths, m))
        else:
            w_now, w_out = self._empty_w
        args = self._arguments(out, params, scratch, bridges, w_now, w_out)
        at = self._x_at

        def call(k0: int, k1: int, c0: int, c1: int) -> None:  # steps [k0, k1) of chunks [c0, c1), on any thread
            mine = args.copy()
            mine[at + 4], mine[at + 5], mine[at + 14], mine[at + 15] = k0, k1, c0, c1
            self.kernel(*mine)

        n_steps = ts.size - 1
        n_chunks = self._n_chunks
        t_run = time.perf_counter()
        if self.progress is not True and self._small:  # the small-run path: one segment, this thread when serial
            try:
                if self.threads == 1:
                    call(0, n_steps, 0, n_chunks)
                else:
                    run_threads(lambda c0, c1: call(0, n_steps, c0, c1), n_chunks, self.threads, pieces=4)
            except Exception as exc:
                with user_run_errors(self.roles, ts[0], ts[n_steps]):
                    raise exc
        else:
            self._run_segments(call, n_steps, n_chunks, err_step, t_run)
        t_end = time.perf_counter()
        if first_error(err_step) >= 0:
            self._raise_nonfinite(err_step, err_path)
        stats = SolveStats(steps=n_steps, evals=n_steps * self.solver.evals, path_steps=n_steps * n_paths,
                           masked_paths=int(dead.sum()) if self.mask else 0, run_seconds=t_end - t_run,
                           backend="numba", solver=self.solver.name, threads=self.threads)
        if self.save_brownian:
            stats.extra["ws"] = w_out[:, :, :m]
        return out, stats

    def _run_segments(self, call: Any, n_steps: int, n_chunks: int, err_step: np.ndarray, t_run: float) -> None:
        """Run the grid in segments between which a progress bar moves (or appears, when the first segment says the
        solve will take longer than `AUTO_PROGRESS_SECONDS`); stop after a segment in which a path turned non-finite."""
        progress = self.progress
        ts = self.grid.ts
        bar = _progress_bar(n_steps, progress is True)
        segments = _segments(n_steps, progress is True or (progress is None and not self._small))
        i = 0
        while i < len(segments):
            k0, k1 = segments[i]
            with user_run_errors(self.roles, ts[k0], ts[k1]):
                run_threads(lambda c0, c1, k0=k0, k1=k1: call(k0, k1, c0, c1), n_chunks, self.threads, pieces=4)
            if bar is None and progress is None and k0 == 0 and len(segments) > 1:
                if (time.perf_counter() - t_run) * len(segments) > AUTO_PROGRESS_SECONDS:
                    bar = _progress_bar(n_steps, True)  # expected to run long: show where it is
                    bar.update(k1)
                else:  # no bar will show: the rest in one segment (each costs a thread dispatch per piece)
                    segments = [segments[0], (k1, n_steps)]
            elif bar is not None:
                bar.update(k1 - k0)
            if np.any(err_step >= 0):
                break
            i += 1
        if bar is not None:
            bar.close()


def prepare_fixed(problem: Any, solver: Solver, params: Any, x0: np.ndarray, grid: Grid, *, substeps: int,
                  threads: int, progress: bool | None, mask: bool, chunk: int | None,
                  save_brownian: bool = False, noise_dtype: str = "float64") -> FixedSolve:
    """Pick and compile the kernel of a fixed-step solve of an SDE (or an ODE with an RK tableau) for x0's shape and
    dtype and params' types, and everything else that does not change with x0, the seed or the parameter values.

    noise_dtype="float32" draws float32 normals directly (`sdekit.noise.streams32`: float32 tables, 5-word generator
    states) into float32 increments; only the plain increments (one normal per component and step, no auxiliary noise,
    no save inside a step) have a float32 form, the others are refused here (`check_noise_dtype`)."""
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
    roles = ("drift", "diffusion") if is_sde else ("field", "diffusion")
    originals = kernel_functions(problem) if is_sde else (*kernel_functions(problem), _no_diffusion)
    kernel, leading = fixed_kernel(step, gdw, originals, roles, x0, params, m)
    noise32 = noise_dtype == "float32"
    if noise32:
        check_noise_dtype(solver, substeps, use_aux, grid)
    tables = noise_tables32() if noise32 else noise_tables()
    words = STATE_WORDS_32 if noise32 else 4
    carried = family in CARRIED_FAMILIES
    n_saves = grid.save_steps.size
    # on the grid the bridges hold no normals (nothing depends on the seed): made once, for the compile call too
    bridges = None if grid.off_grid else save_bridges(grid, 0, n_paths, m, use_aux, substeps)
    empty_bridges = save_bridges(grid, 0, 0, m, use_aux, substeps) if bridges is None else bridges
    mm = max(m, 1)
    dt = x0.dtype
    with user_compile_errors(originals, roles, x0, params):  # compile (or load) for these types on zero paths
        kernel(*leading, np.empty((0, dim), dt), np.empty((0, words), np.uint64), np.empty((0, 4), np.uint64), grid.ts,
               0, 0, grid.save_steps, np.empty((n_saves, 0, dim), dt), params, tab, m, substeps, use_aux, chunk, 0, 0,
               n_work, np.zeros((n_work if carried else 0, 0, dim), dt), mask, np.zeros(0, np.bool_),
               np.zeros(0, np.int64), np.zeros(0, np.int64), *tables, grid.save_offsets, *empty_bridges,
               np.zeros((0, mm)), np.zeros((0, 0, mm)))
    return FixedSolve(solver=solver, grid=grid, kernel=kernel, leading=leading, tab=tab, tables=tables, roles=roles,
                      n_paths=n_paths, dim=dim, dtype=dt, m=m, use_aux=use_aux, substeps=substeps, chunk=chunk,
                      n_work=n_work, carried=carried, mask=mask, threads=threads if parallel else 1,
                      progress=progress, save_brownian=save_brownian, bridges=bridges,
                      compile_seconds=time.perf_counter() - t_compile, state_words=words)


def _raise_not_finite(x0: np.ndarray) -> None:
    """SDEKitError naming the first non-finite entry of the initial state."""
    bad = np.argwhere(~np.isfinite(x0))[0]
    raise SDEKitError(f"x0 must be finite; x0[{', '.join(map(str, bad))}] = {x0[tuple(bad)]}")


def check_noise_dtype(solver: Solver, substeps: int, use_aux: int, grid: Grid) -> None:
    """noise_dtype="float32" covers the plain increments only: one normal per component and step (noise_substeps=1,
    no auxiliary normals or Lévy areas, no save strictly inside a step); SDEKitError naming the option otherwise."""
    why = ("noise_substeps > 1" if substeps > 1 else f"solver {solver.name!r} draws auxiliary normals" if use_aux
           else "saves inside steps (save_at off the step grid)" if grid.off_grid else None)
    if why is not None:
        raise SDEKitError(f"noise_dtype='float32' supports one normal per Brownian component and step (no noise "
                          f"substeps, auxiliary noise or saves inside steps); got {why}: use noise_dtype='float64'")


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
