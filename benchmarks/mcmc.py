#!/usr/bin/env python
"""MCMC throughput and ESS per second: sdekit's Numba samplers, against blackjax on CPU when it is installed.

    python benchmarks/mcmc.py [--steps 20000] [--chains 8] [--out benchmarks/results]

For each (target, sampler): the step size is first tuned by sdekit's dual averaging (warm-up of
2000 steps); the timed runs then use that fixed step in both libraries, so both do the same
work per transition. Reported per run (compilation excluded: every timed call is the second
one): transitions per second over all chains, the minimum over coordinates of ArviZ's bulk
ESS per second, and ratios measured in the same run:
- sdekit / blackjax (same kernel, same step size, same number of chains and steps);
- sdekit / floor, the floor being a compiled parallel loop that only evaluates U and grad U as
  many times as the sampler does (1 per transition for MALA/RWM/ULA/BAOAB, L for HMC).
A many-chains row runs 10^4 chains x 200 transitions (the regime of validation runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numba as nb
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from jax_targets import jax_log_density  # noqa: E402
from power import machine  # noqa: E402

from sdekit.errors import ChainNonFiniteError  # noqa: E402
from sdekit.mcmc import hmc, mala, rwm, ula, underdamped_langevin  # noqa: E402
from sdekit.mcmc.result import MCMCResult  # noqa: E402
from sdekit.targets import DoubleWell, Gaussian, GaussianMixture, NealFunnel, Rosenbrock  # noqa: E402
from sdekit.validate.closed_form import MIXTURE_2D  # noqa: E402

N_LEAPFROG = 10


def targets() -> dict:
    """The benchmark targets."""
    return {
        "gaussian_2d": Gaussian([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]]),
        "mixture_2d": GaussianMixture(**MIXTURE_2D),
        "double_well_2d": DoubleWell(dim=2, eps=0.5),
        "rosenbrock_2d": Rosenbrock(dim=2),
        "funnel_10d": NealFunnel(dim=10),
    }


SAMPLERS = {
    "ula": (lambda t, **kw: ula(t, **kw), 1, None),
    "mala": (lambda t, **kw: mala(t, **kw), 1, 0.574),
    "rwm": (lambda t, **kw: rwm(t, **kw), 1, 0.234),
    "hmc": (lambda t, **kw: hmc(t, n_leapfrog=N_LEAPFROG, **kw), N_LEAPFROG, 0.8),
    "baoab": (lambda t, **kw: underdamped_langevin(t, friction=1.0, scheme="baoab", **kw), 1, None),
}


def _floor(energy, p, x0, n_evals):
    n, d = x0.shape
    out = np.empty(n)
    for c in nb.prange(n):
        x = x0[c].copy()
        g = np.empty(d)
        acc = 0.0
        for _ in range(n_evals):
            acc += energy(x, p, g)
            x[0] += 1e-12 * g[0]  # keep the loop from being hoisted
        out[c] = acc
    return out


floor_kernel = nb.njit(parallel=True)(_floor)


def floor_seconds(target, n_chains: int, n_evals: int) -> float:
    """Seconds for n_chains x n_evals energy-and-gradient calls in a parallel compiled loop (second call)."""
    x0 = np.random.default_rng(0).standard_normal((n_chains, target.dim)) * 0.1
    floor_kernel(target.energy_fn, target.params, x0, 2)
    start = time.perf_counter()
    floor_kernel(target.energy_fn, target.params, x0, n_evals)
    return time.perf_counter() - start


def tuned_step(name: str, target, seed: int) -> float:
    """The step size: dual averaging (2000 warm-up steps, 4 chains) for adjusted samplers; for ULA and BAOAB
    a fixed fraction of the MALA step h (ULA: h / 4; BAOAB: 0.5 sqrt(2 h), half the matching Langevin time step)."""
    run, _, goal = SAMPLERS[name]
    if goal is None:
        h = tuned_step("mala", target, seed)
        return 0.25 * h if name == "ula" else min(1.0, 0.5 * np.sqrt(2.0 * h))
    res = run(target, n_chains=4, n_draws=200, n_warmup=2000, seed=seed, target_accept=goal)
    return float(np.median(res.step_size))


def min_ess(samples: np.ndarray) -> float:
    """min over coordinates of ArviZ's bulk ESS; samples (chains, draws, d)."""
    res = MCMCResult(samples, np.ones(samples.shape[:2]), np.zeros(samples.shape[:2]),
                     np.zeros(samples.shape[:2], dtype=int), np.ones(samples.shape[0]), "x", 0, 1, 0.0)
    return float(np.min(res.ess()))


