#!/usr/bin/env python
"""Sharded ensembles on a dask LocalCluster against one process: throughput, scaling, memory, overhead per shard, a
rare-event estimate, and a scale-out to 1,000 workers on paper from the measured costs.

    python benchmarks/distributed_bench.py [--path-steps 1e10] [--scaling-path-steps 1e9] [--rare-paths 2e8]
                                           [--workers 2] [--out benchmarks/results]

1. Langevin16: dX = s(X) dt + sqrt(2) dW in R^16, s_i = -4 x_i (x_i^2 - 1) / eps (independent double wells,
   eps = 2), X_0 = 0, T = 1, Euler-Maruyama with 1,000 steps, path_steps / 1,000 paths. Run (a) sharded on a
   LocalCluster of `--workers` processes with one thread each, keeping no states, only the streaming moments of
   X_T (`sdekit.reductions.Moments`); (b) in one process with as many threads (`sdekit.simulate`, all paths at once,
   then the same moments in one pass). Kernels are compiled before the clock starts (compile time reported apart).
   Each single-process run is a fresh spawned process, so its peak memory is its own.
2. Scaling efficiency at `--scaling-path-steps`: one process with ONE thread vs the cluster:
   E = T_1 / (workers * T_cluster).
3. Overhead: per task of the scheduler (2,000 no-op tasks), per shard of a sharded solve (a solve of 1-step shards:
   wall time per shard), and bytes moved per shard (the pickled task arguments and the returned summary).
4. Rare event on OU: dX = -X dt + sqrt(2) dW, X_0 = 0, T = 1, Euler-Maruyama with 20 steps. The EM chain is
   Gaussian, X_N ~ N(0, v_N) with v_N = 2h sum_{k<N} (1 - h)^{2k}, so a = sqrt(v_N) Phi^{-1}(1 - 1e-6) gives
   P(X_N > a) = 1e-6 exactly for the scheme; estimated with `sdekit.reductions.Exceedance` from `--rare-paths` paths
   on the cluster (and in one process, in blocks of RARE_BLOCK paths with path_offset: the counts must be equal, the
   runs being bit-identical), with its standard error, exact interval and z against 1e-6.
5. On paper: T(W) for W workers (1 thread each) from the measured per-path-step cost, per-task scheduler cost,
   per-worker start-up (compile or cache load) and bytes per shard over an assumed 1 GB/s network, with 4 shards
   per worker; efficiency E(W) = T(1) / (W T(W)), and where it falls below 50%.
Writes distributed.json, distributed.md and distributed.png under --out, with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from bench_timing import busy_jiffies  # noqa: E402
from power import machine  # noqa: E402

import sdekit  # noqa: E402

DIM = 16
STEPS = 1000
EPS = 2.0
RARE_STEPS = 20
RARE_P = 1e-6
RARE_BLOCK = 20_000_000  # one process solves the rare-event paths in blocks of this many (memory: about 2 GB each)
NETWORK_BYTES_PER_S = 1e9  # assumed for the paper scale-out (a 10 GbE link, about)
SHARDS_PER_WORKER = 4


def dw_score(x, t, p):
    """s(x) = -grad U, U = sum_i (x_i^2 - 1)^2 / eps: -4 x (x^2 - 1) / eps."""
    return -4.0 / p[0] * x * (x * x - 1.0)


def sqrt2(x, t, p):
    """g = sqrt(2)."""
    return 1.4142135623730951


def ou_drift(x, t, p):
    """f = -x."""
    return -x


LANGEVIN = sdekit.SDE(dw_score, sqrt2, dim=DIM, noise="additive", params=[EPS], name="langevin16_double_well")
OU = sdekit.SDE(ou_drift, sqrt2, dim=1, noise="additive", name="ou_rare")


def rare_threshold() -> tuple[float, float]:
    """(a, v_N): the EM chain's exact variance after RARE_STEPS steps of h = 1 / RARE_STEPS, and the level a with
    P(X_N > a) = RARE_P."""
    h = 1.0 / RARE_STEPS
    v = 2.0 * h * sum((1.0 - h) ** (2 * k) for k in range(RARE_STEPS))
    return float(np.sqrt(v) * stats.norm.isf(RARE_P)), v


def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_process(job: str, n_paths: int, threads: int, queue: multiprocessing.Queue) -> None:
    """Child process: the single-process run of `job`, timed after a compile run; puts a dict on `queue`."""
    import numba

    from sdekit.reductions import Exceedance, Moments

    numba.set_num_threads(threads)
    if job == "langevin":
        sdekit.simulate(LANGEVIN, 0.0, (0.0, 1.0), steps=2, n_paths=64, threads=threads)
        rss0 = peak_rss_mib()
        j0, t0 = busy_jiffies(), time.perf_counter()
        sol = sdekit.simulate(LANGEVIN, 0.0, (0.0, 1.0), steps=STEPS, n_paths=n_paths, seed=1, threads=threads,
                              progress=False)
        wall = time.perf_counter() - t0
        other = _other_load(j0, t0, sol.stats.run_seconds, threads)
        red = Moments(DIM).update(sol.ys[-1])
    else:
        a, _ = rare_threshold()
        sdekit.simulate(OU, 0.0, (0.0, 1.0), steps=2, n_paths=64, threads=threads)
        rss0 = peak_rss_mib()
        j0, t0 = busy_jiffies(), time.perf_counter()
        red = Exceedance([a])
        run_s = 0.0
        for lo in range(0, n_paths, RARE_BLOCK):  # blocks of paths (path_offset): the same paths in bounded memory
            sol = sdekit.simulate(OU, 0.0, (0.0, 1.0), steps=RARE_STEPS, n_paths=min(RARE_BLOCK, n_paths - lo),
                                  seed=2, threads=threads, progress=False, path_offset=lo)
            red.update(sol.ys[-1])
            run_s += sol.stats.run_seconds
        wall = time.perf_counter() - t0
        other = _other_load(j0, t0, wall, threads)
        sol.stats.run_seconds = run_s
    queue.put({"wall_s": wall, "run_s": sol.stats.run_seconds, "peak_rss_mib": peak_rss_mib(),
               "rss_before_mib": rss0, "other_cores": other, "reduction": pickle.dumps(red)})


def run_one_process(job: str, n_paths: int, threads: int) -> dict:
    """`one_process` in a fresh spawned interpreter (its own peak memory, nothing else in it)."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=one_process, args=(job, n_paths, threads, q))
    p.start()
    out = q.get()
    p.join()
    out["reduction"] = pickle.loads(out["reduction"])
    return out


