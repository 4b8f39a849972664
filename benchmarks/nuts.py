#!/usr/bin/env python
"""NUTS: sdekit against blackjax on CPU, in ESS per second and ESS per gradient.

    PYTHONPATH=. python benchmarks/nuts.py [--chains 4] [--draws 1000] [--warmup 1000] [--out benchmarks/results]

Both libraries run the No-U-Turn sampler of Hoffman & Gelman (2014, JMLR 15) with multinomial sampling
and the generalised no-U-turn criterion (Betancourt 2017, arXiv:1701.02434), max tree depth 10 and
divergence threshold 1000, in float64, on four targets: Neal's funnel (10-D), a banana (the 2-D
Rosenbrock), a 100-D Gaussian whose covariance has eigenvalues log-spaced over four decades (condition
number 10^4) in a random rotation, and a 2-D two-component Gaussian mixture. Two settings per target:

- ``fixed``: the same fixed step size and identity mass in both libraries, chains started from exact
  draws of the target, no warm-up: the same algorithm on the same target, so gradients per second and
  ESS per gradient compare the implementations. The step is the median over chains of the step that
  sdekit's warm-up (dual averaging to acceptance 0.8, identity mass) picks; that warm-up run is also
  reported as sdekit's ``adapt_identity`` row.
- ``adapt_diag`` / ``adapt_dense``: each library's own warm-up (``n_warmup`` steps from the same exact
  draws): blackjax.window_adaptation (Stan's windows, one adaptation per chain, vmapped) and sdekit's
  ``nuts(adapt=True, adapt_mass="diag" | "dense")``, then ``n_draws`` draws with the adapted parameters.

Reported per run: transitions/s and gradients/s (gradients = leapfrog steps), the min over coordinates of
ArviZ's bulk ESS, ESS/s and ESS per gradient, mean tree depth, divergences, a z-score of the sample mean
against the exact mean, and sdekit/blackjax ratios measured in the same run. Time: the compiled work only,
sampling (``fixed``) or warm-up plus sampling (adapted rows: the per-second rates count the warm-up's
transitions and gradients too; ESS per gradient counts the sampling gradients only, the quality of the tuned
kernel; warm-up gradients: sdekit's ``extras["warmup_stats"]["n_leapfrog"]``, blackjax's warm-up info). sdekit:
``MCMCResult.seconds`` (its compiled driver, without the end-of-run ArviZ checks; the call's wall time is kept
as ``wall_seconds``), after a short call with the same options has compiled the kernel; blackjax: functions
compiled ahead of time (``jax.jit(f).lower(...).compile()``), only the compiled calls timed.
blackjax runs its chains with ``jax.vmap`` over a per-chain ``lax.scan``; a vmapped NUTS step waits for the
longest trajectory of the batch. sdekit runs its chains in parallel Numba threads (the count is recorded).
The 1-minute load average is recorded before and after every row (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numba as nb
import numpy as np
from scipy.stats import ortho_group

sys.path.insert(0, str(Path(__file__).parent))
from jax_targets import jax_log_density  # noqa: E402
from power import machine  # noqa: E402

from sdekit.mcmc.diagnostics import MCMCWarning, arviz_module, quiet  # noqa: E402
from sdekit.targets import Gaussian, GaussianMixture, NealFunnel, Rosenbrock  # noqa: E402
from sdekit.validate.closed_form import MIXTURE_2D  # noqa: E402

TARGET_ACCEPT = 0.8
MAX_TREE_DEPTH = 10
DIVERGENCE_THRESHOLD = 1000.0
GAUSSIAN_DIM = 100
GAUSSIAN_CONDITION = 1e4
ROTATION_SEED = 17
# which mass-matrix warm-ups each target runs (the dense one matters on the rotated Gaussian)
ADAPTED = {"funnel_10d": ("diag", "dense"), "banana_2d": ("diag", "dense"),
           "gaussian_100d": ("diag", "dense"), "mixture_2d": ("diag", "dense")}


def ill_conditioned_gaussian(dim: int = GAUSSIAN_DIM, condition: float = GAUSSIAN_CONDITION) -> Gaussian:
    """N(0, Q diag(lam) Q^T): lam log-spaced over [condition^-1/2, condition^1/2], Q a fixed random rotation."""
    lam = np.logspace(-0.5 * np.log10(condition), 0.5 * np.log10(condition), dim)
    q = ortho_group.rvs(dim, random_state=ROTATION_SEED)
    cov = (q * lam) @ q.T
    return Gaussian(np.zeros(dim), 0.5 * (cov + cov.T))


def targets() -> dict:
    """The benchmark targets."""
    return {
        "funnel_10d": NealFunnel(dim=10),
        "banana_2d": Rosenbrock(dim=2),
        "gaussian_100d": ill_conditioned_gaussian(),
        "mixture_2d": GaussianMixture(**MIXTURE_2D),
    }


def min_ess(samples: np.ndarray) -> float:
    """min over coordinates of ArviZ's bulk ESS; samples (chains, draws, d)."""
    az = arviz_module()
    with quiet():
        ess = az.ess(az.convert_to_dataset(np.asarray(samples)), method="bulk")
    return float(np.min(ess["x"].values))


