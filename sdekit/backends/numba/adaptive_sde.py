"""Adaptive SDE solves on the Numba backend: each path its own steps, on its own queryable Brownian path.

Per path, a try from t to t + h reads (W, J) at t + h from the path's `BrownianIntegralPath` tree (stream
`STREAM_BROWNIAN_INTEGRAL`), forms dW and I_(1,0) = J(t + h) - J(t) - h W(t), and takes the embedded pair's step
(`steps_adaptive_sde`); the error x_high - x_low, scaled by atol + rtol max(|x|, |x'|), is reduced to an RMS norm
(as the ODE kernel does). err <= 1 accepts the step. The next h follows a PI controller (Gustafsson 1991; Hairer &
Wanner, Solving ODEs II, IV.2): h' = h min(fac_max, max(fac_min, 0.9 err^(-0.7 / q) err_prev^(0.4 / q))), with q the
order of the estimate in h (err ~ h^q). A rejected try is retried with a smaller h on the SAME path: the tree's
values are pure functions of (seed, path, node), so a rejection only re-queries the path and never biases it
(Rackauckas & Nie 2017 need "rejection sampling with memory" for the same reason).

Trial times are rounded to dyadic points: t + h is moved to the nearest multiple of T 2^-l with l = ceil(log2(T / h))
+ SNAP_BITS (a relative change of h below 2^-SNAP_BITS), where the tree is exact and a query stops at level l; save
times are hit exactly (the step is shortened to land on them).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numba as nb
import numpy as np

from sdekit.backends.numba.access import noise_term_for
from sdekit.backends.numba.runner import _compiled, run_threads, solver_tab, user_compile_errors, user_run_errors
from sdekit.backends.numba.steps_adaptive_sde import PAIRS, pair_work_arrays
from sdekit.errors import STEP_SIZE_COLLAPSED, STEP_SIZE_UNDERFLOW, NonFiniteError, StepSizeError
from sdekit.forms import batch_functions
from sdekit.noise.brownian_integral_path import (
    DEFAULT_DEPTH,
    STREAM_BROWNIAN_INTEGRAL,
    path_key,
    query_path,
)
from sdekit.noise.counter import stream_base
from sdekit.solution import SolveStats
from sdekit.solvers import Solver

SNAP_BITS = 12
SAFETY, FAC_MIN, FAC_MAX = 0.9, 0.2, 2.0
DEFAULT_FIRST_STEP = 2.0**-6  # of the span, when dt0 is not given


@nb.njit
def tree_increments(key, span, depth, u_now, u_new, w_now, j_now, cells, nodes, ends, valid, w_new, j_new):
    """(W, J) at u_new from the path's tree (the production noise of the kernel; u_now, w_now, j_now unused)."""
    query_path(key, span, depth, u_new, cells, nodes, ends, valid, w_new, j_new)


@nb.njit
def _rms(e, x0, x1, rtol, atol):
    acc = 0.0
    d = e.shape[1]
    for i in range(d):
        sc = atol + rtol * max(abs(x0[0, i]), abs(x1[0, i]))
        acc += (e[0, i] / sc) ** 2
    return math.sqrt(acc / d)


@nb.njit
def _snap(u, hu, u_target, depth):
    """u + hu moved to the nearest dyadic point of level ceil(log2(1 / hu)) + SNAP_BITS (<= depth), kept in
    (u, u_target]; u_target itself when the step reaches it."""
    if u + hu >= u_target:
        return u_target
    level = min(depth, int(math.ceil(-math.log2(hu))) + SNAP_BITS)
    scale = 2.0**level
    u_new = math.floor((u + hu) * scale + 0.5) / scale
    if u_new <= u:
        u_new = u + 1.0 / scale
    return min(u_new, u_target)


def build_kernel(increments: Any) -> Any:
    """The per-path adaptive SDE kernel reading its (W, J) through ``increments`` (signature of
    `tree_increments`)."""

    @nb.njit(nogil=True)
    def kernel(pair, f, g, gdw, xs, t0, span, save_us, out, p, tab, m, n_work, base, depth, rtol, atol, h_init,
               max_steps, q, n_steps, n_rejected, err_code, err_t, p_start, p_stop, path_offset):
        """Paths [p_start, p_stop), each on its own steps; err_code 0 ok, 1 max_steps, 2 underflow, 3 non-finite."""
        n_paths, d = xs.shape
        n_saves = save_us.shape[0]
        cells, nodes, ends, valid = np.empty((depth + 1, 2)), np.empty(depth + 1, np.int64), \
            np.empty((depth + 1, 5, m)), np.zeros(1, np.int64)
        x = np.empty((1, d), dtype=xs.dtype)
        xn = np.empty((1, d), dtype=xs.dtype)
        e = np.empty((1, d))
        work = np.empty((n_work, 1, d), dtype=xs.dtype)
        dw = np.empty((1, m))
        dz = np.empty((1, m))
        w_now, j_now, w_new, j_new = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
        for n in range(p_start, p_stop):
            key = path_key(base, path_offset + n)
            valid[0] = 0
            for i in range(d):
                x[0, i] = xs[n, i]
            for j in range(m):
                w_now[j] = 0.0
                j_now[j] = 0.0
            u = 0.0
            h = h_init
            err_prev = 1.0
            code = 0
            steps = 0
            rejected = 0
            last_nonfinite = False
            for s in range(n_saves):
                u_target = save_us[s]
                while code == 0 and u < u_target:
                    u_new = _snap(u, h / span, u_target, depth)
                    increments(key, span, depth, u, u_new, w_now, j_now, cells, nodes, ends, valid, w_new, j_new)
                    hh = span * (u_new - u)
                    for j in range(m):
                        dw[0, j] = w_new[j] - w_now[j]
                        dz[0, j] = j_new[j] - j_now[j] - hh * w_now[j]
                    for i in range(d):
                        xn[0, i] = x[0, i]
                    pair(f, g, gdw, xn, t0 + span * u, hh, dw, dz, p, work, tab, e)
                    err = _rms(e, x, xn, rtol, atol)
                    if err <= 1.0:
                        u = u_new
                        for i in range(d):
                            x[0, i] = xn[0, i]
                        for j in range(m):
                            w_now[j] = w_new[j]
                            j_now[j] = j_new[j]
                        steps += 1
                        err_c = max(err, 1e-4)
                        fac = min(FAC_MAX, max(FAC_MIN, SAFETY * err_c ** (-0.7 / q) * err_prev ** (0.4 / q)))
                        err_prev = err_c
                        h = max(hh * fac, h) if u_new == u_target else hh * fac
                        last_nonfinite = False
                    else:
                        rejected += 1
                        last_nonfinite = not (err < np.inf)
                        fac = FAC_MIN if last_nonfinite else max(FAC_MIN, SAFETY * err ** (-1.0 / q))
                        h = hh * min(1.0, fac)
                    if steps + rejected >= max_steps:
                        code = 1
                    elif h < 1e-14 * span:
                        code = 3 if last_nonfinite else 2
                if code != 0:
                    break
                for i in range(d):
                    out[s, n, i] = x[0, i]
            for i in range(d):
                xs[n, i] = x[0, i]
            n_steps[n] = steps
            n_rejected[n] = rejected
            err_code[n] = code
            err_t[n] = t0 + span * u

    return kernel


