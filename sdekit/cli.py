"""The `sdekit` command: `sdekit validate` runs the validation battery over everything sdekit ships.

Each check returns a `Report`; the command prints one summary row per check, writes the full
report (Markdown, one table per check, with the versions, machine and command line of the run)
and figures (QQ plots and histograms against the exact laws, figures/<check>.png) to a folder,
and exits 1 if any check failed, 2 on a bad argument (before anything runs).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

# --paths bounds. Every gating test's threshold comes from a large-sample law (the Kolmogorov and
# Cramér–von Mises limits, the chi-square of the moment test, the normal limit of the Stein statistic)
# read far in its tail: alpha = 1e-6 per check, Bonferroni over ~10-30 tests, ~1e-8 per test. Below
# about a thousand paths those approximations are not accurate there, so the stated false-alarm rate
# would not hold (and the checks lose the power to see the planted bugs). The upper bound keeps the
# largest arrays (the generator check draws 5 N one-step samples) within a few GB.
MIN_PATHS, MAX_PATHS = 1_000, 10_000_000
MAX_SEED = 2**64 - 1  # the seeds sdekit.simulate accepts: 0 .. 2**64 - 1


def paths_arg(text: str) -> int:
    """--paths: an integer in [MIN_PATHS, MAX_PATHS]."""
    bounds = f"an integer from {MIN_PATHS} to {MAX_PATHS}"
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {bounds}; got {text!r}") from None
    if n < MIN_PATHS:
        raise argparse.ArgumentTypeError(f"must be {bounds} (the tests' large-sample thresholds need at least "
                                         f"{MIN_PATHS} paths to hold their false-alarm rate); got {text!r}")
    if n > MAX_PATHS:
        raise argparse.ArgumentTypeError(f"must be {bounds} (memory); got {text!r}")
    return n


def alpha_arg(text: str) -> float:
    """--alpha: a finite number strictly between 0 and 1."""
    try:
        a = float(text)
    except ValueError:
        a = math.nan
    if not 0.0 < a < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), the false-alarm rate per check; got {text!r}")
    return a


def seed_arg(text: str) -> int:
    """--seed: an integer in [0, 2**64 - 1], the range of sdekit.simulate's seeds."""
    try:
        s = int(text)
    except ValueError:
        s = -1
    if not 0 <= s <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**64 - 1] (the seeds sdekit.simulate "
                                         f"accepts); got {text!r}")
    return s