def _other_load(j0: float | None, w0: float, busy_s: float, cores_used: int) -> float | None:
    """Cores busy with other work during a run (machine busy time minus what the run itself could use)."""
    j1, wall = busy_jiffies(), time.perf_counter() - w0
    if j0 is None or j1 is None or wall < 0.2:
        return None
    return max(0.0, (j1 - j0) / os.sysconf("SC_CLK_TCK") / wall - cores_used * busy_s / wall)


def worker_rss(client) -> list[float]:
    """Peak resident memory of every worker process, MiB."""
    return sorted(v for v in client.run(peak_rss_mib).values())


def cluster_run(client, sd, problem, n_paths: int, steps: int, seed: int, reductions: dict,
                shard_size: int) -> tuple[dict, object]:
    j0, w0 = busy_jiffies(), time.perf_counter()
    sol = sd.simulate(problem, 0.0, (0.0, 1.0), n_paths=n_paths, steps=steps, seed=seed, client=client,
                      shard_size=shard_size, states="none", reductions=reductions, progress=False)
    wall = time.perf_counter() - w0
    workers = len(client.scheduler_info(n_workers=-1)["workers"])
    return {"wall_s": wall, "compute_s": sol.stats.compute_seconds, "n_shards": sol.stats.n_shards,
            "shard_size": shard_size, "shard_seconds_median": float(np.median(sol.stats.shard_seconds)),
            "other_cores": _other_load(j0, w0, wall, workers), "worker_peak_rss_mib": worker_rss(client)}, sol


