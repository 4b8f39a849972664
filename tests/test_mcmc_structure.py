"""Structure of `sdekit.mcmc` (issue #12 item 9): no test switch in the public samplers or the compiled
loops, every planted bug reachable through the one entry point, and no import cycle among the modules."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import sdekit.mcmc as mcmc
from sdekit.mcmc.defects import SAMPLERS, defects, planted
from sdekit.mcmc.kernel import run_chains_kernel
from sdekit.mcmc.tempering import simulated_annealing, tempered_runs_kernel
from sdekit.mcmc.underdamped import run_underdamped_kernel

MCMC_DIR = Path(mcmc.__file__).parent


@pytest.mark.parametrize("name", ["ula", "mala", "rwm", "hmc", "nuts", "underdamped_langevin", "replica_exchange"])
def test_public_samplers_and_kernels_carry_no_defect_switch(name):
    assert "defect" not in inspect.signature(getattr(mcmc, name)).parameters
    assert "defect" not in inspect.signature(simulated_annealing).parameters
    for kernel in (run_chains_kernel, tempered_runs_kernel, run_underdamped_kernel):
        assert not any("defect" in v for v in kernel.py_func.__code__.co_varnames)


def test_every_planted_bug_is_registered_and_runs_through_the_entry_point():
    """Every module's DEFECTS entry is a compiled variant; planted() takes the public keywords."""
    for sampler, (_, _, table, _) in SAMPLERS.items():
        assert table, sampler
        for defect, entry in table.items():
            assert entry.description and hasattr(entry.variant, "py_func"), (sampler, defect)
            assert defects(sampler)[defect] == entry.description
            run = planted(sampler, defect)
            assert run.__name__ == f"{sampler}[{defect}]"
    assert sum(len(entry[2]) for entry in SAMPLERS.values()) == 15


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sdekit.mcmc"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if (MCMC_DIR / f"{alias.name}.py").exists() and node.module == "sdekit.mcmc"
                        else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sdekit.mcmc")}
    return out


def test_no_import_cycle_inside_sdekit_mcmc():
    """The import graph of sdekit/mcmc (module- and function-level imports, read from the source) is acyclic;
    the driver's kernel sits below both the Python driver and the disk cache."""
    graph = {f"sdekit.mcmc.{p.stem}": _imports(p) - {"sdekit.mcmc"} for p in MCMC_DIR.glob("*.py")
             if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, " -> ".join((*path, nxt))
            if nxt not in state:
                visit(nxt, (*path, nxt))
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, (node,))
    assert "sdekit.mcmc.chains" not in graph["sdekit.mcmc.disk_cache"]
    assert "sdekit.mcmc.disk_cache" in graph["sdekit.mcmc.chains"]
