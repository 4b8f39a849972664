"""`sdekit validate` checks and the planted-bug power table on a dask cluster: one task per check, or per
(case, variant, seed), with the same reports and counts as one process.

Every check and every power cell is deterministic in its arguments (n_paths / n, seed, alpha): its noise is keyed by
(seed, path), never by the process or the thread count, so running them as cluster tasks reproduces the serial
results. A task runs its kernels on the threads of the worker that runs it (`worker_threads`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sdekit.distributed.cluster import cluster, worker_threads
from sdekit.distributed.keys import digest
from sdekit.distributed.tasks import run_tasks
from sdekit.errors import SDEKitError


def _key(kind: str, *parts: Any) -> str:
    return f"{kind}-{digest(*parts)[:16]}"


def _check_on_worker(name: str, n_paths: int, seed: int, alpha: float) -> tuple[Any, float]:
    from sdekit.validate.battery_run import run_check

    return run_check(name, n_paths, seed, alpha, threads=worker_threads())


def run_checks_on_cluster(names: Sequence[str], n_paths: int, seed: int, alpha: float, *, client: Any = None,
                          progress: bool | None = None,
                          on_done: Callable[[str, Any, float], None] | None = None) -> list[tuple[Any, float]]:
    """(report, seconds) of every check of `sdekit validate` in ``names``, in that order, one cluster task per check:
    the same reports as `sdekit.validate.battery_run.run_checks` (each check is a battery at false-alarm rate
    ``alpha``, Bonferroni inside; its noise keyed by (seed, path), so where it runs does not change it).

    client: a dask Client, a scheduler address, or None (a local cluster for this call; `cluster`). Reports that hold
    a closure are made picklable first (`sdekit.validate.battery_run.portable`). ``on_done(name, report, seconds)``
    runs on the client as each check finishes (in completion order); progress: a bar over the checks.
    """
    from sdekit.validate.suite import SUITE

    names = list(names)
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in SUITE:
            raise SDEKitError(f"names must be checks of `sdekit validate --list`; got {name!r}")
        if name in names[:i]:
            raise SDEKitError(f"names: check {name!r} is given twice")
    # the battery lists its cheap closed-form checks first and the MCMC ones last: submitting from the end keeps
    # the workers busy until the end
    order = list(reversed(names))

    def done(i: int, result: tuple[Any, float]) -> None:
        if on_done is not None:
            on_done(order[i], *result)

    with cluster(client) as c:
        results = run_tasks(c, _check_on_worker, [(name, n_paths, seed, alpha) for name in order],
                            [_key(f"check-{name}", n_paths, seed, alpha) for name in order], progress=progress,
                            desc="checks", on_result=done)
    by_name = dict(zip(order, results))
    return [by_name[name] for name in names]


def _power_cell(case_name: str, variant_index: int, seed: int, n: int) -> tuple[dict[str, int], float]:
    """One task of the power table: (rejections per column, seconds) of one (case, variant, seed)."""
    import numba

    from sdekit.validate.power import CASES, variant_rejections

    numba.set_num_threads(max(1, min(worker_threads(), numba.config.NUMBA_NUM_THREADS)))
    t0 = time.perf_counter()
    case = CASES[case_name]()
    return variant_rejections(case, case.variants[variant_index], seed, n), time.perf_counter() - t0


def power_table_on_cluster(seeds: Sequence[int], n: int = 20_000, cases: Sequence[str] | None = None, *,
                           client: Any = None, progress: bool | None = None) -> list[Any]:
    """`sdekit.validate.power.power_table` on a dask cluster: the same `PowerRow`s (the same rejection counts; a row's
    ``seconds`` is the sum of its tasks' times), one task per (case, variant, seed), counts summed on the client.

    Each task builds its case, runs every check of the case on the variant with the seed (`variant_rejections`, the
    body `run_case` runs serially) and returns 0 / 1 per column. client and progress as in `run_checks_on_cluster`.
    """
    from sdekit.validate.power import CASES, PowerRow, add_counts

    names = list(cases) if cases else list(CASES)
    for name in names:
        if name not in CASES:
            raise SDEKitError(f"cases must be names of {sorted(CASES)}; got {name!r}")
    seeds = [int(s) for s in seeds]
    built = {name: CASES[name]() for name in names}
    cells = [(name, i, seed) for name in names for i in range(len(built[name].variants)) for seed in seeds]
    with cluster(client) as c:
        results = run_tasks(c, _power_cell, [(name, i, seed, n) for name, i, seed in cells],
                            [_key(f"power-{name}-{i}-{seed}", n) for name, i, seed in cells], progress=progress,
                            desc="power cells")
    rows = []
    for name in names:
        for i, variant in enumerate(built[name].variants):
            counts: dict[str, int] = {}
            seconds = 0.0
            for (cell_name, cell_variant, _), (cell_counts, cell_seconds) in zip(cells, results):
                if (cell_name, cell_variant) == (name, i):
                    add_counts(counts, cell_counts)
                    seconds += cell_seconds
            rows.append(PowerRow(built[name].name, variant.name, variant.correct, len(seeds), counts, seconds))
    return rows
