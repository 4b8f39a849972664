"""Bad values for every flag of `sdekit validate`: each is refused before anything runs, with one line on stderr
naming the flag (argparse's `prog: error: argument FLAG: ...`), exit code 2 and no traceback.

Each case is (id, argv from a temporary folder, expected exception, regex naming the argument). The flag cases
name one cheap check and ``--out ''`` so that, were a value accepted, the run would be short and write nothing.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdekit
from sdekit.cli import MAX_PATHS, MAX_SEED, MIN_PATHS, build_parser, main

CHEAP = ["validate", "weak_order_em_ou_exact", "--out", ""]


def flag(*args: str):
    return lambda tmp: [*CHEAP, *args]


def out_to(make_path):
    return lambda tmp: ["validate", "weak_order_em_ou_exact", "--out", str(make_path(tmp))]


def a_file(tmp: Path) -> Path:
    path = tmp / "report.md"
    path.write_text("not a folder")
    return path


def unwritable_folder(tmp: Path) -> Path:
    """A folder nothing can be created in: chmod 500 for an ordinary user; root ignores modes, so /sys (sysfs)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


PATHS = r"argument --paths: must be an integer from 1000 to 10000000"
ALPHA = r"argument --alpha: must be a number in \(0, 1\)"
SEED = r"argument --seed: must be an integer in \[0, 2\*\*64 - 1\]"
JOBS = r"argument -j/--jobs: must be an integer from 1 to 256"

CASES = [
    ("paths-zero", flag("--paths", "0"), SystemExit, PATHS + r".*got '0'"),
    ("paths-negative", flag("--paths", "-5"), SystemExit, PATHS + r".*got '-5'"),
    ("paths-ten", flag("--paths", "10"), SystemExit, PATHS + r" \(the tests' large-sample thresholds"),
    ("paths-one-below-minimum", flag("--paths", str(MIN_PATHS - 1)), SystemExit, PATHS + r".*got '999'"),
    ("paths-above-maximum", flag("--paths", str(MAX_PATHS + 1)), SystemExit, PATHS + r" \(memory\)"),
    ("paths-fraction", flag("--paths", "1500.5"), SystemExit, PATHS + r"; got '1500.5'"),
    ("paths-scientific", flag("--paths", "1e4"), SystemExit, PATHS + r"; got '1e4'"),
    ("paths-word", flag("--paths", "many"), SystemExit, PATHS + r"; got 'many'"),
    ("paths-empty", flag("--paths", ""), SystemExit, PATHS + r"; got ''"),
    ("alpha-zero", flag("--alpha", "0"), SystemExit, ALPHA + r".*got '0'"),
    ("alpha-one", flag("--alpha", "1"), SystemExit, ALPHA + r".*got '1'"),
    ("alpha-two", flag("--alpha", "2"), SystemExit, ALPHA + r".*got '2'"),
    ("alpha-negative", flag("--alpha", "-0.01"), SystemExit, ALPHA + r".*got '-0.01'"),
    ("alpha-nan", flag("--alpha", "nan"), SystemExit, ALPHA + r".*got 'nan'"),
    ("alpha-inf", flag("--alpha", "inf"), SystemExit, ALPHA + r".*got 'inf'"),
    ("alpha-minus-inf", flag("--alpha=-inf"), SystemExit, ALPHA + r".*got '-inf'"),
    ("alpha-word", flag("--alpha", "small"), SystemExit, ALPHA + r".*got 'small'"),
    ("alpha-minus-inf-as-option", flag("--alpha", "-inf"), SystemExit, r"argument --alpha: expected one argument"),
    ("seed-negative", flag("--seed", "-1"), SystemExit, SEED + r".*got '-1'"),
    ("seed-2**64", flag("--seed", str(MAX_SEED + 1)), SystemExit, SEED + r".*got '18446744073709551616'"),
    ("seed-2**70-digits", flag("--seed", str(2**70)), SystemExit, SEED + rf".*got '{2**70}'"),
    ("seed-2**70-expression", flag("--seed", "2**70"), SystemExit, SEED + r".*got '2\*\*70'"),
    ("seed-fraction", flag("--seed", "1.5"), SystemExit, SEED + r".*got '1.5'"),
    ("seed-word", flag("--seed", "lucky"), SystemExit, SEED + r".*got 'lucky'"),
    ("jobs-zero", flag("--jobs", "0"), SystemExit, JOBS + r".*got '0'"),
    ("jobs-negative", flag("-j", "-2"), SystemExit, r"argument -j/--jobs: expected one argument|" + JOBS),
    ("jobs-word", flag("--jobs", "all"), SystemExit, JOBS + r".*got 'all'"),
    ("jobs-too-many", flag("--jobs", "1000"), SystemExit, JOBS + r".*got '1000'"),
    ("check-unknown", lambda tmp: ["validate", "no_such_check", "--out", ""], SystemExit,
     r"argument checks: unknown check 'no_such_check'; `sdekit validate --list` shows the \d+ checks"),
    ("check-typo", lambda tmp: ["validate", "gbm_itoem", "--out", ""], SystemExit,
     r"argument checks: unknown check 'gbm_itoem'; did you mean gbm_ito_em"),
    ("check-unknown-after-known", lambda tmp: ["validate", "weak_order_em_ou_exact", "nope", "--out", ""],
     SystemExit, r"argument checks: unknown check 'nope'"),
    ("check-twice", lambda tmp: ["validate", "weak_order_em_ou_exact", "weak_order_em_ou_exact", "--out", ""],
     SystemExit, r"argument checks: check 'weak_order_em_ou_exact' is given twice"),
    ("out-existing-file", out_to(a_file), SystemExit, r"argument --out: '.*report\.md' is a file, not a folder"),
    ("out-under-a-file", out_to(lambda tmp: a_file(tmp) / "sub" / "dir"), SystemExit,
     r"argument --out: '.*report\.md/sub/dir' lies under '.*report\.md', which is a file"),
    ("out-unwritable-folder", out_to(unwritable_folder), SystemExit, r"argument --out: cannot write to '.*'"),
    ("out-new-folder-in-unwritable-folder", out_to(lambda tmp: unwritable_folder(tmp) / "sdekit-report"),
     SystemExit, r"argument --out: cannot write to '.*sdekit-report'"),
]


