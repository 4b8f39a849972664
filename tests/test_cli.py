"""`sdekit validate`: the report records where it ran, figures and table rows carry the check names `--list`
prints, and the flags are checked before the battery is imported.

The one run here is the cheapest check with figures (brownian_motion_2d: 30 Euler–Maruyama steps, 1,000 paths).
"""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sdekit
from sdekit.cli import main
from sdekit.validate import suite
from sdekit.validate.provenance import cpu_model, git_commit, package_versions
from sdekit.validate.registry import Check
from sdekit.validate.report import Report
from sdekit.validate.stats import CheckResult

ROOT = Path(sdekit.__file__).resolve().parents[1]
MAX_SEED = 2**64 - 1


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_report_records_versions_machine_command_and_names_figures_after_checks(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["validate", "brownian_motion_2d", "--paths", "1000", "--seed", str(MAX_SEED), "--out", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    md = (out / "report.md").read_text()

    assert f"- command: `sdekit validate brownian_motion_2d --paths 1000 --seed {MAX_SEED} --out {out}`" in md
    for name in ("numba", "numpy", "scipy", "torch"):
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        assert f"{name} {version}" in md
    assert f"sdekit {sdekit.__version__}" in md
    machine = re.search(r"^- machine: (.*)$", md, re.M).group(1)
    assert cpu_model() in machine and f"{os.cpu_count()} logical cores" in machine
    if (ROOT / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert f"- git commit: {head.strip()}" in md

    assert [p.name for p in (out / "figures").iterdir()] == ["brownian_motion_2d.png"]
    assert "![brownian_motion_2d](figures/brownian_motion_2d.png)" in md and "### brownian_motion_2d\n" in md
    assert re.search(r"^brownian_motion_2d +pass ", table, re.M) and "| brownian_motion_2d | pass |" in md


def test_summary_table_and_report_use_the_listed_name(monkeypatch, tmp_path, capsys):
    """A check whose function names its report otherwise still appears under its key (the registry names it)."""
    def misnamed(n_paths, seed, alpha):
        """A check whose report has another name."""
        return Report("another name", alpha, [CheckResult("another name", "t", 0.0, 1.0, 0.5, True)], n=n_paths)

    monkeypatch.setitem(suite.SUITE, "listed_name", Check("listed_name", "none", misnamed, True))
    assert main(["validate", "listed_name", "--paths", "1000", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    md = (tmp_path / "report.md").read_text()
    assert re.search(r"^listed_name +pass ", table, re.M) and "another name" not in table
    assert "### listed_name\n\nA check whose report has another name." in md


def test_versions_without_a_package_or_git(monkeypatch, tmp_path):
    assert package_versions(["no-such-package-sdekit-test", "numpy"]) == {
        "no-such-package-sdekit-test": "not installed", "numpy": importlib.metadata.version("numpy")}
    assert git_commit(tmp_path) is None  # not a checkout
    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git on PATH
    assert git_commit(tmp_path) is None


def test_flags_are_checked_before_the_battery_is_imported_and_the_report_needs_no_torch():
    code = ("import sys\n"
            "from sdekit.cli import main\n"
            "try:\n    main(['validate', '--paths', '0'])\nexcept SystemExit as e:\n    assert e.code == 2\n"
            "assert 'sdekit.validate' not in sys.modules and 'sdekit.validate.suite' not in sys.modules\n"
            "from sdekit.validate.provenance import provenance_markdown\n"
            "assert 'torch' in provenance_markdown([])\n"
            "assert 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_a_folder_that_is_not_there_is_not_created_when_an_argument_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["validate", "no_such_check", "--out", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()


def test_reports_cross_processes_even_with_laws_built_from_closures(tmp_path):
    """A check's report goes back from a worker process by pickling; a law built from a closure (a user's CDF)
    cannot, so its panels are tabulated: the figure still draws, on values within interpolation error."""
    import pickle

    import numpy as np
    from scipy import stats

    from sdekit.validate.battery_run import portable
    from sdekit.validate.laws import Law1D
    from sdekit.validate.report import Panel

    scale = 2.0
    law = Law1D(lambda z: stats.norm.cdf(z, scale=scale), lambda z: stats.norm.pdf(z, scale=scale), (), "closure")
    values = np.random.default_rng(0).normal(0.0, scale, 500)
    report = Report("closure_check", 1e-6, [CheckResult("closure_check", "t", 0.0, 1.0, 0.5, True)],
                    [Panel("x", values, law)], 500)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(report)
    moved = pickle.loads(pickle.dumps(portable(report)))
    z = np.linspace(-5.0, 5.0, 101)
    assert np.max(np.abs(moved.panels[0].law.cdf(z) - stats.norm.cdf(z, scale=scale))) < 1e-4
    assert repr(moved.results) == repr(report.results)
    moved.figure(tmp_path / "closure.png")
    assert (tmp_path / "closure.png").stat().st_size > 5000


def test_validate_prints_no_library_warning_with_cold_kernel_caches(tmp_path):
    """The OU checks used to print Numba's 'Cannot cache compiled function ... dynamic globals' (and recompile in
    every process). A fresh kernel cache makes every kernel compile here, in a fresh process."""
    env = {**_env(), "SDEKIT_CACHE_DIR": str(tmp_path / "kernels"), "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-c", "import sys; from sdekit.cli import main; sys.exit(main())",
                           "validate", "ou_2d_em_law", "ou_2d_stationary", "--paths", "1000", "--out", "",
                           "--jobs", "1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]
