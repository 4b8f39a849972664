"""The `sdekit` command: `sdekit validate` runs every built-in process and solver against its closed form."""

from __future__ import annotations

import argparse
import sys
import time


def format_table(results: list) -> str:
    """Plain-text table: check, test, statistic, threshold, p-value, verdict."""
    rows = [("check", "test", "statistic", "threshold", "p-value", "verdict")]
    for r in results:
        p = "-" if r.pvalue != r.pvalue else f"{r.pvalue:.3g}"
        rows.append((r.name, r.test, f"{r.statistic:.4g}", f"{r.threshold:.3g}", p, "pass" if r.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> int:
    from sdekit.validate.closed_form import CHECKS, run_checks

    names = args.checks or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"unknown check(s) {unknown}; known: {sorted(CHECKS)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = []
    for name in names:
        t0 = time.perf_counter()
        results.extend(run_checks([name], n_paths=args.paths, seed=args.seed, alpha=args.alpha))
        if args.verbose:
            print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(format_table(results))
    failed = sum(not r.passed for r in results)
    print(f"\n{len(results) - failed} passed, {failed} failed  ({len(names)} checks, N = {args.paths} paths, "
          f"alpha = {args.alpha:g} per check, {time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sdekit` console script."""
    parser = argparse.ArgumentParser(prog="sdekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="run built-in processes and solvers against their closed forms")
    val.add_argument("checks", nargs="*", help="names of checks to run (default: all)")
    val.add_argument("--paths", type=int, default=20_000, help="independent paths per check (default 20000)")
    val.add_argument("--seed", type=int, default=2026, help="seed of the noise streams (default 2026)")
    val.add_argument("--alpha", type=float, default=1e-6, help="false-alarm rate per check (default 1e-6)")
    val.add_argument("-v", "--verbose", action="store_true", help="print the time of each check")
    args = parser.parse_args(argv)
    return _validate(args)


if __name__ == "__main__":
    sys.exit(main())
