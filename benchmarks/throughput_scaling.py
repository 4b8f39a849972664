#!/usr/bin/env python
"""How sdekit's cost per path-step grows with the number of paths and with the dimension, and its peak memory.

OU with diagonal noise, dX = -X dt + sqrt(2) dW in d dimensions, Euler-Maruyama, h = 1e-3, final state only, one
thread. Each case runs in a fresh process (``--case N DIM STEPS``): it compiles on a 1-path solve, then records
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` before and after the timed solve, against the state's own
n_paths x dim x 8 bytes. Fewer steps at large N x dim, so that every case takes seconds. Called by throughput.py;
standalone: ``python benchmarks/throughput_scaling.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DT = 1e-3
SEED = 7


def grid(quick: bool) -> list[tuple[int, int]]:
    """(n_paths, dim) cases: N = 1e2 .. 1e8 at d = 1, then d = 1 .. 256 at N = 1e4 (quick: N in {1e2, 1e4, 1e6},
    d in {1, 8, 64} at N = 1e3)."""
    ns = [100, 10**4, 10**6] if quick else [10**k for k in range(2, 9)]
    dims = [1, 8, 64] if quick else [2**k for k in range(0, 9)]
    n_dim = 10**3 if quick else 10**4
    return [(n, 1) for n in ns] + [(n_dim, d) for d in dims if d > 1]


def steps_for(n: int, dim: int, quick: bool) -> int:
    """Steps so that a case is ~2e7 (quick) or ~3e8 path-step-dims: at most 1000, at least 2."""
    target = 2e7 if quick else 3e8
    return int(min(1000, max(2, target // (n * dim))))


def _status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: the peak since the last reset)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def _reset_peak() -> bool:
    """Reset this process's peak resident size (writing 5 to /proc/self/clear_refs); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kib("VmHWM") > 0
    except OSError:
        return False


def case(n: int, dim: int, steps: int) -> dict:
    """One timed final-state-only solve in this process (see the module docstring)."""
    import numpy as np
    from bench_problems import ou_drift, sqrt2_diffusion

    import sdekit

    sde = sdekit.SDE(drift=ou_drift, diffusion=sqrt2_diffusion, noise="diagonal", dim=dim, params=np.array([1.0]),
                     name=f"ou_diag{dim}")
    x0 = np.zeros(dim)
    sdekit.simulate(sde, x0=x0, t=(0.0, 2 * DT), steps=2, n_paths=1, seed=SEED, threads=1)  # compile / cache load
    peak_reset = _reset_peak()  # the peak from now on (Linux): the import's and compiler's peak does not hide it
    rss0 = _status_kib("VmRSS") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    sol = sdekit.simulate(sde, x0=x0, t=(0.0, steps * DT), steps=steps, n_paths=n, seed=SEED, threads=1,
                          max_save_bytes=2**40)  # the working state of 1e8 paths is above the default cap
    wall = time.perf_counter() - t0
    rss1 = _status_kib("VmHWM") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ps = n * steps
    return {"n_paths": n, "dim": dim, "steps": steps, "run_seconds": sol.stats.run_seconds, "wall_s": wall,
            "ns_per_path_step": 1e9 * sol.stats.run_seconds / ps, "ns_per_path_step_dim": 1e9 * sol.stats.run_seconds
            / (ps * dim), "maxrss_before_kib": rss0, "maxrss_after_kib": rss1,
            "rss_growth_bytes": 1024 * (rss1 - rss0), "state_bytes": 8 * n * dim, "peak_since_reset": peak_reset,
            "finite": bool(np.isfinite(sol.final).all())}


def run_scaling(quick: bool, timeout_s: float = 600.0) -> list[dict]:
    """Every grid case in its own process; a failing or timed-out case is recorded with its reason."""
    out = []
    for n, dim in grid(quick):
        steps = steps_for(n, dim, quick)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--case", str(n), str(dim),
                                   str(steps)], capture_output=True, text=True, timeout=timeout_s)
            rec = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                   else {"n_paths": n, "dim": dim, "steps": steps, "error": proc.stderr[-1500:]})
        except subprocess.TimeoutExpired:
            rec = {"n_paths": n, "dim": dim, "steps": steps, "error": f"timed out after {timeout_s:.0f} s"}
        rec["process_wall_s"] = time.perf_counter() - t0
        out.append(rec)
        msg = (f"{rec['ns_per_path_step']:.2f} ns/path-step, RSS +{rec['rss_growth_bytes'] / 2**20:.0f} MiB "
               f"(state {rec['state_bytes'] / 2**20:.1f} MiB)" if "error" not in rec else "error")
        print(f"  scaling N={n:<10} d={dim:<4} steps={steps:<5} {msg}", flush=True)
    return out


def plot_scaling(records: list[dict], path: Path, caption: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if "error" not in r]
    by_n = sorted((r for r in ok if r["dim"] == 1), key=lambda r: r["n_paths"])
    n_dim = max((r["n_paths"] for r in ok if r["dim"] > 1), default=None)
    by_d = sorted((r for r in ok if r["n_paths"] == n_dim or (r["dim"] == 1 and r["n_paths"] == n_dim)),
                  key=lambda r: r["dim"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].plot([r["n_paths"] for r in by_n], [r["ns_per_path_step"] for r in by_n], "o-")
    axes[0].set(xscale="log", xlabel="paths N (d = 1)", ylabel="ns per path-step", title="(a) cost vs N, OU, 1 thread")
    axes[1].plot([r["dim"] for r in by_d], [r["ns_per_path_step_dim"] for r in by_d], "o-")
    axes[1].set(xscale="log", xlabel=f"dim d (N = {n_dim})", ylabel="ns per path-step per dimension",
                title="(b) cost vs dim, OU diagonal noise")
    axes[2].plot([r["state_bytes"] for r in ok], [max(r["rss_growth_bytes"], 1) for r in ok], "o", label="cases")
    lim = [min(r["state_bytes"] for r in ok), max(r["state_bytes"] for r in ok)] if ok else [1, 1]
    axes[2].plot(lim, lim, "k--", lw=1, label="N x d x 8 bytes")
    axes[2].set(xscale="log", yscale="log", xlabel="N x d x 8 bytes", ylabel="peak RSS growth (bytes)",
                title="(c) memory of final-state-only runs")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.text(0.01, 0.005, caption + "Euler-Maruyama h = 1e-3, fewer steps at large N x d (steps in the JSON)",
             fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=3, type=int, metavar=("N", "DIM", "STEPS"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    cfg = ap.parse_args(argv)
    if cfg.case:
        print(json.dumps(case(*cfg.case)))
        return 0
    recs = run_scaling(cfg.quick)
    cfg.out.mkdir(parents=True, exist_ok=True)
    stem = "throughput_scaling_quick" if cfg.quick else "throughput_scaling"
    (cfg.out / f"{stem}.json").write_text(json.dumps(recs, indent=1))
    plot_scaling(recs, cfg.out / f"{stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
