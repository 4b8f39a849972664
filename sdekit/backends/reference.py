"""The NumPy reference backend: every solver written out plainly, vectorised over all paths.

Obvious rather than fast: it is the oracle the Numba kernels are tested against. It draws
the same noise (`sdekit.noise.reference.PathStreams`) in the same order, so on the same
seed both backends produce the same numbers up to rounding.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from typing import Any

import numpy as np

from sdekit.backends.numba.fixed_solve import check_noise_dtype
from sdekit.backends.reference_milstein_matrix import area_increments, milstein_matrix_step
from sdekit.backends.reference_platen_weak2 import platen_weak2_step
from sdekit.backends.reference_reversible_heun import ReversibleHeunStep
from sdekit.backends.reference_sri import sri_step
from sdekit.backends.reference_stiff import STEPS as STIFF_STEPS
from sdekit.backends.save_bridge import save_bridges
from sdekit.errors import STEP_SIZE_COLLAPSED, STEP_SIZE_UNDERFLOW, NonFiniteError, StepSizeError
from sdekit.forms import batch_view, roles
from sdekit.grid import Grid
from sdekit.noise.reference import PathStreams
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN
from sdekit.noise.streams32 import path_normals32
from sdekit.solution import SolveStats
from sdekit.solvers import Solver, step_family


def _vec(a: Any, n: int, d: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, dtype=float), (n, d))


class _Noise:
    """g dW for the SDE's noise type, with g as returned by the user."""

    def __init__(self, problem: Any):
        self.matrix = problem.matrix_noise
        self.scalar = problem.noise == "scalar"
        self.m = problem.m

    def apply(self, g: Any, dw: np.ndarray, n: int, d: int) -> np.ndarray:
        if self.matrix:
            gm = np.broadcast_to(np.asarray(g, dtype=float), (n, d, self.m))
            return np.einsum("nij,nj->ni", gm, dw)
        return _vec(g, n, d) * (dw[:, :1] if self.scalar else dw)