def stationary_start(target, n_chains: int, seed: int) -> np.ndarray:
    """Exact draws from the target: every timed run starts in stationarity (a perfect warm-up)."""
    return target.sample(n_chains, seed=seed + 100)


def time_sdekit(name: str, target, h: float, n_chains: int, steps: int, seed: int) -> tuple[float, np.ndarray]:
    run, _, goal = SAMPLERS[name]
    kw = dict(step_size=h, n_chains=n_chains, n_draws=steps, n_warmup=0, seed=seed,
              x0=stationary_start(target, n_chains, seed))
    if goal is not None:
        kw["adapt"] = False
    run(target, **{**kw, "n_draws": 10})  # compile
    start = time.perf_counter()
    res = run(target, **kw)
    return time.perf_counter() - start, res.samples


# ------------------------------------------------------------------ blackjax (optional)

def blackjax_logdensity(name: str, target):
    """A jax log-density for the targets blackjax is compared on here (None when not compared: the double well and
    the Rosenbrock banana, as in the committed results)."""
    return None if isinstance(target, Rosenbrock) else jax_log_density(target)


def time_blackjax(name: str, logp, x0: np.ndarray, h: float, n_chains: int, steps: int, seed: int):
    """(seconds, samples (chains, steps, d)) for blackjax's kernel vmapped over chains inside a jitted scan."""
    import blackjax
    import jax
    import jax.numpy as jnp

    dim = x0.shape[1]
    if name == "mala":
        alg = blackjax.mala(logp, h)
    elif name == "hmc":
        alg = blackjax.hmc(logp, h, jnp.ones(dim), N_LEAPFROG)
    elif name == "rwm":
        alg = blackjax.additive_step_random_walk.normal_random_walk(logp, h * jnp.eye(dim)) \
            if hasattr(blackjax, "additive_step_random_walk") else None
    else:
        return None
    if alg is None:
        return None

    def run(key, x0, n):
        states = jax.vmap(alg.init)(x0)

        def body(st, k):
            keys = jax.random.split(k, n_chains)
            st, _ = jax.vmap(alg.step)(keys, st)
            return st, st.position
        _, xs = jax.lax.scan(body, states, jax.random.split(key, n))
        return xs

    fn = jax.jit(run, static_argnums=2)
    x0 = jnp.asarray(x0)
    key = jax.random.PRNGKey(seed)
    fn(key, x0, steps).block_until_ready()  # compile
    start = time.perf_counter()
    xs = fn(key, x0, steps).block_until_ready()
    sec = time.perf_counter() - start
    return sec, np.transpose(np.asarray(xs), (1, 0, 2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    try:
        import blackjax  # noqa: F401
        import jax
        jax.config.update("jax_enable_x64", True)
        have_bj = True
    except ImportError:
        have_bj = False
    rows = []
    for tname, target in targets().items():
        for sname, (_, evals, _) in SAMPLERS.items():
            h = tuned_step(sname, target, args.seed)
            try:
                sec, xs = time_sdekit(sname, target, h, args.chains, args.steps, args.seed)
            except ChainNonFiniteError as exc:  # an unadjusted sampler blew up: say so in the table
                rows.append({"target": tname, "sampler": sname, "step_size": h, "failed": str(exc)})
                print(f"{tname:15s} {sname:6s} h={h:.3g}  FAILED: {exc}", flush=True)
                continue
            fl = floor_seconds(target, args.chains, args.steps * evals)
            n_tr = args.chains * args.steps
            row = {"target": tname, "sampler": sname, "step_size": h, "chains": args.chains, "steps": args.steps,
                   "seconds": sec, "transitions_per_s": n_tr / sec, "min_ess": min_ess(xs),
                   "floor_seconds": fl, "vs_floor": sec / fl}
            row["ess_per_s"] = row["min_ess"] / sec
            big_sec, _ = time_sdekit(sname, target, h, 10_000, 200, args.seed)
            row["many_chains_transitions_per_s"] = 10_000 * 200 / big_sec
            if have_bj and sname in ("mala", "hmc", "rwm"):
                logp = blackjax_logdensity(tname, target)
                x0 = stationary_start(target, args.chains, args.seed)
                out = time_blackjax(sname, logp, x0, h, args.chains, args.steps, args.seed) if logp else None
                if out is not None:
                    bsec, bxs = out
                    row.update(blackjax_seconds=bsec, blackjax_transitions_per_s=n_tr / bsec,
                               blackjax_min_ess=min_ess(bxs), speedup_vs_blackjax=bsec / sec)
                    row["blackjax_ess_per_s"] = row["blackjax_min_ess"] / bsec
            rows.append(row)
            bj = f"  blackjax {row['blackjax_transitions_per_s']:.3g}/s  x{row['speedup_vs_blackjax']:.1f}" \
                if "speedup_vs_blackjax" in row else ""
            print(f"{tname:15s} {sname:6s} h={h:.3g}  {row['transitions_per_s']:.3g} transitions/s  "
                  f"ESS/s {row['ess_per_s']:.3g}  vs floor x{row['vs_floor']:.2f}  "
                  f"10^4 chains {row['many_chains_transitions_per_s']:.3g}/s{bj}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"machine": machine(), "numba_threads": nb.get_num_threads(), "blackjax": have_bj,
            "steps": args.steps, "chains": args.chains, "rows": rows}
    if have_bj:
        import blackjax
        import jax
        info["blackjax_version"], info["jax_version"] = blackjax.__version__, jax.__version__
    (out / "mcmc.json").write_text(json.dumps(info, indent=1))
    (out / "mcmc.md").write_text(to_markdown(info))
    print(f"wrote {out / 'mcmc.md'}")
    return 0


def to_markdown(info: dict) -> str:
    """The results table."""
    m = info["machine"]
    lines = [
        "# MCMC throughput and ESS per second", "",
        f"Machine: {m['cpu_model']}, {m['affinity']} cores available, {info['numba_threads']} Numba threads; "
        f"numba {m['numba']}. "
        + (f"blackjax {info.get('blackjax_version')} on jax {info.get('jax_version')} (CPU, float64)."
           if info["blackjax"] else "blackjax not installed: no peer column."), "",
        f"{info['chains']} chains x {info['steps']} transitions at the step tuned by sdekit's dual averaging "
        "(same fixed step in both libraries), all chains started from exact draws of the target; compile time "
        "excluded. ESS: min over coordinates of ArviZ bulk ESS. "
        "vs floor: sdekit time / time of the same number of U and grad U evaluations in a bare compiled loop. "
        "10^4 chains: 10^4 chains x 200 transitions.", "",
        "| target | sampler | h | transitions/s | ESS/s | vs floor | 10^4 chains transitions/s "
        "| blackjax transitions/s | blackjax ESS/s | sdekit speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in info["rows"]:
        if "failed" in r:
            lines.append(f"| {r['target']} | {r['sampler']} | {r['step_size']:.3g} | diverged: {r['failed']} "
                         "| | | | | | |")
            continue
        bj = (f"{r['blackjax_transitions_per_s']:.3g} | {r['blackjax_ess_per_s']:.3g} | "
              f"{r['speedup_vs_blackjax']:.1f}x") if "speedup_vs_blackjax" in r else "– | – | –"
        lines.append(f"| {r['target']} | {r['sampler']} | {r['step_size']:.3g} | {r['transitions_per_s']:.3g} | "
                     f"{r['ess_per_s']:.3g} | {r['vs_floor']:.2f} | {r['many_chains_transitions_per_s']:.3g} | {bj} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
