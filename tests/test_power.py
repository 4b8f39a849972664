"""The power table at one seed: every check catches at least one planted bug, every planted bug is
caught by at least one check, and no correct sampler is rejected.

Each check is a battery at overall alpha = 1e-6, so the correct rows' zero rejections are the
expected outcome (P(any false alarm) <= ~30 runs x 1e-6), and the bugs are caught with p-values
far below their thresholds (the committed table, benchmarks/results/power.md, has 8 seeds).
The seed is the first of the committed table's seeds, not a chosen one.

One test per case (the cases compile different kernels, so the two test workers share the work): in each,
no false alarm, every planted bug of the case caught by at least one check, and the checks listed for the
case in CATCHING all catch at least one of its bugs; together those lists cover every column, so every
check catches at least one planted bug somewhere (`test_every_check_catches_a_bug_in_some_case`).
"""

import pytest

from sdekit.validate.power import CASES, COLUMNS, coverage, power_table, to_markdown

SEED = 1000
# case -> the checks that catch at least one of its planted bugs at SEED (n = 20,000)
CATCHING = {
    "ou": {"KS", "CvM", "moments", "Stein", "MMD (diag.)", "generator", "Dynkin"},
    "langevin_gaussian": {"KS", "CvM", "moments", "Stein", "MMD (diag.)", "stationarity", "bias or bug"},
    "langevin_mixture": {"KS", "CvM", "moments", "Stein"},
    "double_well": {"generator", "FP chi2"},
    "gbm": {"KS", "CvM", "moments", "Stein", "MMD (diag.)", "strong order"},
    "vp": {"KS", "CvM", "moments", "Stein", "MMD (diag.)"},
    "mcmc_mixture": {"KS", "CvM", "moments", "Stein"},
}


def test_every_check_catches_a_bug_in_some_case():
    assert set(CATCHING) == set(CASES)
    assert set().union(*CATCHING.values()) == set(COLUMNS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_power_table_one_seed(case):
    rows = power_table([SEED], n=20_000, cases=[case])
    per_column, per_bug, false_alarms = coverage(rows)
    table = to_markdown(rows)
    assert false_alarms == 0, table
    assert len(per_bug) == sum(not r.correct for r in rows) >= 2, table
    assert all(k >= 1 for k in per_bug.values()), (per_bug, table)
    assert all(per_column[c] >= 1 for c in CATCHING[case]), (per_column, table)