def jobs_arg(text: str) -> int:
    """--jobs: an integer in [1, 256], the number of worker processes."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 256 (worker processes); got {text!r}")
    return n


def out_folder_problem(value: str) -> str | None:
    """Why report.md and figures cannot be written to the folder ``value``, or None when they can.

    Refuses an existing file, a path under a file and a folder (or nearest existing parent) in which
    nothing can be created; the probe creates and removes a temporary folder, leaving nothing behind.
    """
    path = Path(value).expanduser()
    try:
        if path.exists() and not path.is_dir():
            return f"{value!r} is a file, not a folder"
        existing = path
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{value!r} lies under {str(existing)!r}, which is a file"
        with tempfile.TemporaryDirectory(dir=existing, prefix=".sdekit-write-probe-"):
            pass
    except OSError as exc:
        return f"cannot write to {value!r} ({exc.strerror or exc})"
    return None


def check_names(names: Sequence[str], known: Sequence[str]) -> str | None:
    """Why ``names`` is not a list of distinct known check names, or None."""
    for i, name in enumerate(names):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            return f"unknown check {name!r}; {hint}`sdekit validate --list` shows the {len(known)} checks"
        if name in names[:i]:
            return f"check {name!r} is given twice"
    return None


def _validate(args: argparse.Namespace, argv: Sequence[str] | None, error: Callable[[str], NoReturn]) -> int:
    if not args.list and args.out:
        problem = out_folder_problem(args.out)
        if problem:
            error(f"argument --out: {problem}")
    from sdekit.validate.suite import SUITE  # the battery (imports numba kernels): only after the flags passed

    if args.list:
        for name, check in SUITE.items():
            print(f"{name:36s} {'quick' if check.quick else '     '}  {check.solver}")
        return 0
    problem = check_names(args.checks, list(SUITE))
    if problem:
        error(f"argument checks: {problem}")
    names = args.checks or [n for n, c in SUITE.items() if c.quick or not args.quick]

    from sdekit.validate.battery_report import CheckRun, format_summary, write_report
    from sdekit.validate.battery_run import available_cores, run_checks

    n_paths = args.paths if args.paths is not None else (5_000 if args.quick else 20_000)
    jobs = args.jobs if args.jobs is not None else available_cores()
    on_cluster = args.scheduler is not None or args.cluster is not None
    if on_cluster:
        flag = "--scheduler" if args.scheduler is not None else "--cluster"
        if args.jobs is not None and args.jobs > 1:
            error(f"argument --jobs: not allowed with {flag} (the cluster's workers run the checks)")
        from sdekit.errors import SDEKitError

        try:  # sdekit.distributed itself raises on import without dask
            from sdekit.distributed.cluster import require_distributed

            require_distributed()
        except SDEKitError as exc:
            error(f"argument {flag}: {exc}")
    start = time.perf_counter()

    def done(name: str, report: object, seconds: float) -> None:
        if args.verbose:
            print(f"  {name}: {'pass' if report.passed else 'FAIL'} ({seconds:.1f} s)", file=sys.stderr)

    if on_cluster:
        finished = _run_on_cluster(args, names, n_paths, done, error)
    else:
        finished = run_checks(names, n_paths, args.seed, args.alpha, jobs, on_done=done)
    runs = [CheckRun(report, seconds, SUITE[name].description) for name, (report, seconds) in zip(names, finished)]
    print(format_summary(runs))
    failed = sum(not r.report.passed for r in runs)
    n_tests = sum(sum(x.gating for x in r.report.results) for r in runs)
    header = (f"{len(runs) - failed} of {len(runs)} checks passed; {n_tests} gating tests; N = {n_paths} paths; "
              f"seed {args.seed}; overall alpha = {args.alpha:g} per check (Bonferroni inside), so "
              f"P(any false alarm) <= {args.alpha * len(runs):.2g}")
    if args.out:
        figures = not args.no_figures
        if figures:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                figures = False
                print("matplotlib is not installed (pip install 'sdekit[plots]'): writing the report without figures",
                      file=sys.stderr)
        path = write_report(Path(args.out).expanduser(), runs, header, figures, failed_only=args.quick, argv=argv)
        print(f"\nreport: {path}")
    print(f"\n{header}  ({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def _run_on_cluster(args: argparse.Namespace, names: list[str], n_paths: int,
                    done: Callable[[str, object, float], None],
                    error: Callable[[str], NoReturn]) -> list[tuple[object, float]]:
    """The checks on the dask scheduler at --scheduler, or on a local cluster of --cluster worker processes (each
    with cores // N threads), one task per check."""
    from sdekit.distributed.checks import run_checks_on_cluster
    from sdekit.distributed.cluster import cluster, local_cores
    from sdekit.errors import SDEKitError

    threads = max(1, local_cores() // (args.cluster or 1))
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(cluster(args.scheduler, n_workers=args.cluster, threads_per_worker=threads))
        except SDEKitError as exc:  # e.g. no scheduler at that address
            error(f"argument --scheduler: {exc}")
        return run_checks_on_cluster(names, n_paths, args.seed, args.alpha, client=client,
                                     progress=False if args.verbose else None, on_done=done)


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The `sdekit` parser and its `validate` subparser; every flag value is checked by its type."""
    parser = argparse.ArgumentParser(prog="sdekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="run the validation battery over sdekit's processes, solvers and samplers")
    val.add_argument("checks", nargs="*", help="names of checks to run (default: all; see --list)")
    val.add_argument("--quick", action="store_true",
                     help="the quick subset with N = 5000 paths, figures of failed checks only (under a minute on "
                          "2 cores, caches cold)")
    val.add_argument("--paths", type=paths_arg, default=None, metavar="N",
                     help=f"independent paths per check, {MIN_PATHS} to {MAX_PATHS} (default 20000; 5000 with "
                          "--quick)")
    val.add_argument("--seed", type=seed_arg, default=2026, metavar="S",
                     help="seed of the noise streams, 0 to 2**64 - 1 (default 2026)")
    val.add_argument("--alpha", type=alpha_arg, default=1e-6, metavar="A",
                     help="false-alarm rate per check, in (0, 1) (default 1e-6)")
    val.add_argument("--out", default="sdekit-validation", metavar="DIR",
                     help="folder for report.md and figures (default ./sdekit-validation; '' for none)")
    val.add_argument("--no-figures", action="store_true", help="write the Markdown report without figures")
    val.add_argument("--list", action="store_true", help="list the checks and exit")
    val.add_argument("-j", "--jobs", type=jobs_arg, default=None, metavar="J",
                     help="checks run in J worker processes side by side, same reports (default: one per core)")
    where = val.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the checks on the dask cluster of this scheduler (e.g. tcp://10.0.0.5:8786), one "
                            "task per check, same reports (needs pip install 'sdekit[distributed]')")
    where.add_argument("--cluster", type=jobs_arg, default=None, metavar="N",
                       help="run the checks on a local dask cluster of N worker processes, same reports (needs pip "
                            "install 'sdekit[distributed]')")
    val.add_argument("-v", "--verbose", action="store_true", help="print each check's verdict and time as it runs")
    return parser, val


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sdekit` console script: 0 all checks passed, 1 a check failed, 2 a bad argument."""
    parser, val = build_parser()
    args = parser.parse_args(argv)
    return _validate(args, argv, val.error)


if __name__ == "__main__":
    sys.exit(main())
