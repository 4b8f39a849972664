"""A solve split into shards of paths on a dask cluster, equal bit for bit to the single-process solve.

Shard i holds paths [lo_i, hi_i); its worker runs ``sdekit.simulate(..., path_offset=lo_i)`` on them, whose noise is
keyed by (seed, path), so the shards together are exactly the solve of all paths in one process, whatever the number
of workers, threads and shard size. Per shard, each streaming reduction (`sdekit.reductions`: ``empty() /
update(samples) / merge(other)``) summarises ``feature(ys)`` of the shard's paths, and the client merges the
summaries in shard order, so the merged statistics never depend on which worker finished first. The saved states
are gathered (``states="gather"``), left on the workers as a dask array (``"distributed"``: nothing larger than one
shard ever moves to one place), or dropped (``"none"``: reductions only).
"""

from __future__ import annotations

import math
import operator
import os
import pickle
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdekit.distributed.checkpoint import ShardCheckpoint
from sdekit.distributed.cluster import cluster, local_cores, worker_threads
from sdekit.distributed.keys import digest, problem_token
from sdekit.distributed.tasks import run_tasks
from sdekit.distributed.transport import dumps_by_name
from sdekit.errors import SDEKitError
from sdekit.sde import ODE, SDE

STATES = ("gather", "distributed", "none")
SHARDS_PER_THREAD = 4  # default shard size: about this many shards per worker thread (load balance, fault cost)
MAX_SHARD_BYTES = 256 * 2**20  # default shard size: saved states of one shard at most this large
# simulate's options a sharded solve owns itself
OWNED = {"threads": "each shard runs on its worker's threads", "progress": "progress= is over shards here",
         "path_offset": "shards set it", "device": "the torch backend is not sharded",
         "adjoint": "the torch backend is not sharded", "n_paths": "give n_paths to this function"}


def final_state(ys: np.ndarray) -> np.ndarray:
    """The default feature of the reductions: the states at the last save time, (n_paths, dim)."""
    return ys[-1]


@dataclass
class ShardResult:
    """What one shard returns: its path range, states (unless states="none"), reductions and timings."""

    index: int
    lo: int
    hi: int
    ys: np.ndarray | None
    ws: np.ndarray | None
    reductions: dict[str, Any]
    seconds: float
    compile_seconds: float
    path_steps: int
    masked_paths: int
    worker: str
    loaded: bool = False

    def summary(self) -> ShardResult:
        """The same result without the states (what the client gathers when the states stay on the workers)."""
        return ShardResult(self.index, self.lo, self.hi, None, None, self.reductions, self.seconds,
                           self.compile_seconds, self.path_steps, self.masked_paths, self.worker, self.loaded)


@dataclass
class DistributedStats:
    """Counts and timings of a sharded solve: wall_seconds on the client; compute_seconds summed over the shards
    computed (not loaded from a checkpoint); per shard (index order) its seconds and the worker that computed it
    (or first saved it, for a shard loaded from a checkpoint)."""

    n_paths: int
    n_shards: int
    shard_size: int
    workers: int
    threads: int
    path_steps: int
    masked_paths: int
    wall_seconds: float
    compute_seconds: float
    compile_seconds: float
    loaded_shards: int
    shard_seconds: np.ndarray = field(repr=False)
    shard_workers: list[str] = field(repr=False, default_factory=list)


@dataclass
class ShardedSolution:
    """ts (n_saves,); ys: (n_saves, n_paths, dim) as a NumPy array (states="gather"), a dask array whose chunks are
    the shards (states="distributed") or None (states="none"); ws likewise for save_brownian=True; reductions: name
    -> the merged reduction (call ``.result()``); stats: `DistributedStats`."""

    ts: np.ndarray
    ys: Any
    reductions: dict[str, Any]
    stats: DistributedStats
    ws: Any = None


@dataclass(frozen=True)
class _Run:
    """Everything a shard needs besides its path range and x0 rows (pickled into every task); the problem travels
    as `dumps_by_name` bytes (its importable Numba functions by name: the worker loads their cached kernels)."""

    problem_bytes: bytes
    t: Any
    options: dict
    seed: int
    states: str
    feature: Callable[[np.ndarray], np.ndarray]
    reductions: dict[str, Any]
    x0_rows: bool  # x0 holds a row per path (sliced per shard) or one state for all
    key: str  # the run's key
    problem_key: str  # the problem's own key (its functions and parameters)


# Problems a worker has seen, by key: unpickled anew for each task, the problem's new function objects would make
# every shard compile its kernels again; the first copy a worker unpickled serves all its later shards (of this run
# and of later runs of the same problem with other seeds, sizes or options).
_WORKER_PROBLEMS: OrderedDict[str, Any] = OrderedDict()
WORKER_PROBLEMS_KEPT = 8


