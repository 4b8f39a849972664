"""MCMC chains sharded by chain index over a dask cluster, bit-identical to one process.

Chain c of a run draws its random numbers from the stream (seed, c) whatever process runs it
(`sdekit.mcmc.kernel`: a run with ``chain_offset=a`` seeds its row r with chain a + r), and its start point
is row c of the run's starting points. So the client computes every start point exactly as the single-process
run does (`sdekit.mcmc.chains.initial_positions`, an (n_chains, d) array), slices them (and per-chain step sizes
and momenta) by shard, runs chains [a, b) of each shard as one task with ``chain_offset=a``, concatenates the
shards along the chain axis and then runs the end-of-run diagnostics ONCE on the assembled result
(`sdekit.mcmc.diagnostics.finish`: R-hat and ESS need all chains). Per-shard diagnostics are discarded and their
warnings silenced on the workers. A chain that turns non-finite raises the error the single-process run would
raise (the earliest step, then the lowest global chain index), naming its global index.
"""

from __future__ import annotations

import inspect
import logging
import math
import pickle
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from sdekit.diffusion.samplers.checks import check_count, check_seed
from sdekit.distributed.cluster import cluster, worker_threads
from sdekit.distributed.keys import digest
from sdekit.distributed.tasks import run_tasks
from sdekit.distributed.transport import dumps_by_name
from sdekit.errors import ChainNonFiniteError, SDEKitError
from sdekit.mcmc import hmc, mala, nuts, rwm, ula, underdamped_langevin
from sdekit.mcmc.chains import check_chain_offset, initial_positions, per_chain_array, step_sizes
from sdekit.mcmc.diagnostics import arviz_module, finish
from sdekit.mcmc.result import MCMCResult
from sdekit.targets.energy import check_energy_target

# the samplers whose chains are independent given (seed, chain): name -> (function, its end-of-run diagnostics
# take the adaptation context of `sdekit.mcmc.chains.run_chains`)
SHARDABLE: dict[str, tuple[Callable[..., MCMCResult], bool]] = {
    "ula": (ula, True), "mala": (mala, True), "rwm": (rwm, True), "hmc": (hmc, True), "nuts": (nuts, True),
    "underdamped_langevin": (underdamped_langevin, False),
}
NOT_SHARDABLE = {
    "replica_exchange": "its replicas of one run exchange states every round, so a run is not split by chain",
    "simulated_annealing": "its chains are not stationary and carry a per-run schedule; run it in one process",
}
PER_CHAIN_EXTRAS = ("momentum", "inverse_mass")  # extras with one row per chain (concatenated); the others are run-wide


def resolve_sampler(sampler: Any) -> tuple[str, Callable[..., MCMCResult], bool]:
    """(name, function, adaptive diagnostics) of ``sampler``: a name of SHARDABLE or one of its functions."""
    for name, (fn, adaptive) in SHARDABLE.items():
        if sampler == name or sampler is fn:
            return name, fn, adaptive
    key = sampler if isinstance(sampler, str) else getattr(sampler, "__name__", None)
    if key in NOT_SHARDABLE:
        raise SDEKitError(f"sampler {key!r} cannot be sharded by chain: {NOT_SHARDABLE[key]}")
    raise SDEKitError(f"sampler must be one of {sorted(SHARDABLE)} (a name or the function of sdekit.mcmc); "
                      f"got {sampler!r}")


def shard_bounds(n_chains: int, chains_per_shard: int) -> list[tuple[int, int]]:
    """[(a, b), ...]: consecutive chain ranges of at most ``chains_per_shard`` chains covering [0, n_chains)."""
    return [(a, min(a + chains_per_shard, n_chains)) for a in range(0, n_chains, chains_per_shard)]