@pytest.mark.parametrize("make_argv, expected, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_flag_value_exits_2_with_one_line_naming_the_flag(make_argv, expected, pattern, tmp_path, capsys):
    argv = make_argv(tmp_path)
    with pytest.raises(expected) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("sdekit validate: error: "), captured.err
    assert re.search(pattern, errors[0]), errors[0]
    assert not list(tmp_path.rglob("*sdekit-write-probe*"))  # the --out probe leaves nothing behind


@pytest.mark.parametrize("args, field, value", [
    (["--paths", str(MIN_PATHS)], "paths", MIN_PATHS),
    (["--paths", str(MAX_PATHS)], "paths", MAX_PATHS),
    (["--paths", "20_000"], "paths", 20_000),
    (["--seed", "0"], "seed", 0),
    (["--seed", str(MAX_SEED)], "seed", MAX_SEED),
    (["--alpha", "1e-12"], "alpha", 1e-12),
    (["--alpha", "0.999"], "alpha", 0.999),
], ids=["paths-minimum", "paths-maximum", "paths-underscores", "seed-zero", "seed-2**64-1", "alpha-tiny",
        "alpha-near-one"])
def test_boundary_values_are_accepted(args, field, value):
    parser, _ = build_parser()
    assert getattr(parser.parse_args(["validate", *args]), field) == value


def test_console_entry_prints_no_traceback():
    """`python -m sdekit.cli` with a bad value: exit 2, one error line naming the flag, no traceback."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(sdekit.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "sdekit.cli", *CHEAP, "--seed", str(2**70)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("sdekit validate: error: argument --seed: "), proc.stderr
