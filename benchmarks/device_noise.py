#!/usr/bin/env python
"""Counter-based noise on torch and the fused fixed-step loop, against torch.randn, sdekit's streams, the torchsde
path of the torch backend and the Numba kernel.

(a) noise alone: N standard normals (N = 1e4 ... 1e7) in two layouts, "column" (N paths x 1 draw: one step of a
    1-D SDE, a key per normal) and "wide" (N / 1024 paths x 1024 draws: an image-shaped sampler step), float64 and
    float32, nanoseconds per normal:
      counter_numba   torch_counter_normals(..., device="cpu"): the Numba generator + torch.from_numpy (CPU only)
      counter_torch   the pure-torch implementation (`counter_noise.device_counter_normals`), eager on the CPU,
                      torch.compile'd on CUDA (the device path)
      randn           torch.randn on the device (torch's Philox on CUDA, MT19937 on the CPU)
      path_normals    sdekit.noise.path_normals (xoshiro256++ + ziggurat, Numba, CPU), plus the copy to the device
                      when the device is not the CPU (what StreamBrownian does every step)
(b) the loop: 1-D OU dX = -X dt + sqrt(2) dW, Euler-Maruyama, 100 steps of h = 1e-2, X0 = 0, seed 7, paths
    N = 1e4, 1e5, 1e6 (CPU; 1e3 ... 1e7 with --device cuda), path-steps per second from stats.run_seconds:
      fused_f64/f32    simulate(backend="torch", solver="fused_euler_maruyama")
      torchsde_f64/f32 simulate(backend="torch", solver="euler"): torchsde's Euler step with StreamBrownian
      numba_f64        simulate(backend="numba"), the compiled kernel (CPU)
    Each case: a 2-step warm-up, then `--repeats` timed runs interleaved across implementations; the median.

    python benchmarks/device_noise.py                      # CPU, 1 thread (about 10 minutes on 2 loaded cores)
    python benchmarks/device_noise.py --quick              # smoke test
    python benchmarks/device_noise.py --device cuda        # GPU: N up to 1e7, float32 and float64
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import torch
import torchsde
from bench_problems import ou_drift, sqrt2_diffusion
from bench_timing import timed

import sdekit
from sdekit.backends.torch.counter_noise import (
    counter_core,
    device_counter_normals,
    draw_words,
    path_words,
    torch_counter_normals,
)
from sdekit.noise.streams import path_normals
from sdekit.validate.provenance import cpu_model

SEED = 7
STEPS = 100
DT = 1e-2
WIDE = 1024
NOISE_IMPLS = {
    "counter_numba": "torch_counter_normals on the CPU: the Numba generator (prange) + torch.from_numpy",
    "counter_torch": "the pure-torch counter generator on the device (eager on the CPU, torch.compile on CUDA)",
    "counter_eager": "the pure-torch counter generator, eager (CUDA only: what torch.compile saves)",
    "randn": "torch.randn on the device",
    "path_normals": "sdekit.noise.path_normals (Numba xoshiro256++ + ziggurat on the CPU), copied to the device",
}
LOOP_IMPLS = {
    "fused_f64": "simulate(backend='torch', solver='fused_euler_maruyama'), float64",
    "fused_f32": "the same in float32",
    "torchsde_f64": "simulate(backend='torch', solver='euler'): torchsde's Euler step + StreamBrownian, float64",
    "torchsde_f32": "the same in float32",
    "numba_f64": "simulate(backend='numba'), the Numba kernel, float64 (CPU)",
}
DTYPES = {"f64": torch.float64, "f32": torch.float32}
OU = sdekit.SDE(drift=ou_drift, diffusion=sqrt2_diffusion, noise="additive", dim=1, params=np.array([1.0]),
                name="ou")
DEVICE = torch.device("cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------------------
# (a) noise alone


def shape_of(n: int, layout: str) -> tuple[int, int]:
    return (n, 1) if layout == "column" else (max(1, n // WIDE), WIDE)


def noise_runner(impl: str, dtype: torch.dtype) -> Callable[[tuple[int, int]], torch.Tensor]:
    gen = torch.Generator(device=DEVICE).manual_seed(SEED)

    def run(shape: tuple[int, int]) -> torch.Tensor:
        n, m = shape
        if impl == "counter_numba":
            out = torch_counter_normals(SEED, n, m, dtype=dtype)
        elif impl == "counter_torch":
            out = device_counter_normals(SEED, n, m, 0, 0, 0, dtype, DEVICE)
        elif impl == "counter_eager":
            out = counter_core(path_words(SEED, 0, n, 0, DEVICE), draw_words(m, 0, DEVICE), dtype)
        elif impl == "randn":
            out = torch.randn(shape, generator=gen, dtype=dtype, device=DEVICE)
        else:
            out = torch.from_numpy(path_normals(SEED, n, m)).to(device=DEVICE, dtype=dtype)
        sync()
        return out
    return run


def bench_noise(cfg: argparse.Namespace) -> list[dict]:
    cuda = DEVICE.type == "cuda"
    impls = [i for i in NOISE_IMPLS if not (i == "counter_numba" and cuda) and not (i == "counter_eager" and not cuda)]
    recs = []
    for layout in ("column", "wide"):
        for dname, dtype in DTYPES.items():
            for n in cfg.noise_sizes:
                shape = shape_of(n, layout)
                runners = {i: noise_runner(i, dtype) for i in impls}
                for run in runners.values():
                    run(shape)  # warm-up: compile, first-touch allocation
                times: dict[str, list[float]] = {i: [] for i in impls}
                cpu: dict[str, list[float]] = {i: [] for i in impls}
                others: dict[str, list[float]] = {i: [] for i in impls}
                for _ in range(cfg.repeats):
                    for i, run in runners.items():
                        t = timed(lambda run=run: run(shape))
                        times[i].append(t.wall_s)
                        cpu[i].append(t.cpu_s)
                        if t.other_cores is not None:
                            others[i].append(t.other_cores)
                count = shape[0] * shape[1]
                for i in impls:
                    med = statistics.median(times[i])
                    recs.append({"layout": layout, "dtype": dname, "n": count, "shape": list(shape), "impl": i,
                                 "seconds": times[i], "median_s": med, "ns_per_normal": med / count * 1e9,
                                 "cpu_per_wall": statistics.median(c / w for c, w in zip(cpu[i], times[i])),
                                 "other_cores_busy": max(others[i]) if others[i] else None})
                line = ", ".join(f"{r['impl']} {r['ns_per_normal']:.3g}" for r in recs[-len(impls):])
                print(f"noise {layout} {dname} N={count}: ns/normal {line}", flush=True)
    return recs


# ---------------------------------------------------------------------------------------------------------------------
# (b) the loop


def loop_runner(impl: str) -> Callable[[int, int], tuple[float, np.ndarray]]:
    def run(n: int, steps: int) -> tuple[float, np.ndarray]:
        if impl == "numba_f64":
            sol = sdekit.simulate(OU, np.zeros(1), (0.0, steps * DT), steps=steps, n_paths=n, seed=SEED,
                                  threads=nb.get_num_threads())
            return sol.stats.run_seconds, sol.final[:, 0]
        kind, dname = impl.split("_")
        with torch.no_grad():
            x0 = torch.zeros(1, dtype=DTYPES[dname], device=DEVICE)
            sol = sdekit.simulate(OU, x0, (0.0, steps * DT), steps=steps, n_paths=n, seed=SEED, backend="torch",
                                  solver="fused_euler_maruyama" if kind == "fused" else "euler")
            sync()
        return sol.stats.run_seconds, sol.ys[-1, :, 0].to(device="cpu", dtype=torch.float64).numpy()
    return run


def em_ou_variance(steps: int) -> float:
    """Var X_K of the Euler chain x' = (1 - h) x + sqrt(2 h) Z from 0."""
    a = 1.0 - DT
    return 2.0 * DT * sum(a ** (2 * j) for j in range(steps))


