#!/usr/bin/env python
"""What tempering buys: mode weights of a well-separated mixture, MALA against replica exchange.

    python benchmarks/tempering.py [--runs 16] [--rounds 9000] [--out benchmarks/results]

Target: pi = 0.3 N((-5, 0), I) + 0.7 N((5, 0), I) in 2-D; the modes are 10 standard deviations apart,
so the energy barrier between them is about 12.5 nats and a local sampler essentially never crosses.

Methods, each with ``--runs`` independent chains (MALA) or runs (PT), all started at the minor mode
(-5, 0), and the same gradient budget per chain/run: K (n_warmup + n_rounds) for PT with K = 8 replicas
and one local MALA step per replica and round, the same number of MALA steps (warm-up included):

- ``mala``: plain MALA, step adapted by dual averaging during the first 10% of the budget;
- ``pt_reference``: replica exchange with the moment-matched Gaussian reference N(E pi, lambda_max I)
  (covers both modes), geometric ladder beta_min = 0.01 .. 1, DEO swaps;
- ``pt_power``: replica exchange with power tempering pi^beta, same ladder.

Estimate: the weight of the major mode, w = P(x_0 > 0) = 0.7 exactly (the mass of each component on
the other side of x_0 = 0 is Phi(-5) ~ 3e-7, negligible), as the mean of the indicator 1{x_0 > 0} over
all draws of the beta = 1 chain. Standard errors: sqrt(w (1 - w) / ESS) with the ArviZ bulk ESS of the
indicator (`arviz.ess`, chains = runs), and the spread of the per-run means / sqrt(runs). z = (w_hat -
0.7) / SE. Also reported: swap acceptance per adjacent pair, round trips per run (a walker going from the
beta_min end to beta = 1 and back), and the estimated global communication barrier Lambda = sum of
swap rejection rates (Syed et al. 2022), whose DEO round-trip rate is 1 / (2 + 2 Lambda) per round.

Outputs: ``tempering.md`` (table), ``tempering.json`` (all numbers and the machine) and ``tempering.png``
(trace of x_0 of one MALA chain and one PT run; histogram of x_0 against the exact marginal density).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from power import machine  # noqa: E402

from sdekit.mcmc.mala import mala  # noqa: E402
from sdekit.mcmc.tempering import replica_exchange  # noqa: E402
from sdekit.targets import GaussianMixture  # noqa: E402

TRUE_WEIGHT = 0.7
START = np.array([-5.0, 0.0])
N_REPLICAS = 8
BETA_MIN = 0.01


def separated_mixture() -> GaussianMixture:
    """0.3 N((-5, 0), I) + 0.7 N((5, 0), I): modes 10 sd apart."""
    return GaussianMixture([0.3, 0.7], [[-5.0, 0.0], [5.0, 0.0]], [np.eye(2), np.eye(2)])


def moment_reference(target: GaussianMixture) -> tuple[np.ndarray, float]:
    """N(E pi, lambda_max(Cov pi) I): an isotropic Gaussian covering both modes."""
    return np.asarray(target.mean), float(np.sqrt(np.linalg.eigvalsh(target.cov).max()))


def mode_weight(samples: np.ndarray) -> dict:
    """Weight of the x_0 > 0 mode with its standard errors (ArviZ ESS; spread across runs) and z-scores."""
    import arviz as az

    ind = (samples[..., 0] > 0).astype(float)  # (runs, draws)
    w = float(ind.mean())
    per_run = ind.mean(axis=1)
    se_runs = float(per_run.std(ddof=1) / np.sqrt(len(per_run)))
    if np.ptp(ind) == 0:  # never left one mode: the ESS of a constant is undefined
        ess, se_ess = float("nan"), 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess = float(az.ess(ind, method="bulk"))
        se_ess = float(np.sqrt(w * (1 - w) / ess))

    def z(se: float) -> float:
        return (w - TRUE_WEIGHT) / se if se > 0 else float("-inf") if w < TRUE_WEIGHT else float("inf")

    return {"weight": w, "ess": ess, "se_ess": se_ess, "se_runs": se_runs, "z_ess": z(se_ess), "z_runs": z(se_runs),
            "per_run": per_run.tolist()}


def run_all(n_runs: int, n_rounds: int, seed: int) -> tuple[list[dict], dict]:
    target = separated_mixture()
    n_warmup = n_rounds // 9  # 10% of the budget
    budget = N_REPLICAS * (n_warmup + n_rounds)
    rows, traces = [], {}

    start = time.perf_counter()
    res = mala(target, n_chains=n_runs, n_warmup=budget // 10, n_draws=budget - budget // 10, seed=seed, x0=START)
    wall = time.perf_counter() - start
    rows.append({"method": "mala", "gradients_per_chain": budget, "draws_per_chain": res.samples.shape[1],
                 "seconds": wall, "acceptance": res.acceptance_rate, **mode_weight(res.samples)})
    traces["mala"] = res.samples

    reference = moment_reference(target)
    for name, ref in (("pt_reference", reference), ("pt_power", None)):
        start = time.perf_counter()
        res = replica_exchange(target, n_replicas=N_REPLICAS, beta_min=BETA_MIN, reference=ref, n_rounds=n_rounds,
                               n_warmup=n_warmup, n_runs=n_runs, seed=seed, x0=START)
        wall = time.perf_counter() - start
        swap = res.extras["swap_acceptance"]
        barrier = float(np.sum(1.0 - swap))
        rows.append({"method": name, "gradients_per_chain": res.extras["n_gradients"],
                     "draws_per_chain": res.samples.shape[1], "seconds": wall, "acceptance": res.acceptance_rate,
                     "betas": res.extras["betas"].tolist(), "swap_acceptance": swap.tolist(),
                     "round_trips": res.extras["round_trips"].tolist(),
                     "round_trips_mean": float(np.mean(res.extras["round_trips"])),
                     "barrier_lambda": barrier, "deo_round_trip_rate_theory": 1.0 / (2.0 + 2.0 * barrier),
                     "round_trip_rate_measured": float(np.mean(res.extras["round_trips"])) / n_rounds,
                     "reference": None if ref is None else {"mean": ref[0].tolist(), "sd": ref[1]},
                     **mode_weight(res.samples)})
        traces[name] = res.samples
    return rows, traces


def clean(v: object) -> object:
    """JSON-safe copy: non-finite floats become the strings "inf", "-inf" or "nan"."""
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def fmt(v: float, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    if isinstance(v, float) and np.isinf(v):
        return "-inf" if v < 0 else "inf"
    return format(v, spec)


def table(rows: list[dict]) -> str:
    head = ("| method | gradients/chain | w_hat (true 0.7) | SE (ESS) | ESS | z (ESS) | SE (runs) | z (runs) "
            "| swap acceptance per pair | round trips/run | Lambda | s |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        swap = ", ".join(f"{a:.2f}" for a in r["swap_acceptance"]) if "swap_acceptance" in r else "–"
        trips = fmt(r["round_trips_mean"], ".0f") if "round_trips_mean" in r else "–"
        lam = fmt(r["barrier_lambda"], ".2f") if "barrier_lambda" in r else "–"
        lines.append(f"| {r['method']} | {r['gradients_per_chain']} | {r['weight']:.4f} | {fmt(r['se_ess'], '.4f')} "
                     f"| {fmt(r['ess'], '.0f')} | {fmt(r['z_ess'], '.2f')} | {fmt(r['se_runs'], '.4f')} "
                     f"| {fmt(r['z_runs'], '.2f')} | {swap} | {trips} | {lam} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def figure(traces: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = separated_mixture()
    marginal = target.project([1.0, 0.0])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    m = traces["mala"][0, :, 0]
    p = traces["pt_reference"][0, :, 0]
    axes[0].plot(np.linspace(0, 1, m.size), m, lw=0.3, color="tab:red")
    axes[0].set_title("MALA, chain 0: x_0 (started in the minor mode)")
    axes[1].plot(np.linspace(0, 1, p.size), p, lw=0.3, color="tab:blue")
    axes[1].set_title("replica exchange (Gaussian reference), run 0: x_0")
    for ax in axes[:2]:
        ax.set_xlabel("fraction of the draws (after warm-up)")
        ax.set_ylim(-9, 9)
    grid = np.linspace(-9, 9, 600)
    axes[2].plot(grid, np.exp(marginal.log_prob(grid[:, None])), "k-", lw=1.5, label="exact marginal")
    bins = np.linspace(-9, 9, 90)
    axes[2].hist(traces["mala"][..., 0].ravel(), bins=bins, density=True, alpha=0.5, color="tab:red", label="MALA")
    axes[2].hist(traces["pt_reference"][..., 0].ravel(), bins=bins, density=True, alpha=0.5, color="tab:blue",
                 label="PT (reference)")
    axes[2].hist(traces["pt_power"][..., 0].ravel(), bins=bins, density=True, histtype="step", color="tab:green",
                 label="PT (power)")
    axes[2].set_title("x_0: all draws vs the exact marginal density")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows, traces = run_all(args.runs, args.rounds, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {**machine(), "processor": platform.processor(), "os_cpu_count": os.cpu_count(),
            "numba_threads": numba.get_num_threads()}
    text = table(rows)
    wall = time.perf_counter() - start
    notes = (f"Target 0.3 N((-5,0), I) + 0.7 N((5,0), I) (modes 10 sd apart); {args.runs} chains/runs per method, "
             f"all started at (-5, 0); K = {N_REPLICAS} replicas, geometric ladder {BETA_MIN}..1, one MALA step per "
             f"replica and round, DEO swaps; equal gradient budget per chain. SE (ESS) = sqrt(w(1-w)/ESS) with the "
             f"ArviZ bulk ESS of 1{{x_0 > 0}}; SE (runs) = sd of per-run means / sqrt(runs); Lambda = sum of swap "
             f"rejection rates. Seconds include Numba compilation. Machine: {info['cpu_model']} "
             f"(processor {info['processor']!r}), os.cpu_count() = {info['os_cpu_count']}, "
             f"numba threads = {info['numba_threads']}. Total wall time {wall:.0f} s.")
    print(text)
    print()
    print(notes)
    (out / "tempering.md").write_text("# Tempering: mode weights of a separated mixture\n\n" + text + "\n\n" + notes
                                      + "\n\n![traces and histograms](tempering.png)\n")
    record = {"machine": info, "args": vars(args), "true_weight": TRUE_WEIGHT, "rows": rows, "wall_seconds": wall}
    (out / "tempering.json").write_text(json.dumps(clean(record), indent=2))
    figure(traces, out / "tempering.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