def _worker_problem(run: _Run) -> Any:
    """The copy of the run's problem this worker process keeps (see _WORKER_PROBLEMS)."""
    kept = _WORKER_PROBLEMS.get(run.problem_key)
    if kept is None:
        _WORKER_PROBLEMS[run.problem_key] = kept = pickle.loads(run.problem_bytes)
        while len(_WORKER_PROBLEMS) > WORKER_PROBLEMS_KEPT:
            _WORKER_PROBLEMS.popitem(last=False)
    else:
        _WORKER_PROBLEMS.move_to_end(run.problem_key)
    return kept


def _run_shard(run: _Run, index: int, lo: int, hi: int, x0: np.ndarray, shard_key: str,
               checkpoint: ShardCheckpoint | None) -> ShardResult:
    """Solve paths [lo, hi) (or load them from the checkpoint), reduce them, return the `ShardResult`."""
    if checkpoint is not None:
        saved = checkpoint.load(index, shard_key)
        if saved is not None:
            saved.loaded = True
            return saved
    import numba

    from sdekit.simulate import simulate as simulate_one

    problem = _worker_problem(run)
    threads = min(worker_threads(), numba.config.NUMBA_NUM_THREADS)
    start = time.perf_counter()
    sol = simulate_one(problem, x0, run.t, n_paths=None if run.x0_rows else hi - lo, seed=run.seed,
                       path_offset=lo, threads=threads, progress=False, **run.options)
    reductions = {}
    if run.reductions:
        sample = _feature_sample(run.feature, sol.ys)
        reductions = {name: _fresh(r, index).update(sample) for name, r in run.reductions.items()}
    keep = run.states != "none"
    result = ShardResult(index, lo, hi, sol.ys if keep else None, sol.ws if keep else None, reductions,
                         time.perf_counter() - start, sol.stats.compile_seconds, sol.stats.path_steps,
                         sol.stats.masked_paths, _worker_name())
    if checkpoint is not None:
        checkpoint.save(index, shard_key, result)
    return result


def _fresh(reduction: Any, index: int) -> Any:
    """An empty copy of a reduction for shard ``index``: ``spawn(index)`` where the reduction draws its own coins
    (a quantile sketch: independent, reproducible coins per shard), else ``empty()``."""
    spawn = getattr(reduction, "spawn", None)
    return spawn(index) if callable(spawn) else reduction.empty()


def _feature_sample(feature: Callable, ys: np.ndarray) -> np.ndarray:
    sample = np.asarray(feature(ys), dtype=np.float64)
    if sample.ndim == 1:
        sample = sample[:, None]
    if sample.ndim != 2 or sample.shape[0] != ys.shape[1]:
        raise SDEKitError(f"feature(ys) must return one row per path, shape ({ys.shape[1]}, k) or ({ys.shape[1]},); "
                          f"got shape {sample.shape} for ys of shape {ys.shape}")
    return sample


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def shard_ranges(n_paths: int, shard_size: int) -> list[tuple[int, int]]:
    """[0, n_paths) cut into consecutive ranges of shard_size paths (the last may be shorter)."""
    return [(lo, min(lo + shard_size, n_paths)) for lo in range(0, n_paths, shard_size)]


