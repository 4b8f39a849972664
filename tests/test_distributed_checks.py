"""`sdekit validate` checks and the power table on a dask cluster: the same reports and counts as one process."""

import sys

import numpy as np
import pytest

from sdekit.cli import main
from sdekit.errors import SDEKitError
from sdekit.validate.battery_run import run_checks
from sdekit.validate.power import power_table

distributed = pytest.importorskip("distributed")

from sdekit.distributed.checks import power_table_on_cluster, run_checks_on_cluster  # noqa: E402

CHEAP_CHECKS = ["ou_2d_stationary", "ou_2d_em_law"]  # cheap, and one set of kernels
N_PATHS, SEED, ALPHA = 1000, 7, 1e-6



def outcomes(report):
    return [(r.name, r.test, r.statistic, r.threshold, r.pvalue, r.passed, r.gating, r.alpha) for r in report.results]


def test_checks_on_the_cluster_equal_the_in_process_reports(client):
    local = run_checks(CHEAP_CHECKS, N_PATHS, SEED, ALPHA, jobs=1)
    seen = []
    remote = run_checks_on_cluster(CHEAP_CHECKS, N_PATHS, SEED, ALPHA, client=client, progress=False,
                                   on_done=lambda name, report, seconds: seen.append(name))
    assert sorted(seen) == sorted(CHEAP_CHECKS)
    assert [r.name for r, _ in remote] == CHEAP_CHECKS  # in the order asked, not of completion
    for (mine, _), (theirs, _) in zip(local, remote):
        assert outcomes(mine) == outcomes(theirs)
        assert mine.passed == theirs.passed
        assert len(mine.panels) == len(theirs.panels)
        for a, b in zip(mine.panels, theirs.panels):
            assert np.array_equal(a.values, b.values)


def test_a_different_seed_changes_the_reports(client):
    """The equality above is not vacuous: the statistics depend on the seed the tasks receive."""
    (a, _), = run_checks_on_cluster(CHEAP_CHECKS[:1], N_PATHS, SEED, ALPHA, client=client, progress=False)
    (b, _), = run_checks_on_cluster(CHEAP_CHECKS[:1], N_PATHS, SEED + 1, ALPHA, client=client, progress=False)
    assert outcomes(a) != outcomes(b)


def test_cli_runs_the_checks_on_a_scheduler(client, capsys):
    address = client.scheduler.address
    code = main(["validate", *CHEAP_CHECKS, "--paths", str(N_PATHS), "--seed", str(SEED), "--out", "",
                 "--scheduler", address])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 of 2 checks passed" in out
    for name in CHEAP_CHECKS:
        assert name in out


def test_cli_starts_its_own_local_cluster(capsys):
    """--cluster N: the CLI starts a LocalCluster of N worker processes, runs the checks there, and stops it."""
    code = main(["validate", CHEAP_CHECKS[1], "--paths", str(N_PATHS), "--seed", str(SEED), "--out", "",
                 "--cluster", "1"])
    captured = capsys.readouterr()
    assert code == 0 and "1 of 1 checks passed" in captured.out and CHEAP_CHECKS[1] in captured.out
    assert "Warning" not in captured.err  # dask's start-up stays quiet


@pytest.mark.parametrize("argv, message", [
    (["--cluster", "2", "--jobs", "2"], "--jobs: not allowed with --cluster"),
    (["--cluster", "2", "--scheduler", "tcp://127.0.0.1:1"], "not allowed with argument"),
    (["--cluster", "0"], "--cluster: must be an integer from 1"),
])
def test_cli_refuses_conflicting_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", CHEAP_CHECKS[0], "--out", "", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_check_is_refused():
    with pytest.raises(SDEKitError, match="names must be checks"):
        run_checks_on_cluster(["no_such_check"], N_PATHS, SEED, ALPHA)


def test_power_table_on_the_cluster_equals_the_serial_table(client):
    serial = power_table([1, 2], n=2000, cases=["vp"])
    sharded = power_table_on_cluster([1, 2], n=2000, cases=["vp"], client=client, progress=False)
    assert any(r.correct for r in serial) and any(not r.correct and any(r.rejected.values()) for r in serial)
    assert [(r.case, r.variant, r.correct, r.seeds, r.rejected) for r in serial] == \
        [(r.case, r.variant, r.correct, r.seeds, r.rejected) for r in sharded]
    with pytest.raises(SDEKitError, match="cases must be"):
        power_table_on_cluster([1], n=2000, cases=["nope"], client=client)


def test_cli_without_dask_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", CHEAP_CHECKS[0], "--out", "", "--cluster", "2"])
    assert exit_info.value.code == 2
    assert "sdekit[distributed]" in capsys.readouterr().err