def _em(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    n, d = x.shape
    return x + (_vec(f(x, t, p), n, d) * h + noise.apply(g(x, t, p), dw, n, d))


def _milstein(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    n, d = x.shape
    sq = math.sqrt(abs(h))
    fx, gx = _vec(f(x, t, p), n, d), _vec(g(x, t, p), n, d)
    dwi = dw[:, :1] if noise.scalar else dw
    if calculus == "ito":
        gbar = _vec(g(x + fx * h + gx * sq, t, p), n, d)
        return x + fx * h + gx * dwi + (gbar - gx) * (dwi**2 - abs(h)) / (2 * sq)
    gplus, gminus = _vec(g(x + gx * sq, t, p), n, d), _vec(g(x - gx * sq, t, p), n, d)
    return x + (fx * h + gx * dwi + (gplus - gminus) * dwi**2 / (4 * sq))


def _heun(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    n, d = x.shape
    f0, n0 = _vec(f(x, t, p), n, d), noise.apply(g(x, t, p), dw, n, d)
    xt = x + f0 * h + n0
    return x + 0.5 * (f0 + _vec(f(xt, t + h, p), n, d)) * h + 0.5 * (n0 + noise.apply(g(xt, t + h, p), dw, n, d))


def _sra(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    tab = solver.tableau
    n, d = x.shape
    s_n = tab.stages
    gw = [noise.apply(g(x, t + tab.c1[s] * h, p), dw, n, d) for s in range(s_n)]
    gz = [noise.apply(g(x, t + tab.c1[s] * h, p), dz, n, d) / abs(h) for s in range(s_n)]
    fs = []
    for s in range(s_n):
        hs = x + sum(h * tab.a0[s, j] * fs[j] + tab.b0[s, j] * gz[j] for j in range(s))
        fs.append(_vec(f(hs, t + tab.c0[s] * h, p), n, d))
    return x + sum(h * tab.alpha[s] * fs[s] + tab.beta1[s] * gw[s] + tab.beta2[s] * gz[s] for s in range(s_n))


def _rk(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    tab = solver.tableau
    n, d = x.shape
    ks = []
    for s in range(tab.stages):
        xs = x + sum(h * tab.a[s, j] * ks[j] for j in range(s))
        ks.append(_vec(f(xs, t + tab.c[s] * h, p), n, d))
    return x + h * sum(tab.b[s] * ks[s] for s in range(tab.stages))


def _platen_weak2(f, g, noise, x, t, h, dw, dz, p, solver, calculus):
    return platen_weak2_step(f, g, x, t, h, dw[:, :1] if noise.scalar else dw, p)


STEPS = {"euler_maruyama": _em, "milstein": _milstein, "heun": _heun, "sra": _sra, "rk": _rk,
         "platen_weak2": _platen_weak2, "sri": sri_step, "milstein_matrix": milstein_matrix_step, **STIFF_STEPS}
# families whose step keeps state between steps: a new step object per solve
STATEFUL_STEPS = {"reversible_heun": ReversibleHeunStep, "reversible_heun_matrix": ReversibleHeunStep}


def _batch_form(problem: Any, functions: tuple) -> tuple:
    """The functions in the batch form: per-path ones (`sdekit.forms`) evaluated row by row in Python, which gives
    each row the numbers the Numba kernels compute for it."""
    if getattr(problem, "form", "batch") == "batch":
        return functions
    view = batch_view(problem)
    return tuple(getattr(view, role) for role in roles(problem))


def run_fixed(problem: Any, solver: Solver, functions: tuple, params: Any, x0: np.ndarray, grid: Grid, *,
              seed: int, substeps: int, mask: bool, save_brownian: bool = False, path_offset: int = 0,
              noise_dtype: str = "float64", **_: Any) -> tuple[np.ndarray, SolveStats]:
    """Fixed-step solve, all paths at once; same noise, same order as the Numba kernel.

    A save inside step k is a partial step from a copy of X_k (and of a stateful step's state) over u = s - t_k
    with (W_u, J_u) = A (dW, I_(1,0)) + L z (`sdekit.backends.save_bridge`); with save_brownian, stats.extra["ws"]
    holds W(t_save) - W(t0), shape (n_saves, n, m). noise_dtype="float32": dW = float32(sqrt|h| z) with z the float32
    normals of `path_normals32` (plain increments only, as the kernel).
    """
    t_start = time.perf_counter()
    is_sde = solver.kind == "sde"
    n, d = x0.shape
    functions = _batch_form(problem, functions)
    f = functions[0]
    g = functions[1] if is_sde else None
    noise = _Noise(problem) if is_sde else None
    m = problem.m if is_sde else 0
    streams_w = PathStreams(seed, n, STREAM_BROWNIAN, offset=path_offset)
    if noise_dtype == "float32" and m > 0:
        check_noise_dtype(solver, substeps, int(bool(solver.aux_noise or solver.levy_area)), grid)
        streams_w = _Float32Normals(path_normals32(seed, n, (grid.ts.size - 1) * m, path_offset=path_offset))
    streams_z = PathStreams(seed, n, STREAM_AUX, offset=path_offset) if solver.aux_noise or solver.levy_area else None
    family = step_family(solver, problem)
    step = STATEFUL_STEPS[family]() if family in STATEFUL_STEPS else STEPS[family]
    if family == "theta" and getattr(problem, "drift_jacobian", None) is not None:
        step = functools.partial(step, jacobian=problem.drift_jacobian)
    calculus = getattr(problem, "calculus", "ito")
    x = x0.astype(x0.dtype, copy=True)
    dead = np.zeros(n, dtype=bool)
    out = np.empty((grid.save_steps.size, n, d), dtype=x0.dtype)
    saves: dict[int, list[int]] = {}  # grid index -> on-grid saves there
    inside: dict[int, list[int]] = {}  # step -> saves strictly inside it
    for s, (k, u) in enumerate(zip(grid.save_steps, grid.save_offsets)):
        (inside if u != 0.0 else saves).setdefault(int(k), []).append(s)
    coef, row, bridge_z = save_bridges(grid, seed, n, m, bool(solver.aux_noise), substeps, path_offset)
    mm = max(m, 1)
    w = np.zeros((n, mm))
    ws = np.zeros((grid.save_steps.size if save_brownian else 0, n, mm))
    for s in saves.get(0, []):
        out[s] = x
        if save_brownian:
            ws[s] = w
    with np.errstate(all="ignore"):  # overflow shows as a non-finite path (NonFiniteError or mask)
        for k in range(grid.ts.size - 1):
            t, h = grid.ts[k], grid.ts[k + 1] - grid.ts[k]
            dw = np.zeros((n, max(m, 1)))
            dz = np.zeros((n, max(m, 1)))
            hf = abs(h) / substeps
            kept = substeps if k in inside and substeps > 1 else 0  # saves inside the step see each substep's
            xi_q = np.zeros((kept, n, mm))  # increment and its own I_(1,0)
            zeta_q = np.zeros((kept, n, mm))
            for q in range(0 if solver.levy_area else substeps):  # the Lévy area's draws: below
                for j in range(m):
                    xi = streams_w.increment(hf) if noise_dtype == "float32" else math.sqrt(hf) * streams_w.normal()
                    if streams_z is not None:
                        eta = math.sqrt(hf) * streams_z.normal()
                        dz[:, j] += dw[:, j] * hf + 0.5 * hf * (xi + eta / math.sqrt(3.0))
                        if kept:
                            zeta_q[q, :, j] = 0.5 * hf * (xi + eta / math.sqrt(3.0))
                    dw[:, j] += xi
                    if kept:
                        xi_q[q, :, j] = xi
            if solver.levy_area and m > 0:  # (no save inside a step: refused before the solve)
                dw, dz = area_increments(streams_w, streams_z, n, m, substeps, abs(h))
            for s in inside.get(k, []):
                a, q0, u_in = coef[s], int(coef[s, 7]), coef[s, 8]
                w_pre, j_pre = np.zeros_like(dw), np.zeros_like(dz)
                y_w, y_j = (dw, dz) if substeps == 1 else (xi_q[q0], zeta_q[q0])
                for q in range(q0 if substeps > 1 else 0):
                    j_pre = j_pre + (w_pre * hf + zeta_q[q])
                    w_pre = w_pre + xi_q[q]
                z1, z2 = bridge_z[row[s]][:, 0::2], bridge_z[row[s]][:, 1::2]
                dwp = w_pre + (a[0] * y_w + a[1] * y_j + a[4] * z1)
                dzp = j_pre + w_pre * u_in + (a[2] * y_w + a[3] * y_j + a[5] * z1 + a[6] * z2)
                part = copy.deepcopy(step) if family in STATEFUL_STEPS else step
                xp = part(f, g, noise, x, t, grid.save_offsets[s], dwp, dzp, params, solver, calculus)
                out[s] = _checked(xp.astype(x0.dtype), dead, mask, k, grid, solver)
                if save_brownian:
                    ws[s] = w + dwp
            x = step(f, g, noise, x, t, h, dw, dz, params, solver, calculus).astype(x0.dtype)
            x = _checked(x, dead, mask, k, grid, solver)
            w += dw
            for s in saves.get(k + 1, []):
                out[s] = x
                if save_brownian:
                    ws[s] = w
    n_steps = grid.ts.size - 1
    stats = SolveStats(steps=n_steps, evals=n_steps * solver.evals, path_steps=n_steps * n,
                       masked_paths=int(dead.sum()), run_seconds=time.perf_counter() - t_start,
                       backend="numpy", solver=solver.name)
    if save_brownian:
        stats.extra["ws"] = ws[:, :, :m]
    return out, stats


class _Float32Normals:
    """The float32 normals of each path in draw order (columns of `path_normals32`), as float32 increments."""

    def __init__(self, z: np.ndarray):
        self.z = z
        self.col = 0

    def increment(self, hf: float) -> np.ndarray:
        """float32(sqrt(hf) z) of the next normal of every path (the product in float64, as the kernel's)."""
        z = self.z[:, self.col].astype(np.float64)
        self.col += 1
        return (math.sqrt(hf) * z).astype(np.float32).astype(np.float64)


def _checked(x: np.ndarray, dead: np.ndarray, mask: bool, k: int, grid: Grid, solver: Solver) -> np.ndarray:
    """x with the rows of dead paths NaN; a path newly non-finite raises NonFiniteError (step k + 1), or with mask
    joins the dead ones."""
    bad = ~np.all(np.isfinite(x), axis=1) & ~dead
    if np.any(bad):
        if not mask:
            raise NonFiniteError(int(np.flatnonzero(bad)[0]), k + 1, grid.ts[k + 1],
                                 what="state" + getattr(solver.tableau, "failure_hint", ""))
        dead |= bad
    x[dead] = np.nan
    return x


def run_adaptive(problem: Any, solver: Solver, functions: tuple, params: Any, x0: np.ndarray, t0: float,
                 save_ts: np.ndarray, *, rtol: float, atol: float, dt0: float | None, max_steps: int,
                 **_: Any) -> tuple[np.ndarray, SolveStats]:
    """Adaptive embedded-RK solve, one path at a time (the same control law as the kernel)."""
    t_start = time.perf_counter()
    tab = solver.tableau
    field = _batch_form(problem, functions)[0]
    n, d = x0.shape
    out = np.empty((save_ts.size, n, d), dtype=x0.dtype)
    steps_all, rej_all, evals_all = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
    direction = 1.0 if save_ts[-1] >= t0 else -1.0

    def v(x, t):
        return np.broadcast_to(np.asarray(field(x, t, params), dtype=float), (1, d)).copy()

    for path in range(n):
        x = x0[path:path + 1].astype(float)
        t = t0
        k0 = v(x, t)
        evals = 1
        h = float(dt0 or 0.0)
        if h <= 0:
            sc = atol + rtol * np.abs(x)
            d0, d1 = np.sqrt(np.mean((x / sc) ** 2)), np.sqrt(np.mean((k0 / sc) ** 2))
            h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
            k1 = v(x + direction * h0 * k0, t + direction * h0)
            evals += 1
            d2 = np.sqrt(np.mean(((k1 - k0) / sc) ** 2)) / h0
            big = max(d1, d2)
            h1 = max(1e-6, h0 * 1e-3) if big <= 1e-15 else (0.01 / big) ** 0.2
            h = min(100 * h0, h1)
        steps = rejected = 0
        for s, target in enumerate(save_ts):
            while (target - t) * direction > 0:
                remaining = abs(target - t)
                last = remaining <= h
                hs = direction * (remaining if last else h)
                ks = [k0]
                for st in range(1, tab.stages):
                    ks.append(v(x + hs * sum(tab.a[st, j] * ks[j] for j in range(st)), t + tab.c[st] * hs))
                evals += tab.stages - 1
                xn = x + hs * sum(tab.b[st] * ks[st] for st in range(tab.stages))
                e = hs * sum(tab.b_err[st] * ks[st] for st in range(tab.stages))
                err = float(np.sqrt(np.mean((e / (atol + rtol * np.maximum(np.abs(x), np.abs(xn)))) ** 2)))
                if err <= 1.0:
                    t = target if last else t + hs
                    x = xn
                    k0 = ks[-1] if tab.fsal else v(x, t)
                    evals += 0 if tab.fsal else 1
                    steps += 1
                    h = abs(hs) * (10.0 if err == 0 else min(10.0, max(0.2, 0.9 * err**-0.2)))
                    nonfinite = False
                else:
                    rejected += 1
                    nonfinite = not np.isfinite(err)
                    h = abs(hs) * min(1.0, 0.2 if nonfinite else max(0.2, 0.9 * err**-0.2))
                if steps + rejected >= max_steps:
                    raise StepSizeError(path, steps + rejected, t, "step budget max_steps exhausted")
                if h < 1e-14 * max(1.0, abs(t)):
                    if nonfinite:
                        raise NonFiniteError(path, steps + rejected, t, what=STEP_SIZE_COLLAPSED)
                    raise StepSizeError(path, steps + rejected, t, STEP_SIZE_UNDERFLOW)
            out[s, path] = x[0]
        steps_all[path], rej_all[path], evals_all[path] = steps, rejected, evals
    stats = SolveStats(steps=int(steps_all.max(initial=0)), rejected=int(rej_all.sum()),
                       evals=int(evals_all.max(initial=0)), path_steps=int(steps_all.sum()),
                       run_seconds=time.perf_counter() - t_start, backend="numpy", solver=solver.name,
                       extra={"steps_per_path": steps_all, "rejected_per_path": rej_all})
    return out, stats
