"""pytest plugin: print the false-alarm budget a test run spent (opt in with
``pytest_plugins = ["sdekit.pytest_plugin"]`` in a conftest.py).

Every calibrated test sdekit runs spends its alpha on `sdekit.validate.budget.BUDGET`; by the
union bound, the printed total bounds the probability that any of them was a false alarm.
"""

from __future__ import annotations

from typing import Any

from sdekit.validate.budget import BUDGET


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Write the ledger's summary line at the end of the run."""
    if BUDGET.count:
        terminalreporter.write_sep("-", "sdekit false-alarm budget")
        terminalreporter.write_line(BUDGET.summary())