def bench_loop(cfg: argparse.Namespace) -> list[dict]:
    recs = []
    for n in cfg.loop_paths:
        impls = [i for i in LOOP_IMPLS if not (i == "numba_f64" and n > cfg.numba_max)]
        runners = {i: loop_runner(i) for i in impls}
        for run in runners.values():
            run(n, 2)  # warm-up
        runs: dict[str, list] = {i: [] for i in impls}
        for _ in range(cfg.repeats):
            for i, run in runners.items():
                t = timed(lambda run=run: run(n, STEPS))
                runs[i].append(t)
        var = em_ou_variance(STEPS)
        for i in impls:
            kern = [t.run[0] for t in runs[i]]
            med = statistics.median(kern)
            final = runs[i][-1].run[1]
            others = [t.other_cores for t in runs[i] if t.other_cores is not None]
            z = (float(final.var()) - var) / (var * math.sqrt(2.0 / n))
            recs.append({"impl": i, "n_paths": n, "steps": STEPS, "seconds": kern, "median_s": med,
                         "wall_s": [t.wall_s for t in runs[i]], "path_steps_per_s": n * STEPS / med,
                         "cpu_per_wall": statistics.median(t.cpu_s / t.wall_s for t in runs[i]),
                         "other_cores_busy": max(others) if others else None,
                         "final_var": float(final.var()), "final_var_expected": var, "final_var_z": z})
        print(f"loop N={n}: path-steps/s " + ", ".join(f"{r['impl']} {r['path_steps_per_s']:.3g}"
                                                         for r in recs[-len(impls):]), flush=True)
    return recs


