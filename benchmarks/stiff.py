#!/usr/bin/env python
"""Stiff SDEs: the speed-up at equal strong error of the drift-implicit θ-methods and SK-ROCK over Euler–Maruyama.

    python benchmarks/stiff.py [--paths 200] [--out benchmarks/results]

Two stiff problems (ρ = the drift Jacobian's spectral radius; EM is mean-square stable only for h <~ 2/ρ):
  heat32     dX = ν Δ X dt + σ dW: 32-point finite-difference heat equation (Dirichlet), ν = 1, σ = 1,
             X_0 = sin(π ξ), T = 0.05; ρ ≈ 4ν/Δξ² = 4356.
  slow_fast  dx = (-x + y) dt + 0.3 x dW_1, dy = -γ (y - sin x) dt + 0.2 dW_2, γ = 1000, T = 1 (diagonal noise).
Each solver runs on nested grids of T/n, n = 2^k, every grid on the same Brownian path (noise_substeps) as a
reference Euler–Maruyama solve with 2^13 steps; strong error = RMS over paths of |X_h(T) - X_ref(T)| / sqrt(dim).
Solvers: euler_maruyama, implicit_euler_maruyama (forward-difference Jacobian), implicit_euler_maruyama_jac (the
SDE's drift_jacobian in Newton's iteration), theta_maruyama, skrock (ρ estimated per step and path) and skrock_rho
(SK-ROCK given the bound ρ above). A step count at which a solver overflows is recorded as unstable.
For each error target (EM's error at its fewest stable steps, and a tighter one), the cheapest run of each solver that
meets it (wall time: fastest of 3 solves with plain increments, compile excluded) gives the speed-up over EM's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from power import machine  # noqa: E402

import sdekit  # noqa: E402

D_HEAT = 32
DXI = 1.0 / (D_HEAT + 1)
N_REF = 2**13
SOLVERS = ("euler_maruyama", "implicit_euler_maruyama", "implicit_euler_maruyama_jac", "theta_maruyama", "skrock",
           "skrock_rho")
JAC = "_jac"  # a solver name ending so runs the base solver on the SDE with its drift_jacobian


def heat_drift(x, t, p):
    """ν (x_{i-1} - 2 x_i + x_{i+1}) / Δξ², zero Dirichlet boundaries."""
    n, d = x.shape
    out = np.empty_like(x)
    c = p[0] / (DXI * DXI)
    for r in range(n):
        for i in range(d):
            left = x[r, i - 1] if i > 0 else 0.0
            right = x[r, i + 1] if i < d - 1 else 0.0
            out[r, i] = c * (left - 2.0 * x[r, i] + right)
    return out


def heat_jacobian(x, t, p):
    """The heat drift's Jacobian: ν/Δξ² tridiag(1, -2, 1), the same for every path ((d, d))."""
    d = x.shape[1]
    out = np.zeros((d, d))
    c = p[0] / (DXI * DXI)
    for i in range(d):
        out[i, i] = -2.0 * c
        if i > 0:
            out[i, i - 1] = c
        if i < d - 1:
            out[i, i + 1] = c
    return out


def heat_noise(x, t, p):
    return p[1] + 0.0 * x


def slow_fast_drift(x, t, p):
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        out[r, 0] = -x[r, 0] + x[r, 1]
        out[r, 1] = -p[0] * (x[r, 1] - np.sin(x[r, 0]))
    return out


def slow_fast_jacobian(x, t, p):
    out = np.zeros((x.shape[0], 2, 2))
    for r in range(x.shape[0]):
        out[r, 0, 0] = -1.0
        out[r, 0, 1] = 1.0
        out[r, 1, 0] = p[0] * np.cos(x[r, 0])
        out[r, 1, 1] = -p[0]
    return out


def slow_fast_noise(x, t, p):
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        out[r, 0] = 0.3 * x[r, 0]
        out[r, 1] = 0.2
    return out


def problems() -> dict:
    xi = np.arange(1, D_HEAT + 1) * DXI
    heat = sdekit.SDE(heat_drift, heat_noise, D_HEAT, noise="additive", params=np.array([1.0, 1.0]), name="heat32",
                      drift_jacobian=heat_jacobian)
    sf = sdekit.SDE(slow_fast_drift, slow_fast_noise, 2, noise="diagonal", params=np.array([1000.0]),
                    name="slow_fast", drift_jacobian=slow_fast_jacobian)
    return {"heat32": (heat, np.sin(np.pi * xi), 0.05, 4.0 / DXI**2),
            "slow_fast": (sf, np.array([1.0, 0.0]), 1.0, 1000.0)}


