#!/usr/bin/env python
"""Work–precision of every registered SDE solver on eight problems from the SDE literature, against torchsde.

    python benchmarks/sde_work_precision.py [--quick] [--out benchmarks/results] [--seed 7]

Problems: `benchmarks/sde_problems.py` (Kloeden–Platen test equations, stochastic Lorenz, stochastic Robertson,
a 100-point stochastic heat equation, underdamped Langevin, Heston). For each problem every solver that
`sdekit.solvers.compatible_solvers` accepts (so solvers registered later are picked up with no edit here) runs the
problem's ladder of step counts n; an adaptive solver (registry ``adaptive=True``) runs a ladder of tolerances
instead (rtol 1e-1 .. 1e-4, atol = rtol / 100; its Brownian path is a queryable tree, not the fixed-grid streams, so
its reference is the closed form at the tree's W_T, or without one the same solver at a tenth of its tightest rtol,
the ladder then ending at 1e-3). Every fixed-step solve is coupled to one Brownian path per path: it uses
noise_substeps = N / n, N the finest grid (the reference solve's, or the ladder's finest when the problem has a
closed form), so all step counts and all solvers see the same W (and the same I_(1,0)). A Lévy-area solver
(`milstein_levy`) draws its area on that fine grid at a cost of ~0.5 / h_fine normals per fine step, so it runs the
ladder up to 128 steps against its own solve with 512 steps on the same path (its convergence, not its distance to
the problem's reference).

* strong error at T: e = sqrt(mean_p ||X_n(T; p) - X(T; p)||^2), X(T) the closed form at W_T or the reference
  solve (its own error is estimated by a solve with N/2 steps on the same path and printed).
* wall time: the fastest of up to 3 solves (fewer once they took 0.25 s) with plain increments (noise_substeps =
  1, so drawing the fine path does not make every step count cost the same), after the coupled solve (so
  compilation is excluded); 1 thread for Numba (threads=1) and torch (torch.set_num_threads(1)).
* evals: n x the registry's drift evaluations per step (adaptive: accepted + rejected steps per path x the same).
* torchsde: the sdekit solvers that torchsde has the same update for (`SDEKIT_TO_TORCHSDE`: euler, milstein,
  heun, srk, reversible_heun) run by torchsde's step functions on the same Brownian increments
  (backend="torch"), so errors agree with sdekit's to rounding; the ratio sdekit / torchsde wall time at equal error
  is interpolated in log-log between torchsde's points.
* diffrax: imported if installed (it is not in sdekit's environment): then recorded as installed but not run.

A solve that turns non-finite, or whose error exceeds 1e3, is recorded as unstable; a solver whose coupled solve
takes more than --max-solve seconds stops its ladder there ("over budget"). Records machine, threads and load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_timing import timed  # noqa: E402
from power import machine  # noqa: E402
from sde_problems import BenchProblem, problems  # noqa: E402

import sdekit  # noqa: E402
from sdekit.backends.torch.methods import SDEKIT_TO_TORCHSDE  # noqa: E402
from sdekit.solvers import SDE_SOLVERS, compatible_solvers  # noqa: E402
from sdekit.validate.order import brownian_terminal, initial_states  # noqa: E402

UNSTABLE_ERROR = 1e3
RTOLS = (1e-1, 1e-2, 1e-3, 1e-4)
# a Lévy-area solver (registry levy_area=True) draws ~0.5 / h_fine normals per fine step and component, so it runs the
# ladder up to LEVY_MAX_STEPS and is measured against its own solve with LEVY_REF_FACTOR x that many steps on the
# same path (its convergence, not its distance to the problem's reference)
LEVY_MAX_STEPS = 128
LEVY_REF_FACTOR = 4


def diffrax_status() -> str:
    """'not installed', or the installed version (no diffrax runs are made)."""
    try:
        import diffrax
    except ImportError:
        return "not installed"
    return f"installed ({getattr(diffrax, '__version__', '?')}), not run"


def solve(prob: BenchProblem, solver: str, seed: int, *, steps: int | None = None, coupled: bool = True,
          backend: str = "numba", rtol: float | None = None, fine: int | None = None) -> tuple[np.ndarray, object]:
    """X(T) of every path (numpy, (paths, dim)) and the solve's stats; fixed steps coupled to the fine path (of
    `fine` steps, default the problem's), or an adaptive solve at rtol (atol = rtol / 100)."""
    kw: dict = dict(n_paths=prob.paths, seed=seed, solver=solver, progress=False)
    if backend == "torch":
        kw["backend"] = "torch"
    else:
        kw["threads"] = 1
    if rtol is not None:
        kw.update(rtol=rtol, atol=rtol * 1e-2)
    else:
        kw.update(steps=steps, noise_substeps=(fine or prob.fine_steps) // steps if coupled else 1)
    sol = sdekit.simulate(prob.sde, prob.x0, (0.0, prob.t1), **kw)
    ys = sol.ys[-1]
    if backend == "torch":
        ys = ys.detach().cpu().numpy()
    return np.asarray(ys, dtype=float), sol.stats


def reference(prob: BenchProblem, seed: int) -> tuple[np.ndarray, float | None]:
    """X(T; W) of every path and the reference's own estimated error (None for a closed form): the RMS difference
    between the reference solve and the same solver with half its steps on the same path."""
    x0 = initial_states(prob.x0, prob.sde.dim, prob.paths)
    if prob.exact is not None:
        w = brownian_terminal(seed, prob.paths, prob.sde.m, 0.0, prob.t1, prob.fine_steps)
        return prob.exact(x0, w, prob.t1), None
    solver, n = prob.reference
    ref, _ = solve(prob, solver, seed, steps=n)
    half, _ = solve(prob, solver, seed, steps=n // 2)
    return ref, rms(half, ref)


def adaptive_reference(prob: BenchProblem, solver: str, seed: int, rtol: float) -> np.ndarray:
    """X(T) on the Brownian path the adaptive solvers read (a queryable tree, not the fixed-grid streams): the closed
    form at its W_T when the problem has one, else the same solver at ``rtol`` (a tenth of its tightest ladder
    tolerance)."""
    if prob.exact is not None:
        try:
            from sdekit.noise.brownian_integral_path import BrownianIntegralPath
        except ImportError:
            BrownianIntegralPath = None
        if BrownianIntegralPath is not None:
            w = np.asarray(BrownianIntegralPath(seed, prob.paths, prob.sde.m, t0=0.0, t1=prob.t1)(prob.t1)[0])
            x0 = initial_states(prob.x0, prob.sde.dim, prob.paths)
            return prob.exact(x0, w.reshape(prob.paths, prob.sde.m), prob.t1)
    return solve(prob, solver, seed, rtol=rtol)[0]


def rms(x: np.ndarray, ref: np.ndarray) -> float:
    """sqrt(mean over paths of ||x - ref||^2) (inf when it overflows: a blown-up solve, recorded as unstable)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(np.mean(np.sum((x - ref) ** 2, axis=1))))


def best_time(fn, max_total: float = 0.25, repeats: int = 3) -> tuple[float, float | None]:
    """(fastest wall time of up to `repeats` calls, stopping once they took `max_total` seconds; the other processes'
    load in cores during them, max)."""
    best, spent, other = np.inf, 0.0, None
    for _ in range(repeats):
        t = timed(fn)
        best = min(best, t.wall_s)
        spent += t.wall_s
        if t.other_cores is not None:
            other = max(other or 0.0, t.other_cores)
        if spent > max_total:
            break
    return float(best), other


def run_curve(prob: BenchProblem, solver: str, ref: np.ndarray, seed: int, backend: str, max_solve: float) -> list:
    """One solver's points on the problem's ladder (or tolerance ladder when adaptive)."""
    adaptive = SDE_SOLVERS[solver].adaptive and backend == "numba"
    per_step = SDE_SOLVERS[solver].evals
    rows: list[dict] = []
    rtols = RTOLS if prob.exact is not None else RTOLS[:-1]
    if adaptive:  # another Brownian path (the adaptive solvers' tree): the closed form on it, or a tighter solve
        try:
            ref = adaptive_reference(prob, solver, seed, rtols[-1] * 0.1)
        except Exception as exc:  # noqa: BLE001 - one broken solver must not lose the run
            return [{"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]}]
    fine = None
    if SDE_SOLVERS[solver].levy_area:  # the Lévy area on the fine grid costs ~1/h_fine normals per fine step
        steps = [n for n in prob.steps if n <= LEVY_MAX_STEPS]
        fine = LEVY_REF_FACTOR * steps[-1]
        try:
            ref, _ = solve(prob, solver, seed, steps=fine, fine=fine)
        except Exception as exc:  # noqa: BLE001
            return [{"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]}]
    else:
        steps = list(prob.steps)
    ladder = [{"rtol": r} for r in rtols] if adaptive else [{"steps": n} for n in steps]
    over = False
    for point in ladder:
        row = dict(point)
        if over:
            rows.append({**row, "status": "over budget"})
            continue
        start = time.perf_counter()
        try:
            ys, stats = solve(prob, solver, seed, steps=point.get("steps"), rtol=point.get("rtol"), backend=backend,
                              fine=fine)
            err = rms(ys, ref)
        except (sdekit.NonFiniteError, FloatingPointError, OverflowError):
            rows.append({**row, "status": "unstable"})
            continue
        except Exception as exc:  # noqa: BLE001
            rows.append({**row, "status": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]})
            break
        elapsed = time.perf_counter() - start - float(getattr(stats, "compile_seconds", 0.0) or 0.0)
        if not np.isfinite(err) or err > UNSTABLE_ERROR:
            rows.append({**row, "status": "unstable"})
            continue
        if adaptive:
            steps_pp = (stats.path_steps + stats.rejected) / prob.paths
            row["steps"] = float(stats.path_steps / prob.paths)
            row["rejected"] = float(stats.rejected / prob.paths)
            secs, other = best_time(lambda: solve(prob, solver, seed, rtol=point["rtol"]))
        else:
            steps_pp = point["steps"]
            try:
                secs, other = best_time(lambda: solve(prob, solver, seed, steps=point["steps"], coupled=False,
                                                      backend=backend))
            except (sdekit.NonFiniteError, FloatingPointError, OverflowError):
                # plain increments blew up where the coupled ones did not: time the coupled solve instead
                row["timed_coupled"] = True
                secs, other = best_time(lambda: solve(prob, solver, seed, steps=point["steps"], backend=backend))
        row.update(status="ok", error=err, seconds=secs, evals=float(steps_pp * per_step), other_cores=other)
        rows.append(row)
        if min(elapsed, secs) > max_solve:
            over = True
    return rows


def ok_points(rows: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    good = [r for r in rows if r.get("status") == "ok"]
    return (np.array([r["error"] for r in good]), np.array([r["seconds"] for r in good]),
            np.array([r["evals"] for r in good]))


def time_at_error(rows: list, target: float) -> float | None:
    """Wall time at error `target`, interpolated linearly in log-log between the curve's points (None outside)."""
    err, secs, _ = ok_points(rows)
    if err.size < 2 or not (err.min() * (1 - 1e-9) <= target <= err.max() * (1 + 1e-9)):
        return None
    target = min(max(target, err.min()), err.max())  # the same errors up to rounding count as inside
    order = np.argsort(err)
    return float(np.exp(np.interp(np.log(target), np.log(err[order]), np.log(secs[order]))))


def equal_error_ratios(mine: list, theirs: list) -> list[dict]:
    """sdekit / torchsde wall time at each of sdekit's errors that lies within torchsde's error range."""
    out = []
    for r in mine:
        if r.get("status") != "ok":
            continue
        t = time_at_error(theirs, r["error"])
        if t is not None:
            out.append({"steps": r["steps"], "error": r["error"], "sdekit_s": r["seconds"], "torchsde_s": t,
                        "ratio": r["seconds"] / t})
    return out


def cheapest(rows: list, target: float) -> dict | None:
    ok = [r for r in rows if r.get("status") == "ok" and r["error"] <= target]
    return min(ok, key=lambda r: r["seconds"]) if ok else None


def cell(r: dict) -> str:
    if r.get("status") != "ok":
        return r.get("status", "?")
    star = "*" if (r.get("other_cores") or 0.0) > 0.3 else ""
    return f"{r['error']:.2e} ({r['seconds'] * 1e3:.3g} ms{star})"


def plot_problem(name: str, curves: dict, path: Path, paths: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    # one colour per sdekit solver (tab20); torchsde's run of the same update: dashed, the same colour
    names = [k for k in curves if not k.startswith("torchsde:")]
    colours = {k: plt.cm.tab20(i % 20) for i, k in enumerate(names)}
    for key, rows in curves.items():
        err, secs, evals = ok_points(rows)
        if err.size == 0:
            continue
        torch_run = key.startswith("torchsde:")
        colour = colours.get(key.rsplit("(", 1)[-1].rstrip(")") if torch_run else key)
        style = dict(ls="--" if torch_run else "-", marker="s" if torch_run else "o", ms=3, color=colour, label=key)
        axes[0].loglog(secs, err, **style)
        axes[1].loglog(evals, err, **style)
    axes[0].set_xlabel("wall time per solve [s] (1 thread)")
    axes[1].set_xlabel("drift evaluations per path")
    for ax in axes:
        ax.set_ylabel("strong error at T (RMS)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title(f"{name}: error vs wall time ({paths} paths)")
    axes[1].set_title(f"{name}: error vs evaluations")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_problem(prob: BenchProblem, seed: int, max_solve: float, only: list[str] | None = None) -> dict:
    ref, ref_err = reference(prob, seed)
    solvers = [s for s in compatible_solvers(prob.sde) if only is None or s in only]
    curves: dict[str, list] = {}
    for solver in solvers:
        curves[solver] = run_curve(prob, solver, ref, seed, "numba", max_solve)
        print(f"  {solver}: {[cell(r) for r in curves[solver]]}", flush=True)
    shared = [s for s in solvers if s in SDEKIT_TO_TORCHSDE and not SDE_SOLVERS[s].adaptive]
    ratios = {}
    for solver in shared:
        key = f"torchsde:{SDEKIT_TO_TORCHSDE[solver]}({solver})"
        curves[key] = run_curve(prob, solver, ref, seed, "torch", max_solve)
        ratios[solver] = equal_error_ratios(curves[solver], curves[key])
        print(f"  {key}: {[cell(r) for r in curves[key]]}", flush=True)
    return {"solvers": solvers, "torchsde_shared": shared, "reference_error": ref_err, "curves": curves,
            "equal_error_ratios": ratios}


def baseline(result: dict) -> str:
    """The solver every other is compared with: Euler–Maruyama, or Heun where EM does not apply (Stratonovich)."""
    for s in ("euler_maruyama", "heun"):
        if s in result["curves"]:
            return s
    return result["solvers"][0]


def self_referenced(key: str) -> bool:
    """A Lévy-area solver's errors are against its own finer solve: left out of the headline comparisons."""
    return key in SDE_SOLVERS and SDE_SOLVERS[key].levy_area


def summarise(name: str, prob: BenchProblem, res: dict, plot_stem: str) -> tuple[list[str], dict]:
    """Markdown of one problem and its headline: the fastest solver at the baseline's finest error."""
    curves = res["curves"]
    ref = (f"closed form at W_T (Brownian path of {prob.fine_steps} steps)" if prob.exact is not None else
           f"`{prob.reference[0]}` with {prob.reference[1]} steps on the same path (its own error, vs "
           f"{prob.reference[1] // 2} steps: {res['reference_error']:.2e})")
    cols = sorted({r["steps"] if "rtol" not in r else r["rtol"] for rows in curves.values() for r in rows
                   if "steps" in r and "rtol" not in r})
    md = [f"## {name}", "", f"{prob.sde.noise} noise, {prob.sde.calculus}, dim {prob.sde.dim}, T = {prob.t1:g}, "
          f"{prob.paths} paths. Source: {prob.source}. Reference: {ref}.", "",
          "| solver | " + " | ".join(f"n = {n}" for n in cols) + " |", "|---|" + "---|" * len(cols)]
    adaptive_lines = []
    for key, rows in curves.items():
        if any("rtol" in r for r in rows):
            adaptive_lines.append(f"| {key} | " + " | ".join(
                f"rtol {r['rtol']:g}: " + (f"{cell(r)}, {r['steps']:.0f} steps + {r['rejected']:.0f} rejected"
                                          if r.get("status") == "ok" else r.get("status", "?")) for r in rows) + " |")
            continue
        by_n = {r.get("steps"): r for r in rows}
        label = f"{key} (vs its own {LEVY_REF_FACTOR * LEVY_MAX_STEPS}-step solve)" if self_referenced(key) else key
        md.append(f"| {label} | " + " | ".join(cell(by_n[n]) if n in by_n else "" for n in cols) + " |")
        if rows and rows[0].get("status") == "error":
            md.append(f"| ({key}: {rows[0]['reason']}) |")
    if adaptive_lines:
        against = ("the closed form at W_T of the adaptive solvers' Brownian tree" if prob.exact is not None else
                   "the same solver at a tenth of its tightest rtol, on the same tree")
        md += ["", f"Adaptive solvers (atol = rtol / 100; error against {against}; steps and rejections are means "
               "per path):", "",
               "| solver | tolerances |", "|---|---|", *adaptive_lines]
    base = baseline(res)
    base_ok = [r for r in curves[base] if r.get("status") == "ok"]
    headline: dict = {"baseline": base}
    if base_ok:
        target = min(r["error"] for r in base_ok)
        base_best = cheapest(curves[base], target)
        best_key, best = None, None
        for key, rows in curves.items():
            if self_referenced(key):
                continue
            c = cheapest(rows, target)
            if c is not None and (best is None or c["seconds"] < best["seconds"]):
                best_key, best = key, c
        fewest_key, fewest = None, None
        for key, rows in curves.items():
            ok = [r for r in rows if r.get("status") == "ok" and r["error"] <= target]
            c = min(ok, key=lambda r: r["evals"]) if ok else None
            if c is None or key.startswith("torchsde:") or self_referenced(key):
                continue
            if fewest is None or c["evals"] < fewest["evals"]:
                fewest_key, fewest = key, c
        base_evals = min(r["evals"] for r in base_ok if r["error"] <= target)
        headline.update(target=target, baseline_seconds=base_best["seconds"], best=best_key,
                        best_seconds=best["seconds"], best_steps=best.get("steps"),
                        speedup=base_best["seconds"] / best["seconds"], fewest_evals=fewest_key,
                        fewest_evals_steps=fewest.get("steps"), evals_ratio=base_evals / fewest["evals"])
        md += ["", f"At {base}'s finest error {target:.2e} ({base_best['seconds'] * 1e3:.3g} ms) the fastest is "
               f"**{best_key}** ({best.get('steps'):.0f} steps, {best['seconds'] * 1e3:.3g} ms): "
               f"{headline['speedup']:.1f}x faster; the fewest evaluations: **{fewest_key}** "
               f"({fewest['evals']:.0f} against {base_evals:.0f}: {headline['evals_ratio']:.1f}x fewer)."]
    if res["equal_error_ratios"]:
        md += ["", "sdekit / torchsde wall time at equal error (same update, same Brownian increments):", "",
               "| solver | median ratio | range | points |", "|---|---:|---|---:|"]
        headline["torchsde_ratio"] = {}
        for solver, pts in res["equal_error_ratios"].items():
            if not pts:
                md.append(f"| {solver} | n/a | no overlapping errors | 0 |")
                continue
            r = np.array([p["ratio"] for p in pts])
            headline["torchsde_ratio"][solver] = float(np.median(r))
            md.append(f"| {solver} | {np.median(r):.3g} | {r.min():.3g} .. {r.max():.3g} | {r.size} |")
    md += ["", f"![{name}]({plot_stem}_{name}.png)", ""]
    return md, headline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 step counts, 32 paths, coarse reference")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-solve", type=float, default=None,
                        help="seconds: a solver stops its ladder after a coupled solve this slow (default 2, quick 1)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these problems")
    parser.add_argument("--solvers", nargs="*", default=None,
                        help="run only these of the compatible solvers (default: every compatible solver)")
    args = parser.parse_args(argv)
    max_solve = args.max_solve or (1.0 if args.quick else 2.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)
    start, cpu0 = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()
    mach = machine()
    probs = problems(args.quick)
    if args.only:
        probs = {k: v for k, v in probs.items() if k in args.only}
    record: dict = {"machine": mach, "quick": args.quick, "seed": args.seed, "threads": {"numba": 1, "torch": 1},
                    "load_average_start": load0, "diffrax": diffrax_status(), "problems": {}, "headline": {}}
    body: list[str] = []
    stem = "sde_work_precision_quick" if args.quick else "sde_work_precision"
    plot_stem = "sde_wp_quick" if args.quick else "sde_wp"
    for name, prob in probs.items():
        print(name, flush=True)
        t0 = time.perf_counter()
        res = run_problem(prob, args.seed, max_solve, args.solvers)
        res["seconds"] = time.perf_counter() - t0
        plot_problem(name, res["curves"], out / f"{plot_stem}_{name}.png", prob.paths)
        md, headline = summarise(name, prob, res, plot_stem)
        body += md
        record["problems"][name] = {"dim": prob.sde.dim, "noise": prob.sde.noise, "calculus": prob.sde.calculus,
                                    "T": prob.t1, "paths": prob.paths, "source": prob.source,
                                    "reference": prob.reference or "closed form", **res}
        record["headline"][name] = headline
    total = time.perf_counter() - start
    record.update(total_seconds=total, cpu_seconds=time.process_time() - cpu0, load_average_end=os.getloadavg())
    head = ["# Work–precision on eight SDE problems: every registered solver, and torchsde", "",
            f"`python benchmarks/sde_work_precision.py{' --quick' if args.quick else ''}` on {mach['cpu_model']} "
            f"({mach['affinity']} cores, 1 thread used; load average {load0[0]:.2f} at the start, "
            f"{record['load_average_end'][0]:.2f} at the end: a shared machine, so wall times vary between runs, "
            f"errors and evaluations do not). Total {total:.0f} s wall, {record['cpu_seconds']:.0f} s CPU. "
            f"diffrax: {record['diffrax']}.", "",
            "Cells: strong error RMS_p ||X_n(T) - X(T)|| at n steps, on one Brownian path per path shared by all "
            "step counts and solvers (noise_substeps), and in brackets the wall time of one solve of all paths "
            "(fastest of up to 3, fewer once they took 0.25 s, with plain increments, compile excluded; * = other "
            "processes used > 0.3 cores "
            "meanwhile). unstable: non-finite or error > 1e3; over budget: the ladder stopped after a slow solve. "
            "torchsde rows: torchsde's step function for the same update (backend='torch'), same increments. "
            "Evaluations (plots): steps x the registry's drift evaluations per step.", "",
            "## Headline", "", "| problem | baseline | its finest error | fastest solver there | speed-up | "
            "fewest evaluations there | evaluations saved | sdekit / torchsde time at equal error (median) |",
            "|---|---|---:|---|---:|---|---:|---|"]
    for name, h in record["headline"].items():
        tr = ", ".join(f"{s} {v:.2g}" for s, v in h.get("torchsde_ratio", {}).items()) or "n/a"
        if "target" in h:
            head.append(f"| {name} | {h['baseline']} | {h['target']:.2e} | {h['best']} ({h['best_steps']:.0f} steps) "
                        f"| {h['speedup']:.1f}x | {h['fewest_evals']} ({h['fewest_evals_steps']:.0f} steps) | "
                        f"{h['evals_ratio']:.1f}x | {tr} |")
        else:
            head.append(f"| {name} | {h['baseline']} | unstable | | | | | {tr} |")
    (out / f"{stem}.md").write_text("\n".join(head + [""] + body) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1, default=float))
    print("\n".join(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