def noise_ratios(recs: list[dict]) -> list[dict]:
    by = {(r["layout"], r["dtype"], r["n"], r["impl"]): r["median_s"] for r in recs}
    out = []
    for layout, dname, n in sorted({(r["layout"], r["dtype"], r["n"]) for r in recs}):
        row: dict[str, Any] = {"layout": layout, "dtype": dname, "n": n}
        for impl in ("counter_numba", "counter_torch", "counter_eager", "path_normals"):
            if (layout, dname, n, impl) in by and (layout, dname, n, "randn") in by:
                row[f"{impl}/randn"] = by[(layout, dname, n, impl)] / by[(layout, dname, n, "randn")]
        out.append(row)
    return out


def loop_ratios(recs: list[dict]) -> list[dict]:
    rate = {(r["n_paths"], r["impl"]): r["path_steps_per_s"] for r in recs}
    out = []
    for n in sorted({r["n_paths"] for r in recs}):
        row: dict[str, Any] = {"n_paths": n}
        for col, a, b in (("fused/torchsde f64", "fused_f64", "torchsde_f64"),
                          ("fused/torchsde f32", "fused_f32", "torchsde_f32"),
                          ("fused f64/numba", "fused_f64", "numba_f64")):
            if (n, a) in rate and (n, b) in rate:
                row[col] = rate[(n, a)] / rate[(n, b)]
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Reporting


def fmt(v: float) -> str:
    return f"{v / 1e6:.3g}M" if v >= 1e5 else f"{v / 1e3:.3g}k" if v >= 1e3 else f"{v:.3g}"