def overheads(client, sd) -> dict:
    """Scheduler cost per no-op task, wall per 1-step shard, bytes per shard."""
    from sdekit.distributed.ensemble import ShardResult
    from sdekit.distributed.transport import dumps_by_name
    from sdekit.reductions import Moments

    n_tasks = 2000
    t0 = time.perf_counter()
    futs = client.map(int, range(n_tasks), pure=False)
    client.gather(futs)
    per_task = (time.perf_counter() - t0) / n_tasks
    del futs
    n_shards = 400
    t0 = time.perf_counter()
    sol = sd.simulate(LANGEVIN, 0.0, (0.0, 1.0), n_paths=n_shards * 8, steps=1, seed=3, client=client, shard_size=8,
                      states="none", reductions={"m": Moments(DIM)}, progress=False)
    per_shard = (time.perf_counter() - t0) / n_shards
    compute_per_shard = sol.stats.compute_seconds / n_shards
    run = sd.ensemble._Run(dumps_by_name(LANGEVIN), (0.0, 1.0), {"steps": STEPS}, 1, "none", sd.ensemble.final_state,
                           {"m": Moments(DIM)}, False, "0" * 64, "0" * 64)
    import cloudpickle

    args_bytes = len(cloudpickle.dumps((run, 0, 0, 100_000, np.asarray(0.0), "0" * 64, None)))
    summary = ShardResult(0, 0, 100_000, None, None, {"m": Moments(DIM).update(np.zeros((10, DIM)))}, 1.0, 0.0,
                          10**8, 0, "tcp://127.0.0.1:1")
    return {"noop_task_s": per_task, "shard_wall_s": per_shard, "shard_compute_s": compute_per_shard,
            "bytes_to_worker_per_shard": args_bytes, "bytes_back_per_shard": len(cloudpickle.dumps(summary))}