def _bound_options(fn: Callable[..., MCMCResult], target: Any, n_chains: int, options: dict) -> dict[str, Any]:
    """Every keyword of ``fn`` for this run (the user's options over the defaults), or SDEKitError naming an
    unknown one."""
    for reserved in ("target", "n_chains"):
        if reserved in options:
            raise SDEKitError(f"{reserved} is an argument of sample_chains itself, not a sampler option")
    signature = inspect.signature(fn)
    try:
        bound = signature.bind(target, n_chains=n_chains, **options)
    except TypeError as exc:
        raise SDEKitError(f"{fn.__name__} takes {list(signature.parameters)[1:]}: {exc}") from exc
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.pop("target")
    return out


def _run_shard(fn: Callable[..., MCMCResult], target_bytes: bytes, options: dict[str, Any]) -> Any:
    """One shard on a worker: the sampler on the worker's threads, warnings silenced, diagnostics dropped (they are
    computed once on the assembled run); a non-finite chain's error is returned, so the client can raise the one
    the single-process run would. The target travels as `dumps_by_name` bytes, so its energy is the importable njit
    function itself and the worker loads the disk-cached kernel instead of compiling one (measured: 2 s, not 7 s).
    """
    import numba

    target = pickle.loads(target_bytes)
    numba.set_num_threads(max(1, min(worker_threads(), numba.config.NUMBA_NUM_THREADS)))
    az = arviz_module()  # ArviZ logs (not warns) about a shard of one chain, through its own logger object
    arviz_log = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fn(target, **options)
    except ChainNonFiniteError as exc:
        return exc
    finally:
        arviz_log.setLevel(level)
    res.diagnostics = None
    return res


def first_failure(errors: list[ChainNonFiniteError]) -> ChainNonFiniteError | None:
    """The error one process raises for these chains: a chain whose state turned non-finite before a non-finite
    proposal under on_nonfinite="raise", then the earliest step, then the lowest chain index."""
    if not errors:
        return None
    states = [e for e in errors if type(e) is ChainNonFiniteError]
    return min(states or errors, key=lambda e: (e.step, e.chain))


def assemble(shards: list[MCMCResult], seconds: float) -> MCMCResult:
    """One `MCMCResult` from shards of consecutive chains: every per-chain array concatenated along the chain axis,
    run-wide extras from the first shard; no diagnostics yet."""
    first = shards[0]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(s, name) for s in shards], axis=0)

    extras = dict(first.extras)
    for key in PER_CHAIN_EXTRAS:
        if key in extras:
            extras[key] = np.concatenate([s.extras[key] for s in shards], axis=0)
    if "warmup_stats" in extras:  # {name: (chains,)}
        extras["warmup_stats"] = {name: np.concatenate([s.extras["warmup_stats"][name] for s in shards])
                                  for name in extras["warmup_stats"]}
    nonfinite = None if first.n_nonfinite is None else cat("n_nonfinite")
    stats = {name: np.concatenate([s.stats[name] for s in shards], axis=0) for name in first.stats}
    return MCMCResult(cat("samples"), cat("accept_prob"), cat("potential_energy"), cat("divergent"), cat("step_size"),
                      first.sampler, first.n_warmup, first.thin, seconds, extras, n_nonfinite=nonfinite, stats=stats)


def _diagnostics_context(options: dict[str, Any], h0: np.ndarray, adaptive: bool) -> dict[str, Any]:
    """The keywords the single-process sampler passes to `finish` (`sdekit.mcmc.chains.run_chains` for the
    Metropolis-type samplers and ULA; none for underdamped Langevin)."""
    if not adaptive:
        return {}
    adapt = bool(options.get("adapt", False))
    return {"initial_step": h0 if adapt else None, "target_accept": options.get("target_accept", 0.8),
            "proposals_per_chain": options["n_warmup"] + options["n_draws"] * options["thin"],
            "on_nonfinite": options.get("on_nonfinite", "warn")}


