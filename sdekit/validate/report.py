"""A validation report: the results of a battery, rendered as a text table, as Markdown and as a figure.

The figure has one column per tested 1-D feature (marginals and projections): a QQ plot of the
sample against the exact law on top, and a histogram with the exact density overlaid below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdekit.validate.checks import check_output_path
from sdekit.validate.laws import Law1D
from sdekit.validate.stats import CheckResult


@dataclass(frozen=True)
class Panel:
    """One 1-D feature for the figure: its label, the sample values and the exact law."""

    label: str
    values: np.ndarray
    law: Law1D


def _fmt_bias(bias: tuple[float, ...], width: int = 3) -> str:
    """Largest |standardized bias| with its sign, e.g. '+1.2 (max of 5)'."""
    if not bias:
        return "-"
    b = np.asarray(bias)
    k = int(np.argmax(np.abs(b)))
    return f"{b[k]:+.2f}" + (f" (max of {b.size})" if b.size > 1 else "")


def _fmt_p(p: float) -> str:
    return "-" if p != p else f"{p:.3g}"


def results_table(results: Sequence[CheckResult]) -> list[tuple[str, ...]]:
    """Rows (check, test, statistic, threshold, p-value, max std. bias, verdict) with a header row."""
    rows = [("check", "test", "statistic", "threshold", "p-value", "std. bias", "verdict")]
    for r in results:
        rows.append((r.name, r.test, f"{r.statistic:.4g}", f"{r.threshold:.4g}", _fmt_p(r.pvalue),
                     _fmt_bias(r.bias), r.verdict))
    return rows


def format_text(results: Sequence[CheckResult]) -> str:
    """Plain-text table of results, columns padded to equal width."""
    return padded_table(results_table(results))


def padded_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells (the first is the header) as plain text: columns padded to equal width, a dashed rule under
    the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(results: Sequence[CheckResult]) -> str:
    """GitHub-flavoured Markdown table of results."""
    rows = results_table(results)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for row in rows[1:]:
        cells = [c.replace("|", "\\|") for c in row]
        if row[-1] in ("FAIL", "flag"):
            cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


@dataclass
class Report:
    """Results of a validation battery at overall false-alarm rate ``alpha``.

    passed: every gating result passed (diagnostics never fail a report).
    """

    name: str
    alpha: float
    results: list[CheckResult]
    panels: list[Panel] = field(default_factory=list)
    n: int = 0

    @property
    def passed(self) -> bool:
        """True when every gating test passed."""
        return all(r.passed for r in self.results if r.gating)

    @property
    def failures(self) -> list[CheckResult]:
        """The gating tests that rejected."""
        return [r for r in self.results if r.gating and not r.passed]

    @property
    def min_pvalue(self) -> float:
        """Smallest p-value among gating tests (nan if none has one)."""
        ps = [r.pvalue for r in self.results if r.gating and r.pvalue == r.pvalue]
        return min(ps) if ps else float("nan")

    def summary(self) -> str:
        """One line: name, verdict, number of gating tests, N and alpha."""
        gating = [r for r in self.results if r.gating]
        verdict = "PASS" if self.passed else f"FAIL ({len(self.failures)} of {len(gating)} tests rejected)"
        return (f"{self.name}: {verdict}; {len(gating)} gating tests, N = {self.n}, overall alpha = {self.alpha:g} "
                f"(Bonferroni), min p = {_fmt_p(self.min_pvalue)}")

    def to_text(self) -> str:
        """Text table followed by the summary line."""
        return format_text(self.results) + "\n" + self.summary()

    def to_markdown(self) -> str:
        """Markdown section: heading, summary and table."""
        return f"### {self.name}\n\n{self.summary()}\n\n{format_markdown(self.results)}\n"

    def __str__(self) -> str:
        return self.to_text()

    def figure(self, path: str | Path | None = None, max_panels: int = 8) -> Any:
        """QQ plots (top row) and histograms with the exact density (bottom row) for up to
        ``max_panels`` features; saved to ``path`` when given. Needs matplotlib (extra ``plots``)."""
        return plot_panels(self.panels[:max_panels], title=self.summary(), path=path)


def plot_panels(panels: Sequence[Panel], title: str = "", path: str | Path | None = None) -> Any:
    """Figure with a QQ plot and a density-overlaid histogram per panel."""
    if path is not None:
        path = check_output_path(path)
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = max(len(panels), 1)
    fig, axes = plt.subplots(2, k, figsize=(3.0 * k, 5.6), squeeze=False)
    for j, panel in enumerate(panels):
        x = np.sort(panel.values)
        n = x.shape[0]
        q = (np.arange(1, n + 1) - 0.5) / n
        idx = np.unique(np.linspace(0, n - 1, min(n, 400)).astype(int))
        theo = panel.law.ppf(q[idx])
        ax = axes[0, j]
        ax.plot(theo, x[idx], ".", ms=2.5)
        lo, hi = float(min(theo[0], x[0])), float(max(theo[-1], x[-1]))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.7)
        ax.set_title(panel.label, fontsize=8)
        ax.set_xlabel("exact quantile", fontsize=7)
        ax.set_ylabel("sample quantile", fontsize=7)
        ax = axes[1, j]
        ax.hist(x, bins=max(10, min(80, int(math.sqrt(n)))), density=True, alpha=0.5)
        if panel.law.pdf is not None:
            grid = np.linspace(x[0], x[-1], 400)
            ax.plot(grid, panel.law.pdf(grid), "k-", lw=1.0)
        ax.set_xlabel("value", fontsize=7)
        for a in axes[:, j]:
            a.tick_params(labelsize=6)
    for j in range(len(panels), k):
        axes[0, j].axis("off")
        axes[1, j].axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.09, top=0.88, wspace=0.35, hspace=0.4)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
