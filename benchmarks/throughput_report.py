#!/usr/bin/env python
"""Render benchmarks/results/throughput.json (written by throughput.py) as the Markdown tables of throughput.md.

    python benchmarks/throughput_report.py [--json PATH] [--out PATH]

Every number comes from the JSON of one run: throughput and ratios of path-steps per second, the small-run
overheads, float32 against float64, 2 threads against 1, the roofline fractions and the N / dim / memory scaling.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RATIO_COLUMNS = ("sdekit/hand", "sdekit/floor", "sdekit/floor_interleaved", "sdekit/jax", "sdekit/diffrax_unsafe",
                 "sdekit/diffrax_vbt", "sdekit/torchsde", "sdekit/numpy(T=1)")
OVERHEAD_IMPLS = (("sdekit_us", "simulate"), ("sdekit_python_us", "simulate: Python share"),
                  ("sdekit_plan_us", "plan"), ("sdekit_plan_python_us", "plan: Python share"),
                  ("sdekit_plan_kernel_us", "plan: kernel call"), ("sdekit_plan_path_us", "plan, per-path form"),
                  ("hand_us", "hand kernel"),
                  ("jax_scan_us", "JAX scan"), ("diffrax_unsafe_us", "diffrax unsafe"),
                  ("diffrax_vbt_us", "diffrax VBT"))

VARIANT_NAMES = {"sdekit_builtin": " (built-in score)", "sdekit_path": " (per-path form)"}


def _rate(v: float) -> str:
    return f"{v / 1e6:.3g} M" if v >= 1e5 else f"{v / 1e3:.3g} k"


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}g}"


def throughput_table(doc: dict) -> list[str]:
    by = {(r["problem"], r["n_paths"], r["threads"], r["impl"]): r for r in doc["results"] if r["status"] == "ok"}
    cols = [c for c in RATIO_COLUMNS if any(c in r for r in doc["ratios"])]
    lines = ["| problem | N | threads | sdekit path-steps/s | " + " | ".join(cols) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(cols)]
    for r in doc["ratios"]:
        if "T2/T1" in r:
            continue
        impl = r.get("of", "sdekit")
        key = r["problem"].rstrip("*")
        rec = by.get((key, r["n_paths"], r["threads"], impl))
        if rec is None:
            continue
        name = key + VARIANT_NAMES.get(impl, "")
        star = "*" if rec.get("other_cores_busy") and rec["other_cores_busy"] > 0.3 else ""
        steps = f" [{rec['steps_run']} steps]" if rec.get("reduced_steps") else ""
        rate = _rate(rec["path_steps_per_s"]) + star + steps
        lines.append(f"| {name} | {r['n_paths']:.0e} | {r['threads']} | {rate} | "
                     + " | ".join(_num(r.get(c)) for c in cols) + " |")
    return lines


def cpu_table(doc: dict) -> list[str]:
    """The 1-thread ratios per CPU-second: the JAX / diffrax workers kept more than one core busy in 1-thread runs."""
    cols = ("sdekit/hand", "sdekit/jax", "sdekit/diffrax_unsafe", "sdekit/torchsde")
    lines = ["| problem | N | " + " | ".join(c + " per CPU-s" for c in cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for r in doc.get("ratios_cpu", []):
        if r.get("threads") != 1 or "T2/T1" in r or not any(c in r for c in cols[1:3]):
            continue
        name = r["problem"].rstrip("*") + VARIANT_NAMES.get(r.get("of", "sdekit"), "")
        lines.append(f"| {name} | {r['n_paths']:.0e} | " + " | ".join(_num(r.get(c)) for c in cols) + " |")
    return lines


def overhead_table(doc: dict) -> list[str]:
    rows = [(k, v) for k, v in doc["overheads"].items() if k.endswith("_steps10_N1")]
    impls = [(k, name) for k, name in OVERHEAD_IMPLS if any(k in v for _, v in rows)]
    lines = ["| problem | " + " | ".join(name for _, name in impls) + " |", "|---|" + "---:|" * len(impls)]
    for key, v in rows:
        lines.append(f"| {key.split('_')[0]} | " + " | ".join(_num(v.get(k)) for k, _ in impls) + " |")
    per_step = [(k, v) for k, v in doc["overheads"].items() if k.endswith("_per_step_N1")]
    if per_step:
        lines += ["", "| problem | sdekit ns per step at N = 1 | hand kernel ns per step | hand / sdekit |",
                  "|---|---:|---:|---:|"]
        for key, v in per_step:
            name = key.split("_")[0] + (f" ({v['form']} form)" if "form" in v else "")
            lines.append(f"| {name} | {v['sdekit_s'] * 1e9:.3g} | {v['hand_s'] * 1e9:.3g} | "
                         f"{v['hand_s'] / v['sdekit_s']:.2f} |")
    return lines


def precision_and_threads(doc: dict) -> list[str]:
    lines = ["| problem | N | threads | float32 / float64 | float32 noise / float64 |", "|---|---:|---:|---:|---:|"]
    for r in doc["ratios"]:
        if ("f32/f64" in r or "f32 noise/f64" in r) and r.get("of", "sdekit") == "sdekit":
            lines.append(f"| {r['problem']} | {r['n_paths']:.0e} | {r['threads']} | {_num(r.get('f32/f64'))} | "
                         f"{_num(r.get('f32 noise/f64'))} |")
    lines += ["", "| problem | N | implementation | 2 threads / 1 thread |", "|---|---:|---|---:|"]
    for r in doc["ratios"]:
        if "T2/T1" in r:
            lines.append(f"| {r['problem']} | {r['n_paths']:.0e} | {r['impl']} | {r['T2/T1']:.2f} |")
    return lines


def roofline_table(doc: dict) -> list[str]:
    lines = ["| problem | flops per path-step | GEMM rate (1 core) | ceiling path-steps/s | fraction reached, 1 "
             "thread |", "|---|---:|---:|---:|---|"]
    for r in doc.get("roofline", []):
        fr = ", ".join(f"{k} {v:.2f}" for k, v in r["fraction"].items()
                       if k.split()[0] in ("sdekit", "sdekit_builtin", "hand", "jax_scan", "diffrax_unsafe"))
        lines.append(f"| {r['problem']} | {r['flops_per_path_step']} | {r['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s | "
                     f"{_rate(r['ceiling_path_steps_per_s'])} | {fr} |")
    return lines


def scaling_table(doc: dict) -> list[str]:
    lines = ["| N | dim | steps | ns per path-step | ns per path-step-dim | RSS growth | n_paths x dim x 8 B |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc.get("scaling", []):
        if "error" in r:
            lines.append(f"| {r['n_paths']:.0e} | {r['dim']} | {r['steps']} | {r['error'][:60]} | | | |")
            continue
        lines.append(f"| {r['n_paths']:.0e} | {r['dim']} | {r['steps']} | {r['ns_per_path_step']:.3g} | "
                     f"{r['ns_per_path_step_dim']:.3g} | {r['rss_growth_bytes'] / 2**20:.0f} MiB | "
                     f"{r['state_bytes'] / 2**20:.0f} MiB |")
    return lines


def render(doc: dict) -> str:
    m = doc["machine"]
    jax = m.get("jax_env") or {}
    head = ["# Throughput: Euler–Maruyama path-steps per second (`benchmarks/throughput.py`)", "",
            f"Machine: {m['cpu_model']}, {m['cpu_count']} cores; load average before {m.get('loadavg_before')}, "
            f"after {m.get('loadavg_after')}; numba {m['numba']}, numpy {m['numpy']}, torch {m.get('torch')}, "
            f"torchsde {m.get('torchsde')}; JAX environment: {json.dumps(jax)}; {m['date_utc']}.", "",
            *(f"Rerun after the main run: {k} ({json.dumps(m[k])})." for k in ("overheads_rerun", "scaling_rerun")
              if k in m), "",
            "Ratios above 1: sdekit faster. `*`: other processes kept more than 0.3 cores busy during the case. "
            "Notes of the run: " + ("; ".join(doc.get("notes", [])) or "none") + ".", ""]
    parts = [("Throughput and ratios (wall clock, same run)", throughput_table(doc)),
             ("The same ratios per CPU-second (1 thread; JAX's worker used more than one core)", cpu_table(doc)),
             ("Small runs: one 10-step solve at N = 1, µs per call (median)", overhead_table(doc)),
             ("float32 and threads", precision_and_threads(doc)),
             ("Roofline of the mixture problems", roofline_table(doc)),
             ("Scaling (OU, one thread, final state only, one process per case)", scaling_table(doc))]
    out = head
    for title, lines in parts:
        out += [f"## {title}", "", *lines, ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "throughput.json")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "throughput.md")
    cfg = ap.parse_args(argv)
    cfg.out.write_text(render(json.loads(cfg.json.read_text())))
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