def _run_key(name: str, options: dict[str, Any], arrays: dict[str, np.ndarray], target: Any) -> str:
    """A hash of the run's description: sampler, scalar options, the per-chain arrays' bytes and the target."""
    from dask.base import tokenize

    scalars = sorted((k, v) for k, v in options.items() if k not in arrays)
    return f"sample_chains-{name}-{digest(scalars, arrays, tokenize(target))[:16]}"


def sample_chains(sampler: Any, target: Any, *, n_chains: int, chains_per_shard: int | None = None,
                  client: Any = None, progress: bool | None = None, **sampler_options: Any) -> MCMCResult:
    """Run ``n_chains`` chains of an `sdekit.mcmc` sampler on a dask cluster, one task per shard of chains;
    the result equals ``sampler(target, n_chains=n_chains, **sampler_options)`` bit for bit.

    Chain c's random numbers come from the xoshiro256++ stream keyed by (seed, c) (`sdekit.noise.streams`), its
    start point is row c of `initial_positions` (computed here, on the client, as one process computes them), so
    chains [a, b) run as a task with ``chain_offset=a`` equal rows a..b-1 of the one-process run. The shards are
    concatenated along the chain axis and the end-of-run diagnostics (`sdekit.mcmc.diagnostics`: R-hat and ESS
    over all chains, Vehtari et al. 2021) run once on the assembled result; per-shard warnings never reach the user.

    sampler: "ula", "mala", "rwm", "hmc", "nuts", "underdamped_langevin" or that function of `sdekit.mcmc`
    (replica exchange and simulated annealing are refused: their runs are not split by chain).
    chains_per_shard: chains per task (default: n_chains spread evenly over the cluster's workers).
    client: a dask Client, a scheduler address, or None (a local cluster for this call; `cluster`).
    progress: a progress bar over the shards (True / False; None: only for runs longer than 2 s).
    sampler_options: the sampler's keywords (step_size, n_draws, seed, x0, ...); per-chain arrays (x0, step_size,
    p0 of shape (n_chains, ...)) are sliced by shard. ``seconds`` of the result is this call's wall time.
    """
    name, fn, adaptive = resolve_sampler(sampler)
    check_energy_target(target)
    n_chains = check_count(n_chains, "n_chains")
    if chains_per_shard is not None:
        chains_per_shard = check_count(chains_per_shard, "chains_per_shard")
    options = _bound_options(fn, target, n_chains, sampler_options)
    seed = check_seed(options["seed"])
    base = check_chain_offset(options.pop("chain_offset"))
    d = target.dim
    arrays = {"x0": initial_positions(target, options["x0"], n_chains, seed),
              "step_size": step_sizes(options["step_size"], n_chains)}
    if options.get("p0") is not None:
        if isinstance(options["p0"], str | bool):
            raise SDEKitError(f"p0 must be None or a numeric array of shape ({d},) or (n_chains, d); got "
                              f"{options['p0']!r}")
        arrays["p0"] = per_chain_array(options["p0"], n_chains, d, "p0")
    start = time.perf_counter()
    with cluster(client) as c:
        if chains_per_shard is None:
            chains_per_shard = max(1, math.ceil(n_chains / max(1, len(c.scheduler_info()["workers"]))))
        bounds = shard_bounds(n_chains, chains_per_shard)
        target_bytes = dumps_by_name(target)
        key = _run_key(name, {**options, "chain_offset": base}, arrays, target)
        calls = []
        for a, b in bounds:
            shard = {**options, "n_chains": b - a, "chain_offset": base + a}
            shard.update({k: v[a:b] for k, v in arrays.items()})
            calls.append((fn, target_bytes, shard))
        results = run_tasks(c, _run_shard, calls, [f"{key}-{a}-{b}" for a, b in bounds], progress=progress,
                            desc="chains")
    failure = first_failure([r for r in results if isinstance(r, ChainNonFiniteError)])
    if failure is not None:
        raise failure
    res = assemble(results, time.perf_counter() - start)
    return finish(res, **_diagnostics_context(options, arrays["step_size"], adaptive))
