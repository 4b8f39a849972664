"""The report of a `sdekit validate` run: a summary table (one row per check) and report.md with figures.

report.md holds where the run happened (`provenance`), the summary table, and one section per
check (its `Report` as Markdown) with the figure figures/<check name>.png of its 1-D panels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sdekit.validate.provenance import provenance_markdown
from sdekit.validate.report import Report, padded_table


@dataclass(frozen=True)
class CheckRun:
    """One check's report, its wall time and the check's one-line description."""

    report: Report
    seconds: float
    description: str = ""


def summary_rows(runs: Sequence[CheckRun]) -> list[tuple[str, ...]]:
    """(check, verdict, gating tests, min p-value, seconds) per check, with a header row."""
    rows = [("check", "verdict", "tests", "min p-value", "seconds")]
    for run in runs:
        report, p = run.report, run.report.min_pvalue
        gating = [r for r in report.results if r.gating]
        rows.append((report.name, "pass" if report.passed else "FAIL", str(len(gating)),
                     "-" if p != p else f"{p:.3g}", f"{run.seconds:.1f}"))
    return rows


def format_summary(runs: Sequence[CheckRun]) -> str:
    """Plain-text summary table, one row per check."""
    return padded_table(summary_rows(runs))


def figure_name(check: str) -> str:
    """File name of a check's figure: its name with anything but letters, digits, '.', '_' and '-'
    replaced by '_', plus '.png'."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", check).strip("._")
    return (stem or "check") + ".png"


def write_report(folder: Path, runs: Sequence[CheckRun], header: str, figures: bool, failed_only: bool = False,
                 argv: Sequence[str] | None = None) -> Path:
    """Write report.md (provenance, summary table, one section per check) and figures/<check>.png to
    ``folder`` (for every check with 1-D panels, or only the failed ones when ``failed_only``).
    argv: the command's arguments, recorded as its command line."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# sdekit validation report", "", provenance_markdown(argv), "", header, ""]
    rows = summary_rows(runs)
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "---|" * len(rows[0]))
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    lines.append("")
    fig_dir = folder / "figures"
    for run in runs:
        report = run.report
        section = report.to_markdown()
        if run.description:
            heading, _, rest = section.partition("\n")
            section = f"{heading}\n\n{run.description}\n{rest}"
        lines.append(section)
        if figures and report.panels and not (failed_only and report.passed):
            fig_dir.mkdir(exist_ok=True)
            name = figure_name(report.name)
            report.figure(fig_dir / name, max_panels=4)
            lines.append(f"![{report.name}](figures/{name})\n")
    path = folder / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
