"""Work–precision data: error against cost for several solvers on one problem.

For each solver and level l (steps n_l = base_steps 2^l, h_l = (t1 - t0) / n_l):

* error: strong, e_l = sqrt(mean_p ||X_{h_l}(T; p) - X(T; W_p)||^2) (`strong_errors`), or weak,
  e_l = |mean_p d_l,p| (`weak_errors`: coupled phi(X_h) - phi(X(W)), or phi(X_h) - E phi(X));
  errors are computed on nested grids (one Brownian path per path at every level);
* seconds: wall time of one plain solve (no noise substeps) at n_l steps and n_paths paths,
  time.perf_counter around `simulate`, after a warm-up call (so compilation is excluded), the
  minimum over ``repeats`` calls;
* evals: n_l x the solver's drift evaluations per step, ``SDE_SOLVERS[name].evals`` (nan if the
  registry does not declare it). This is the machine-independent cost; timings are reported,
  never asserted.

`WorkPrecision.plot(path)` draws log-log error-vs-cost lines, one per solver (matplotlib, imported
lazily, Agg canvas: no display needed; matplotlib stays an optional dependency), and
`to_markdown()` gives one table row per (solver, level).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdekit.errors import SDEKitError
from sdekit.sde import SDE
from sdekit.simulate import simulate
from sdekit.solvers import SDE_SOLVERS, get_solver
from sdekit.validate.checks import check_callable, check_count, check_output_path, check_seed
from sdekit.validate.order import ClosedForm, initial_states, strong_errors, time_span
from sdekit.validate.weak import weak_errors

ERROR_KINDS = ("strong", "weak")
COSTS = ("seconds", "evals")


@dataclass(frozen=True)
class SolverCurve:
    """One solver's work–precision points, one per level (coarse to fine).

    steps: n_l. hs: h_l. errors: e_l (strong or weak). seconds: wall time of a plain solve at n_l steps.
    evals: n_l x evals per step (nan when unknown). stderr: Monte Carlo standard error of a weak e_l
    (nan for strong errors).
    """

    solver: str
    steps: np.ndarray
    hs: np.ndarray
    errors: np.ndarray
    seconds: np.ndarray
    evals: np.ndarray
    stderr: np.ndarray

    def cost(self, kind: str = "seconds") -> np.ndarray:
        """The cost axis: wall seconds or function evaluations."""
        if kind not in COSTS:
            raise SDEKitError(f"cost must be one of {COSTS}; got {kind!r}")
        return self.seconds if kind == "seconds" else self.evals


@dataclass(frozen=True)
class WorkPrecision:
    """Work–precision data for several solvers on one problem.

    curves: solver name -> SolverCurve. error_kind: "strong" or "weak". n_paths: paths per solve.
    problem: the SDE's name.
    """

    curves: dict[str, SolverCurve]
    error_kind: str
    n_paths: int
    problem: str

    def to_markdown(self) -> str:
        """A markdown table with one row per (solver, level): steps, h, error (+- se if weak), seconds, evals; for
        weak errors a line after the table flags each solver whose every error is within one standard error."""
        weak = self.error_kind == "weak"
        lines = [f"| solver | steps | h | {self.error_kind} error |{' se |' if weak else ''} seconds | evals |",
                 "|---|---:|---:|---:|" + ("---:|" if weak else "") + "---:|---:|"]
        for name, c in self.curves.items():
            for n, h, e, se, s, v in zip(c.steps, c.hs, c.errors, c.stderr, c.seconds, c.evals):
                ev = "n/a" if not np.isfinite(v) else f"{int(v)}"
                se_col = f" {se:.2e} |" if weak else ""
                lines.append(f"| {name} | {int(n)} | {h:.4g} | {e:.3e} |{se_col} {s:.3e} | {ev} |")
        if weak:
            for name, c in self.curves.items():
                live = c.stderr > 0
                if np.all(c.errors <= c.stderr) and np.any(live):
                    lines.append(f"\n{name}: UNRESOLVED, every weak error is within one standard error (largest "
                                 f"error / se = {float(np.max(c.errors[live] / c.stderr[live])):.2f}): Monte Carlo "
                                 "noise, not a result")
        return "\n".join(lines)

    def plot(self, path: str | Path, *, cost: str = "seconds", title: str | None = None) -> Path:
        """Write a log-log plot of error against cost (one line per solver) to `path`; returns the path.

        cost: "seconds" (wall time) or "evals" (function evaluations). Needs matplotlib (the
        ``plots`` extra); uses an Agg canvas, so no display and no global backend change.
        """
        if cost not in COSTS:
            raise SDEKitError(f"cost must be one of {COSTS}; got {cost!r}")
        out = check_output_path(path)
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("WorkPrecision.plot needs matplotlib: pip install 'sdekit[plots]'") from exc
        fig = Figure(figsize=(6.0, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for name, c in self.curves.items():
            x = c.cost(cost)
            if not np.all(np.isfinite(x)):
                continue
            ax.loglog(x, c.errors, marker="o", label=name)
        ax.set_xlabel("wall time per solve [s]" if cost == "seconds" else "function evaluations per path")
        ax.set_ylabel(f"{self.error_kind} error")
        ax.set_title(title or f"work-precision: {self.problem} ({self.n_paths} paths)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.savefig(out, dpi=100)
        return out


def _time_solve(sde: SDE, solver: str, x0: np.ndarray, t0: float, t1: float, steps: int, n_paths: int, seed: int,
                repeats: int, threads: int | None) -> float:
    kw = dict(steps=steps, n_paths=n_paths, seed=seed, solver=solver, threads=threads)
    simulate(sde, x0, (t0, t1), **kw)  # warm-up: compilation and caches
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        simulate(sde, x0, (t0, t1), **kw)
        best = min(best, time.perf_counter() - start)
    return float(best)


def work_precision(problem: SDE | ClosedForm, solvers: Sequence[str], x0: Any, t1: float, *, base_steps: int,
                   levels: int, n_paths: int, seed: int = 0, error: str = "strong",
                   exact_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                   phi: Callable[[np.ndarray], np.ndarray] | None = None, exact_expectation: float | None = None,
                   coupled: bool = True, t0: float = 0.0, repeats: int = 3,
                   threads: int | None = None, reference_solver: str | None = None,
                   reference_levels: int = 2) -> WorkPrecision:
    """Error and cost of each solver at steps base_steps 2^l, l = 0 .. levels-1 (module docstring).

    error="strong": e = RMS ||X_h(T) - X(T; W)|| against exact_fn(x0, W_T) (default: the ClosedForm's
    exact solution when t0 = 0). error="weak": e = |E phi(X_h(T)) - E phi(X(T))| by `weak_errors`
    (coupled with exact_fn, or against exact_expectation with coupled=False). Cost: wall seconds of a
    plain solve (min over ``repeats`` after a warm-up) and steps x evals per step from the registry.

    Without a closed form (error="strong", no exact_fn, not a ClosedForm with t0 = 0) the reference X(T; W) is a
    solve ``reference_levels`` halvings finer than the finest level on the same Brownian path (and I_(1,0)), by
    ``reference_solver`` (one high-order solver for every curve, e.g. "sra1" on additive noise or "milstein";
    default: each solver refined itself), as `strong_errors` does; diffrax's test_sde.py uses two levels.

    exact_fn(x0, w) gets x0 of shape (n_paths, dim) and W_T of shape (n_paths, m) and must return X(T) of shape
    (n_paths, dim); (n_paths,) is accepted when dim = 1 (read as the one column), any other shape is an error
    naming exact_fn with both shapes (never reshaped or broadcast). Weak errors that are all within one
    standard error warn (`sdekit.validate.weak.UnresolvedWeakWarning`).
    """
    sde = problem.sde if isinstance(problem, ClosedForm) else problem
    if not isinstance(sde, SDE):
        raise SDEKitError(f"problem must be an sdekit.SDE or a ClosedForm; got {type(problem).__name__}")
    if isinstance(solvers, str) or not hasattr(solvers, "__len__") or len(solvers) == 0:
        raise SDEKitError(f"solvers must be a non-empty list of solver names; got {solvers!r}")
    names = [get_solver(s, "sde").name for s in solvers]
    if len(set(names)) != len(names):
        raise SDEKitError(f"solvers must be distinct; got {list(solvers)}")
    if error not in ERROR_KINDS:
        raise SDEKitError(f"error must be one of {ERROR_KINDS}; got {error!r}")
    base_steps = check_count(base_steps, "base_steps")
    levels = check_count(levels, "levels", 2)
    n_paths = check_count(n_paths, "n_paths", 2)
    repeats = check_count(repeats, "repeats")
    seed = check_seed(seed)
    t0, t1 = time_span(t0, t1)
    if exact_fn is None and isinstance(problem, ClosedForm) and t0 == 0.0:
        exact_fn = problem.exact_at(t1)
    if reference_solver is not None:
        reference_solver = get_solver(reference_solver, "sde").name
        if exact_fn is not None or error != "strong":
            raise SDEKitError("reference_solver is for error='strong' without exact_fn (and not a ClosedForm with "
                              "t0 = 0): a closed form is used when there is one")
    if error == "weak" and phi is None:
        raise SDEKitError("error='weak' needs phi(x) -> (n,), the test function")
    if exact_fn is not None:
        check_callable(exact_fn, "exact_fn", "exact_fn(x0, w) -> X(T) of shape (n_paths, dim)")
    x0_arr = initial_states(x0, sde.dim, n_paths)
    steps = base_steps * 2 ** np.arange(levels)
    curves = {}
    for name in names:
        if error == "strong":
            hs, sq = strong_errors(sde, name, x0_arr, t1, exact_fn, base_steps, levels, n_paths, seed, t0=t0,
                                   threads=threads, reference_levels=reference_levels,
                                   reference_solver=reference_solver)
            errors, stderr = np.sqrt(sq.mean(axis=1)), np.full(levels, np.nan)
        else:
            w = weak_errors(sde, name, x0_arr, t1, phi, exact_expectation=exact_expectation, exact_fn=exact_fn,
                            base_steps=base_steps, levels=levels, n_paths=n_paths, seed=seed, coupled=coupled,
                            t0=t0, threads=threads)
            hs, errors, stderr = w.hs, w.errors, w.stderr
        seconds = np.array([_time_solve(sde, name, x0_arr, t0, t1, int(n), n_paths, seed, repeats, threads)
                            for n in steps])
        per_step = getattr(SDE_SOLVERS.get(name), "evals", None)
        evals = steps * float(per_step) if per_step else np.full(levels, np.nan)
        curves[name] = SolverCurve(name, steps.copy(), hs, errors, seconds, evals, stderr)
    return WorkPrecision(curves, error, int(n_paths), sde.name)
