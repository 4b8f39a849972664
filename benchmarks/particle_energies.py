"""AIS / SMC particle energies of the built-in mixture and Gaussian: row by row (``energy_fn`` in a prange loop, as
before issue 18) against matrix products over fixed row blocks (``batch_energy_fn``, `sdekit.evidence.energies`),
and a NumPy (BLAS) evaluation of the same U and grad U as a peer.

One process, OPENBLAS_NUM_THREADS = 1 and NUMBA_NUM_THREADS = 1 (set before the imports), N = 10^4 particles,
d in (4, 8, 16, 64), K = 4 components; the implementations of a case run round-robin for `--rounds` rounds and the
median is kept, so each ratio shares the background load. Writes results/particle_energies.{json,md}.

    python benchmarks/particle_energies.py [--rounds 7] [--n 10000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402

from sdekit.evidence import energies  # noqa: E402
from sdekit.targets import Gaussian, GaussianMixture  # noqa: E402


def make_mixture(d: int, k: int = 4) -> GaussianMixture:
    """K components with random means and well-conditioned random covariances (seeded by d)."""
    rng = np.random.default_rng(d)
    a = rng.standard_normal((k, d, d))
    covs = a @ a.transpose(0, 2, 1) / d + np.eye(d)
    return GaussianMixture(np.full(k, 1.0 / k), rng.standard_normal((k, d)), covs)


def numpy_mixture_energy(x: np.ndarray, log_w: np.ndarray, mu: np.ndarray, prec: np.ndarray, log_norm: np.ndarray):
    """U = -logsumexp_k (log w_k + log_norm_k - r_k^T P_k r_k / 2), grad U = sum_k gamma_k P_k r_k, with BLAS."""
    r = x[None, :, :] - mu[:, None, :]                     # (K, n, d)
    pr = np.einsum("knd,kde->kne", r, prec, optimize=True)  # (K, n, d)
    logits = (log_w + log_norm)[:, None] - 0.5 * np.einsum("knd,knd->kn", r, pr)
    m = logits.max(axis=0)
    e = np.exp(logits - m)
    s = e.sum(axis=0)
    return -(m + np.log(s)), np.einsum("kn,knd->nd", e / s, pr)


def time_case(name: str, target, n: int, rounds: int) -> dict:
    x = np.random.default_rng(0).standard_normal((n, target.dim))
    u = np.empty(n)
    g = np.empty_like(x)
    p = target.params

    def per_row() -> None:
        energies.batch_energy_kernel(target.energy_fn, p, x, u, g)

    def blocked() -> None:
        energies.blocked_energy_kernel(target.batch_energy_fn, p, x, u, g)

    impls = {"per_row": per_row, "blocked": blocked}
    if isinstance(target, GaussianMixture):
        log_w, mu, prec, log_norm = p[0], p[1], p[2], p[3]
        impls["numpy"] = lambda: numpy_mixture_energy(x, log_w, mu, prec, log_norm)
    for fn in impls.values():  # compile / warm up
        fn()
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(rounds):
        for k, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    rec = {"target": name, "dim": target.dim, "n": n, "rounds": rounds,
           **{f"{k}_ms": 1e3 * v for k, v in med.items()},
           "blocked_vs_per_row": med["per_row"] / med["blocked"]}
    if "numpy" in med:
        rec["blocked_vs_numpy"] = med["numpy"] / med["blocked"]
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=10**4)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    cfg = ap.parse_args(argv)
    load0 = os.getloadavg()
    rows = []
    for d in (4, 8, 16, 64):
        mix = make_mixture(d)
        rows.append(time_case("mixture K=4", mix, cfg.n, cfg.rounds))
        rows.append(time_case("gaussian", Gaussian(np.zeros(d), np.linalg.inv(mix.params[2][0])), cfg.n, cfg.rounds))
        print(rows[-2], rows[-1], flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    machine = {"cpu_model": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
               "numba": nb.__version__, "numpy": np.__version__, "numba_num_threads": nb.config.NUMBA_NUM_THREADS,
               "loadavg_before": load0, "loadavg_after": os.getloadavg(),
               "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "particle_energies.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    lines = ["# Particle energies: U and grad U of N particles (`benchmarks/particle_energies.py`)", "",
             f"Machine: {cpu}, {os.cpu_count()} cores, 1 thread; load average before {load0}, after "
             f"{machine['loadavg_after']}; {machine['date_utc']}. Medians of {cfg.rounds} interleaved rounds. "
             f"AIS / SMC use the blocked energies from d = {energies.ENERGY_BLOCK_MIN_DIM} (ENERGY_BLOCK_MIN_DIM), "
             "the row loop below.", "",
             "| target | d | N | per row (energy_fn) ms | blocked (batch_energy_fn) ms | NumPy ms | blocked vs per row "
             "| blocked vs NumPy |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['dim']} | {r['n']} | {r['per_row_ms']:.2f} | {r['blocked_ms']:.2f} | "
                     f"{r.get('numpy_ms', float('nan')):.2f} | {r['blocked_vs_per_row']:.2f} | "
                     f"{r.get('blocked_vs_numpy', float('nan')):.2f} |")
    (cfg.out / "particle_energies.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