def markdown(doc: dict) -> str:
    info = doc["machine"]
    out = ["# Counter-based noise and the fused torch loop", "",
           "Written by `benchmarks/device_noise.py` (see its docstring for what each implementation times).", "",
           f"* CPU: {info['cpu_model']}, {info['cpu_count']} cores ({info['affinity']} usable)"
           + (f"; GPU: {info['gpu']}" if "gpu" in info else ""),
           f"* device: {info['device']}; threads: torch {info['torch_threads']}, numba {info['numba_threads']}",
           f"* load average before {info['loadavg_before']}, after {info.get('loadavg_after')}",
           f"* torch {info['torch']}, torchsde {info['torchsde']}, numba {info['numba']}, numpy {info['numpy']}, "
           f"Python {info['python']}, {info['platform']}",
           f"* date (UTC) {info['date_utc']}; total {info.get('total_seconds', 0):.0f} s; {doc['config']['repeats']} "
           "repeats per case (median)", ""]
    busy = [r["other_cores_busy"] for r in doc["noise"] + doc["loop"] if r.get("other_cores_busy") is not None]
    if busy:
        out.append(f"* other processes kept {statistics.median(busy):.2f} cores busy during a timed run (median over "
                   f"runs of 0.2 s or more; max {max(busy):.2f}): the machine was shared, so ratios measured "
                   "in the same run (interleaved repeats) are the numbers to read")
    out += [f"* note: {n}" for n in doc["notes"]]
    out += ["", "## (a) Noise alone: ns per normal (median)", ""]
    impls = [i for i in NOISE_IMPLS if any(r["impl"] == i for r in doc["noise"])]
    by = {(r["layout"], r["dtype"], r["n"], r["impl"]): r for r in doc["noise"]}
    rat = {(r["layout"], r["dtype"], r["n"]): r for r in doc["noise_ratios"]}
    rcols = [f"{i}/randn" for i in ("counter_numba", "counter_torch", "counter_eager", "path_normals") if i in impls]
    out.append("| layout | dtype | N | " + " | ".join(impls) + " | " + " | ".join(rcols) + " |")
    out.append("|" + "---|" * (3 + len(impls) + len(rcols)))
    for key in sorted(rat, key=lambda k: (k[0], k[1], k[2])):
        cells = [f"{by[(*key, i)]['ns_per_normal']:.3g}" if (*key, i) in by else "-" for i in impls]
        rc = [f"{rat[key][c]:.3g}" if c in rat[key] else "-" for c in rcols]
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " | " + " | ".join(rc) + " |")
    out += ["", "## (b) OU, Euler-Maruyama, 100 steps: path-steps per second (median of stats.run_seconds)", ""]
    limps = [i for i in LOOP_IMPLS if any(r["impl"] == i for r in doc["loop"])]
    lby = {(r["n_paths"], r["impl"]): r for r in doc["loop"]}
    lrat = {r["n_paths"]: r for r in doc["loop_ratios"]}
    lcols = ["fused/torchsde f64", "fused/torchsde f32", "fused f64/numba"]
    out.append("| N | " + " | ".join(limps) + " | " + " | ".join(lcols) + " |")
    out.append("|" + "---|" * (1 + len(limps) + len(lcols)))
    for n in sorted(lrat):
        cells = [fmt(lby[(n, i)]["path_steps_per_s"]) if (n, i) in lby else "-" for i in limps]
        rc = [f"{lrat[n][c]:.3g}" if c in lrat[n] else "-" for c in lcols]
        out.append(f"| {n} | " + " | ".join(cells) + " | " + " | ".join(rc) + " |")
    out += ["", "## Checks", ""]
    out += [f"* {k}: {v}" for k, v in doc["checks"].items()]
    for r in doc["loop"]:
        out.append(f"* loop {r['impl']} N={r['n_paths']}: Var X_1 = {r['final_var']:.4g} (Euler chain "
                   f"{r['final_var_expected']:.4g}, z = {r['final_var_z']:.2f})")
    return "\n".join(out) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    colors = {"counter_numba": "C0", "counter_torch": "C1", "counter_eager": "C4", "randn": "C7", "path_normals": "C2",
              "fused_f64": "C0", "fused_f32": "C0", "torchsde_f64": "C3", "torchsde_f32": "C3", "numba_f64": "C2"}
    for ax, layout in zip(axes[:2], ("column", "wide")):
        for impl in NOISE_IMPLS:
            for dname in DTYPES:
                pts = sorted((r["n"], r["ns_per_normal"]) for r in doc["noise"]
                             if r["impl"] == impl and r["layout"] == layout and r["dtype"] == dname)
                if pts:
                    ax.plot(*zip(*pts), "--" if dname == "f32" else "-", marker="s" if dname == "f32" else "o",
                            mfc="none" if dname == "f32" else None, color=colors[impl], label=f"{impl} {dname}")
        ax.set(xscale="log", yscale="log", xlabel="normals N", ylabel="ns per normal",
               title=f"noise alone, layout '{layout}'")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 30)  # room for the legend above the curves
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
    ax = axes[2]
    for impl in LOOP_IMPLS:
        pts = sorted((r["n_paths"], r["path_steps_per_s"]) for r in doc["loop"] if r["impl"] == impl)
        if pts:
            f32 = impl.endswith("f32")
            ax.plot(*zip(*pts), "--" if f32 else "-", marker="s" if f32 else "o", mfc="none" if f32 else None,
                    color=colors[impl], label=impl)
    ax.set(xscale="log", yscale="log", xlabel="paths N", ylabel="path-steps / s",
           title="1-D OU, Euler-Maruyama, 100 steps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    info = doc["machine"]
    fig.text(0.01, 0.005, f"{info['cpu_model']}, {info['torch_threads']} thread(s), device {info['device']}"
             + (f" ({info['gpu']})" if "gpu" in info else "") + f", load {info['loadavg_before'][0]:.2f}, "
             f"torch {info['torch']}, {info['date_utc'][:10]}; median of {doc['config']['repeats']}",
             fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------------
# Driver


def machine_info() -> dict:
    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
        "numba": nb.__version__, "torch": torch.__version__, "torchsde": torchsde.__version__,
        "device": str(DEVICE), "torch_threads": torch.get_num_threads(), "numba_threads": nb.get_num_threads(),
        "loadavg_before": os.getloadavg(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    if DEVICE.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(DEVICE)
    return info


def checks() -> dict:
    """The device path's numbers equal the Numba generator's (float64; float32 = rounded) in this run."""
    ref = torch_counter_normals(SEED, 64, 257, path_offset=2**62, draw_offset=2**63 - 100)
    dev = device_counter_normals(SEED, 64, 257, 2**62, 0, 2**63 - 100, torch.float64, DEVICE).cpu()
    dev32 = device_counter_normals(SEED, 64, 257, 2**62, 0, 2**63 - 100, torch.float32, DEVICE).cpu()
    out = {"device_equals_numba_f64": bool(torch.equal(dev, ref)),
           "device_f32_equals_rounded_f64": bool(torch.equal(dev32, ref.to(torch.float32)))}
    if not out["device_equals_numba_f64"]:
        out["max_abs_diff_f64"] = float((dev - ref).abs().max())
        out["n_differ_f64"] = int((dev != ref).sum())
    if DEVICE.type == "cuda":
        from sdekit.backends.torch import counter_noise

        out["cuda_compile_failed"] = counter_noise._CUDA_CORE.failed
    return out


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="device of the torch implementations (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=1, help="torch and Numba threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case (median)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    cfg = ap.parse_args(argv)
    notes = []
    DEVICE = torch.device(cfg.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        notes.append(f"--device {cfg.device} asked for but CUDA is not available: ran on the CPU")
        print(f"warning: {notes[-1]}", file=sys.stderr)
        DEVICE = torch.device("cpu")
    torch.set_num_threads(max(1, cfg.threads))
    nb.set_num_threads(min(max(1, cfg.threads), nb.config.NUMBA_NUM_THREADS))
    cuda = DEVICE.type == "cuda"
    if cfg.quick:
        cfg.noise_sizes, cfg.loop_paths = [10**4, 10**5], [10**3, 10**4]
    else:
        cfg.noise_sizes = [10**4, 10**5, 10**6, 10**7]
        cfg.loop_paths = [10**3, 10**4, 10**5, 10**6, 10**7] if cuda else [10**4, 10**5, 10**6]
    cfg.numba_max = 10**6
    stem = "device_noise" + ("_cuda" if cuda else "") + ("_quick" if cfg.quick else "")
    cfg.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = machine_info()
    print(f"machine: {info['cpu_model']}, load {info['loadavg_before']}; device {DEVICE}"
          + (f" ({info['gpu']})" if cuda else ""), flush=True)
    chk = checks()
    print(f"checks: {chk}", flush=True)
    noise = bench_noise(cfg)
    loop = bench_loop(cfg)
    info["loadavg_after"] = os.getloadavg()
    info["total_seconds"] = time.perf_counter() - t0
    doc = {"machine": info, "config": {"seed": SEED, "steps": STEPS, "dt": DT, "wide": WIDE, "repeats": cfg.repeats,
                                       "noise_sizes": cfg.noise_sizes, "loop_paths": cfg.loop_paths,
                                       "quick": cfg.quick},
           "implementations": {**NOISE_IMPLS, **LOOP_IMPLS}, "notes": notes, "checks": chk,
           "noise": noise, "noise_ratios": noise_ratios(noise), "loop": loop, "loop_ratios": loop_ratios(loop)}
    (cfg.out / f"{stem}.json").write_text(json.dumps(doc, indent=1, default=float))
    (cfg.out / f"{stem}.md").write_text(markdown(doc))
    plot(doc, cfg.out / f"{stem}.png")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
