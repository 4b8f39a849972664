"""Run the checks of `sdekit validate`, in this process or spread over worker processes.

Every check is deterministic in (n_paths, seed, alpha): its noise is keyed by (seed, path), never by the process or
the thread count, so running checks in parallel worker processes gives the same reports as running them one after
another. What parallel workers buy is time, mostly compile time: a cold run compiles dozens of Numba kernels, one
process per core compiles them side by side (each worker runs its kernels on cores // jobs threads, so the machine
is never oversubscribed). Workers are started with the 'spawn' method (fresh interpreters, no forked threads).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


FIGURE_PANELS = 4  # panels `write_report` draws per check


def run_check(name: str, n_paths: int, seed: int, alpha: float, threads: int | None = None) -> tuple[Any, float]:
    """(report, seconds) of one check of the suite. In a worker (``threads`` given: Numba's thread count is set
    first) the report is made picklable (`portable`)."""
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    from sdekit.validate.suite import SUITE

    t0 = time.perf_counter()
    report = SUITE[name].run(n_paths, seed, alpha)
    seconds = time.perf_counter() - t0
    return (report if threads is None else portable(report)), seconds


def portable(report: Any) -> Any:
    """The report itself when it pickles; otherwise the same report with the laws of its first FIGURE_PANELS panels
    tabulated (CDF and density interpolated on 4001 points over the sample's range, widened by 4 sd): a law built
    from a closure (a user's CDF) cannot cross a process boundary, and the figures need only these values."""
    try:
        pickle.dumps(report)
        return report
    except (pickle.PicklingError, AttributeError, TypeError):
        pass
    from sdekit.validate.laws import Law1D
    from sdekit.validate.report import Panel

    panels = []
    for panel in report.panels[:FIGURE_PANELS]:
        v = np.asarray(panel.values, dtype=float)
        sd = float(np.std(v)) or 1.0
        grid = np.linspace(float(v.min()) - 4 * sd, float(v.max()) + 4 * sd, 4001)
        law = panel.law
        pdf = Tabulated(grid, law.pdf(grid)) if law.pdf is not None else None
        panels.append(Panel(panel.label, v, Law1D(Tabulated(grid, law.cdf(grid)), pdf, law.moments, law.label)))
    return dataclasses.replace(report, panels=panels)


class Tabulated:
    """A function known on a grid, linearly interpolated (constant beyond the ends)."""

    def __init__(self, grid: np.ndarray, values: Any):
        self.grid, self.values = grid, np.asarray(values, dtype=float)

    def __call__(self, z: Any) -> np.ndarray:
        return np.interp(np.asarray(z, dtype=float), self.grid, self.values)


def run_checks(names: Sequence[str], n_paths: int, seed: int, alpha: float, jobs: int,
               on_done: Callable[[str, Any, float], None] | None = None) -> list[tuple[Any, float]]:
    """(report, seconds) of every check in ``names``, in that order; ``jobs`` worker processes when above 1.
    ``on_done(name, report, seconds)`` is called as each check finishes (in completion order)."""
    jobs = max(1, min(jobs, len(names)))
    results: dict[str, tuple[Any, float]] = {}
    if jobs == 1:
        for name in names:
            results[name] = run_check(name, n_paths, seed, alpha)
            if on_done is not None:
                on_done(name, *results[name])
        return [results[name] for name in names]
    threads = max(1, available_cores() // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        # the battery lists its cheap closed-form checks first and the MCMC ones (each compiling its own kernels)
        # last: submitting from the end keeps both workers busy until the end
        futures = {pool.submit(run_check, name, n_paths, seed, alpha, threads): name for name in reversed(names)}
        for fut in as_completed(futures):
            name = futures[fut]
            results[name] = fut.result()
            if on_done is not None:
                on_done(name, *results[name])
    return [results[name] for name in names]