def max_mean_z(samples: np.ndarray, exact_mean: np.ndarray) -> float:
    """max over coordinates of |sample mean - exact mean| / ArviZ's MCSE of the mean: a check that a fast run
    is also a correct one (about 3 is expected for d = 100, about 2 for d = 2)."""
    az = arviz_module()
    with quiet():
        mcse = az.mcse(az.convert_to_dataset(np.asarray(samples)), method="mean")["x"].values
    return float(np.max(np.abs(samples.mean(axis=(0, 1)) - exact_mean) / mcse))


def stationary_start(target, n_chains: int, seed: int) -> np.ndarray:
    """Exact draws from the target: the fixed-step runs start in stationarity, the warm-ups from the same points."""
    return np.ascontiguousarray(target.sample(n_chains, seed=seed + 100))


def summary(seconds: float, samples: np.ndarray, n_leapfrog: np.ndarray, depth: np.ndarray, divergent: np.ndarray,
            accept: np.ndarray, exact_mean: np.ndarray, warmup_transitions: int = 0,
            warmup_gradients: float | None = 0.0) -> dict:
    """The reported numbers of one run. ``seconds``: the timed compiled work (warm-up included for adapted rows);
    rates per second count the warm-up's transitions and gradients too (``warmup_gradients`` None: not known, no
    gradients/s); ESS per gradient counts the sampling gradients only (the quality of the tuned kernel)."""
    ess = min_ess(samples)
    grads = float(np.sum(n_leapfrog))
    n_tr = samples.shape[0] * samples.shape[1]
    return {"seconds": seconds, "transitions": n_tr, "gradients": grads, "warmup_transitions": warmup_transitions,
            "warmup_gradients": warmup_gradients, "transitions_per_s": (n_tr + warmup_transitions) / seconds,
            "gradients_per_s": None if warmup_gradients is None else (grads + warmup_gradients) / seconds,
            "min_ess": ess, "ess_per_s": ess / seconds, "ess_per_gradient": ess / grads,
            "mean_tree_depth": float(np.mean(depth)), "mean_leapfrog": grads / n_tr,
            "divergences": int(np.sum(divergent)), "mean_accept": float(np.mean(accept)),
            "max_mean_z": max_mean_z(samples, exact_mean)}


# ------------------------------------------------------------------ sdekit

def sdekit_run(target, x0: np.ndarray, n_draws: int, seed: int, *, step_size: float = 0.1, adapt: bool,
               adapt_mass: str | None = None, n_warmup: int = 0) -> tuple[dict, np.ndarray]:
    """(summary, per-chain step sizes) of sdekit's NUTS; a short call with the same options compiles first."""
    from sdekit.mcmc import nuts

    kw = dict(step_size=step_size, max_tree_depth=MAX_TREE_DEPTH, divergence_threshold=DIVERGENCE_THRESHOLD,
              n_chains=x0.shape[0], adapt=adapt, target_accept=TARGET_ACCEPT, seed=seed, x0=x0)
    if adapt_mass is not None:
        kw["adapt_mass"] = adapt_mass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCMCWarning)
        nuts(target, **{**kw, "n_draws": 5, "n_warmup": min(n_warmup, 20)})  # compile
        start, cpu = time.perf_counter(), time.process_time()
        res = nuts(target, **kw, n_draws=n_draws, n_warmup=n_warmup)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    n_chains = x0.shape[0]
    # res.seconds: the compiled driver (warm-up + sampling), without the end-of-run ArviZ diagnostics
    out = summary(res.seconds, res.samples, res.stats["n_leapfrog"], res.stats["tree_depth"], res.divergent,
                  res.accept_prob, target.mean, warmup_transitions=n_chains * n_warmup,
                  warmup_gradients=float(np.sum(res.extras["warmup_stats"]["n_leapfrog"])) if n_warmup else 0.0)
    out.update(wall_seconds=wall, cpu_seconds=cpu, sdekit_warnings=list(res.warnings))
    out["step_size"] = [float(h) for h in res.step_size]
    return out, np.asarray(res.step_size)


