"""pytest plugin: print the false-alarm budget a test run spent (opt in with
``pytest_plugins = ["sdekit.pytest_plugin"]`` in a conftest.py).

Every calibrated test sdekit runs spends its alpha on `sdekit.validate.budget.BUDGET`; by the
union bound, the printed total bounds the probability that any of them was a false alarm. Under
pytest-xdist each worker sends its ledger to the controller, which prints the sum.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from sdekit.validate.budget import BUDGET, FalseAlarmBudget

_FROM_WORKERS = FalseAlarmBudget()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """On an xdist worker: hand this process's ledger to the controller."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["sdekit_budget"] = {"total": BUDGET.total, "count": BUDGET.count, "by_test": dict(BUDGET.by_test)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: add a finished worker's ledger."""
    data = getattr(node, "workeroutput", {}).get("sdekit_budget")
    if data:
        _FROM_WORKERS.total += data["total"]
        _FROM_WORKERS.count += data["count"]
        _FROM_WORKERS.by_test.update(Counter(data["by_test"]))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Write the ledger's summary line at the end of the run (this process's plus the workers')."""
    total = FalseAlarmBudget(BUDGET.total + _FROM_WORKERS.total, BUDGET.count + _FROM_WORKERS.count,
                             BUDGET.by_test + _FROM_WORKERS.by_test)
    if total.count:
        terminalreporter.write_sep("-", "sdekit false-alarm budget")
        terminalreporter.write_line(total.summary())
