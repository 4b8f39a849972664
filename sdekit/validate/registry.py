"""The registry behind `sdekit validate`: a `Check` per name, and the tables the check modules fill.

Each module of checks (`closed_form`, `suite`, `mcmc_checks`) owns a table, ``name -> Check``,
and fills it with the decorator from `registrar`; `suite.SUITE` joins the tables in the order
they run (`join_tables`). This module sits below all of them, so none imports another for
the registry.

A check's name is the one `sdekit validate --list` prints, the key of its table, the name of
the `Report` it returns (its heading in report.md, its row in the summary table) and the stem
of its figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdekit.validate.report import Report

CheckFn = Callable[[int, int, float], "Report"]


@dataclass(frozen=True)
class Check:
    """A named check of the battery: ``fn(n_paths, seed, alpha) -> Report``.

    solver: the solver(s) or sampler(s) it exercises (shown by ``--list``); quick: part of
    `sdekit validate --quick`.
    """

    name: str
    solver: str
    fn: CheckFn
    quick: bool = True

    def run(self, n_paths: int, seed: int, alpha: float) -> Report:
        """Run the check; the report carries the check's name (the one ``--list`` prints)."""
        report = self.fn(n_paths, seed, alpha)
        return report if report.name == self.name else dataclasses.replace(report, name=self.name)

    @property
    def description(self) -> str:
        """First line of the check function's docstring."""
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def registrar(table: dict[str, Check]) -> Callable[..., Callable[[CheckFn], CheckFn]]:
    """The decorator ``register(name, solver, quick=True)`` that adds a check function to ``table``."""
    def register(name: str, solver: str, quick: bool = True) -> Callable[[CheckFn], CheckFn]:
        def deco(fn: CheckFn) -> CheckFn:
            if name in table:
                raise ValueError(f"check {name!r} is already registered")
            table[name] = Check(name, solver, fn, quick)
            return fn
        return deco
    return register


def join_tables(*tables: Mapping[str, Check]) -> dict[str, Check]:
    """One table from several, in order; a name registered twice is an error."""
    out: dict[str, Check] = {}
    for table in tables:
        for name, check in table.items():
            if name in out:
                raise ValueError(f"check {name!r} is registered twice")
            out[name] = check
    return out