def simulate(problem: SDE | ODE, x0: Any, t: Any, *, n_paths: int | None = None, client: Any = None,
             shard_size: int | None = None, states: str = "gather",
             reductions: Mapping[str, Any] | None = None, feature: Callable[[np.ndarray], np.ndarray] = final_state,
             checkpoint: str | os.PathLike | None = None, progress: bool | None = None,
             **options: Any) -> ShardedSolution:
    """`sdekit.simulate` of n_paths paths, split into shards of consecutive paths solved on a dask cluster.

    The result equals the single-process ``sdekit.simulate(problem, x0, t, n_paths=..., **options)`` bit for bit
    (row p of every shard is path lo + p of the ensemble of ``seed``: `sdekit.simulate`'s path_offset), for any
    client, number of workers and shard_size. Streaming reductions merge the shards' summaries in shard order
    (Chan, Golub & LeVeque 1979 for moments; `sdekit.reductions`).

    client: a dask Client, a scheduler address, or None (a LocalCluster of one process per core for this call).
    shard_size: paths per shard (default: about SHARDS_PER_THREAD shards per worker thread, and at most
    MAX_SHARD_BYTES of saved states per shard). states: "gather" (ys as one NumPy array on the client), "distributed"
    (a dask array of shape (n_saves, n_paths, dim), one chunk per shard, left on the workers of the Client given)
    or "none" (only the
    reductions come back). reductions: name -> a reduction (``empty() / update(samples) / merge(other) /
    result()``) fed with ``feature(ys)`` of each shard, (paths, k) (default: the final states). checkpoint: a
    folder; each finished shard is written there under its key (`sdekit.distributed.checkpoint`), and a later call
    with the same arguments and folder loads the shards found there instead of solving them again. progress: a bar
    over shards (None: shown once the run lasts over two seconds). options: the keyword options of
    `sdekit.simulate` (steps, dt, seed, solver, save_at, dtype, backend 'numba' or 'numpy', noise_substeps, rtol,
    atol, dt0, max_steps, on_nonfinite, save_brownian, chunk_size, max_save_bytes), passed to every shard.
    A worker lost during the run costs only its shards, which the scheduler recomputes from their keys.
    """
    if not isinstance(problem, (SDE, ODE)):
        raise SDEKitError(f"problem must be an sdekit.SDE or sdekit.ODE; got {type(problem).__name__}")
    for name, why in OWNED.items():
        if name in options:
            raise SDEKitError(f"{name} is not an option of sdekit.distributed.simulate: {why}")
    if options.get("backend", "numba") not in ("numba", "numpy"):
        raise SDEKitError(f"backend must be 'numba' or 'numpy' for a sharded solve; got {options['backend']!r}")
    if states not in STATES:
        raise SDEKitError(f"states must be one of {STATES}; got {states!r}")
    if states == "distributed" and not _is_client(client):
        raise SDEKitError("states='distributed' leaves the states on the workers of a cluster you keep: pass a dask "
                          f"Client as client (got {type(client).__name__}; a cluster started or connected for this "
                          "call is closed at its end, and its futures with it)")
    reductions = dict(reductions or {})
    for name, r in reductions.items():
        if not all(callable(getattr(r, a, None)) for a in ("empty", "update", "merge")):
            raise SDEKitError(f"reductions[{name!r}] must be a reduction with empty(), update(samples) and "
                              f"merge(other) (sdekit.reductions); got {type(r).__name__}")
    if not callable(feature):
        raise SDEKitError(f"feature must be a function ys -> samples (n_paths, k); got {feature!r}")
    if states == "none" and not reductions:
        raise SDEKitError("states='none' keeps nothing: give reductions, or states='gather' / 'distributed'")
    seed = options.pop("seed", 0)
    x0_arr, per_path, n = _initial_rows(problem, x0, n_paths)
    ts = _save_times(problem, t, options)
    shard_size = _shard_size(shard_size, n, problem.dim, ts.size, client)
    ranges = shard_ranges(n, shard_size)
    problem_key = digest(problem_token(problem))
    run_key = digest(problem_key, x0_arr, t, sorted(options.items()), seed, n, shard_size, states, feature,
                     [(k, type(r).__qualname__, _configuration(r)) for k, r in sorted(reductions.items())])
    run = _Run(dumps_by_name(problem), t, options, seed, states, feature,
               {k: r.empty() for k, r in reductions.items()}, per_path, run_key, problem_key)
    ckpt = None
    if checkpoint is not None:
        ckpt = ShardCheckpoint(checkpoint, run_key, {"problem": getattr(problem, "name", None), "n_paths": n,
                                                     "shard_size": shard_size, "seed": seed, "states": states})
        ckpt.claim()
    shard_keys = [digest(run_key, i, lo, hi) for i, (lo, hi) in enumerate(ranges)]
    calls = [(run, i, lo, hi, x0_arr[lo:hi] if per_path else x0_arr, shard_keys[i], ckpt)
             for i, (lo, hi) in enumerate(ranges)]
    task_keys = [f"sdekit-shard-{run_key[:16]}-{i}" for i in range(len(ranges))]
    start = time.perf_counter()
    with cluster(client) as cl, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        workers = cl.scheduler_info(n_workers=-1)["workers"]
        threads = sum(w.get("nthreads", 1) for w in workers.values())
        if states == "distributed":
            full = run_tasks(cl, _run_shard, calls, task_keys, progress=False, gather=False)
            summaries = run_tasks(cl, ShardResult.summary, [(f,) for f in full],
                                  [f"sdekit-summary-{run_key[:16]}-{i}" for i in range(len(ranges))],
                                  progress=progress, desc="shards")
            ys, ws = _dask_states(cl, full, summaries, run_key, problem, ts.size, options)
        else:
            summaries = run_tasks(cl, _run_shard, calls, task_keys, progress=progress, desc="shards")
            ys = np.concatenate([s.ys for s in summaries], axis=1) if states == "gather" else None
            ws = (np.concatenate([s.ws for s in summaries], axis=1)
                  if states == "gather" and summaries[0].ws is not None else None)
    wall = time.perf_counter() - start
    merged = {name: _merge_in_order([s.reductions[name] for s in summaries]) for name in reductions}
    computed = [s for s in summaries if not s.loaded]
    stats = DistributedStats(
        n_paths=n, n_shards=len(ranges), shard_size=shard_size, workers=len(workers), threads=threads,
        path_steps=sum(s.path_steps for s in summaries), masked_paths=sum(s.masked_paths for s in summaries),
        wall_seconds=wall, compute_seconds=sum(s.seconds for s in computed),
        compile_seconds=max((s.compile_seconds for s in computed), default=0.0),
        loaded_shards=len(summaries) - len(computed), shard_seconds=np.array([s.seconds for s in summaries]),
        shard_workers=[s.worker for s in summaries])
    return ShardedSolution(ts, ys, merged, stats, ws)


