"""Where a validation run happened: package versions, the git commit, the machine and the command line.

`sdekit validate` writes these at the top of report.md, so a report can be reproduced (same
code, same libraries, same command) and its timings read against the machine that produced them.
Everything is best effort: a missing git, /proc/cpuinfo or package gives "unknown" or
"not installed", never an error. Versions come from the installed distributions' metadata
(`importlib.metadata`), so recording torch's version does not import torch.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import sdekit

PACKAGES = ("sdekit", "numba", "numpy", "scipy", "torch")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """name -> version ("not installed" when absent); sdekit's is the version of the package imported."""
    out = {}
    for name in names:
        if name == "sdekit":
            out[name] = sdekit.__version__
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(root: Path | None = None) -> str | None:
    """HEAD of the git checkout holding the sdekit package (with " + local changes" when tracked files
    differ), or None when sdekit is not in a checkout or git is unavailable."""
    root = Path(sdekit.__file__).resolve().parent.parent if root is None else root
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head} + local changes" if dirty else head or None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, str]:
    """CPU model, logical cores (and how many this process may use), OS and Python."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {"cpu": cpu_model(), "cores": f"{cores} logical cores ({usable} usable by this process)",
            "os": platform.platform(), "python": platform.python_version()}


def command_line(argv: Sequence[str] | None = None, prog: str = "sdekit") -> str:
    """The command as a shell would take it: ``prog`` and ``argv`` (default: this process's arguments)."""
    return shlex.join([prog, *(sys.argv[1:] if argv is None else argv)])


def provenance_markdown(argv: Sequence[str] | None = None) -> str:
    """Markdown bullet list: command line, versions, git commit, machine, Numba threads."""
    import numba

    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    m = machine()
    lines = [f"- command: `{command_line(argv)}`", f"- versions: {versions}",
             f"- git commit: {git_commit() or 'unknown (not a git checkout, or git unavailable)'}",
             f"- machine: {m['cpu']}; {m['cores']}; {m['os']}; Python {m['python']}",
             f"- numba threads: {numba.config.NUMBA_NUM_THREADS}"]
    return "\n".join(lines)
