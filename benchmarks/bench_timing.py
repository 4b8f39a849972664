"""Timing helpers shared by the benchmark scripts: wall and CPU time of a call, and how busy the other cores were."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def busy_jiffies() -> float | None:
    """Busy CPU time of the whole machine so far, in clock ticks (/proc/stat; None where it is not readable)."""
    try:
        with open("/proc/stat") as fh:
            vals = [float(v) for v in fh.readline().split()[1:]]
    except OSError:
        return None
    return sum(vals) - vals[3] - (vals[4] if len(vals) > 4 else 0.0)


@dataclass
class Timed:
    """A call's result with its CPU time (this process, all threads), wall time, and the other processes' load
    during it in cores (machine busy time minus ours, over the wall time; None for calls under 0.2 s)."""

    run: Any
    cpu_s: float
    wall_s: float
    other_cores: float | None


def timed(fn: Callable[[], Any]) -> Timed:
    """Call fn() and time it (see `Timed`)."""
    j0, c0, w0 = busy_jiffies(), time.process_time(), time.perf_counter()
    run = fn()
    j1, c1, w1 = busy_jiffies(), time.process_time(), time.perf_counter()
    wall = w1 - w0
    other = None
    if j0 is not None and j1 is not None and wall >= 0.2:
        other = max(0.0, (j1 - j0) / os.sysconf("SC_CLK_TCK") / wall - (c1 - c0) / wall)
    return Timed(run, c1 - c0, wall, other)


def interleaved_repeats(recs: list[dict], call: Callable[[dict], Any], limit_s: float
                        ) -> tuple[dict[str, list[Timed]], dict[str, Any]]:
    """Time each planned record's ``repeats`` calls round-robin across records, so that ratios compare runs made
    under the same background load. A failing call marks its record as an error; a record whose time spent plus
    its last run would pass ``limit_s`` stops early (``repeats_planned`` keeps the plan). Returns the timed runs
    and the last final state (``run.final``, then cleared) of each implementation."""
    runs: dict[str, list[Timed]] = {r["impl"]: [] for r in recs}
    finals: dict[str, Any] = {}
    for rep in range(max((r.get("repeats", 0) for r in recs), default=0)):
        for rec in recs:
            if rec["status"] != "ok" or rep >= rec["repeats"]:
                continue
            impl = rec["impl"]
            try:
                t = timed(lambda rec=rec: call(rec))
            except Exception as exc:  # one broken implementation must not lose the run
                rec.update(status="error", reason=f"{type(exc).__name__}: {exc}")
                continue
            if t.run.final is not None:
                finals[impl] = t.run.final
            t.run.final = None
            runs[impl].append(t)
            if rep + 1 < rec["repeats"] and sum(x.wall_s for x in runs[impl]) + t.wall_s > limit_s:
                rec["repeats_planned"] = rec["repeats"]  # the pilot was optimistic (the load changed): stop here
                rec["repeats"] = rep + 1
    return runs, finals
