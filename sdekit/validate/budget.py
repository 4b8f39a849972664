"""The false-alarm budget: every calibrated test sdekit runs spends its alpha on a process-wide ledger.

By the union bound, P(any false alarm in a run) <= sum of the alphas spent, whatever the
dependence between the tests. A test suite prints this sum at the end (the pytest plugin in
`sdekit.testing.pytest_plugin` does), so the suite's flake rate is a number, not a hope.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FalseAlarmBudget:
    """Ledger of the alphas spent: ``total`` = sum alpha_i bounds P(any false alarm) (union bound)."""

    total: float = 0.0
    count: int = 0
    by_test: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spend(self, alpha: float, test: str = "") -> None:
        """Record one calibrated test run at false-alarm rate alpha (nan or 0 is ignored)."""
        if not alpha or math.isnan(alpha):
            return
        with self._lock:
            self.total += float(alpha)
            self.count += 1
            self.by_test[test.split(" ")[0] or "test"] += 1

    def reset(self) -> None:
        """Forget everything spent so far."""
        with self._lock:
            self.total, self.count = 0.0, 0
            self.by_test.clear()

    def summary(self) -> str:
        """'N calibrated tests, total alpha = X: P(any false alarm) <= X (union bound)'."""
        kinds = ", ".join(f"{k} {v}" for k, v in self.by_test.most_common(8))
        return (f"false-alarm budget: {self.count} calibrated tests ({kinds}); total alpha spent = {self.total:.3g}, "
                f"so P(any false alarm in this run) <= {self.total:.3g} (union bound)")


BUDGET = FalseAlarmBudget()