def paper_scaleout(cost_per_path_step: float, total_path_steps: float, task_s: float, startup_s: float,
                   bytes_per_shard: float) -> list[dict]:
    """T(W) = startup + work / W + shards * task_s (the scheduler serialises task handling) + shard bytes / network
    per worker, with SHARDS_PER_WORKER * W shards; E(W) = T(1) / (W T(W))."""
    rows = []
    t1 = None
    for w in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000]:
        shards = SHARDS_PER_WORKER * w
        work = total_path_steps * cost_per_path_step / w
        sched = shards * task_s
        net = SHARDS_PER_WORKER * bytes_per_shard / NETWORK_BYTES_PER_S
        t = startup_s + work + sched + net
        t1 = t if t1 is None else t1
        rows.append({"workers": w, "shards": shards, "T_s": t, "work_s": work, "scheduler_s": sched,
                     "startup_s": startup_s, "network_s": net, "efficiency": t1 / (w * t)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path-steps", type=float, default=1e10)
    parser.add_argument("--scaling-path-steps", type=float, default=1e9)
    parser.add_argument("--rare-paths", type=float, default=2e8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-one-process", action="store_true", help="cluster runs only (for a quick look)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    import distributed

    import sdekit.distributed as sd
    from sdekit.reductions import Exceedance, Moments

    out: dict = {"machine": machine(), "workers": args.workers, "config": vars(args)}
    started = time.perf_counter()
    n_big = int(args.path_steps) // STEPS
    n_scale = int(args.scaling_path_steps) // STEPS
    n_rare = int(args.rare_paths)
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        t0 = time.perf_counter()  # start-up: every worker compiles (or loads) the two kernels
        warm = sd.simulate(LANGEVIN, 0.0, (0.0, 1.0), n_paths=args.workers * 4, steps=2, client=client,
                           shard_size=4, progress=False)
        sd.simulate(OU, 0.0, (0.0, 1.0), n_paths=args.workers * 4, steps=2, client=client, shard_size=4,
                    progress=False)
        out["worker_startup_s"] = time.perf_counter() - t0
        out["worker_compile_s"] = warm.stats.compile_seconds
        shard = 100_000
        scale_c, _ = cluster_run(client, sd, LANGEVIN, n_scale, STEPS, 1, {"m": Moments(DIM)}, shard)
        print(f"scaling run ({n_scale * STEPS:.2g} path-steps) on the cluster: {scale_c['wall_s']:.1f} s", flush=True)
        big_c, big_sol = cluster_run(client, sd, LANGEVIN, n_big, STEPS, 1, {"m": Moments(DIM)}, shard)
        print(f"langevin16 {n_big * STEPS:.2g} path-steps on the cluster: {big_c['wall_s']:.1f} s", flush=True)
        a, v = rare_threshold()
        rare_c, rare_sol = cluster_run(client, sd, OU, n_rare, RARE_STEPS, 2, {"p": Exceedance([a])}, 2_000_000)
        print(f"rare event, {n_rare:.2g} paths on the cluster: {rare_c['wall_s']:.1f} s", flush=True)
        out["overheads"] = overheads(client, sd)
    finally:
        client.close()
        cluster.close()
    rare = rare_sol.reductions["p"].result()
    out["langevin16"] = {"path_steps": n_big * STEPS, "n_paths": n_big, "cluster": big_c}
    out["scaling"] = {"path_steps": n_scale * STEPS, "cluster": scale_c}
    z = float((rare.p_hat[0] - RARE_P) / np.sqrt(RARE_P * (1 - RARE_P) / rare.n))
    out["rare_event"] = {"a": a, "v_N": v, "p_exact": RARE_P, "n_paths": n_rare, "cluster": rare_c,
                         "estimate": _plain(rare), "z_vs_exact": z}
    if not args.skip_one_process:
        big_1 = run_one_process("langevin", n_big, args.workers)
        print(f"langevin16 in one process ({args.workers} threads): {big_1['wall_s']:.1f} s", flush=True)
        scale_1 = run_one_process("langevin", n_scale, 1)
        rare_1 = run_one_process("rare", n_rare, args.workers)
        m_c, m_1 = big_sol.reductions["m"].result(), big_1.pop("reduction").result()
        out["langevin16"]["one_process"] = big_1
        out["langevin16"]["moments_max_rel_diff"] = float(np.max(np.abs(np.asarray(m_c.mean) - np.asarray(m_1.mean))
                                                                 / np.sqrt(np.asarray(m_1.variance))))
        out["langevin16"]["cluster_vs_one_process"] = big_1["wall_s"] / big_c["wall_s"]
        scale_1.pop("reduction")
        out["scaling"]["one_process_1_thread"] = scale_1
        out["scaling"]["efficiency"] = scale_1["wall_s"] / (args.workers * scale_c["wall_s"])
        out["rare_event"]["one_process"] = {k: v for k, v in rare_1.items() if k != "reduction"}
        out["rare_event"]["counts_equal"] = bool(np.array_equal(rare_1["reduction"].result().counts,
                                                                rare.counts))
    per_ps = big_c["compute_s"] / (n_big * STEPS)  # seconds per path-step on one worker thread
    ov = out["overheads"]
    out["paper"] = paper_scaleout(per_ps, args.path_steps, ov["noop_task_s"], out["worker_startup_s"],
                                  ov["bytes_to_worker_per_shard"] + ov["bytes_back_per_shard"])
    out["seconds"] = time.perf_counter() - started
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "distributed.json").write_text(json.dumps(out, indent=1, default=_plain))
    (folder / "distributed.md").write_text(markdown(out))
    plot(out, folder / "distributed.png")
    print(markdown(out))
    return 0


def _plain(v):
    if hasattr(v, "__dataclass_fields__"):
        return {k: _plain(getattr(v, k)) for k in v.__dataclass_fields__}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def markdown(out: dict) -> str:
    w = out["workers"]
    L, S, R, O = out["langevin16"], out["scaling"], out["rare_event"], out["overheads"]
    lines = [f"# Sharded ensembles on a LocalCluster of {w} processes vs one process", "",
             f"Machine: {out['machine']['cpu_model']}, {out['machine']['affinity']} cores; "
             f"run {out['seconds']:.0f} s. 'other load' = cores busy with other work during the run.", "",
             "| run | path-steps | wall s | M path-steps/s | peak MiB | other load |", "|---|---|---|---|---|---|"]

    def row(name, ps, r, rss):
        other = "-" if r.get("other_cores") is None else f"{r['other_cores']:.2f}"
        lines.append(f"| {name} | {ps:.3g} | {r['wall_s']:.1f} | {ps / r['wall_s'] / 1e6:.1f} | {rss} | {other} |")

    row(f"Langevin16 EM, cluster ({w} x 1 thread), states kept: none", L["path_steps"], L["cluster"],
        " / ".join(f"{m:.0f}" for m in L["cluster"]["worker_peak_rss_mib"]) + " (per worker)")
    if "one_process" in L:
        row(f"Langevin16 EM, one process ({w} threads), all states", L["path_steps"], L["one_process"],
            f"{L['one_process']['peak_rss_mib']:.0f}")
    row("scaling run, cluster", S["path_steps"], S["cluster"], "-")
    if "one_process_1_thread" in S:
        row("scaling run, one process, 1 thread", S["path_steps"], S["one_process_1_thread"],
            f"{S['one_process_1_thread']['peak_rss_mib']:.0f}")
    row("OU rare event, cluster", R["n_paths"] * RARE_STEPS, R["cluster"],
        " / ".join(f"{m:.0f}" for m in R["cluster"]["worker_peak_rss_mib"]) + " (per worker)")
    if "one_process" in R:
        row("OU rare event, one process", R["n_paths"] * RARE_STEPS, R["one_process"],
            f"{R['one_process']['peak_rss_mib']:.0f}")
    lines.append("")
    if "cluster_vs_one_process" in L:
        lines.append(f"- Cluster vs one process with the same number of cores: {L['cluster_vs_one_process']:.3f}x "
                     f"(one-process wall / cluster wall); merged moments vs one-pass: max |diff| / sd = "
                     f"{L['moments_max_rel_diff']:.2g}.")
    if "efficiency" in S:
        lines.append(f"- Scaling efficiency, {w} workers vs one thread: {S['efficiency']:.3f}.")
    est = R["estimate"]
    lines.append(f"- Rare event: P(X_T > {R['a']:.4f}) = 1e-6 exactly for the EM chain; estimate from "
                 f"{R['n_paths']:.3g} paths: {_fmt(est)}; z against 1e-6 (exact sd) = {R['z_vs_exact']:.2f}."
                 + (f" Counts equal to the one-process run: {R['counts_equal']}." if "counts_equal" in R else ""))
    lines.append(f"- Worker start-up (first shard on every worker: compile or cache load): "
                 f"{out['worker_startup_s']:.1f} s; scheduler cost per no-op task {O['noop_task_s'] * 1e3:.2f} ms; "
                 f"wall per 1-step shard {O['shard_wall_s'] * 1e3:.1f} ms (its compute {O['shard_compute_s'] * 1e3:.2f}"
                 f" ms); bytes per shard: {O['bytes_to_worker_per_shard']} to the worker, "
                 f"{O['bytes_back_per_shard']} back.")
    lines += ["", f"## On paper: {out['config']['path_steps']:.3g} path-steps on W workers "
              f"({SHARDS_PER_WORKER} shards per worker, network {NETWORK_BYTES_PER_S / 1e9:g} GB/s assumed)", "",
              "| W | T (s) | work | scheduler | start-up | network | efficiency |", "|---|---|---|---|---|---|---|"]
    for r in out["paper"]:
        lines.append(f"| {r['workers']} | {r['T_s']:.2f} | {r['work_s']:.2f} | {r['scheduler_s']:.3f} | "
                     f"{r['startup_s']:.2f} | {r['network_s']:.2g} | {r['efficiency']:.3f} |")
    below = [r["workers"] for r in out["paper"] if r["efficiency"] < 0.5]
    if below:
        lines += ["", f"Efficiency falls below 50% at W = {below[0]}: there the per-worker start-up "
                  "(compile or cache load) and the scheduler's per-task cost outweigh each worker's share of the "
                  "work; a bigger run (more path-steps) moves that point out in proportion."]
    return "\n".join(lines) + "\n"


def _fmt(est: dict) -> str:
    return (f"{est['counts'][0]} hits, p_hat = {est['p_hat'][0]:.4g}, se = {est['se'][0]:.2g}, "
            f"{100 * est['level']:g}% Clopper-Pearson [{est['lower'][0]:.4g}, {est['upper'][0]:.4g}]")


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["paper"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    w = [r["workers"] for r in rows]
    ax[0].loglog(w, [r["T_s"] for r in rows], "o-", label="T(W)")
    ax[0].loglog(w, [r["work_s"] for r in rows], "--", label="work / W")
    ax[0].loglog(w, [r["startup_s"] for r in rows], ":", label="start-up")
    ax[0].loglog(w, [max(r["scheduler_s"], 1e-6) for r in rows], "-.", label="scheduler")
    ax[0].set_xlabel("workers")
    ax[0].set_ylabel("seconds")
    ax[0].legend()
    ax[1].semilogx(w, [r["efficiency"] for r in rows], "o-")
    ax[1].axhline(0.5, color="gray", lw=0.8)
    ax[1].set_xlabel("workers")
    ax[1].set_ylabel("efficiency T(1) / (W T(W))")
    fig.suptitle(f"{out['config']['path_steps']:.3g} path-steps of Langevin16 EM, on paper from measured costs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