def _is_client(client: Any) -> bool:
    from distributed import Client

    return isinstance(client, Client)


def _configuration(reduction: Any) -> bytes:
    """What configures a reduction, for the run's key: the pickle of its empty copy (laws, edges, thresholds, ...;
    cloudpickle for what plain pickle refuses, as dask ships it)."""
    empty = reduction.empty()
    try:
        return pickle.dumps(empty, protocol=4)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(empty, protocol=4)


def _merge_in_order(parts: list[Any]) -> Any:
    """Left fold of the shard summaries in shard order (a fixed order: the same floats whatever finished first)."""
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def _initial_rows(problem: SDE | ODE, x0: Any, n_paths: int | None) -> tuple[np.ndarray, bool, int]:
    """(x0 as an array, whether it holds a row per path, number of paths), checked as `sdekit.simulate` does."""
    from sdekit.simulate import _initial_state

    arr = _initial_state(x0, problem.dim, n_paths, np.float64)
    n = arr.shape[0]
    if n > 1 and arr.strides[0] != 0:  # a row per path: each shard gets its rows
        return np.ascontiguousarray(np.asarray(x0).reshape(n, problem.dim)), True, n
    return np.asarray(x0), False, n


def _shard_size(shard_size: int | None, n: int, dim: int, n_saves: int, client: Any) -> int:
    if shard_size is not None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
            raise SDEKitError(f"shard_size must be a positive integer (paths per shard); got {shard_size!r}")
        return int(min(shard_size, n))
    threads = local_cores()
    if _is_client(client):
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info(n_workers=-1)["workers"].values())
    size = math.ceil(n / (SHARDS_PER_THREAD * max(threads, 1)))
    return int(max(1, min(size, MAX_SHARD_BYTES // max(n_saves * dim * 8, 1))))


def _save_times(problem: SDE | ODE, t: Any, options: dict) -> np.ndarray:
    """The save times of the solve, as `sdekit.simulate` returns them (by the same grid rules)."""
    from sdekit.grid import adaptive_saves, fixed_grid
    from sdekit.solvers import get_solver

    kind = "sde" if isinstance(problem, SDE) else "ode"
    name = options.get("solver") or ("euler_maruyama" if kind == "sde" and problem.calculus == "ito"
                                     else "heun" if kind == "sde" else "dopri5")
    if get_solver(name, kind).adaptive:
        return adaptive_saves(t, options.get("save_at"))[1].copy()
    return fixed_grid(t, options.get("steps"), options.get("dt"), options.get("save_at")).save_ts.copy()


def _dask_states(client: Any, full: list[Any], summaries: list[ShardResult], run_key: str, problem: SDE | ODE,
                 n_saves: int, options: dict) -> tuple[Any, Any]:
    """(ys, ws) as dask arrays over the shards' futures: chunk i is shard i's states, never moved until asked."""
    import dask
    import dask.array as da

    def column(attr: str) -> list[Any]:
        return [client.submit(operator.attrgetter(attr), fut, key=f"sdekit-{attr}-{run_key[:16]}-{i}")
                for i, fut in enumerate(full)]

    def stack(parts: list[Any], width: int, dtype: Any) -> Any:
        return da.concatenate([da.from_delayed(dask.delayed(p), shape=(n_saves, s.hi - s.lo, width), dtype=dtype)
                               for p, s in zip(parts, summaries)], axis=1)

    dtype = np.dtype(options.get("dtype") or "float64")
    ys = stack(column("ys"), problem.dim, dtype)
    ws = stack(column("ws"), problem.m, np.float64) if options.get("save_brownian") else None
    return ys, ws