KERNEL = build_kernel(tree_increments)


def run_adaptive_sde(problem: Any, solver: Solver, params: Any, x0: np.ndarray, t0: float, t1: float,
                     save_ts: np.ndarray, *, seed: int, rtol: float, atol: float, dt0: float | None, max_steps: int,
                     threads: int, path_offset: int = 0) -> tuple[np.ndarray, SolveStats]:
    """Adaptive SDE solve of every path on its own steps and its own Brownian path over [t0, t1] (module docstring;
    the solve stops at the last save time); returns (ys, stats) with stats.extra["accepted"] and ["rejected"] the
    per-path counts."""
    t_compile = time.perf_counter()
    n_paths, dim = x0.shape
    span = float(t1 - t0)
    save_us = np.where(save_ts == t1, 1.0, (save_ts - t0) / span)
    pair_data = solver.tableau
    family = solver.family
    n_work = pair_work_arrays(family, pair_data.stages)
    tab = solver_tab(solver, "ito")
    gdw = noise_term_for(problem.noise, problem.matrix_noise)
    m = problem.m
    parallel = threads > 1 and n_paths > 1
    xs = np.ascontiguousarray(x0).copy()
    out = np.empty((save_ts.size, n_paths, dim), dtype=x0.dtype)
    n_steps, n_rejected, code = (np.zeros(n_paths, dtype=np.int64) for _ in range(3))
    err_t = np.zeros(n_paths)
    base = np.uint64(stream_base(seed, STREAM_BROWNIAN_INTEGRAL))
    h_init = float(dt0) if dt0 is not None else DEFAULT_FIRST_STEP * span
    q = float(pair_data.error_order)
    functions = batch_functions(problem)  # per-path functions through their row-by-row batch functions
    f, g = _compiled(functions[0], "drift"), _compiled(functions[1], "diffusion")

    def call(xs_, out_, ns, nr, cd, et, p0, p1):
        KERNEL(PAIRS[family], f, g, gdw, xs_, t0, span, save_us, out_, params, tab, m, n_work, base, DEFAULT_DEPTH,
               rtol, atol, h_init, max_steps, q, ns, nr, cd, et, p0, p1, np.int64(path_offset))

    with user_compile_errors(functions, ("drift", "diffusion"), x0, params):
        call(np.empty((0, dim), x0.dtype), np.empty((save_ts.size, 0, dim), x0.dtype), n_steps[:0], n_rejected[:0],
             code[:0], err_t[:0], 0, 0)
    t_run = time.perf_counter()
    with user_run_errors(("drift", "diffusion"), t0, save_ts[-1]):
        run_threads(lambda p0, p1: call(xs, out, n_steps, n_rejected, code, err_t, p0, p1), n_paths,
                    threads if parallel else 1, pieces=4)
    t_end = time.perf_counter()
    if np.any(code != 0):
        p = int(np.flatnonzero(code != 0)[0])
        if code[p] == 3:
            raise NonFiniteError(p, n_steps[p] + n_rejected[p], err_t[p], what=STEP_SIZE_COLLAPSED, adaptive=True)
        reason = "step budget max_steps exhausted" if code[p] == 1 else STEP_SIZE_UNDERFLOW
        raise StepSizeError(p, n_steps[p] + n_rejected[p], err_t[p], reason)
    evals = (n_steps + n_rejected) * solver.evals
    stats = SolveStats(steps=int(n_steps.max(initial=0)), rejected=int(n_rejected.sum()),
                       evals=int(evals.max(initial=0)), path_steps=int(n_steps.sum()),
                       compile_seconds=t_run - t_compile, run_seconds=t_end - t_run, backend="numba",
                       solver=solver.name, threads=threads if parallel else 1,
                       extra={"accepted": n_steps, "rejected": n_rejected, "steps_per_path": n_steps,
                              "rejected_per_path": n_rejected})
    return out, stats