def solve(sde, x0, t1, steps, solver, paths, seed, coupled=True):
    """On the reference's Brownian path (coupled), or with plain increments (the timing: drawing the fine path
    would cost every step count the same). The SDEs carry their drift Jacobian; only a "<solver>_jac" run uses it."""
    if solver.endswith(JAC):
        solver = solver[:-len(JAC)]
    else:
        sde = dataclasses.replace(sde, drift_jacobian=None)
    return sdekit.simulate(sde, x0, (0.0, t1), steps=steps, n_paths=paths, seed=seed, solver=solver,
                           noise_substeps=N_REF // steps if coupled else 1, threads=1, progress=False)


def run_problem(sde, x0, t1, rho: float, paths: int, seed: int) -> dict:
    """Errors and wall times of every solver on the step ladder; "skrock_rho" is SK-ROCK given the bound ρ."""
    sdekit.SDE_SOLVERS.pop("skrock_rho", None)
    sdekit.solvers.register(sdekit.solvers.skrock_method("skrock_rho", spectral_radius=rho))
    ref = solve(sde, x0, t1, N_REF, "euler_maruyama", paths, seed).ys[-1]
    curves = {}
    for solver in SOLVERS:
        rows = []
        for k in range(2, 13):
            steps = 2**k
            try:
                sol = solve(sde, x0, t1, steps, solver, paths, seed)
            except sdekit.NonFiniteError:
                rows.append({"steps": steps, "error": None, "seconds": None})
                continue
            err = float(np.sqrt(np.mean((sol.ys[-1] - ref) ** 2)))
            if not np.isfinite(err) or err > 1e3:
                rows.append({"steps": steps, "error": None, "seconds": None})
                continue
            secs = min(solve(sde, x0, t1, steps, solver, paths, seed, False).stats.run_seconds for _ in range(3))
            rows.append({"steps": steps, "error": err, "seconds": secs})
        curves[solver] = rows
        print(f"  {solver}: {[(r['steps'], r['error']) for r in rows]}", flush=True)
    return curves


def cheapest(rows: list, target: float) -> dict | None:
    ok = [r for r in rows if r["error"] is not None and r["error"] <= target]
    return min(ok, key=lambda r: r["seconds"]) if ok else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, default=100)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    mach = machine()
    md = ["# Stiff SDEs: speed-up at equal strong error over Euler–Maruyama", "",
          f"`python benchmarks/stiff.py --paths {args.paths}` on {mach['cpu_model']} ({mach['affinity']} cores, "
          f"load average {os.getloadavg()[0]:.2f} at the start; a shared machine, so wall times vary between runs, "
          "the step counts do not). Strong error: RMS |X_h(T) - X_ref(T)| / sqrt(dim) against EM with 2^13 steps on "
          "the same Brownian path; wall time: fastest of 3 single-thread solves with plain (uncoupled) increments, "
          "compile excluded.", ""]
    record = {"machine": mach, "paths": args.paths, "problems": {}}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, (sde, x0, t1, rho)) in zip(axes, problems().items()):
        print(name, flush=True)
        curves = run_problem(sde, x0, t1, rho, args.paths, seed=11)
        em_stable = [r["steps"] for r in curves["euler_maruyama"] if r["error"] is not None]
        errs = sorted({r["error"] for r in curves["euler_maruyama"] if r["error"] is not None})
        targets = [errs[-1], errs[len(errs) // 2]] if errs else []
        md += [f"## {name}", "", f"ρ ≈ {rho:g}: EM's mean-square stability bound 2/ρ = {2 / rho:.3g}, so n >= "
               f"{t1 * rho / 2:.0f} steps; the fewest steps at which EM stayed finite: "
               f"{min(em_stable) if em_stable else 'none'}.", "",
               "| solver | " + " | ".join(f"n = {2**k}" for k in range(2, 13)) + " |",
               "|---|" + "---|" * 11]
        for solver, rows in curves.items():
            cells = ["unstable" if r["error"] is None else f"{r['error']:.2e} ({r['seconds'] * 1e3:.1f} ms)"
                     for r in rows]
            md.append(f"| {solver} | " + " | ".join(cells) + " |")
            ok = [r for r in rows if r["error"] is not None]
            ax.loglog([r["seconds"] for r in ok], [r["error"] for r in ok], "o-", label=solver)
        md += ["", "| error target | solver | steps | wall time | speed-up over EM |", "|---|---|---|---|---|"]
        summary = []
        for target in targets:
            base = cheapest(curves["euler_maruyama"], target)
            for solver in SOLVERS:
                best = cheapest(curves[solver], target)
                if best is None or base is None:
                    continue
                speed = base["seconds"] / best["seconds"]
                md.append(f"| {target:.2e} | {solver} | {best['steps']} | {best['seconds'] * 1e3:.2f} ms | "
                          f"{speed:.1f}x |")
                summary.append({"target": target, "solver": solver, "steps": best["steps"],
                                "seconds": best["seconds"], "speedup": speed})
        md.append("")
        record["problems"][name] = {"rho": rho, "T": t1, "curves": curves, "equal_error": summary}
        ax.set_title(f"{name}: strong error vs wall time")
        ax.set_xlabel("seconds (1 thread)")
        ax.set_ylabel("RMS error at T")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "stiff.png", dpi=110)
    md += ["Notes. `skrock` estimates ρ on every step and path by a power iteration (up to 30 drift evaluations on the "
           "heat equation, whose top eigenvalues are clustered); `skrock_rho` is given ρ. The θ-methods pay (d + 1) "
           "drift evaluations and a dense d x d solve per Newton iteration (about 2 per step on these problems), "
           "which at d = 32 costs far more than the steps they save; `implicit_euler_maruyama_jac` is given the "
           "drift Jacobian (one drift and one Jacobian evaluation per iteration, the dense solve remains). "
           "A Chebyshev method damps a stiff mode only by "
           "|R_s(-hρ)|, which can be close to 1 (0.95 at hρ = 31, s = 5): on slow_fast the initial transient of the "
           "fast variable then decays slowly and SK-ROCK's error is not monotone in h.", "",
           "![stiff](stiff.png)", "", f"Total benchmark time {time.perf_counter() - start:.0f} s."]
    (out / "stiff.md").write_text("\n".join(md) + "\n")
    (out / "stiff.json").write_text(json.dumps(record, indent=1))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