# ------------------------------------------------------------------ blackjax

def _compiled(fn, *args):
    """fn jitted and compiled ahead of time for these arguments (compile time stays out of the timing)."""
    import jax
    return jax.jit(fn).lower(*args).compile()


def _sampler(logp, n_draws: int):
    """(keys, states, step sizes, inverse masses) -> per-chain NUTS draws and info, vmapped over chains."""
    import blackjax
    import jax

    def one_chain(key, state, h, inv_mass):
        alg = blackjax.nuts(logp, h, inv_mass, max_num_doublings=MAX_TREE_DEPTH,
                            divergence_threshold=DIVERGENCE_THRESHOLD)

        def body(st, k):
            st, info = alg.step(k, st)
            return st, (st.position, info.num_integration_steps, info.num_trajectory_expansions,
                        info.is_divergent, info.acceptance_rate)
        _, out = jax.lax.scan(body, state, jax.random.split(key, n_draws))
        return out
    return jax.vmap(one_chain)


def blackjax_fixed(logp, x0: np.ndarray, h: float, n_draws: int, seed: int, exact_mean: np.ndarray) -> dict:
    """blackjax NUTS at the fixed step h, identity mass, from x0 (no warm-up)."""
    import blackjax
    import jax
    import jax.numpy as jnp

    n, d = x0.shape
    init = blackjax.nuts(logp, h, jnp.ones(d)).init
    sample = _sampler(logp, n_draws)

    def run(key, x):
        states = jax.vmap(init)(x)
        return sample(jax.random.split(key, n), states, jnp.full(n, h), jnp.ones((n, d)))
    args = (jax.random.PRNGKey(seed), jnp.asarray(x0))
    fn = _compiled(run, *args)
    start, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn(*args))
    sec, cpu = time.perf_counter() - start, time.process_time() - cpu
    xs, nl, depth, div, acc = (np.asarray(a) for a in out)
    res = summary(sec, xs, nl, depth, div, acc, exact_mean)
    res.update(step_size=[h] * n, cpu_seconds=cpu, wall_seconds=sec)
    return res


def blackjax_adapted(logp, x0: np.ndarray, mass: str, n_warmup: int, n_draws: int, seed: int,
                     exact_mean: np.ndarray) -> dict:
    """blackjax.window_adaptation (diagonal or dense mass, one adaptation per chain) then NUTS draws."""
    import blackjax
    import jax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    n = x0.shape[0]
    warm = blackjax.window_adaptation(blackjax.nuts, logp, is_mass_matrix_diagonal=mass == "diag",
                                      target_acceptance_rate=TARGET_ACCEPT,
                                      adaptation_info_fn=get_filter_adapt_info_fn(info_keys={"num_integration_steps"}),
                                      max_num_doublings=MAX_TREE_DEPTH)  # divergence threshold: default 1000

    def warmup(key, x):
        def one(k, xi):
            (state, params), info = warm.run(k, xi, n_warmup)
            return state, params["step_size"], params["inverse_mass_matrix"], info.info.num_integration_steps
        return jax.vmap(one)(jax.random.split(key, n), x)
    sample = _sampler(logp, n_draws)

    def draws(key, states, h, inv_mass):
        return sample(jax.random.split(key, n), states, h, inv_mass)
    key_w, key_s = jax.random.split(jax.random.PRNGKey(seed))
    wargs = (key_w, jax.numpy.asarray(x0))
    wfn = _compiled(warmup, *wargs)
    start, cpu = time.perf_counter(), time.process_time()
    states, h, inv_mass, warm_nl = jax.block_until_ready(wfn(*wargs))
    warm_sec, warm_cpu = time.perf_counter() - start, time.process_time() - cpu
    sargs = (key_s, states, h, inv_mass)
    sfn = _compiled(draws, *sargs)
    start, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(sfn(*sargs))
    sample_sec, cpu = time.perf_counter() - start, warm_cpu + time.process_time() - cpu
    xs, nl, depth, div, acc = (np.asarray(a) for a in out)
    res = summary(warm_sec + sample_sec, xs, nl, depth, div, acc, exact_mean, warmup_transitions=n * n_warmup,
                  warmup_gradients=float(np.sum(warm_nl)))
    res.update(warmup_seconds=warm_sec, sample_seconds=sample_sec, cpu_seconds=cpu, wall_seconds=warm_sec + sample_sec,
               step_size=[float(v) for v in np.asarray(h)])
    return res


