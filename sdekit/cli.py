"""The `sdekit` command: `sdekit validate` runs the validation battery over everything sdekit ships.

Each check returns a `Report`; the command prints one summary row per check, writes the full
report (Markdown, one table per check) and figures (QQ plots and histograms against the exact
laws) to a folder, and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sdekit.validate.report import Report


def summary_rows(reports: list[tuple[Report, float]]) -> list[tuple[str, ...]]:
    """(check, verdict, gating tests, min p-value, seconds) per report, with a header row."""
    rows = [("check", "verdict", "tests", "min p-value", "seconds")]
    for report, seconds in reports:
        gating = [r for r in report.results if r.gating]
        p = report.min_pvalue
        rows.append((report.name, "pass" if report.passed else "FAIL", str(len(gating)),
                     "-" if p != p else f"{p:.3g}", f"{seconds:.1f}"))
    return rows


def format_summary(reports: list[tuple[Report, float]]) -> str:
    """Plain-text summary table, one row per check."""
    rows = summary_rows(reports)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_report(folder: Path, reports: list[tuple[Report, float]], header: str, figures: bool,
                 failed_only: bool = False) -> Path:
    """Write report.md (summary table and one section per check) and figures/<n>.png to ``folder``
    (for every check with 1-D panels, or only the failed ones when ``failed_only``)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# sdekit validation report", "", header, ""]
    rows = summary_rows(reports)
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "---|" * len(rows[0]))
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines.append("")
    fig_dir = folder / "figures"
    plotted = 0
    for i, (report, _) in enumerate(reports):
        lines.append(report.to_markdown())
        if figures and report.panels and not (failed_only and report.passed):
            fig_dir.mkdir(exist_ok=True)
            name = f"{i:02d}.png"
            report.figure(fig_dir / name, max_panels=4)
            lines.append(f"![{report.name}](figures/{name})\n")
            plotted += 1
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def _validate(args: argparse.Namespace) -> int:
    from sdekit.validate.suite import SUITE

    if args.list:
        for name, check in SUITE.items():
            print(f"{name:36s} {'quick' if check.quick else '     '}  {check.solver}")
        return 0
    names = args.checks or [n for n, c in SUITE.items() if c.quick or not args.quick]
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        print(f"unknown check(s) {unknown}; known: {sorted(SUITE)}", file=sys.stderr)
        return 2
    n_paths = args.paths if args.paths is not None else (5_000 if args.quick else 20_000)
    start = time.perf_counter()
    reports: list[tuple[Report, float]] = []
    for name in names:
        t0 = time.perf_counter()
        report = SUITE[name].run(n_paths, args.seed, args.alpha)
        reports.append((report, time.perf_counter() - t0))
        if args.verbose:
            print(f"  {name}: {'pass' if report.passed else 'FAIL'} ({reports[-1][1]:.1f} s)", file=sys.stderr)
    print(format_summary(reports))
    failed = sum(not r.passed for r, _ in reports)
    n_tests = sum(sum(x.gating for x in r.results) for r, _ in reports)
    header = (f"{len(reports) - failed} of {len(reports)} checks passed; {n_tests} gating tests; N = {n_paths} paths; "
              f"seed {args.seed}; overall alpha = {args.alpha:g} per check (Bonferroni inside), so "
              f"P(any false alarm) <= {args.alpha * len(reports):.2g}")
    if args.out:
        figures = not args.no_figures
        if figures:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                figures = False
                print("matplotlib is not installed (pip install 'sdekit[plots]'): writing the report without figures",
                      file=sys.stderr)
        path = write_report(Path(args.out), reports, header, figures, failed_only=args.quick)
        print(f"\nreport: {path}")
    print(f"\n{header}  ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sdekit` console script."""
    parser = argparse.ArgumentParser(prog="sdekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="run the validation battery over sdekit's processes, solvers and samplers")
    val.add_argument("checks", nargs="*", help="names of checks to run (default: all; see --list)")
    val.add_argument("--quick", action="store_true",
                     help="the quick subset with N = 5000 paths, figures of failed checks only (under a minute)")
    val.add_argument("--paths", type=int, default=None, help="independent paths per check (default 20000)")
    val.add_argument("--seed", type=int, default=2026, help="seed of the noise streams (default 2026)")
    val.add_argument("--alpha", type=float, default=1e-6, help="false-alarm rate per check (default 1e-6)")
    val.add_argument("--out", default="sdekit-validation",
                     help="folder for report.md and figures (default ./sdekit-validation; '' for none)")
    val.add_argument("--no-figures", action="store_true", help="write the Markdown report without figures")
    val.add_argument("--list", action="store_true", help="list the checks and exit")
    val.add_argument("-v", "--verbose", action="store_true", help="print each check's verdict and time as it runs")
    args = parser.parse_args(argv)
    return _validate(args)


if __name__ == "__main__":
    sys.exit(main())
