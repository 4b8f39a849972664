#!/usr/bin/env python
"""Power table: planted bugs against every validation check, rejection rates over several seeds.

    python benchmarks/power.py                 # 8 seeds, N = 20000 paths: ~10 min on 2 cores
    python benchmarks/power.py --seeds 2       # quicker
    python benchmarks/power.py --out DIR       # where power.md / power.json go (default benchmarks/results)

Rows are (case, sampler); a row marked ✓ is a correct sampler, so its rejections are false
alarms (each check is a battery at overall alpha = 1e-6). Cells are rejections / seeds; '-' is a
check that does not apply to the case. See sdekit/validate/power.py for the cases and bugs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from sdekit.validate.power import COLUMNS, coverage, power_table, to_markdown


def machine() -> dict:
    """CPU model, core counts, Python and library versions."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    except OSError:
        pass
    import numba
    import numpy
    import scipy
    return {"cpu_model": model or platform.processor(), "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "numpy": numpy.__version__, "numba": numba.__version__, "scipy": scipy.__version__,
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--paths", type=int, default=20_000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    seeds = [1000 + s for s in range(args.seeds)]
    rows = power_table(seeds, n=args.paths)
    per_column, per_bug, false_alarms = coverage(rows)
    elapsed = time.perf_counter() - start
    info = machine()
    table = to_markdown(rows)
    correct_runs = sum(sum(1 for _ in r.rejected) * r.seeds for r in rows if r.correct)
    lines = [
        "# Power of sdekit's validation checks against planted bugs", "",
        f"Generated {datetime.date.today()} by `python benchmarks/power.py --seeds {args.seeds} --paths {args.paths}` "
        f"in {elapsed:.0f} s on {info['cpu_model']} ({info['affinity']} cores), Python {info['python']}, "
        f"numpy {info['numpy']}, numba {info['numba']}, scipy {info['scipy']}.", "",
        f"Cells: rejections / seeds (seeds {seeds[0]}..{seeds[-1]}, N = {args.paths} paths each). ✓ marks a correct "
        "sampler: its rejections are false alarms. Every check is a battery at overall alpha = 1e-6 (Bonferroni "
        "inside); KS, CvM, moments, Stein and MMD are the families of one `compare_with_law` battery; MMD is a "
        "diagnostic (McDiarmid bound), not a gate. '-': the check does not apply to the case.", "",
        table, "",
        f"False alarms of correct samplers: {false_alarms} in {correct_runs} (check, seed) runs.", "",
        "Bugs caught per check (a bug counts when it is rejected at least once):", "",
        "| check | bugs caught |", "|---|---|",
        *[f"| {c} | {per_column[c]} |" for c in COLUMNS], "",
        "Checks catching each bug:", "", "| bug | checks |", "|---|---|",
        *[f"| {b} | {k} |" for b, k in per_bug.items()], "",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "power.md").write_text("\n".join(lines))
    (out / "power.json").write_text(json.dumps({
        "machine": info, "seeds": seeds, "paths": args.paths, "seconds": elapsed, "false_alarms": false_alarms,
        "rows": [{"case": r.case, "sampler": r.variant, "correct": r.correct, "seeds": r.seeds,
                  "rejected": r.rejected, "seconds": r.seconds} for r in rows]}, indent=1))
    print("\n".join(lines))
    missing = [c for c, k in per_column.items() if k == 0]
    uncaught = [b for b, k in per_bug.items() if k == 0]
    if missing or uncaught or false_alarms:
        print(f"checks catching no bug: {missing}; bugs caught by no check: {uncaught}; false alarms: {false_alarms}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