# ------------------------------------------------------------------ driver

def ratios(sd: dict, bj: dict) -> dict:
    """sdekit / blackjax for the rates, measured in the same run."""
    keys = ("transitions_per_s", "gradients_per_s", "ess_per_s", "ess_per_gradient")
    return {k: sd[k] / bj[k] for k in keys if sd.get(k) and bj.get(k)}


def run_row(tname: str, setting: str, fn_sd, fn_bj) -> dict:
    """One (target, setting) row: each library's run (either may be None), the load average around it."""
    row = {"target": tname, "setting": setting, "load_before": os.getloadavg()[0]}
    for lib, fn in (("sdekit", fn_sd), ("blackjax", fn_bj)):
        if fn is not None:
            row[lib] = fn()
    row["load_after"] = os.getloadavg()[0]
    if "sdekit" in row and "blackjax" in row:
        row["ratio"] = ratios(row["sdekit"], row["blackjax"])
    line = f"{tname:14s} {setting:14s}"
    for lib in ("sdekit", "blackjax"):
        if lib in row:
            r = row[lib]
            line += (f" | {lib} {_fmt(r, 'gradients_per_s')} grad/s ESS/s {r['ess_per_s']:.3g} "
                     f"ESS/grad {r['ess_per_gradient']:.3g} depth {r['mean_tree_depth']:.2f} div {r['divergences']}")
    if "ratio" in row:
        line += f" | ratio ESS/s x{row['ratio']['ess_per_s']:.2f} ESS/grad x{row['ratio']['ess_per_gradient']:.2f}"
    print(line + f" | load {row['load_before']:.2f}->{row['load_after']:.2f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--targets", nargs="*", default=None, help="a subset of the target names")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    import blackjax
    import jax
    jax.config.update("jax_enable_x64", True)
    rows, start = [], time.perf_counter()
    for tname, target in targets().items():
        if args.targets and tname not in args.targets:
            continue
        x0 = stationary_start(target, args.chains, args.seed)
        logp = jax_log_density(target)
        tuned: dict = {}

        def sd_identity(target=target, x0=x0, tuned=tuned):
            out, h = sdekit_run(target, x0, args.draws, args.seed, adapt=True, n_warmup=args.warmup)
            tuned["h"] = float(np.median(h))
            return out
        rows.append(run_row(tname, "adapt_identity", sd_identity, None))
        h = tuned["h"]
        rows.append(run_row(
            tname, "fixed",
            lambda target=target, x0=x0, h=h: sdekit_run(target, x0, args.draws, args.seed, step_size=h,
                                                         adapt=False)[0],
            lambda logp=logp, x0=x0, h=h: blackjax_fixed(logp, x0, h, args.draws, args.seed, target.mean)))
        rows[-1]["step_size"] = h
        for mass in ADAPTED[tname]:
            rows.append(run_row(
                tname, f"adapt_{mass}",
                lambda target=target, x0=x0, mass=mass: sdekit_run(target, x0, args.draws, args.seed, adapt=True,
                                                                   adapt_mass=mass, n_warmup=args.warmup)[0],
                lambda logp=logp, x0=x0, mass=mass: blackjax_adapted(logp, x0, mass, args.warmup, args.draws,
                                                                     args.seed, target.mean)))
    info = {"machine": machine(), "numba_threads": nb.get_num_threads(), "blackjax_version": blackjax.__version__,
            "jax_version": jax.__version__, "jax_devices": [str(d) for d in jax.devices()],
            "chains": args.chains, "draws": args.draws, "warmup": args.warmup, "seed": args.seed,
            "target_accept": TARGET_ACCEPT, "max_tree_depth": MAX_TREE_DEPTH,
            "total_seconds": time.perf_counter() - start, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nuts.json").write_text(json.dumps(info, indent=1))
    (out / "nuts.md").write_text(to_markdown(info))
    plot(info, out / "nuts.png")
    print(f"wrote {out / 'nuts.md'}")
    return 0


def _fmt(r: dict | None, key: str, spec: str = ".3g") -> str:
    return "–" if r is None or r.get(key) is None else format(r[key], spec)


def to_markdown(info: dict) -> str:
    """The results tables."""
    m = info["machine"]
    loads = [r[k] for r in info["rows"] for k in ("load_before", "load_after")]
    lines = [
        "# NUTS: sdekit against blackjax", "",
        f"Machine: {m['cpu_model']}, {m['affinity']} cores available, {info['numba_threads']} Numba threads "
        f"(sdekit's chains run in parallel threads); numba {m['numba']}. blackjax {info['blackjax_version']} on jax "
        f"{info['jax_version']} (CPU, float64; chains vmapped). 1-minute load average during the run "
        f"{min(loads):.2f}–{max(loads):.2f} (shared machine). Total {info['total_seconds']:.0f} s.", "",
        f"{info['chains']} chains x {info['draws']} draws per run (adapted rows: after {info['warmup']} warm-up "
        f"steps), max tree depth {info['max_tree_depth']}, target acceptance {info['target_accept']}, all chains "
        "started from exact draws of the target; compile time excluded. fixed: the same step (sdekit's warm-up "
        "step, identity mass) in both libraries, no warm-up. adapt_diag / adapt_dense: each library's own "
        "warm-up; ESS/s counts warm-up + sampling time, ESS/grad the sampling gradients only. ESS: min over "
        "coordinates of ArviZ bulk ESS (ESS/s over the timed compiled work). "
        "mean z: max over coordinates of |mean - exact mean| / MCSE. CPU/wall: "
        "process CPU seconds per wall second of the timed calls (the cores used). "
        "transitions/s, grad/s: over the timed work, warm-up included in adapted rows. "
        "sdekit's time is its compiled driver's (MCMCResult.seconds). "
        "Ratios: sdekit / blackjax, same run.", "",
        "Caveat: a min ESS below about 100 (funnel, banana) is itself noisy, and so are its ratios. On the banana "
        "neither library reaches the tails of x_2 (Var x_2 = 240) in runs of this length: its sample variance "
        "falls short and its mean z is large once the ESS estimate is large, so the banana rows time two samplers "
        "that are both still biased there.", "",
        "| target | setting | h | lib | transitions/s | grad/s | min ESS | ESS/s | ESS/grad | tree depth "
        "| divergences | accept | mean z | CPU/wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in info["rows"]:
        for lib in ("sdekit", "blackjax"):
            r = row.get(lib)
            if r is None:
                continue
            h = np.median(r["step_size"])
            lines.append(f"| {row['target']} | {row['setting']} | {h:.3g} | {lib} | {_fmt(r, 'transitions_per_s')} "
                         f"| {_fmt(r, 'gradients_per_s')} | {_fmt(r, 'min_ess', '.0f')} | {_fmt(r, 'ess_per_s')} "
                         f"| {_fmt(r, 'ess_per_gradient')} | {_fmt(r, 'mean_tree_depth', '.2f')} "
                         f"| {r['divergences']} | {_fmt(r, 'mean_accept', '.2f')} | {_fmt(r, 'max_mean_z', '.1f')} "
                         f"| {r['cpu_seconds'] / r['wall_seconds']:.2f} |")
    lines += ["", "## sdekit / blackjax", "",
              "| target | setting | transitions/s | grad/s | ESS/s | ESS/grad |", "|---|---|---|---|---|---|"]
    for row in info["rows"]:
        if "ratio" in row:
            q = row["ratio"]
            cells = " | ".join("–" if q.get(k) is None else f"{q[k]:.2f}x"
                               for k in ("transitions_per_s", "gradients_per_s", "ess_per_s", "ess_per_gradient"))
            lines.append(f"| {row['target']} | {row['setting']} | {cells} |")
    lines += ["", "## Mass matrix on the 100-D Gaussian (condition number 10^4, rotated): ESS per gradient", "",
              "| setting | sdekit | blackjax |", "|---|---|---|"]
    for row in info["rows"]:
        if row["target"] == "gaussian_100d":
            lines.append(f"| {row['setting']} | {_fmt(row.get('sdekit'), 'ess_per_gradient')} "
                         f"| {_fmt(row.get('blackjax'), 'ess_per_gradient')} |")
    return "\n".join(lines) + "\n"


def plot(info: dict, path: Path) -> None:
    """ESS per gradient and ESS/s per (target, setting), sdekit and blackjax side by side (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = info["rows"]
    labels = [f"{r['target']}\n{r['setting']}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.8 * len(rows)), 7), sharex=True)
    for ax, key, title in zip(axes, ("ess_per_gradient", "ess_per_s"), ("min ESS per gradient", "min ESS per second")):
        for off, lib, color in ((-0.2, "sdekit", "C0"), (0.2, "blackjax", "C1")):
            vals = [r[lib][key] if lib in r else np.nan for r in rows]
            ax.bar(x + off, vals, 0.4, label=lib, color=color)
        ax.set_yscale("log")
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[1].set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    fig.suptitle(f"NUTS, {info['chains']} chains x {info['draws']} draws (CPU, float64)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
